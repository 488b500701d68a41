//! Connectivity checks of registered clusters: one on demand, and the background
//! loop that re-checks every cluster periodically with backoff for unreachable
//! ones. Results go to the store; one slow or dead cluster never delays others
//! (bounded concurrency, a timeout on every probe).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use pilothouse_store::{
    CheckRecord, Cluster, MasterKey, Store, StoreError, cluster_credentials_context,
};
use tokio::sync::watch;

use crate::{KubeconfigPolicy, probe, validate_kubeconfig};

/// Timeouts and intervals of connectivity checks.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// Time limit of one probe.
    pub timeout: Duration,
    /// Interval between checks of a reachable cluster.
    pub interval: Duration,
    /// Longest wait between checks of an unreachable cluster (the backoff doubles up to it).
    pub max_backoff: Duration,
    /// Clusters probed at once by the background loop.
    pub concurrency: usize,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            interval: Duration::from_secs(60),
            max_backoff: Duration::from_secs(15 * 60),
            concurrency: 16,
        }
    }
}

/// Why a check could not even be attempted (the cluster's own failures are
/// recorded, not returned).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Reading or writing the store failed.
    #[error("store error while checking a cluster")]
    Store(#[from] StoreError),
    /// The cluster has no stored credentials.
    #[error("cluster `{0}` has no stored credentials")]
    NoCredentials(String),
}

/// Probes one cluster with its stored credentials and records the outcome.
pub async fn check_and_record(
    store: &Store,
    key: &MasterKey,
    policy: &KubeconfigPolicy,
    cluster: &Cluster,
    settings: &CheckSettings,
) -> Result<Cluster, CheckError> {
    let sealed = store
        .cluster_credentials(&cluster.name)
        .await?
        .ok_or_else(|| CheckError::NoCredentials(cluster.name.clone()))?;
    let outcome = match key.open(&sealed, &cluster_credentials_context(&cluster.name)) {
        Err(error) => Err(format!("cannot decrypt the stored credentials: {error}")),
        Ok(plaintext) => {
            let yaml = String::from_utf8_lossy(&plaintext).into_owned();
            match validate_kubeconfig(&yaml, None, policy) {
                Err(error) => Err(format!("stored kubeconfig no longer accepted: {error}")),
                Ok(kubeconfig) => probe(&kubeconfig, settings.timeout)
                    .await
                    .map_err(|error| error.to_string()),
            }
        }
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let record = match outcome {
        Ok(probe) => CheckRecord {
            reachable: true,
            kubernetes_version: Some(probe.kubernetes_version),
            error: None,
            checked_at: now,
            next_check_at: now + millis(settings.interval),
            consecutive_failures: 0,
        },
        Err(error) => {
            let failures = cluster.consecutive_failures.saturating_add(1);
            tracing::warn!(cluster = %cluster.name, failures, %error, "cluster unreachable");
            CheckRecord {
                reachable: false,
                kubernetes_version: cluster.kubernetes_version.clone(),
                error: Some(error),
                checked_at: now,
                next_check_at: now + millis(backoff(settings, failures)),
                consecutive_failures: failures,
            }
        }
    };
    store.record_check(&cluster.name, &record).await?;
    Ok(store
        .get_cluster(&cluster.name)
        .await?
        .unwrap_or_else(|| cluster.clone()))
}

/// Wait before the next check after `failures` failures in a row: a sixth of
/// the interval, doubling with each failure (10 s, 20 s, 40 s … for a 60 s
/// interval), capped at `max_backoff`.
fn backoff(settings: &CheckSettings, failures: u32) -> Duration {
    let first = (settings.interval / 6).max(Duration::from_secs(1));
    pilothouse_types::Backoff::new(first, settings.max_backoff).delay(failures)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Re-checks due clusters until `shutdown` turns true: every `tick`, the clusters
/// whose next check is due are probed, `settings.concurrency` at a time.
pub async fn run_checks(
    store: Store,
    key: Arc<MasterKey>,
    policy: Arc<KubeconfigPolicy>,
    settings: CheckSettings,
    tick: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let now = jiff::Timestamp::now().as_millisecond();
        match store.clusters_due_for_check(now, 1000).await {
            Ok(due) => {
                futures::stream::iter(due)
                    .for_each_concurrent(settings.concurrency, |cluster| {
                        let (store, key, policy, settings) = (&store, &key, &policy, &settings);
                        async move {
                            if let Err(error) = check_and_record(store, key, policy, &cluster, settings).await {
                                tracing::error!(cluster = %cluster.name, %error, "cluster check failed");
                            }
                        }
                    })
                    .await;
            }
            Err(error) => tracing::error!(%error, "cannot list clusters due for a check"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_sixth_of_the_interval_up_to_the_cap() {
        let settings = CheckSettings::default();
        let waits: Vec<u64> = (1..=9).map(|f| backoff(&settings, f).as_secs()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 320, 640, 900, 900]);
    }
}
