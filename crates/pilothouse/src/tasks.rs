//! What the service's long-running tasks (the GitOps controller, the
//! incident monitor) share: their stop signal and their clock.

use std::time::Duration;

use tokio::sync::watch;

/// Resolves when `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

pub use pilothouse_types::{now_ms, rfc3339};

/// A duration in milliseconds, saturating.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
