//! `forecast_load`: forecast rows for every live series, replaced each epoch.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;
use timely::progress::Antichain;

use super::{ErrorTracker, Forecaster, Holt, SeriesInput};

/// How [`ForecastLoad::forecast_load`] keeps and forecasts series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastSettings {
    /// `K`: counts kept per series (the forecaster's input); a series whose count is 0 for `K` epochs in
    /// a row is dropped. A learned model wants at least its own `K`.
    pub history: usize,
    /// `H`: epochs forecast ahead; rows have horizons `1..=H`.
    pub horizon: usize,
    /// Length of an epoch in milliseconds (for time-of-day features).
    pub tick_ms: u64,
    /// Epochs of one-step errors behind each confidence (see [`ErrorTracker`]).
    pub confidence_window: usize,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        ForecastSettings {
            history: 32,
            horizon: 4,
            tick_ms: 1000,
            confidence_window: ErrorTracker::DEFAULT_CAPACITY,
        }
    }
}

/// One forecast: the count expected for `series` `horizon` epochs after the epoch of the row.
///
/// Ordered, compared and hashed with the floats' total order and bits, so rows can live in differential
/// collections; rows with `NaN` never occur (forecasts and confidences are finite).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForecastRow {
    /// The series (key, partition or shard).
    pub series: String,
    /// Epochs ahead, `1..=H`.
    pub horizon: u32,
    /// The forecast count, at least 0.
    pub value: f64,
    /// The forecaster's recent accuracy on this series, in `[0, 1]` (see [`ErrorTracker`]).
    pub confidence: f64,
    /// The forecaster that made it.
    pub model: String,
}

impl ForecastRow {
    fn key(&self) -> (&str, u32, u64, u64, &str) {
        (
            &self.series,
            self.horizon,
            self.value.to_bits(),
            self.confidence.to_bits(),
            &self.model,
        )
    }
}

impl PartialEq for ForecastRow {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ForecastRow {}

impl PartialOrd for ForecastRow {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ForecastRow {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.series, self.horizon)
            .cmp(&(&other.series, other.horizon))
            .then(self.value.total_cmp(&other.value))
            .then(self.confidence.total_cmp(&other.confidence))
            .then(self.model.cmp(&other.model))
    }
}

impl Hash for ForecastRow {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// What a worker keeps about one live series.
struct Live {
    history: Vec<f64>,
    /// Consecutive epochs with count 0, up to the latest.
    silent: usize,
    tracker: ErrorTracker,
    /// The one-step forecast made last epoch, scored against this epoch's count.
    next_forecast: Option<f64>,
    /// The rows in the output collection.
    rows: Vec<ForecastRow>,
}

/// A change to one series' count, as the operator receives it.
type CountChange = ((String, u64), isize);

/// Forecasts the load of every series for the next `H` epochs.
///
/// **Computes:** the input holds, at each epoch, `(series, count)`: the count of each series in that epoch
/// (a series absent at an epoch has count 0; a series with several records counts their sum). A series
/// becomes live at its first epoch with a positive count and keeps its last `K` counts. At every epoch
/// each worker makes **one** [`Forecaster::forecast_batch`] call for all its live series, and the output
/// holds, for every live series, one [`ForecastRow`] per horizon `1..=H`, replacing the previous epoch's
/// rows (a retraction and an insertion where a row changed). Confidence comes from the forecaster's own
/// one-step errors on the series ([`ErrorTracker`]). A series silent (count 0) for `K` epochs in a row is
/// dropped, and its rows retracted. If the forecaster fails, that epoch is forecast by [`Holt::default`]
/// (the rows then name `holt`) and the failure is logged once.
///
/// **Time and frontier:** an epoch is forecast once the input frontier has passed it, every epoch in turn
/// while any series is live (a count that does not change still counts at every epoch); epochs with no
/// live series are skipped. Series are exchanged by hash over the workers, so each worker owns the state
/// of its series: counts, error tracker and rows (the state a checkpoint must hold). When the input
/// closes, epochs with pending updates are processed and the operator stops.
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::forecast::{Ewma, ForecastLoad, ForecastSettings};
///
/// timely::example(|scope| {
///     let (mut input, counts) = scope.new_collection::<(String, u64), isize>();
///     counts
///         .forecast_load(Ewma::default(), ForecastSettings::default())
///         .inspect(|x| println!("{:?}", x));
///     input.insert(("shard-0".to_string(), 12));
///     input.advance_to(1);
/// });
/// ```
pub trait ForecastLoad<'scope> {
    /// Forecast rows for every live series, made by `forecaster` (one per worker).
    fn forecast_load<F>(
        self,
        forecaster: F,
        settings: ForecastSettings,
    ) -> VecCollection<'scope, u64, ForecastRow>
    where
        F: Forecaster + 'static;
}

impl<'scope> ForecastLoad<'scope> for VecCollection<'scope, u64, (String, u64)> {
    fn forecast_load<F>(
        self,
        mut forecaster: F,
        settings: ForecastSettings,
    ) -> VecCollection<'scope, u64, ForecastRow>
    where
        F: Forecaster + 'static,
    {
        let history = settings.history.max(1);
        let horizon = settings.horizon;
        self.inner
            .unary_frontier(
                Exchange::new(|((s, _), _, _): &((String, u64), u64, isize)| s.hashed()),
                "ForecastLoad",
                move |capability, _info| {
                    let mut caps = CapabilitySet::from_elem(capability);
                    let mut pending: BTreeMap<u64, Vec<CountChange>> = BTreeMap::new();
                    // Σ count · multiplicity per series, as of the last processed epoch.
                    let mut counts: HashMap<String, i64> = HashMap::new();
                    let mut live: BTreeMap<String, Live> = BTreeMap::new();
                    let mut fallback = Holt::default();
                    let mut failed_once = false;
                    // The first epoch not yet forecast.
                    let mut next = 0u64;
                    move |(input, frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            if let Some(cap) = cap.retain_least(output.output_index()) {
                                caps.insert(cap);
                            }
                            for batch in data {
                                for (d, t, r) in batch.drain(..) {
                                    pending.entry(t).or_default().push((d, r));
                                }
                            }
                        });
                        let frontier = frontier.frontier();
                        loop {
                            // With nothing live, jump to the next epoch that brings data.
                            let epoch = if live.is_empty() {
                                match pending.keys().next() {
                                    Some(&t) => t.max(next),
                                    None => break,
                                }
                            } else {
                                next
                            };
                            if frontier.less_equal(&epoch) {
                                break;
                            }
                            // A closed input: no epoch after the last update is ever complete in time.
                            if frontier.is_empty() && pending.range(epoch..).next().is_none() {
                                break;
                            }
                            for ((series, count), r) in pending.remove(&epoch).unwrap_or_default() {
                                let total = counts.entry(series).or_default();
                                *total += count as i64 * r as i64;
                            }
                            counts.retain(|_, total| *total != 0);
                            for (series, total) in &counts {
                                if *total > 0 && !live.contains_key(series) {
                                    live.insert(
                                        series.clone(),
                                        Live {
                                            history: Vec::with_capacity(history),
                                            silent: 0,
                                            tracker: ErrorTracker::new(settings.confidence_window),
                                            next_forecast: None,
                                            rows: Vec::new(),
                                        },
                                    );
                                }
                            }
                            let cap = caps.delayed(&epoch);
                            let mut session = output.session(&cap);
                            let mut dropped = Vec::new();
                            for (series, state) in live.iter_mut() {
                                // A negative total is not a count; it reads as nothing happening.
                                let count = counts.get(series).copied().unwrap_or(0).max(0) as f64;
                                if let Some(forecast) = state.next_forecast.take() {
                                    state.tracker.record(forecast, count);
                                }
                                if state.history.len() == history {
                                    state.history.remove(0);
                                }
                                state.history.push(count);
                                state.silent = if count == 0.0 { state.silent + 1 } else { 0 };
                                if state.silent >= history {
                                    dropped.push(series.clone());
                                }
                            }
                            for series in dropped {
                                if let Some(state) = live.remove(&series) {
                                    for row in state.rows {
                                        session.give((row, epoch, -1isize));
                                    }
                                }
                            }
                            if !live.is_empty() {
                                let inputs: Vec<SeriesInput<'_>> = live
                                    .values()
                                    .map(|state| SeriesInput {
                                        history: &state.history,
                                        next_epoch: epoch + 1,
                                        tick_ms: settings.tick_ms,
                                    })
                                    .collect();
                                let (forecasts, model) =
                                    match forecaster.forecast_batch(&inputs, horizon) {
                                        Ok(f) if f.len() == inputs.len() => {
                                            (f, forecaster.name().to_string())
                                        }
                                        outcome => {
                                            if !failed_once {
                                                failed_once = true;
                                                let why = match outcome {
                                                    Err(e) => e.to_string(),
                                                    Ok(f) => format!(
                                                        "{} forecasts for {} series",
                                                        f.len(),
                                                        inputs.len()
                                                    ),
                                                };
                                                tracing::warn!(
                                                    "forecaster {} failed at epoch {epoch}, using holt for the epoch: {why}",
                                                    forecaster.name()
                                                );
                                            }
                                            let f = fallback
                                                .forecast_batch(&inputs, horizon)
                                                .unwrap_or_else(|_| {
                                                    inputs.iter().map(|_| vec![0.0; horizon]).collect()
                                                });
                                            (f, fallback.name().to_string())
                                        }
                                    };
                                drop(inputs);
                                for ((series, state), values) in live.iter_mut().zip(forecasts) {
                                    state.next_forecast = values.first().copied();
                                    let confidence = state.tracker.confidence();
                                    let rows: Vec<ForecastRow> = values
                                        .into_iter()
                                        .enumerate()
                                        .map(|(h, value)| ForecastRow {
                                            series: series.clone(),
                                            horizon: h as u32 + 1,
                                            value,
                                            confidence,
                                            model: model.clone(),
                                        })
                                        .collect();
                                    for old in &state.rows {
                                        if !rows.contains(old) {
                                            session.give((old.clone(), epoch, -1isize));
                                        }
                                    }
                                    for new in &rows {
                                        if !state.rows.contains(new) {
                                            session.give((new.clone(), epoch, 1isize));
                                        }
                                    }
                                    state.rows = rows;
                                }
                            }
                            next = epoch + 1;
                        }
                        // Keep a capability only where output may still come: the next epoch while
                        // series are live, else the earliest pending or future update.
                        let mut lower = Antichain::new();
                        if !live.is_empty() && !frontier.is_empty() {
                            lower.insert(next);
                        }
                        if let Some(&t) = pending.keys().next() {
                            lower.insert(t.max(next));
                        }
                        for t in frontier.iter() {
                            lower.insert(*t);
                        }
                        caps.downgrade(&lower.borrow());
                    }
                },
            )
            .container::<Vec<_>>()
            .as_collection()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::{Ewma, ForecastError, LastValue};
    use crate::testing::run_collection_on;
    use crate::SlidingWindow;
    use rand::{Rng, SeedableRng};

    /// A forecaster that fails unless every series has at least `min` counts of history, and records
    /// how many calls it got per epoch.
    struct Picky {
        calls: std::sync::Arc<std::sync::Mutex<Vec<(u64, usize)>>>,
    }

    impl Forecaster for Picky {
        fn name(&self) -> &str {
            "picky"
        }
        fn forecast_batch(
            &mut self,
            inputs: &[SeriesInput<'_>],
            horizon: usize,
        ) -> Result<Vec<Vec<f64>>, ForecastError> {
            let epoch = inputs.first().map_or(0, |i| i.next_epoch - 1);
            self.calls.lock().unwrap().push((epoch, inputs.len()));
            if inputs.iter().any(|i| i.history.len() < 3) {
                return Err(ForecastError::Inference("too short".into()));
            }
            LastValue.forecast_batch(inputs, horizon)
        }
    }

    /// The plain loop the operator must agree with: every epoch, in order, over all series at once.
    fn reference(
        inserts: &[(String, u64)],
        last: u64,
        settings: ForecastSettings,
        forecaster: &mut dyn Forecaster,
    ) -> BTreeMap<u64, Vec<(ForecastRow, isize)>> {
        let k = settings.history;
        let mut histories: BTreeMap<String, (Vec<f64>, usize, ErrorTracker, Option<f64>)> =
            BTreeMap::new();
        let mut states = BTreeMap::new();
        let mut rows: Vec<ForecastRow> = Vec::new();
        for epoch in 0..=last {
            let mut counts: BTreeMap<&str, f64> = BTreeMap::new();
            for (s, t) in inserts {
                if *t == epoch {
                    *counts.entry(s).or_default() += 1.0;
                }
            }
            for s in counts.keys() {
                histories.entry(s.to_string()).or_insert_with(|| {
                    (
                        Vec::new(),
                        0,
                        ErrorTracker::new(settings.confidence_window),
                        None,
                    )
                });
            }
            histories.retain(|s, (history, silent, tracker, next)| {
                let c = counts.get(s.as_str()).copied().unwrap_or(0.0);
                if let Some(f) = next.take() {
                    tracker.record(f, c);
                }
                history.push(c);
                if history.len() > k {
                    history.remove(0);
                }
                *silent = if c == 0.0 { *silent + 1 } else { 0 };
                *silent < k
            });
            rows.clear();
            let names: Vec<String> = histories.keys().cloned().collect();
            let inputs: Vec<SeriesInput<'_>> = histories
                .values()
                .map(|(h, _, _, _)| SeriesInput {
                    history: h,
                    next_epoch: epoch + 1,
                    tick_ms: settings.tick_ms,
                })
                .collect();
            let forecasts = if inputs.is_empty() {
                Vec::new()
            } else {
                forecaster
                    .forecast_batch(&inputs, settings.horizon)
                    .unwrap()
            };
            drop(inputs);
            for (name, values) in names.iter().zip(forecasts) {
                let state = histories.get_mut(name).unwrap();
                state.3 = Some(values[0]);
                for (h, value) in values.into_iter().enumerate() {
                    rows.push(ForecastRow {
                        series: name.clone(),
                        horizon: h as u32 + 1,
                        value,
                        confidence: state.2.confidence(),
                        model: forecaster.name().to_string(),
                    });
                }
            }
            let mut state: Vec<(ForecastRow, isize)> =
                rows.iter().map(|r| (r.clone(), 1)).collect();
            state.sort();
            states.insert(epoch, state);
        }
        states
    }

    /// Accesses (one insert per access at its epoch) become per-epoch counts with a window of one epoch.
    fn forecast_from_accesses(
        workers: usize,
        inserts: Vec<(String, u64)>,
        last: u64,
        settings: ForecastSettings,
    ) -> BTreeMap<u64, Vec<(ForecastRow, isize)>> {
        run_collection_on(workers, inserts, last, move |accesses| {
            accesses
                .sliding_window(1)
                .count()
                .map(|(s, c)| (s, c as u64))
                .forecast_load(Ewma::new(0.5).unwrap(), settings)
        })
    }

    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..12 {
            let workers = 1 + round % 2;
            let settings = ForecastSettings {
                history: rng.random_range(2..6),
                horizon: rng.random_range(1..4),
                tick_ms: 1000,
                confidence_window: rng.random_range(1..5),
            };
            let last = 30;
            // Bursts: a series is active for a while, then silent long enough to be dropped, or not.
            let inserts: Vec<(String, u64)> = (0..rng.random_range(1..150))
                .map(|_| {
                    let s = rng.random_range(0..6);
                    let epoch = rng.random_range(0..8) + 3 * s as u64;
                    (format!("s{s}"), epoch.min(last))
                })
                .collect();
            let got = forecast_from_accesses(workers, inserts.clone(), last, settings);
            let expected = reference(&inserts, last, settings, &mut Ewma::new(0.5).unwrap());
            for epoch in 0..=last {
                assert_eq!(
                    got.get(&epoch).cloned().unwrap_or_default(),
                    expected[&epoch],
                    "round {round}, {workers} workers, {settings:?}, epoch {epoch}"
                );
            }
            // Something was forecast, and series were dropped once silent.
            assert!(expected.values().any(|rows| !rows.is_empty()));
            assert!(expected[&last].len() < expected.values().map(Vec::len).max().unwrap());
        }
    }

    #[test]
    fn one_batch_per_epoch_and_holt_when_the_forecaster_fails() {
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = calls.clone();
        let settings = ForecastSettings {
            history: 8,
            horizon: 2,
            tick_ms: 1,
            confidence_window: 4,
        };
        let inserts: Vec<(String, u64)> = (0..6u64)
            .flat_map(|t| {
                [
                    ("a".to_string(), t),
                    ("b".to_string(), t),
                    ("c".to_string(), t),
                ]
            })
            .collect();
        let states = run_collection_on(1, inserts, 5, move |accesses| {
            accesses
                .sliding_window(1)
                .count()
                .map(|(s, c)| (s, c as u64))
                .forecast_load(
                    Picky {
                        calls: seen.clone(),
                    },
                    settings,
                )
        });
        // One call per epoch with all three series; epoch 6 holds the window's retractions, processed
        // when the input closes.
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls, (0..7).map(|e| (e, 3)).collect::<Vec<_>>());
        // Epochs 0 and 1 have histories shorter than 3: holt forecasts them; later epochs are picky's.
        let models = |epoch: u64| -> Vec<String> {
            states[&epoch]
                .iter()
                .map(|(r, _)| r.model.clone())
                .collect()
        };
        assert!(models(1).iter().all(|m| m == "holt"));
        assert!(models(2).iter().all(|m| m == "picky"));
        assert_eq!(states[&5].len(), 3 * 2);
        // The forecasts have been exact since epoch 1, so the confidence has climbed to 1.
        assert!(states[&5]
            .iter()
            .all(|(r, _)| r.confidence == 1.0 && r.value == 1.0));
    }

    #[test]
    fn rows_order_and_hash_by_value() {
        let row = |value: f64| ForecastRow {
            series: "s".into(),
            horizon: 1,
            value,
            confidence: 0.5,
            model: "m".into(),
        };
        assert!(row(1.0) < row(2.0));
        assert_eq!(row(1.0), row(1.0));
        let hash = |r: &ForecastRow| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            r.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&row(3.0)), hash(&row(3.0)));
    }
}
