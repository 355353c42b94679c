//! A [`Forecaster`] as the shard balancer's [`LoadForecaster`].

use shardcast_shardmap::LoadForecaster;

use super::{Forecaster, Holt, SeriesInput};

/// Lends a [`Forecaster`] to the shard balancer: one batched call per window for every shard's load
/// history. If the forecaster fails (a model that cannot run, a wrong output shape) the window is
/// forecast by [`Holt::default`] and the failure is logged once, as in [`super::ForecastLoad`].
///
/// ```
/// use shardcast_operators::forecast::{Ewma, ShardLoadForecaster};
/// use shardcast_shardmap::LoadForecaster;
/// let mut loads = ShardLoadForecaster::new(Ewma::default(), 1000);
/// let forecasts = loads.forecast(&[&[4.0, 4.0, 4.0]], 3, 2);
/// assert_eq!(forecasts.len(), 1);
/// assert_eq!(forecasts[0].len(), 2);
/// ```
pub struct ShardLoadForecaster<F> {
    forecaster: F,
    tick_ms: u64,
    fallback: Holt,
    failed_once: bool,
}

impl<F: Forecaster> ShardLoadForecaster<F> {
    /// Wraps `forecaster`; windows last `tick_ms` milliseconds (for time-of-day features).
    pub fn new(forecaster: F, tick_ms: u64) -> Self {
        ShardLoadForecaster {
            forecaster,
            tick_ms,
            fallback: Holt::default(),
            failed_once: false,
        }
    }

    /// The name of the wrapped forecaster.
    pub fn name(&self) -> &str {
        self.forecaster.name()
    }
}

impl<F: Forecaster> LoadForecaster for ShardLoadForecaster<F> {
    fn forecast(
        &mut self,
        histories: &[&[f64]],
        next_window: u64,
        horizon: usize,
    ) -> Vec<Vec<f64>> {
        let inputs: Vec<SeriesInput<'_>> = histories
            .iter()
            .map(|history| SeriesInput {
                history,
                next_epoch: next_window,
                tick_ms: self.tick_ms,
            })
            .collect();
        match self.forecaster.forecast_batch(&inputs, horizon) {
            Ok(f) if f.len() == inputs.len() => f,
            outcome => {
                if !self.failed_once {
                    self.failed_once = true;
                    let why = match outcome {
                        Err(e) => e.to_string(),
                        Ok(f) => format!("{} forecasts for {} series", f.len(), inputs.len()),
                    };
                    tracing::warn!(
                        "forecaster {} failed on shard loads, using holt: {why}",
                        self.forecaster.name()
                    );
                }
                self.fallback
                    .forecast_batch(&inputs, horizon)
                    .unwrap_or_else(|_| inputs.iter().map(|_| vec![0.0; horizon]).collect())
            }
        }
    }
}
