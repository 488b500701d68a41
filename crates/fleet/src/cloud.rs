//! Which cloud a cluster runs on, from what a probe saw. Pure.

use pilothouse_types::Cloud;

/// Detects the cloud from, in precedence order:
///
/// 1. node `providerID`s — `azure://` → AKS, `gce://` → GKE, `aws://` → EKS
///    (the first recognised one wins; `kind://`, `k3s://` and the like are not
///    clouds);
/// 2. the server host — `*.azmk8s.io` (public and `privatelink` AKS API servers;
///    also `*.azk8s.cn` in Azure China and `*.containerservice.azure.us` in Azure
///    Government) → AKS; `*.eks.amazonaws.com` (and `.com.cn`) → EKS;
///    `*.gke.goog` (GKE's DNS-based control-plane endpoint) and Connect Gateway
///    (`connectgateway.googleapis.com`, also regional `*-connectgateway…`) → GKE.
///    GKE's classic endpoint is a bare IP address, which says nothing;
/// 3. the exec credential plugin — `kubelogin` → AKS, `gke-gcloud-auth-plugin`
///    → GKE, `aws` / `aws-iam-authenticator` → EKS.
///
/// `None` when nothing points at a cloud (the caller decides whether that
/// means [`Cloud::Other`]). Provider IDs name the infrastructure, so a
/// self-managed cluster on AWS VMs is reported as EKS: what matters here is
/// which cloud overlay (storage classes, load balancers) fits.
pub fn detect_cloud(
    server_url: &str,
    exec_command: Option<&str>,
    provider_ids: &[String],
) -> Option<Cloud> {
    provider_ids
        .iter()
        .find_map(|id| from_provider_id(id))
        .or_else(|| from_server(server_url))
        .or_else(|| exec_command.and_then(from_exec_command))
}

fn from_provider_id(id: &str) -> Option<Cloud> {
    let (scheme, _) = id.trim().split_once("://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "azure" => Some(Cloud::Aks),
        "gce" => Some(Cloud::Gke),
        "aws" => Some(Cloud::Eks),
        _ => None,
    }
}

fn from_server(server_url: &str) -> Option<Cloud> {
    let uri: http::Uri = server_url.trim().parse().ok()?;
    let host = uri.host()?.trim_end_matches('.').to_ascii_lowercase();
    let under = |domain: &str| host.ends_with(&format!(".{domain}"));
    if under("azmk8s.io") || under("azk8s.cn") || under("containerservice.azure.us") {
        Some(Cloud::Aks)
    } else if under("eks.amazonaws.com") || under("eks.amazonaws.com.cn") {
        Some(Cloud::Eks)
    } else if under("gke.goog")
        || host == "connectgateway.googleapis.com"
        || host
            .strip_suffix("-connectgateway.googleapis.com")
            .is_some_and(|region| !region.is_empty() && !region.contains('.'))
    {
        Some(Cloud::Gke)
    } else {
        None
    }
}

fn from_exec_command(command: &str) -> Option<Cloud> {
    let name = command.rsplit(['/', '\\']).next().unwrap_or(command);
    let name = name.strip_suffix(".exe").unwrap_or(name);
    match name {
        "kubelogin" => Some(Cloud::Aks),
        "gke-gcloud-auth-plugin" => Some(Cloud::Gke),
        "aws" | "aws-iam-authenticator" => Some(Cloud::Eks),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: (&str, Option<&str>, &[&str]), expected: Option<Cloud>) {
        let (server, exec, ids) = input;
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        assert_eq!(
            detect_cloud(server, exec, &ids),
            expected,
            "server {server}, exec {exec:?}, provider IDs {ids:?}"
        );
    }

    const AKS_NODE: &str = "azure:///subscriptions/0000/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-pool/virtualMachines/0";
    const GKE_NODE: &str = "gce://my-project/europe-west1-b/gke-prod-pool-1a2b3c4d-xyz0";
    const EKS_NODE: &str = "aws:///us-east-1a/i-0123456789abcdef0";

    #[test]
    fn provider_ids_name_the_cloud() {
        check(("https://10.0.0.1", None, &[AKS_NODE]), Some(Cloud::Aks));
        check(("https://10.0.0.1", None, &[GKE_NODE]), Some(Cloud::Gke));
        check(("https://10.0.0.1", None, &[EKS_NODE]), Some(Cloud::Eks));
        check(
            ("https://10.0.0.1", None, &["AZURE:///x"]),
            Some(Cloud::Aks),
        );
        // nodes without a cloud provider ID are skipped
        check(
            (
                "https://10.0.0.1",
                None,
                &["", "kind://docker/kind/kind-control-plane", GKE_NODE],
            ),
            Some(Cloud::Gke),
        );
        check(("https://10.0.0.1", None, &["k3s://node-1"]), None);
    }

    #[test]
    fn provider_ids_win_over_the_server_host_and_the_exec_plugin() {
        check(
            (
                "https://prod-abc123.hcp.westeurope.azmk8s.io:443",
                Some("aws"),
                &[GKE_NODE],
            ),
            Some(Cloud::Gke),
        );
        check(
            (
                "https://ABCDEF0123.gr7.us-west-2.eks.amazonaws.com",
                Some("kubelogin"),
                &[],
            ),
            Some(Cloud::Eks),
        );
    }

    #[test]
    fn server_hosts_name_the_cloud() {
        for (server, cloud) in [
            (
                "https://prod-dns-1a2b3c4d.hcp.eastus.azmk8s.io:443",
                Some(Cloud::Aks),
            ),
            (
                "https://prod-1a2b.privatelink.westeurope.azmk8s.io:443",
                Some(Cloud::Aks),
            ),
            (
                "https://prod-1a2b.hcp.chinaeast2.cx.prod.service.azk8s.cn:443",
                Some(Cloud::Aks),
            ),
            (
                "https://prod.hcp.usgovvirginia.cx.aks.containerservice.azure.us:443",
                Some(Cloud::Aks),
            ),
            (
                "https://ABCDEF0123456789.gr7.us-west-2.eks.amazonaws.com",
                Some(Cloud::Eks),
            ),
            (
                "https://ABCDEF0123456789.yl4.cn-north-1.eks.amazonaws.com.cn",
                Some(Cloud::Eks),
            ),
            (
                "https://gke-0123456789abcdef-123456789012.europe-west1.gke.goog",
                Some(Cloud::Gke),
            ),
            (
                "https://connectgateway.googleapis.com/v1/projects/123/locations/global/gkeMemberships/prod",
                Some(Cloud::Gke),
            ),
            (
                "https://us-central1-connectgateway.googleapis.com/v1/projects/123/locations/us-central1/gkeMemberships/prod",
                Some(Cloud::Gke),
            ),
            ("https://PROD.HCP.EASTUS.AZMK8S.IO.:443", Some(Cloud::Aks)),
            // a GKE IP endpoint, a self-hosted name, look-alikes
            ("https://34.77.12.1", None),
            ("https://k8s.example.com:6443", None),
            ("https://azmk8s.io.example.com", None),
            ("https://notazmk8s.io", None),
            ("https://storage.googleapis.com", None),
            ("not a url", None),
        ] {
            check((server, None, &[]), cloud);
        }
    }

    #[test]
    fn exec_plugins_name_the_cloud_last() {
        check(
            ("https://10.0.0.1", Some("kubelogin"), &[]),
            Some(Cloud::Aks),
        );
        check(
            ("https://10.0.0.1", Some("gke-gcloud-auth-plugin"), &[]),
            Some(Cloud::Gke),
        );
        check(("https://10.0.0.1", Some("aws"), &[]), Some(Cloud::Eks));
        check(
            ("https://10.0.0.1", Some("aws-iam-authenticator"), &[]),
            Some(Cloud::Eks),
        );
        check(
            ("https://10.0.0.1", Some("/usr/local/bin/kubelogin"), &[]),
            Some(Cloud::Aks),
        );
        check(("https://10.0.0.1", Some("my-sso-helper"), &[]), None);
        check(("https://10.0.0.1", None, &[]), None);
    }
}
