//! Moving data between nodes without losing a write: shadow copies, switchovers, splits and
//! merges, replica failover, and the routing client that keeps working while all of that happens
//! (seeds 001, 002 and 004).
//!
//! # Parts
//!
//! - Nodes are Redis servers ([`NodeSet`], [`Node`]); each value is a hash with the writer's
//!   timestamp and the node's version, indexed by ring position ([`Layout`]). A node owns shards
//!   read-write or read-only and refuses data-path calls for shards it does not own in that mode;
//!   every ownership change carries a fencing token ([`OwnerState`]). The checks and the writes
//!   they guard are Lua scripts, atomic on the node.
//! - The routing store ([`RoutingStore`]) keeps the current [`ShardMap`](shardcast_shardmap::ShardMap),
//!   its version and its changelog in a coordination Redis, changed by compare-and-set only, and
//!   hands out range locks with fencing tokens ([`LockGuard`]).
//! - [`RoutingClient`] is what services use: `put` and `get` by key over a cached map
//!   ([`MapSource`]), refreshing it and retrying when a node refuses or is down.
//! - [`ShadowCopy`] copies a shard, or the part of it that will split off, to its future node
//!   in the background (hottest keys first, throttled, validated segments, then the delta log)
//!   and follows that part through the split; [`Switchover`] moves the shard there;
//!   [`Reshape`] splits and merges; [`Failover`] and [`HealthMonitor`] move shards off a node
//!   that stopped answering; [`set_replicas`] changes a replica set; [`Executor`] drives all of
//!   these from [`Plan`]s.
//! - [`PhasedMove`] moves a customer partition the way seed 001 describes: dual writes, then reads
//!   shifted in steps, then the old copy released, with monotonic reads per session
//!   ([`PartitionClient`]).
//!
//! # Guarantees
//!
//! - A write is acknowledged only when the shard's owner and all its replicas hold it
//!   (the client writes the owner through the write script, then the replicas, which apply a
//!   write only if its version is newer than theirs). Replication by the client rather than
//!   Redis replication: a node is owner of some shards and replica of others, which Redis's
//!   whole-server replication cannot express, and `WAIT` does not tell which writes a replica
//!   holds after a failover.
//! - An acknowledged write survives switchovers, splits, merges and the failure of one node per
//!   replica set.
//! - A stale client never writes around the current owner: the old owner refuses, the client
//!   refreshes its map and retries.
//! - Reads see a write once the owner holds it, which may be before its replicas do; if the
//!   owner and the writer then both fail, that write (never acknowledged) may be lost and a
//!   reader that saw it may later read the older value.

mod bootstrap;
mod client;
mod conn;
mod error;
mod executor;
mod failover;
mod health;
mod layout;
mod lock;
mod node;
mod nodes;
mod phased;
mod policy;
mod ranges;
mod replicas;
mod reshape;
mod retry;
mod routing_store;
mod scripts;
mod segment;
mod shadow;
mod source;
mod switchover;
mod throttle;

pub use bootstrap::bootstrap;
pub use client::{ClientRetry, ClientStats, RoutingClient, WriteAck};
pub use error::MigrationError;
pub use executor::{Done, Executor, ExecutorConfig, Outcome, Plan};
pub use failover::{Failover, FailoverReport};
pub use health::{HealthChange, HealthMonitor};
pub use layout::Layout;
pub use lock::{lock_all, LockGuard};
pub use node::{Checksum, Entry, Mode, Node, OwnerState, Value, WriteOutcome, Written};
pub use nodes::{NodePool, NodeSet};
pub use phased::{PartitionClient, PartitionDirectory, PartitionPlacement, PhasedMove};
pub use policy::{ConflictPolicies, ConflictPolicy};
pub use replicas::{set_replicas, ReplicaReport};
pub use reshape::{Reshape, ReshapeReport};
pub use routing_store::{LoggedChange, RoutingStore};
pub use segment::ValidationToken;
pub use shadow::{ShadowConfig, ShadowCopy, ShadowPhase, ShadowPlan, ShadowProgress};
pub use source::MapSource;
pub use switchover::{Switchover, SwitchoverConfig, SwitchoverReport};
pub use throttle::Throttle;

#[cfg(test)]
mod tests;
