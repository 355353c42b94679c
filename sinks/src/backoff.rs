//! Retry with exponential back-off under a total time budget, shared by the networked sinks.

use std::time::{Duration, Instant};

use crate::SinkError;

/// How long and how often to retry an operation that failed with a transient error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubled after each further failure.
    pub initial_delay: Duration,
    /// Upper bound for a single delay.
    pub max_delay: Duration,
    /// Total time after the first attempt started beyond which no new attempt is made and the
    /// last error is returned as [`SinkError::GaveUp`].
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 100 ms doubling to 5 s between attempts; give up after 5 minutes, long enough to ride
    /// out a broker or server restart without stalling a pipeline forever.
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            give_up_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The default delays with a different total budget.
    pub fn giving_up_after(give_up_after: Duration) -> Self {
        RetryPolicy {
            give_up_after,
            ..RetryPolicy::default()
        }
    }

    /// The delay to wait after failed attempt number `attempt` (1-based):
    /// `initial_delay * 2^(attempt-1)`, capped at `max_delay`.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Runs `op` (passed the 1-based attempt number) until it succeeds, retrying transient
/// failures ([`SinkError::is_transient`]) with exponential back-off.
///
/// Each failed attempt is reported with `tracing::warn!` (what, attempt count, error, delay).
/// A non-transient error is returned at once, unchanged. Once `policy.give_up_after` has passed
/// since the first attempt, the last transient error is returned wrapped in
/// [`SinkError::GaveUp`]; the final delay is shortened so no attempt starts after the budget.
pub fn retry<T>(
    policy: &RetryPolicy,
    what: &str,
    mut op: impl FnMut(u32) -> Result<T, SinkError>,
) -> Result<T, SinkError> {
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let err = match op(attempt) {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(what, attempts = attempt, "succeeded after retrying");
                }
                return Ok(value);
            }
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => err,
        };
        let elapsed = start.elapsed();
        if elapsed >= policy.give_up_after {
            tracing::warn!(what, attempts = attempt, ?elapsed, error = %err, "giving up");
            return Err(SinkError::GaveUp {
                what: what.to_string(),
                attempts: attempt,
                elapsed,
                last: Box::new(err),
            });
        }
        let delay = policy
            .delay_after(attempt)
            .min(policy.give_up_after - elapsed);
        tracing::warn!(what, attempt, error = %err, ?delay, "attempt failed; retrying");
        std::thread::sleep(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> SinkError {
        SinkError::redis(
            "test",
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        )
    }

    fn fast(budget_ms: u64) -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            give_up_after: Duration::from_millis(budget_ms),
        }
    }

    #[test]
    fn delays_double_and_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1), Duration::from_millis(100));
        assert_eq!(p.delay_after(2), Duration::from_millis(200));
        assert_eq!(p.delay_after(6), Duration::from_millis(3200));
        assert_eq!(p.delay_after(7), Duration::from_secs(5));
        assert_eq!(p.delay_after(100), Duration::from_secs(5));
    }

    #[test]
    fn retries_transient_until_success() {
        let result = retry(&fast(10_000), "op", |attempt| {
            if attempt < 4 {
                Err(transient())
            } else {
                Ok(attempt)
            }
        });
        assert_eq!(result.unwrap(), 4);
    }

    #[test]
    fn permanent_error_is_not_retried() {
        let mut calls = 0;
        let result: Result<(), _> = retry(&fast(10_000), "op", |_| {
            calls += 1;
            Err(SinkError::Invalid("bad".into()))
        });
        assert!(matches!(result, Err(SinkError::Invalid(_))));
        assert_eq!(calls, 1);
    }

    #[test]
    fn gives_up_after_budget() {
        let start = Instant::now();
        let result: Result<(), _> = retry(&fast(50), "op", |_| Err(transient()));
        match result {
            Err(SinkError::GaveUp { attempts, .. }) => assert!(attempts > 1),
            other => panic!("expected GaveUp, got {other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
