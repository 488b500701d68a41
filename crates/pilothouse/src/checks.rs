//! Connectivity checks of registered clusters: one on demand (the API's
//! `POST /clusters/{name}/check`), and the background loop that re-checks
//! every cluster periodically, backing off from unreachable ones. `fleet`
//! probes; this module opens the stored credentials and records outcomes.
//! One slow or dead cluster never delays the others (bounded concurrency, a
//! timeout on every probe).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use pilothouse_api::{BoxFuture, ClusterChecks};
use pilothouse_fleet::{CheckSettings, KubeconfigPolicy};
use pilothouse_store::{CheckRecord, Cluster, MasterKey, Store, StoreError};
use pilothouse_types::Backoff;
use tokio::sync::watch;

use crate::tasks::{millis, now_ms, stopped};

/// Everything a check needs.
#[derive(Clone)]
pub struct Checker {
    /// The store.
    pub store: Store,
    /// Opens the stored credentials.
    pub key: Arc<MasterKey>,
    /// Which kubeconfigs are still accepted.
    pub policy: Arc<KubeconfigPolicy>,
    /// Timeouts and intervals.
    pub settings: CheckSettings,
}

impl Checker {
    /// Probes one cluster with its stored credentials and records the
    /// outcome: the cluster as recorded. Credentials that no longer open or
    /// are no longer accepted are a failed check, recorded like any other;
    /// only the store failing is an error.
    pub async fn check(&self, cluster: &Cluster) -> Result<Cluster, StoreError> {
        let outcome = match crate::credentials::stored_kubeconfig(
            &self.store,
            &self.key,
            &self.policy,
            cluster,
        )
        .await
        {
            Ok(kubeconfig) => pilothouse_fleet::probe(&kubeconfig, self.settings.timeout)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => match error.downcast::<StoreError>() {
                Ok(store) => return Err(store),
                Err(other) => Err(format!("{other:#}")),
            },
        };
        let now = now_ms();
        let record = match outcome {
            Ok(probe) => CheckRecord {
                reachable: true,
                kubernetes_version: Some(probe.kubernetes_version),
                error: None,
                checked_at: now,
                next_check_at: now + millis(self.settings.interval),
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
                    next_check_at: now + millis(backoff(&self.settings, failures)),
                    consecutive_failures: failures,
                }
            }
        };
        self.store.record_check(&cluster.name, &record).await?;
        Ok(self
            .store
            .get_cluster(&cluster.name)
            .await?
            .unwrap_or_else(|| cluster.clone()))
    }

    /// Re-checks due clusters until `stop` turns true: every `tick`, the
    /// clusters whose next check is due are probed, `concurrency` at a time.
    pub async fn run(self, tick: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            match self.store.clusters_due_for_check(now_ms(), 1000).await {
                Ok(due) => {
                    let checker = &self;
                    futures::stream::iter(due)
                        .for_each_concurrent(self.settings.concurrency, |cluster| async move {
                            if let Err(error) = checker.check(&cluster).await {
                                tracing::error!(cluster = %cluster.name, %error, "cluster check failed");
                            }
                        })
                        .await;
                }
                Err(error) => tracing::error!(%error, "cannot list clusters due for a check"),
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = stopped(&mut stop) => return,
            }
        }
    }
}

impl ClusterChecks for Checker {
    fn check_now(&self, cluster: Cluster) -> BoxFuture<Result<Cluster, String>> {
        let checker = self.clone();
        Box::pin(async move {
            checker
                .check(&cluster)
                .await
                .map_err(|error| error.to_string())
        })
    }
}

/// Wait before the next check after `failures` failures in a row: a sixth of
/// the interval, doubling with each failure (10 s, 20 s, 40 s … for a 60 s
/// interval), capped at `max_backoff`.
fn backoff(settings: &CheckSettings, failures: u32) -> Duration {
    let first = (settings.interval / 6).max(Duration::from_secs(1));
    Backoff::new(first, settings.max_backoff).delay(failures)
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
