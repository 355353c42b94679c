//! Where things live on a node: the Redis key names of the data layout.
//!
//! With prefix `P`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P d:KEY` | hash | `value`, `ts` (writer timestamp), `ver` (the node's version of the write) |
//! | `P idx` | sorted set | every key, scored by its ring position, so a range is one `ZRANGEBYSCORE` |
//! | `P own` | hash | shard id -> `rw:FENCE:VERSION` or `ro:FENCE:VERSION` for shards this node owns |
//! | `P fence` | hash | shard id -> highest fencing token seen (kept after ownership goes) |
//! | `P shadow` | hash | shard id -> `LO:HI`, the range being copied, while a shadow copy of the shard is being fed |
//! | `P delta:SHARD` | list | keys written since the shadow began, in write order |
//! | `P ver` | string | the node's version counter; never below any version it holds |
//!
//! Ring positions are below 2^32, so a sorted-set score (an f64) holds them exactly.

/// The key names under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// The layout under `prefix` (e.g. `"shardcast:"`).
    ///
    /// ```
    /// use shardcast_sinks::migration::Layout;
    /// let layout = Layout::new("s:");
    /// assert_eq!(layout.data("k1"), "s:d:k1");
    /// assert_eq!(layout.delta("7"), "s:delta:7");
    /// ```
    pub fn new(prefix: &str) -> Self {
        Layout {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash holding `key`'s value, timestamp and version.
    pub fn data(&self, key: &str) -> String {
        format!("{}d:{key}", self.prefix)
    }

    /// The prefix of every data hash (scripts append the key).
    pub fn data_prefix(&self) -> String {
        format!("{}d:", self.prefix)
    }

    /// The index of keys by ring position.
    pub fn index(&self) -> String {
        format!("{}idx", self.prefix)
    }

    /// The ownership hash.
    pub fn owners(&self) -> String {
        format!("{}own", self.prefix)
    }

    /// The highest fencing token seen per shard.
    pub fn fences(&self) -> String {
        format!("{}fence", self.prefix)
    }

    /// The shards whose writes feed a delta log.
    pub fn shadows(&self) -> String {
        format!("{}shadow", self.prefix)
    }

    /// The delta log of `slot`.
    pub fn delta(&self, slot: &str) -> String {
        format!("{}delta:{slot}", self.prefix)
    }

    /// The node's version counter.
    pub fn counter(&self) -> String {
        format!("{}ver", self.prefix)
    }
}
