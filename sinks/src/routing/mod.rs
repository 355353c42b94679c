//! The routing API: where a key lives and which partition a customer should use, over HTTP.
//!
//! The dataflow's routing decisions land in a [`RoutingState`]: the current
//! [`ShardMap`](shardcast_shardmap::ShardMap) with its recent versioned changes, and per customer a
//! [`PartitionView`] with seed 001's score breakdown. [`RoutingServer`] serves the state with the
//! endpoints of [`router`]; [`RoutingHttpClient`] is the blocking client services use, and
//! [`CachedRouter`] keeps the map locally and only fetches what changed.
//!
//! # Consistency
//!
//! The map changes only by [`MapChange`](shardcast_shardmap::MapChange)s, each advancing its
//! version by one. A client that knows version `V` asks `GET /v1/changes?since=V` and, when the
//! answer is complete, applies the changes in order to reach the server's map exactly; otherwise
//! (the server's log is bounded) it fetches `GET /v1/map`. Every answer carries the map version it
//! was computed from, so a node can refuse a request routed with an older map.

mod answers;
mod api;
mod cached;
mod change_log;
mod client;
mod error;
mod server;
mod state;
mod view;

#[cfg(test)]
mod tests;

pub use answers::{ErrorBody, Health, RouteAnswer};
pub use api::router;
pub use cached::{CacheOptions, CacheStats, CachedRouter, Refresh};
pub use change_log::{ChangesSince, VersionedChange};
pub use client::RoutingHttpClient;
pub use error::{RoutingError, ServerError, StateError};
pub use server::{RoutingServer, ServerOptions};
pub use state::RoutingState;
pub use view::{PartitionPhase, PartitionScore, PartitionView, PhaseStep};
