//! Retrying transient failures of the migration module with exponential back-off, on the same
//! [`RetryPolicy`] as the sinks.

use std::time::Instant;

use super::MigrationError;
use crate::RetryPolicy;

/// Runs `op` (passed the 1-based attempt number) until it succeeds, retrying errors that are
/// [transient](MigrationError::is_transient) with the policy's delays; a non-transient error is
/// returned at once, and once the budget is spent the last error comes back as
/// [`MigrationError::GaveUp`].
pub(crate) fn retry_transient<T>(
    policy: &RetryPolicy,
    what: &str,
    mut op: impl FnMut(u32) -> Result<T, MigrationError>,
) -> Result<T, MigrationError> {
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let err = match op(attempt) {
            Ok(value) => return Ok(value),
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => err,
        };
        let elapsed = start.elapsed();
        if elapsed >= policy.give_up_after {
            return Err(MigrationError::GaveUp {
                what: what.to_string(),
                attempts: attempt,
                elapsed,
                last: Box::new(err),
            });
        }
        tracing::debug!(what, attempt, error = %err, "retrying");
        std::thread::sleep(
            policy
                .delay_after(attempt)
                .min(policy.give_up_after - elapsed),
        );
    }
}
