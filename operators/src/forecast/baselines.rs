//! Classical forecasters that need no training: last value, EWMA, Holt's linear trend, seasonal naive.
//!
//! Each one reads only the history it is given (no state between calls), so the operator, the evaluation
//! and the training script (which mirrors these definitions to print its comparison) agree exactly.

use super::{check_inputs, ForecastError, Forecaster, SeriesInput};

/// Applies `one` to every input and repeats nothing else: the shared body of the baselines.
fn each<F>(inputs: &[SeriesInput<'_>], horizon: usize, one: F) -> Vec<Vec<f64>>
where
    F: Fn(&[f64], usize) -> Vec<f64>,
{
    inputs
        .iter()
        .map(|input| {
            one(input.history, horizon)
                .into_iter()
                .map(|v| v.max(0.0))
                .collect()
        })
        .collect()
}

/// Checks that `value` lies in `range`, naming the parameter otherwise.
fn check_range(
    name: &str,
    value: f64,
    range: impl std::ops::RangeBounds<f64> + std::fmt::Debug,
) -> Result<(), ForecastError> {
    if value.is_finite() && range.contains(&value) {
        Ok(())
    } else {
        Err(ForecastError::InvalidParameter(format!(
            "{name} must lie in {range:?}, got {value}"
        )))
    }
}

/// Forecasts every future epoch as the latest count (0 for an empty history): the naive forecast.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LastValue;

impl Forecaster for LastValue {
    fn name(&self) -> &str {
        "last"
    }

    fn forecast_batch(
        &mut self,
        inputs: &[SeriesInput<'_>],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        check_inputs(inputs)?;
        Ok(each(inputs, horizon, |h, horizon| {
            vec![h.last().copied().unwrap_or(0.0); horizon]
        }))
    }
}

/// Exponentially weighted moving average: every future epoch is forecast as the smoothed level.
///
/// The level starts at the first count and moves by `alpha` of each later count's difference from it,
/// `level += alpha * (count - level)`; a larger `alpha` follows changes faster and noise more.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ewma {
    /// Smoothing factor in `(0, 1]`; `1` is the last value.
    pub alpha: f64,
}

impl Ewma {
    /// An EWMA with smoothing factor `alpha`, which must lie in `(0, 1]`.
    pub fn new(alpha: f64) -> Result<Self, ForecastError> {
        let ewma = Ewma { alpha };
        ewma.validate()?;
        Ok(ewma)
    }

    fn validate(&self) -> Result<(), ForecastError> {
        check_range("ewma alpha", self.alpha, f64::MIN_POSITIVE..=1.0)
    }

    /// The smoothed level after `history` (0 for an empty history).
    pub fn level(&self, history: &[f64]) -> f64 {
        let Some((&first, rest)) = history.split_first() else {
            return 0.0;
        };
        rest.iter()
            .fold(first, |level, &x| level + self.alpha * (x - level))
    }
}

impl Default for Ewma {
    /// `alpha = 0.2`: close to the best single value over the traces the project measures (see
    /// `models/README.md`), where noisy web-server shards want 0.1 to 0.2 and bursty block I/O wants more.
    fn default() -> Self {
        Ewma { alpha: 0.2 }
    }
}

impl Forecaster for Ewma {
    fn name(&self) -> &str {
        "ewma"
    }

    fn forecast_batch(
        &mut self,
        inputs: &[SeriesInput<'_>],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        self.validate()?;
        check_inputs(inputs)?;
        Ok(each(inputs, horizon, |h, horizon| {
            vec![self.level(h); horizon]
        }))
    }
}

/// Holt's linear trend with a damped trend: a level and a slope, both exponentially smoothed.
///
/// Starting from `level = first count, trend = 0`, each later count `y` updates
/// `level' = alpha·y + (1 − alpha)·(level + phi·trend)` and
/// `trend' = beta·(level' − level) + (1 − beta)·phi·trend`; the forecast `h` epochs ahead is
/// `level + (phi + phi² + … + phi^h)·trend`, clamped at 0. `phi = 1` is the undamped method; `phi < 1`
/// flattens the trend with the horizon so a short rise is not extrapolated forever.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Holt {
    /// Level smoothing factor in `(0, 1]`.
    pub alpha: f64,
    /// Trend smoothing factor in `[0, 1]`.
    pub beta: f64,
    /// Trend damping factor in `(0, 1]`.
    pub phi: f64,
}

impl Holt {
    /// Holt's method with these factors, checked against their ranges.
    pub fn new(alpha: f64, beta: f64, phi: f64) -> Result<Self, ForecastError> {
        let holt = Holt { alpha, beta, phi };
        holt.validate()?;
        Ok(holt)
    }

    fn validate(&self) -> Result<(), ForecastError> {
        check_range("holt alpha", self.alpha, f64::MIN_POSITIVE..=1.0)?;
        check_range("holt beta", self.beta, 0.0..=1.0)?;
        check_range("holt phi", self.phi, f64::MIN_POSITIVE..=1.0)
    }

    /// The level and trend after `history` (`(0, 0)` for an empty history).
    pub fn state(&self, history: &[f64]) -> (f64, f64) {
        let Some((&first, rest)) = history.split_first() else {
            return (0.0, 0.0);
        };
        let (a, b, phi) = (self.alpha, self.beta, self.phi);
        rest.iter().fold((first, 0.0), |(level, trend), &y| {
            let next = a * y + (1.0 - a) * (level + phi * trend);
            (next, b * (next - level) + (1.0 - b) * phi * trend)
        })
    }
}

impl Default for Holt {
    /// `alpha = 0.2, beta = 0.05, phi = 0.9`: a slow trend, damped, over an EWMA-like level.
    fn default() -> Self {
        Holt {
            alpha: 0.2,
            beta: 0.05,
            phi: 0.9,
        }
    }
}

impl Forecaster for Holt {
    fn name(&self) -> &str {
        "holt"
    }

    fn forecast_batch(
        &mut self,
        inputs: &[SeriesInput<'_>],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        self.validate()?;
        check_inputs(inputs)?;
        Ok(each(inputs, horizon, |h, horizon| {
            let (level, trend) = self.state(h);
            let mut damp = 0.0;
            let mut power = 1.0;
            (0..horizon)
                .map(|_| {
                    power *= self.phi;
                    damp += power;
                    level + damp * trend
                })
                .collect()
        }))
    }
}

/// Forecasts each epoch as the count one season earlier: epoch `h` ahead repeats the count at
/// `len − season + (h − 1) mod season`. A history shorter than one season falls back to the last value.
/// With `season = 1` this is the naive (last value) forecast.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeasonalNaive {
    /// Epochs per season, at least 1.
    pub season: usize,
}

impl SeasonalNaive {
    /// A seasonal naive forecast with `season` epochs per season (at least 1).
    pub fn new(season: usize) -> Result<Self, ForecastError> {
        let naive = SeasonalNaive { season };
        naive.validate()?;
        Ok(naive)
    }

    fn validate(&self) -> Result<(), ForecastError> {
        if self.season == 0 {
            return Err(ForecastError::InvalidParameter(
                "seasonal-naive season must be at least 1 epoch".into(),
            ));
        }
        Ok(())
    }
}

impl Forecaster for SeasonalNaive {
    fn name(&self) -> &str {
        "seasonal-naive"
    }

    fn forecast_batch(
        &mut self,
        inputs: &[SeriesInput<'_>],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        self.validate()?;
        check_inputs(inputs)?;
        let season = self.season;
        Ok(each(inputs, horizon, |h, horizon| {
            if h.len() < season {
                return vec![h.last().copied().unwrap_or(0.0); horizon];
            }
            let start = h.len() - season;
            (0..horizon).map(|i| h[start + i % season]).collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &mut dyn Forecaster, history: &[f64], horizon: usize) -> Vec<f64> {
        let input = SeriesInput {
            history,
            next_epoch: 0,
            tick_ms: 1000,
        };
        f.forecast_batch(&[input], horizon).unwrap().remove(0)
    }

    #[test]
    fn last_value_and_empty_history() {
        assert_eq!(run(&mut LastValue, &[3.0, 5.0], 3), vec![5.0; 3]);
        assert_eq!(run(&mut LastValue, &[], 2), vec![0.0; 2]);
    }

    #[test]
    fn ewma_matches_its_recurrence() {
        let mut ewma = Ewma::new(0.5).unwrap();
        // 4 -> 4 + 0.5 * (8 - 4) = 6 -> 6 + 0.5 * (0 - 6) = 3.
        assert_eq!(run(&mut ewma, &[4.0, 8.0, 0.0], 2), vec![3.0, 3.0]);
        // alpha = 1 is the last value.
        assert_eq!(run(&mut Ewma::new(1.0).unwrap(), &[4.0, 9.0], 1), vec![9.0]);
        assert!(Ewma::new(0.0).is_err());
        assert!(Ewma::new(f64::NAN).is_err());
        assert!(Ewma::new(1.5).is_err());
    }

    #[test]
    fn holt_follows_a_line_and_damps_its_trend() {
        let line: Vec<f64> = (0..200).map(|i| 10.0 + 2.0 * i as f64).collect();
        let undamped = run(&mut Holt::new(0.5, 0.5, 1.0).unwrap(), &line, 3);
        for (h, value) in undamped.iter().enumerate() {
            let expected = 10.0 + 2.0 * (200 + h) as f64;
            assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
        }
        // A damped trend adds less and less per step.
        let damped = run(&mut Holt::new(0.5, 0.5, 0.8).unwrap(), &line, 4);
        let steps: Vec<f64> = damped.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.windows(2).all(|s| s[1] < s[0]), "{steps:?}");
        // A falling series never forecasts below zero.
        let falling: Vec<f64> = (0..20).map(|i| 40.0 - 2.0 * i as f64).collect();
        let forecast = run(&mut Holt::new(0.9, 0.9, 1.0).unwrap(), &falling, 50);
        assert!(forecast.iter().all(|v| *v >= 0.0));
        assert_eq!(*forecast.last().unwrap(), 0.0);
        assert!(Holt::new(0.5, 1.5, 1.0).is_err());
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let mut naive = SeasonalNaive::new(3).unwrap();
        assert_eq!(
            run(&mut naive, &[9.0, 1.0, 2.0, 3.0], 5),
            vec![1.0, 2.0, 3.0, 1.0, 2.0]
        );
        // Shorter than a season: the last value.
        assert_eq!(run(&mut naive, &[7.0, 4.0], 2), vec![4.0, 4.0]);
        assert!(SeasonalNaive::new(0).is_err());
    }

    #[test]
    fn bad_counts_are_errors() {
        let input = SeriesInput {
            history: &[1.0, f64::NAN],
            next_epoch: 0,
            tick_ms: 1,
        };
        let err = Ewma::default().forecast_batch(&[input], 1).unwrap_err();
        assert!(matches!(err, ForecastError::BadInput(_)), "{err}");
        let input = SeriesInput {
            history: &[-1.0],
            next_epoch: 0,
            tick_ms: 1,
        };
        assert!(LastValue.forecast_batch(&[input], 1).is_err());
    }
}
