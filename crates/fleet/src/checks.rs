//! The settings of connectivity checks: how long one probe may take, how
//! often a cluster is checked, how far checks of an unreachable one back
//! off. The checks themselves (credentials from the store, probes, records)
//! run in the binary.

use std::time::Duration;

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
