//! The trust an HTTPS or SSH server must earn before any credential is sent:
//! the pinned CA certificate (instead of the system roots) and the
//! `known_hosts` lines of a remote, and the check of the certificate or host
//! key a server presents against them.

use git2::CertificateCheckStatus;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};

use super::{RemoteKind, RemoteOptions, RepoCredentials};
use crate::GitError;
use crate::known_hosts::{KnownHosts, Verdict, fingerprint, host_name};

/// The trust settings of one remote, parsed.
pub(super) struct ServerTrust {
    /// The pinned CA's anchors; `None` leaves the check to libgit2 and the
    /// system roots.
    ca: Option<Vec<TrustAnchor<'static>>>,
    /// The host keys pinned for an SSH remote (none for other kinds).
    known_hosts: KnownHosts,
}

impl ServerTrust {
    /// Reads the CA certificate and `known_hosts` of `options` for a remote
    /// of `kind`; refused (with the reason) when the CA is not PEM or the
    /// remote is not HTTPS, or when a `known_hosts` line is malformed.
    pub(super) fn new(kind: &RemoteKind, options: &RemoteOptions) -> Result<Self, String> {
        let ca = match &options.ca_certificate {
            None => None,
            Some(_) if !matches!(kind, RemoteKind::Https { .. }) => {
                return Err("a CA certificate only applies to an https remote".to_owned());
            }
            Some(pem) => Some(trust_anchors(pem)?),
        };
        let known_hosts = match &options.credentials {
            RepoCredentials::SshKey { known_hosts, .. } => {
                KnownHosts::parse(known_hosts).map_err(|reason| format!("known_hosts {reason}"))?
            }
            _ => KnownHosts::default(),
        };
        Ok(Self { ca, known_hosts })
    }

    /// Whether a CA certificate is pinned (rather than the system roots).
    pub(super) fn pins_ca(&self) -> bool {
        self.ca.is_some()
    }

    /// Judges the certificate or SSH host key that `host` presented for a
    /// remote of `kind`: a host key must be listed in `known_hosts`, an X.509
    /// certificate must be issued by the pinned CA for `host` (without a
    /// pinned CA, libgit2's own check against the system roots stands).
    pub(super) fn check(
        &self,
        kind: &RemoteKind,
        certificate: &git2::cert::Cert<'_>,
        host: &str,
    ) -> Result<CertificateCheckStatus, GitError> {
        if let Some(host_key) = certificate.as_hostkey() {
            let RemoteKind::Ssh { host, port, .. } = kind else {
                return Err(GitError::HostKey {
                    host: host.to_owned(),
                    reason: "an SSH host key from a remote that is not ssh".to_owned(),
                });
            };
            let Some(key) = host_key.hostkey() else {
                return Err(GitError::HostKey {
                    host: host_name(host, *port),
                    reason: "libgit2 did not hand over the raw host key to check".to_owned(),
                });
            };
            let key_type = host_key
                .hostkey_type()
                .map(|kind| kind.name())
                .unwrap_or("unknown type");
            let presented = format!("{key_type} key {}", fingerprint(key));
            let reason = match self.known_hosts.check(host, *port, key) {
                Verdict::Trusted => return Ok(CertificateCheckStatus::CertificateOk),
                Verdict::UnknownHost => {
                    format!(
                        "the server presented the {presented}, and known_hosts has no line for this host"
                    )
                }
                Verdict::Mismatch(types) => format!(
                    "the server presented the {presented}, which known_hosts does not list for this host (it lists {}): the host key changed, or another server answers",
                    types.join(", ")
                ),
                Verdict::Revoked => format!(
                    "the server presented the {presented}, which known_hosts marks @revoked"
                ),
            };
            return Err(GitError::HostKey {
                host: host_name(host, *port),
                reason,
            });
        }
        if let Some(x509) = certificate.as_x509() {
            let Some(anchors) = &self.ca else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            return match check_server_certificate(anchors, x509.data(), host) {
                Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                Err(reason) => Err(GitError::Tls {
                    host: host.to_owned(),
                    reason,
                }),
            };
        }
        Err(GitError::Tls {
            host: host.to_owned(),
            reason: "the server's certificate is of a kind that cannot be checked".to_owned(),
        })
    }
}

fn trust_anchors(pem: &str) -> Result<Vec<TrustAnchor<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("the CA certificate is not valid PEM: {error}"))?;
    if certificates.is_empty() {
        return Err("the CA certificate holds no PEM CERTIFICATE block".to_owned());
    }
    certificates
        .iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map(|anchor| anchor.to_owned())
                .map_err(|error| format!("the CA certificate cannot be read: {error}"))
        })
        .collect()
}

fn check_server_certificate(
    anchors: &[TrustAnchor<'_>],
    leaf: &[u8],
    host: &str,
) -> Result<(), String> {
    let leaf = CertificateDer::from(leaf);
    let certificate = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|error| format!("the server's certificate cannot be read: {error}"))?;
    certificate
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|error| match error {
            webpki::Error::UnknownIssuer => {
                "it is not issued by the configured CA certificate".to_owned()
            }
            webpki::Error::CertExpired { .. } => "it has expired".to_owned(),
            webpki::Error::CertNotValidYet { .. } => "it is not valid yet".to_owned(),
            other => format!("it does not verify against the configured CA: {other}"),
        })?;
    let name =
        ServerName::try_from(host).map_err(|_| format!("`{host}` is not a valid server name"))?;
    certificate
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("it is not valid for the host name `{host}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::Connection;

    #[test]
    fn a_ca_certificate_must_be_pem_and_only_for_https() {
        let options = |ca: &str| RemoteOptions {
            ca_certificate: Some(ca.to_owned()),
            ..RemoteOptions::default()
        };
        for (url, ca, expected) in [
            (
                "https://git.example.com/d.git",
                "not pem",
                "holds no PEM CERTIFICATE",
            ),
            (
                "/srv/git/d.git",
                "not pem",
                "only applies to an https remote",
            ),
        ] {
            match Connection::new(url, options(ca)) {
                Err(GitError::InvalidRemote { reason, .. }) => {
                    assert!(reason.contains(expected), "{reason}")
                }
                Err(other) => panic!("{url}: {other}"),
                Ok(_) => panic!("{url}: accepted {ca:?}"),
            }
        }
    }
}
