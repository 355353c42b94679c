//! Load forecasts per series (a key, a partition or a shard) for the next `H` epochs.
//!
//! A [`Forecaster`] turns the recent per-epoch counts of many series into forecasts for each of them, in one
//! call per epoch, so a learned model runs one batched inference for all the series a worker owns. The
//! baselines ([`LastValue`], [`Ewma`], [`Holt`], [`SeasonalNaive`]) are plain Rust; [`OnnxForecaster`] runs
//! any ONNX model with the signature documented there through ONNX Runtime, which is loaded at run time:
//! without it, [`forecaster_from_config`] falls back to [`Holt`] and says why.
//!
//! [`ErrorTracker`] turns a forecaster's own recent one-step errors into a confidence per series;
//! [`wape`], [`mase`] and [`Evaluation`] measure forecasters offline; [`shard_of`] and [`shard_series`] build
//! the per-shard series the evaluation and the training script use; [`ForecastLoad`] is the dataflow
//! operator that emits [`ForecastRow`]s every epoch.

mod baselines;
mod confidence;
mod config;
mod error;
mod evaluation;
mod load_forecaster;
mod metrics;
mod onnx;
mod operator;
mod series;

pub use baselines::{Ewma, Holt, LastValue, SeasonalNaive};
pub use confidence::ErrorTracker;
pub use config::{forecaster_from_config, FORECASTER_KINDS};
pub use error::ForecastError;
pub use evaluation::{Evaluation, Score};
pub use load_forecaster::ShardLoadForecaster;
pub use metrics::{mae, mase, wape};
pub use onnx::{time_of_day, OnnxForecaster, ORT_INSTALL_HINT};
pub use operator::{ForecastLoad, ForecastRow, ForecastSettings};
pub use series::{shard_of, shard_series, EpochSeries};

/// The recent history of one series, as a [`Forecaster`] sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesInput<'a> {
    /// Per-epoch counts, oldest first; the last is the latest complete epoch.
    pub history: &'a [f64],
    /// The first epoch to forecast (the one after the last of `history`).
    pub next_epoch: u64,
    /// Length of an epoch in milliseconds: `next_epoch * tick_ms` is the event time, in milliseconds since
    /// the Unix epoch, at which the first forecast epoch starts (for time-of-day features).
    pub tick_ms: u64,
}

/// Forecasts the next epochs of many series at once.
///
/// `forecast_batch` returns, for each input in order, `horizon` forecasts: element `h - 1` is the count
/// expected `h` epochs after the last of the history, for `h` in `1..=horizon`. Forecasts are finite and
/// never negative. Implementations may keep state between calls (an inference session), hence `&mut self`;
/// they are `Send` so each worker can own one.
pub trait Forecaster: Send {
    /// A short name for reports and for the `model` column of [`ForecastRow`].
    fn name(&self) -> &str;

    /// Forecasts `horizon` epochs for every series in `inputs`, in one call.
    fn forecast_batch(
        &mut self,
        inputs: &[SeriesInput<'_>],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError>;
}

impl Forecaster for Box<dyn Forecaster> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn forecast_batch(
        &mut self,
        inputs: &[SeriesInput<'_>],
        horizon: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        (**self).forecast_batch(inputs, horizon)
    }
}

/// Checks that every history holds finite, non-negative counts; the error names the first bad series.
pub(crate) fn check_inputs(inputs: &[SeriesInput<'_>]) -> Result<(), ForecastError> {
    for (index, input) in inputs.iter().enumerate() {
        if let Some(value) = input
            .history
            .iter()
            .find(|v| !(v.is_finite() && **v >= 0.0))
        {
            return Err(ForecastError::BadInput(format!(
                "series {index} of the batch has the count {value}; counts must be finite and non-negative"
            )));
        }
    }
    Ok(())
}
