//! Certificates and keys for one test cluster, generated in process (no openssl CLI).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::TestEnvError;

/// The PEM material a cluster needs.
pub(crate) struct Pki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    pub service_account_key: String,
    pub service_account_public_key: String,
    /// The CA certificate, DER, for the fake kubelet's client-certificate check.
    pub ca_cert_der: Vec<u8>,
    /// The fake kubelet's serving certificate (IP 127.0.0.1), DER.
    pub kubelet_serving_cert_der: Vec<u8>,
    /// Its PKCS#8 key, DER.
    pub kubelet_serving_key_der: Vec<u8>,
    /// The client certificate the apiserver presents to kubelets, PEM.
    pub kubelet_client_cert: String,
    /// Its key, PEM.
    pub kubelet_client_key: String,
}

impl Pki {
    pub fn generate(cluster: &str) -> Result<Self, TestEnvError> {
        Self::build(cluster).map_err(TestEnvError::Certificate)
    }

    fn build(cluster: &str) -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = name(&format!("pilothouse-testenv-{cluster}-ca"), None);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])?;
        serving.distinguished_name = name("kube-apiserver", None);
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &issuer)?;

        let admin_key = KeyPair::generate()?;
        let mut admin = CertificateParams::new(Vec::<String>::new())?;
        admin.distinguished_name = name("pilothouse-testenv-admin", Some("system:masters"));
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin.signed_by(&admin_key, &issuer)?;

        let kubelet_key = KeyPair::generate()?;
        let mut kubelet = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
        kubelet.distinguished_name = name("pilothouse-testenv-kubelet", None);
        kubelet.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let kubelet_cert = kubelet.signed_by(&kubelet_key, &issuer)?;

        let kubelet_client_key = KeyPair::generate()?;
        let mut kubelet_client = CertificateParams::new(Vec::<String>::new())?;
        kubelet_client.distinguished_name = name("kube-apiserver-kubelet-client", None);
        kubelet_client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let kubelet_client_cert = kubelet_client.signed_by(&kubelet_client_key, &issuer)?;

        let service_account = KeyPair::generate()?;
        Ok(Self {
            ca_cert: ca_cert.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
            service_account_key: service_account.serialize_pem(),
            service_account_public_key: service_account.public_key_pem(),
            ca_cert_der: ca_cert.der().to_vec(),
            kubelet_serving_cert_der: kubelet_cert.der().to_vec(),
            kubelet_serving_key_der: kubelet_key.serialize_der(),
            kubelet_client_cert: kubelet_client_cert.pem(),
            kubelet_client_key: kubelet_client_key.serialize_pem(),
        })
    }
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}
