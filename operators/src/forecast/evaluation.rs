//! `Evaluation`: rolls forecasters over a set of series and scores them against the seasonal-naive forecast.

use super::{mase, wape, EpochSeries, ForecastError, Forecaster, SeasonalNaive, SeriesInput};

/// How forecasters are rolled over series.
///
/// At every forecast origin `t` (from `warmup` on, while `t + horizon` epochs exist) each forecaster gets
/// the last `history` counts before `t` of every series, in one batched call per origin as the dataflow
/// operator makes them, and forecasts `horizon` epochs. The reference is [`SeasonalNaive`] with `season`
/// epochs per season (1 is the naive last-value forecast, the usual MASE scale when the data holds no full
/// season), given `max(history, season)` counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Counts each forecaster sees per series (the operator keeps as many).
    pub history: usize,
    /// Epochs forecast at each origin.
    pub horizon: usize,
    /// The first origin: epochs of each series used only as history.
    pub warmup: usize,
    /// Length of an epoch in milliseconds (for the forecasters' time features).
    pub tick_ms: u64,
    /// Epochs per season of the seasonal-naive reference.
    pub season: usize,
}

/// The accuracy of one forecaster over every series and origin of an [`Evaluation`].
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    /// The forecaster's name.
    pub model: String,
    /// One-step forecasts scored.
    pub points: usize,
    /// WAPE of the one-step forecasts.
    pub wape_one: f64,
    /// MASE of the one-step forecasts against the seasonal-naive reference.
    pub mase_one: f64,
    /// WAPE over every horizon `1..=H` pooled.
    pub wape_all: f64,
    /// MASE over every horizon `1..=H` pooled, against the reference's forecasts of the same epochs.
    pub mase_all: f64,
}

/// The forecasts of one forecaster, flattened: one-step and every horizon.
#[derive(Default)]
struct Collected {
    one: Vec<f64>,
    all: Vec<f64>,
}

impl Evaluation {
    /// Scores each of `forecasters` on `series`, in the order given.
    pub fn run(
        &self,
        series: &[EpochSeries],
        forecasters: &mut [Box<dyn Forecaster>],
    ) -> Result<Vec<Score>, ForecastError> {
        if self.horizon == 0 || self.history == 0 {
            return Err(ForecastError::InvalidParameter(
                "an evaluation needs a history and a horizon of at least one epoch".into(),
            ));
        }
        let mut reference = SeasonalNaive::new(self.season)?;
        let reference_window = self.history.max(self.season);
        let warmup = self.warmup.max(1);
        let longest = series.iter().map(|s| s.counts.len()).max().unwrap_or(0);
        let (mut actual_one, mut actual_all) = (Vec::new(), Vec::new());
        let mut collected: Vec<Collected> =
            forecasters.iter().map(|_| Collected::default()).collect();
        let mut reference_forecasts = Collected::default();
        for t in warmup..=longest.saturating_sub(self.horizon) {
            let live: Vec<&EpochSeries> = series
                .iter()
                .filter(|s| s.counts.len() >= t + self.horizon)
                .collect();
            let inputs = |window: usize| -> Vec<SeriesInput<'_>> {
                live.iter()
                    .map(|s| SeriesInput {
                        history: &s.counts[t.saturating_sub(window)..t],
                        next_epoch: s.first_epoch + t as u64,
                        tick_ms: self.tick_ms,
                    })
                    .collect()
            };
            for s in &live {
                actual_one.push(s.counts[t]);
                actual_all.extend_from_slice(&s.counts[t..t + self.horizon]);
            }
            let batch = inputs(self.history);
            for (forecaster, out) in forecasters.iter_mut().zip(&mut collected) {
                let forecasts = forecaster.forecast_batch(&batch, self.horizon)?;
                flatten(forecaster.name(), forecasts, self.horizon, out)?;
            }
            let forecasts = reference.forecast_batch(&inputs(reference_window), self.horizon)?;
            flatten(
                "reference",
                forecasts,
                self.horizon,
                &mut reference_forecasts,
            )?;
        }
        Ok(forecasters
            .iter()
            .zip(collected)
            .map(|(forecaster, c)| Score {
                model: forecaster.name().to_string(),
                points: actual_one.len(),
                wape_one: wape(&actual_one, &c.one),
                mase_one: mase(&actual_one, &c.one, &reference_forecasts.one),
                wape_all: wape(&actual_all, &c.all),
                mase_all: mase(&actual_all, &c.all, &reference_forecasts.all),
            })
            .collect())
    }
}

/// Appends a batch of forecasts to `out`, checking that each has `horizon` values.
fn flatten(
    name: &str,
    forecasts: Vec<Vec<f64>>,
    horizon: usize,
    out: &mut Collected,
) -> Result<(), ForecastError> {
    for f in forecasts {
        if f.len() != horizon {
            return Err(ForecastError::Inference(format!(
                "{name} returned {} values for a horizon of {horizon}",
                f.len()
            )));
        }
        out.one.push(f[0]);
        out.all.extend(f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::{Ewma, LastValue};

    #[test]
    fn scores_against_the_naive_reference() {
        // Counts alternating 10, 12: the naive forecast is always off by 2, a slow EWMA by about 1.
        let counts: Vec<f64> = (0..40).map(|i| 10.0 + 2.0 * (i % 2) as f64).collect();
        let actual_sum: f64 = counts[8..39].iter().sum();
        let series = vec![EpochSeries {
            name: "s".into(),
            first_epoch: 100,
            counts,
        }];
        let evaluation = Evaluation {
            history: 8,
            horizon: 2,
            warmup: 8,
            tick_ms: 1000,
            season: 1,
        };
        let mut forecasters: Vec<Box<dyn Forecaster>> =
            vec![Box::new(LastValue), Box::new(Ewma::new(0.1).unwrap())];
        let scores = evaluation.run(&series, &mut forecasters).unwrap();
        assert_eq!(scores[0].model, "last");
        assert_eq!(scores[0].points, 40 - 2 - 8 + 1);
        assert_eq!(scores[0].mase_one, 1.0);
        assert_eq!(scores[0].mase_all, 1.0);
        assert!((scores[0].wape_one - 2.0 * 31.0 / actual_sum).abs() < 1e-12);
        let ewma = &scores[1];
        assert!(ewma.mase_one > 0.0 && ewma.mase_one < 0.5, "{ewma:?}");
        // Seasonal naive with a season of 2 is exact on this series, so every error is infinitely worse.
        let seasonal = Evaluation {
            season: 2,
            ..evaluation
        };
        let scores = seasonal.run(&series, &mut forecasters).unwrap();
        assert_eq!(scores[1].mase_one, f64::INFINITY);
    }

    #[test]
    fn zero_horizon_is_an_error() {
        let evaluation = Evaluation {
            history: 1,
            horizon: 0,
            warmup: 1,
            tick_ms: 1,
            season: 1,
        };
        assert!(evaluation.run(&[], &mut []).is_err());
    }
}
