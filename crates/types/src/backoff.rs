//! The one retry schedule: exponential, capped, optionally jittered.

use std::time::Duration;

/// An exponential backoff: `first` after the first failure, doubling with
/// each failure in a row, never longer than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// A backoff from `first` doubling up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The wait after `failures` failures in a row (1 for the first; 0 is
    /// treated as 1): `first × 2^(failures − 1)`, capped at `max`, without
    /// overflow for any count.
    pub fn delay(&self, failures: u32) -> Duration {
        // 2^31 times the first wait is past any cap worth having
        let factor = 1u32 << failures.saturating_sub(1).min(31);
        self.first
            .checked_mul(factor)
            .map_or(self.max, |delay| delay.min(self.max))
    }

    /// [`Backoff::delay`] shortened by a random part of up to a quarter, so
    /// that many tasks failing together do not retry together.
    pub fn jittered_delay(&self, failures: u32) -> Duration {
        let delay = self.delay(failures);
        delay.saturating_sub(delay.mul_f64(fastrand::f64() / 4.0))
    }
}

/// `interval` lengthened by a random part of up to `fraction` of it (a
/// poll every minute plus up to 10%, say), so that periodic work of many
/// clusters or replicas spreads out.
pub fn jittered(interval: Duration, fraction: f64) -> Duration {
    interval.saturating_add(interval.mul_f64(fraction.clamp(0.0, 1.0) * fastrand::f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_wait_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(600));
        let secs: Vec<u64> = (0..10).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(secs, [5, 5, 10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(backoff.delay(u32::MAX), backoff.max);
        let tiny = Backoff::new(Duration::from_nanos(1), Duration::MAX);
        assert_eq!(tiny.delay(32), Duration::from_nanos(1 << 31));
        assert_eq!(tiny.delay(u32::MAX), Duration::from_nanos(1 << 31));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        for (failures, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (60, 8.0)] {
            for _ in 0..100 {
                let delay = backoff.jittered_delay(failures).as_secs_f64();
                assert!(delay <= full && delay >= full * 0.75, "{failures}: {delay}");
            }
        }
        let minute = Duration::from_secs(60);
        let spread: Vec<Duration> = (0..200).map(|_| jittered(minute, 0.1)).collect();
        assert!(
            spread
                .iter()
                .all(|d| *d >= minute && *d <= minute + minute / 10)
        );
        assert!(spread.iter().any(|d| *d != spread[0]), "the jitter varies");
    }
}
