//! Errors of shard map changes.

use thiserror::Error;

/// A change that cannot be applied to the shard map as it is.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MapError {
    /// No shard has this id.
    #[error("no shard {0} in the map")]
    UnknownShard(u64),
    /// A split point outside the shard's range (it must be strictly inside).
    #[error("split point {at} is not inside shard {shard}'s range {lo}..{hi}")]
    SplitOutside {
        /// The shard.
        shard: u64,
        /// The proposed split point.
        at: u64,
        /// Its range start.
        lo: u64,
        /// Its range end (exclusive).
        hi: u64,
    },
    /// Two shards that are not neighbours on the ring.
    #[error("shards {left} and {right} are not adjacent")]
    NotAdjacent {
        /// The left shard.
        left: u64,
        /// The right shard.
        right: u64,
    },
    /// A change made against an older map version.
    #[error("change made for map version {expected}, but the map is at version {actual}")]
    StaleVersion {
        /// The version the change was made against.
        expected: u64,
        /// The map's version.
        actual: u64,
    },
    /// A map that needs at least one node and one shard.
    #[error("a shard map needs at least one node and one shard")]
    Empty,
}
