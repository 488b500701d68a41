//! A registered cluster's kubeconfig, opened from the store for the
//! controller and the monitor.

use anyhow::Context as _;
use pilothouse_fleet::{KubeconfigPolicy, ValidatedKubeconfig};
use pilothouse_store::{Cluster, MasterKey, Store, cluster_credentials_context};

/// Opens `cluster`'s sealed kubeconfig with the master key and validates it
/// again under today's policy (an exec plugin allowed at registration may
/// not be any more).
pub async fn stored_kubeconfig(
    store: &Store,
    key: &MasterKey,
    policy: &KubeconfigPolicy,
    cluster: &Cluster,
) -> anyhow::Result<ValidatedKubeconfig> {
    let sealed = store
        .cluster_credentials(&cluster.name)
        .await?
        .with_context(|| format!("cluster `{}` has no stored credentials", cluster.name))?;
    let plaintext = key.open(&sealed, &cluster_credentials_context(&cluster.name))?;
    pilothouse_fleet::validate_kubeconfig(
        &String::from_utf8_lossy(&plaintext),
        Some(&cluster.context),
        policy,
    )
    .context("the stored kubeconfig is no longer accepted")
}
