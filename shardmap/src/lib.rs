//! The shard map of shardcast: which node serves a key, and the policy that splits, merges and
//! places shards ahead of the load.
//!
//! Keys sit on a hash ring of `2^32` positions ([`ring_position`]); the ring is cut into contiguous
//! ranges, the shards, each served by one node and copied to replicas ([`ShardMap`]). The map changes
//! only by versioned [`MapChange`]s (split, merge, move, failover, replica set), which is what the
//! routing changelog, the routing store and the migration executor pass around.
//!
//! A [`Balancer`] decides those changes window by window from the load per ring position: static
//! (never), reactive (after the load has stayed above a level, like CockroachDB and TiKV) or
//! predictive (when a [`LoadForecaster`] says the load will cross it), with cooldowns, a churn budget
//! and shadow copies planned before a move is due ([`BalanceDecision`]).

mod balance_config;
mod balance_error;
mod balancer;
mod decision;
mod error;
mod load_forecaster;
mod load_history;
mod placement;
mod ring;
mod shard_map;
mod split_point;

pub use balance_config::{BalanceConfig, BalanceMode, Threshold};
pub use balance_error::BalanceError;
pub use balancer::{Balancer, ShadowPlan};
pub use decision::{imbalance, BalanceAction, BalanceDecision};
pub use error::MapError;
pub use load_forecaster::{HoltForecaster, LastValueForecaster, LoadForecaster};
pub use load_history::LoadHistory;
pub use placement::NodeLoads;
pub use ring::{ring_position, ring_position_of_bytes, RING};
pub use shard_map::{HashRange, MapChange, Shard, ShardId, ShardMap};
pub use split_point::{split_point, SplitPoint};
