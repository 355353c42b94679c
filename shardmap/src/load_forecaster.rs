//! What the balancer asks of a forecaster, and two plain ones.

/// Forecasts the next windows of many load series at once.
///
/// `forecast(histories, next_window, horizon)` returns, for each history in order, `horizon`
/// forecasts: element `h - 1` is the load expected `h` windows after the last of the history (which
/// is window `next_window - 1`). The balancer treats a missing, short, negative or non-finite
/// answer as "the load stays at its last value", so a failing model degrades to the naive forecast
/// instead of stopping the balancer.
pub trait LoadForecaster {
    /// `horizon` forecasts for each series of `histories` (oldest first).
    fn forecast(&mut self, histories: &[&[f64]], next_window: u64, horizon: usize)
        -> Vec<Vec<f64>>;
}

/// Every future window is the last one seen: the naive forecast (a reactive balancer's view).
///
/// ```
/// use shardcast_shardmap::{LastValueForecaster, LoadForecaster};
/// assert_eq!(LastValueForecaster.forecast(&[&[1.0, 5.0]], 2, 2), vec![vec![5.0, 5.0]]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LastValueForecaster;

impl LoadForecaster for LastValueForecaster {
    fn forecast(&mut self, histories: &[&[f64]], _next: u64, horizon: usize) -> Vec<Vec<f64>> {
        histories
            .iter()
            .map(|h| vec![h.last().copied().unwrap_or(0.0).max(0.0); horizon])
            .collect()
    }
}

/// Holt's linear trend with a damped trend: from `level = first, trend = 0`, each later value `y`
/// updates `level' = alpha·y + (1 − alpha)·(level + phi·trend)` and
/// `trend' = beta·(level' − level) + (1 − beta)·phi·trend`; the forecast `h` windows ahead is
/// `level + (phi + … + phi^h)·trend`, at least 0 (Gardner and McKenzie's damped trend, 1985).
///
/// ```
/// use shardcast_shardmap::{HoltForecaster, LoadForecaster};
/// let ramp: Vec<f64> = (0..10).map(|w| 10.0 * w as f64).collect();
/// let f = HoltForecaster::default().forecast(&[&ramp], 10, 3);
/// // A steady ramp is extrapolated upwards.
/// assert!(f[0][2] > f[0][0] && f[0][0] > 90.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HoltForecaster {
    /// Level smoothing in `(0, 1]`.
    pub alpha: f64,
    /// Trend smoothing in `[0, 1]`.
    pub beta: f64,
    /// Trend damping in `(0, 1]`.
    pub phi: f64,
}

impl Default for HoltForecaster {
    /// `alpha = 0.5, beta = 0.3, phi = 0.9`: quicker than a smoothing baseline, because a balancer
    /// wants to see a ramp within a few windows.
    fn default() -> Self {
        HoltForecaster {
            alpha: 0.5,
            beta: 0.3,
            phi: 0.9,
        }
    }
}

impl HoltForecaster {
    /// The forecasts of one history.
    pub fn forecast_one(&self, history: &[f64], horizon: usize) -> Vec<f64> {
        let alpha = clamp_or(self.alpha, f64::MIN_POSITIVE, 1.0, 0.5);
        let beta = clamp_or(self.beta, 0.0, 1.0, 0.3);
        let phi = clamp_or(self.phi, f64::MIN_POSITIVE, 1.0, 0.9);
        let mut values = history.iter().copied().filter(|v| v.is_finite());
        let Some(first) = values.next() else {
            return vec![0.0; horizon];
        };
        let (level, trend) = values.fold((first, 0.0), |(level, trend), y| {
            let next = alpha * y + (1.0 - alpha) * (level + phi * trend);
            (next, beta * (next - level) + (1.0 - beta) * phi * trend)
        });
        let mut damp = 0.0;
        let mut power = 1.0;
        (0..horizon)
            .map(|_| {
                power *= phi;
                damp += power;
                (level + damp * trend).max(0.0)
            })
            .collect()
    }
}

fn clamp_or(value: f64, lo: f64, hi: f64, default: f64) -> f64 {
    if value.is_finite() {
        value.clamp(lo, hi)
    } else {
        default
    }
}

impl LoadForecaster for HoltForecaster {
    fn forecast(&mut self, histories: &[&[f64]], _next: u64, horizon: usize) -> Vec<Vec<f64>> {
        histories
            .iter()
            .map(|h| self.forecast_one(h, horizon))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holt_follows_a_flat_series_and_never_goes_negative() {
        let flat = [7.0; 12];
        let f = HoltForecaster::default().forecast_one(&flat, 4);
        for v in f {
            assert!((v - 7.0).abs() < 1e-9);
        }
        // Falling by 10 a window to 10: the forecast goes on falling and stops at 0.
        let falling: Vec<f64> = (0..10).map(|w| 100.0 - 10.0 * w as f64).collect();
        let f = HoltForecaster::default().forecast_one(&falling, 8);
        assert!(f.iter().all(|v| *v >= 0.0));
        assert!(f[0] < 10.0, "{f:?}");
        assert_eq!(f[7], 0.0, "{f:?}");
        assert_eq!(
            HoltForecaster::default().forecast_one(&[], 2),
            vec![0.0, 0.0]
        );
    }
}
