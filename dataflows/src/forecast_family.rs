//! The forecast family: load per key, per partition and per shard, forecast for the next epochs with a
//! confidence (seeds 000 and 002).

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use shardcast_operators::forecast::{shard_of, ForecastLoad, ForecastSettings, Forecaster};
use shardcast_operators::SlidingWindow;

use crate::{Access, Decision};

/// Which series are forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastLevel {
    /// Accesses per key (`key:K`).
    Key,
    /// Accesses of the customers assigned to each partition (`partition:P`).
    Partition,
    /// Accesses per shard, a hash range of keys (`shard:N`, FNV-1a of the key modulo `shards`).
    Shard,
}

/// Settings of the forecast family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastConfig {
    /// The series forecast.
    pub levels: Vec<ForecastLevel>,
    /// Shards keys are hashed over.
    pub shards: u32,
    /// The `key` level forecasts only this many keys: the most accessed over the window (ties by key).
    /// Every forecast row changes every epoch, so forecasting every key would flood the changelog.
    pub top_keys: usize,
    /// History kept, horizon, tick and confidence window.
    pub settings: ForecastSettings,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            levels: vec![
                ForecastLevel::Key,
                ForecastLevel::Partition,
                ForecastLevel::Shard,
            ],
            shards: 16,
            top_keys: 100,
            settings: ForecastSettings::default(),
        }
    }
}

/// Builds the family over `accesses` (each inserted at its epoch) and the current `assignments`
/// (`(customer, partition)`): the count of each series in each epoch, forecast by `forecaster` for the
/// next `settings.horizon` epochs when the epoch closes.
pub fn forecast_family<'scope, F>(
    accesses: VecCollection<'scope, u64, Access>,
    window: u64,
    assignments: VecCollection<'scope, u64, (String, String)>,
    config: &ForecastConfig,
    forecaster: F,
) -> VecCollection<'scope, u64, Decision>
where
    F: Forecaster + 'static,
{
    // Each access counts in the epoch it happened in only.
    let this_epoch = accesses.clone().sliding_window(1);
    let shards = config.shards.max(1);
    let mut series = if config.levels.contains(&ForecastLevel::Shard) {
        this_epoch
            .clone()
            .map(move |a| format!("shard:{}", shard_of(&a.key, shards)))
    } else {
        this_epoch.clone().filter(|_| false).map(|a| a.key)
    };
    if config.levels.contains(&ForecastLevel::Key) {
        let top = config.top_keys;
        // The hottest keys of the window; one reduce over all keys, which the window bounds.
        let hot = accesses
            .map(|a| a.key)
            .sliding_window(window)
            .count()
            .map(|(key, n)| ((), (n, key)))
            .reduce(move |_unit, input, output| {
                for ((_, key), _) in input.iter().rev().take(top) {
                    output.push((key.clone(), 1isize));
                }
            })
            .map(|((), key)| key);
        let per_key = this_epoch
            .clone()
            .map(|a| (a.key, ()))
            .semijoin(hot)
            .map(|(key, ())| format!("key:{key}"));
        series = series.concat(per_key);
    }
    if config.levels.contains(&ForecastLevel::Partition) {
        let per_partition = this_epoch
            .map(|a| (a.client, ()))
            .join(assignments)
            .map(|(_customer, ((), partition))| format!("partition:{partition}"));
        series = series.concat(per_partition);
    }
    series
        .count()
        .map(|(name, n)| (name, n.max(0) as u64))
        .forecast_load(forecaster, config.settings)
        .map(Decision::Forecast)
}
