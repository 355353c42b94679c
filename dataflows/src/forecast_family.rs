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
    /// History kept, horizon, tick and confidence window.
    pub settings: ForecastSettings,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            levels: vec![ForecastLevel::Partition, ForecastLevel::Shard],
            shards: 16,
            settings: ForecastSettings::default(),
        }
    }
}

/// Builds the family over `accesses` (each inserted at its epoch) and the current `assignments`
/// (`(customer, partition)`): the count of each series in each epoch, forecast by `forecaster` for the
/// next `settings.horizon` epochs when the epoch closes.
pub fn forecast_family<'scope, F>(
    accesses: VecCollection<'scope, u64, Access>,
    assignments: VecCollection<'scope, u64, (String, String)>,
    config: &ForecastConfig,
    forecaster: F,
) -> VecCollection<'scope, u64, Decision>
where
    F: Forecaster + 'static,
{
    // Each access counts in the epoch it happened in only.
    let this_epoch = accesses.sliding_window(1);
    let (key, shard) = (
        config.levels.contains(&ForecastLevel::Key),
        config.levels.contains(&ForecastLevel::Shard),
    );
    let shards = config.shards.max(1);
    let mut series = this_epoch.clone().flat_map(move |a| {
        let mut names = Vec::with_capacity(2);
        if key {
            names.push(format!("key:{}", a.key));
        }
        if shard {
            names.push(format!("shard:{}", shard_of(&a.key, shards)));
        }
        names
    });
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
