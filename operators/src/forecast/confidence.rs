//! `ErrorTracker`: a series' confidence from its forecaster's own recent one-step errors.

use std::collections::VecDeque;

/// The last `capacity` one-step-ahead absolute errors of one series' forecasts, with the counts that
/// actually happened, and the confidence they give.
///
/// **Computes:** `confidence = clamp(1 − Σ|error| / max(Σ actual, 1), 0, 1)` over the kept epochs: one minus
/// the recent weighted absolute percentage error, so a forecaster that has been within 10% of the load
/// lately has confidence 0.9, and one that has been off by as much as the load itself has 0. The `max(…, 1)`
/// keeps a quiet series (nothing happened) from dividing by zero: there, being off by one access already
/// costs the whole confidence. A series with no recorded epoch yet has confidence 0 (nothing supports its
/// forecasts), not the 1 the formula would give on empty sums.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorTracker {
    capacity: usize,
    /// `(|forecast − actual|, actual)` per epoch, oldest first.
    recent: VecDeque<(f64, f64)>,
    error_sum: f64,
    actual_sum: f64,
}

impl ErrorTracker {
    /// The number of epochs kept when nothing else is said.
    pub const DEFAULT_CAPACITY: usize = 16;

    /// A tracker of the last `capacity` epochs (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ErrorTracker {
            capacity,
            recent: VecDeque::with_capacity(capacity),
            error_sum: 0.0,
            actual_sum: 0.0,
        }
    }

    /// Records the epoch whose one-step forecast was `forecast` and whose count was `actual`.
    pub fn record(&mut self, forecast: f64, actual: f64) {
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(((forecast - actual).abs(), actual));
        // Recomputed rather than updated incrementally, so rounding never drifts over a long run.
        self.error_sum = self.recent.iter().map(|(e, _)| e).sum();
        self.actual_sum = self.recent.iter().map(|(_, a)| a).sum();
    }

    /// How many epochs are recorded (at most the capacity).
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// Whether no epoch is recorded yet.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// The confidence in `[0, 1]` described on the type.
    pub fn confidence(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        let score = 1.0 - self.error_sum / self.actual_sum.max(1.0);
        if score.is_nan() {
            0.0
        } else {
            score.clamp(0.0, 1.0)
        }
    }
}

impl Default for ErrorTracker {
    fn default() -> Self {
        ErrorTracker::new(Self::DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_one_minus_recent_wape() {
        let mut t = ErrorTracker::new(3);
        assert_eq!(t.confidence(), 0.0, "no evidence yet");
        t.record(10.0, 10.0);
        assert_eq!(t.confidence(), 1.0);
        t.record(12.0, 10.0);
        // errors 0 + 2 over actuals 20.
        assert!((t.confidence() - 0.9).abs() < 1e-12);
        t.record(0.0, 10.0);
        assert!((t.confidence() - (1.0 - 12.0 / 30.0)).abs() < 1e-12);
        // The first epoch falls out of the window of 3.
        t.record(10.0, 10.0);
        assert_eq!(t.len(), 3);
        assert!((t.confidence() - (1.0 - 12.0 / 30.0)).abs() < 1e-12);
        t.record(10.0, 10.0);
        assert!((t.confidence() - (1.0 - 10.0 / 30.0)).abs() < 1e-12);
    }

    #[test]
    fn quiet_series_and_large_errors_clamp() {
        let mut t = ErrorTracker::new(4);
        t.record(0.5, 0.0);
        // Nothing happened: errors are measured against 1.
        assert!((t.confidence() - 0.5).abs() < 1e-12);
        t.record(100.0, 1.0);
        assert_eq!(t.confidence(), 0.0);
    }
}
