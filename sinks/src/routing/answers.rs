//! The JSON bodies of the routing API that are not the map types themselves.

use serde::{Deserialize, Serialize};
use shardcast_shardmap::{ring_position, HashRange, ShardId, ShardMap};

/// Where a key lives: the answer of `GET /v1/route/{key}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAnswer {
    /// The key asked about (percent-decoded).
    pub key: String,
    /// Its ring position.
    pub position: u32,
    /// The shard holding the position.
    pub shard: ShardId,
    /// The shard's hash range.
    pub range: HashRange,
    /// The node serving the shard.
    pub node: String,
    /// The nodes holding copies, in failover order.
    pub replicas: Vec<String>,
    /// The map version the answer was computed from.
    pub version: u64,
    /// The map version at which the shard took its current range and node.
    pub shard_version: u64,
}

impl RouteAnswer {
    /// Looks `key` up in `map`.
    ///
    /// ```
    /// use shardcast_shardmap::ShardMap;
    /// use shardcast_sinks::routing::RouteAnswer;
    /// let map = ShardMap::uniform(4, &["a".to_string(), "b".to_string()], 1).unwrap();
    /// let answer = RouteAnswer::from_map(&map, "user-7");
    /// assert_eq!(answer.shard, map.lookup("user-7").id);
    /// assert!(answer.range.contains(answer.position));
    /// ```
    pub fn from_map(map: &ShardMap, key: &str) -> Self {
        let position = ring_position(key);
        let shard = map.lookup_position(position);
        RouteAnswer {
            key: key.to_string(),
            position,
            shard: shard.id,
            range: shard.range,
            node: shard.node.clone(),
            replicas: shard.replicas.clone(),
            version: map.version(),
            shard_version: shard.version,
        }
    }
}

/// The answer of `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` when the server answers.
    pub status: String,
    /// The map version served.
    pub version: u64,
    /// Number of shards in the map.
    pub shards: usize,
    /// Number of customers with a partition view.
    pub partitions: usize,
}

/// The body of every error answer: a short machine-readable code and a reason for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `not_found`, `bad_request` or `method_not_allowed`.
    pub error: String,
    /// What went wrong.
    pub reason: String,
}
