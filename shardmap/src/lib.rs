//! The shard map of shardcast: which node serves a key.
//!
//! Keys sit on a hash ring of `2^32` positions ([`ring_position`]); the ring is cut into contiguous
//! ranges, the shards, each served by one node and copied to replicas ([`ShardMap`]). The map changes
//! only by versioned [`MapChange`]s (split, merge, move, failover, replica set), which is what the
//! routing changelog, the routing store and the migration executor pass around.

mod error;
mod ring;
mod shard_map;

pub use error::MapError;
pub use ring::{ring_position, ring_position_of_bytes, RING};
pub use shard_map::{HashRange, MapChange, Shard, ShardId, ShardMap};
