//! The rows every decision family produces.

use serde::{Deserialize, Serialize};
use shardcast_operators::forecast::ForecastRow;
use shardcast_operators::{Affinity, Assignment, QueueRow, RoutingRow, ShardRow, Successor};

use crate::Score;

/// One decision row, as a differential datum: every table of every family in one collection, so one
/// probe and one capture carry all of them in step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Decision {
    /// Accesses to `key` in the window.
    KeyLoad {
        /// The key.
        key: String,
        /// Accesses in the window.
        accesses: u64,
    },
    /// A customer's affinity vector.
    Affinity {
        /// The customer.
        customer: String,
        /// Its vector.
        affinity: Affinity,
    },
    /// A customer's partition.
    Assignment {
        /// The customer.
        customer: String,
        /// Its partition.
        assignment: Assignment,
    },
    /// A predicted successor of a key: "after `key` comes `successor.key`".
    Transition {
        /// The key.
        key: String,
        /// The prediction.
        successor: Successor,
    },
    /// Correlated access across clients (seed 004): after one client accesses `key`, another client of
    /// the same region accesses `successor.key`.
    CoAccess {
        /// The key.
        key: String,
        /// The prediction.
        successor: Successor,
    },
    /// Two messages with similar payloads (seed 003): `other` is offered to consumers of `key`.
    Similar {
        /// The message.
        key: String,
        /// A message like it.
        other: String,
        /// Estimated Jaccard similarity of their token sets, in millionths.
        similarity: u64,
    },
    /// A prefetch order: copy `key` into the cache of `region` this epoch.
    Prefetch(PrefetchOrder),
    /// The fast key index entry of a key (seed 000).
    KeyIndex(KeyIndexEntry),
    /// A per-consumer prefetch queue row (seed 003).
    Queue(QueueRow),
    /// A load forecast.
    Forecast(ForecastRow),
    /// A shard of the current map.
    Shard(ShardRow),
    /// A decision of the shard balancer (split, merge, move, shadow plan).
    Routing(RoutingRow),
}

/// A prefetch order of the prediction family.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PrefetchOrder {
    /// The region whose cache should hold the key: where the clients expected to ask are.
    pub region: String,
    /// The key.
    pub key: String,
    /// `1 − Π(1 − probability·confidence)` over the clients of the region predicted to ask: the
    /// chance, discounted by confidence, that at least one of them asks within the horizon (times the
    /// value of the object, 1 for object caches).
    pub priority: Score,
    /// The highest probability among those clients.
    pub probability: Score,
    /// The highest confidence among those clients.
    pub confidence: Score,
    /// Size of the object (bytes).
    pub bytes: u64,
    /// Clients of the region predicted to ask.
    pub clients: u64,
}

/// The fast key index entry of seed 000: what a reader needs to know about a key in one lookup.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyIndexEntry {
    /// The key.
    pub key: String,
    /// Version tag: event time (ms) of the key's latest access in the window.
    pub version: u64,
    /// Session of that access: `client/session-start-ms`.
    pub session: String,
    /// Event keys expected after this one (its predicted successors), most likely first.
    pub event_keys: Vec<String>,
    /// The highest confidence with which this key is predicted to be accessed next (0 if it is not).
    pub confidence: Score,
}
