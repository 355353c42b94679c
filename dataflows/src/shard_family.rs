//! The shard family: the live shard map, split, merged and placed ahead of the forecast load (seeds
//! 001 to 004), as the tables `shards` and `routing`.

use differential_dataflow::VecCollection;
use shardcast_operators::{BalanceShards, ShardEvent};
use shardcast_shardmap::{
    ring_position, BalanceConfig, Balancer, LoadForecaster, MapError, ShardMap,
};

use crate::{Access, Decision};

/// Settings of the shard family.
#[derive(Clone, Debug)]
pub struct ShardsConfig {
    /// Shards at start (equal hash ranges).
    pub initial: u64,
    /// Nodes they are placed on, round-robin.
    pub nodes: Vec<String>,
    /// Replicas per shard.
    pub replicas: usize,
    /// The balancer's policy.
    pub balance: BalanceConfig,
    /// Decisions kept in the `routing` table.
    pub routing_history: usize,
    /// Start from this map instead of `initial` equal ranges (the map a routing store holds from an
    /// earlier run).
    pub start: Option<ShardMap>,
}

impl ShardsConfig {
    /// The map the family starts from.
    pub fn initial_map(&self) -> Result<ShardMap, MapError> {
        if let Some(map) = &self.start {
            return Ok(map.clone());
        }
        ShardMap::uniform(self.initial, &self.nodes, self.replicas)
    }
}

/// Builds the family over `accesses` (each inserted at its epoch): the ring position of every access
/// feeds one [`Balancer`] on worker 0, which forecasts each shard's load with `forecaster` and changes
/// the map before the load arrives. The output holds the current shards ([`Decision::Shard`]) and the
/// latest decisions ([`Decision::Routing`]).
pub fn shard_family<'scope, L>(
    accesses: VecCollection<'scope, u64, Access>,
    config: &ShardsConfig,
    forecaster: L,
) -> Result<VecCollection<'scope, u64, Decision>, MapError>
where
    L: LoadForecaster + 'static,
{
    let balancer = Balancer::new(
        config.initial_map()?,
        config.nodes.clone(),
        config.balance.clone(),
    );
    Ok(accesses
        .map(|a| ring_position(&a.key))
        .balance_shards(balancer, forecaster, config.routing_history)
        .map(|event| match event {
            ShardEvent::Shard(row) => Decision::Shard(row),
            ShardEvent::Routing(row) => Decision::Routing(row),
        }))
}
