//! The one error type of the migration module, and how to tell its kinds apart.

use std::time::Duration;

use shardcast_shardmap::{MapError, ShardId};

use super::node::Checksum;

/// Why a data-path call, a copy, a switchover, a failover or a routing change did not happen.
///
/// Three families matter to callers:
/// - [routing hints](MigrationError::is_routing_hint): a node refused because the caller's map is
///   out of date (`NOT_OWNER`, `READ_ONLY`, `STALE_MAP`, `NOT_REPLICA`); refresh the map and retry;
/// - [node down](MigrationError::is_node_down): connection-level failures; retry with back-off,
///   and after repeated failures fail the node over;
/// - everything else is final for this attempt (bad input, a lost lock, a checksum mismatch).
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A Redis command, script or connection failed.
    #[error("{node}: {context}: {source}")]
    Redis {
        /// The node (or `coordination`) it was sent to.
        node: String,
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
    },
    /// The node does not own the shard named by the caller: the caller's map is stale.
    #[error("{node} does not own shard {slot}")]
    NotOwner {
        /// The node that refused.
        node: String,
        /// The shard (or partition slot) named.
        slot: String,
    },
    /// The node owns the shard read-only: a switchover is under way; writes wait and retry.
    #[error("{node} holds shard {slot} read-only (a switchover is under way)")]
    ReadOnly {
        /// The node that refused.
        node: String,
        /// The shard named.
        slot: String,
    },
    /// The caller's map knows an older configuration of the shard (e.g. an older replica set).
    #[error("{node}: shard {slot} is at version {version}, newer than the caller's map")]
    StaleMap {
        /// The node that refused.
        node: String,
        /// The shard named.
        slot: String,
        /// The shard's version on the node.
        version: u64,
    },
    /// A replica write reached the shard's owner: the caller's map is stale.
    #[error("{node} owns shard {slot}: it takes no replica writes for it")]
    NotReplica {
        /// The node that refused.
        node: String,
        /// The shard named.
        slot: String,
    },
    /// Under [`ConflictPolicy::RejectOlder`](super::ConflictPolicy::RejectOlder), a write older
    /// than the stored one.
    #[error(
        "{node}: write of {key:?} at ts {ts} refused: it holds a newer write (ts {stored_ts})"
    )]
    Conflict {
        /// The node that refused.
        node: String,
        /// The key written.
        key: String,
        /// The refused write's timestamp.
        ts: u64,
        /// The stored write's timestamp.
        stored_ts: u64,
    },
    /// An ownership change carried a fencing token lower than one the node has already seen
    /// for the shard: it comes from an executor whose lock expired.
    #[error("{node} refused fencing token {token} for shard {slot}: it has seen {seen}")]
    StaleFence {
        /// The node that refused.
        node: String,
        /// The shard named.
        slot: String,
        /// The token offered.
        token: u64,
        /// The highest token the node has seen for the shard.
        seen: u64,
    },
    /// Another executor holds the lock of the shard's range.
    #[error("shard {shard} is locked by another executor (waited {waited:?})")]
    LockBusy {
        /// The shard.
        shard: ShardId,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The caller's lock expired (or was taken over) before it finished.
    #[error("the lock on shard {shard} was lost (token {token})")]
    LockLost {
        /// The shard.
        shard: ShardId,
        /// The caller's token.
        token: u64,
    },
    /// After copying, the range's checksum differs between source and destination.
    #[error(
        "shard {shard}: checksum differs: source {at_source:?}, destination {at_destination:?}"
    )]
    ChecksumMismatch {
        /// The shard.
        shard: ShardId,
        /// Checksum on the source.
        at_source: Checksum,
        /// Checksum on the destination.
        at_destination: Checksum,
    },
    /// The routing store's map moved on from the version a change was made against.
    #[error("routing map is at version {actual:?}, the change was made against {expected}")]
    VersionConflict {
        /// The version the change expected.
        expected: u64,
        /// The stored version (`None` if no map is stored).
        actual: Option<u64>,
    },
    /// The change does not apply to the map.
    #[error("shard map: {0}")]
    Map(#[from] MapError),
    /// A stored map or changelog entry is not valid JSON of the expected shape.
    #[error("routing store: bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A node name that is not in the [`NodeSet`](super::NodeSet).
    #[error("no node named {0:?}")]
    UnknownNode(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
    /// None of a failed shard's replicas answers.
    #[error("shard {shard} has no live replica to fail over to")]
    NoLiveReplica {
        /// The shard.
        shard: ShardId,
    },
    /// A shadow copy stopped with an error; the copy is not usable.
    #[error("shadow copy of shard {shard} failed: {reason}")]
    ShadowFailed {
        /// The shard.
        shard: ShardId,
        /// What went wrong.
        reason: String,
    },
    /// Retrying did not help within the time budget.
    #[error("gave up on {what} after {attempts} attempts over {elapsed:?}: {last}")]
    GaveUp {
        /// The operation.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last attempt's error.
        #[source]
        last: Box<MigrationError>,
    },
    /// A switchover (or merge) failed before the routing changed and was rolled back: the source
    /// serves the range again and the map is unchanged.
    #[error(
        "shard {shard}: rolled back: {cause}{}",
        .rollback.as_ref().map(|e| format!(" (rollback incomplete: {e})")).unwrap_or_default()
    )]
    RolledBack {
        /// The shard.
        shard: ShardId,
        /// Why the switchover failed.
        cause: Box<MigrationError>,
        /// A rollback step that failed too (e.g. the destination is down, so its partial copy
        /// could not be dropped); the source is serving whenever the rollback got that far.
        rollback: Option<Box<MigrationError>>,
    },
    /// The routing store committed the change, but a later step failed (e.g. the destination
    /// died before taking ownership); failing the node over repairs it.
    #[error("shard {shard}: routing changed to version {version}, then: {cause}")]
    AfterCommit {
        /// The shard.
        shard: ShardId,
        /// The committed map version.
        version: u64,
        /// The failed step.
        cause: Box<MigrationError>,
    },
}

impl MigrationError {
    /// True for refusals that mean "your map is out of date": refresh it and retry.
    pub fn is_routing_hint(&self) -> bool {
        matches!(
            self,
            MigrationError::NotOwner { .. }
                | MigrationError::ReadOnly { .. }
                | MigrationError::StaleMap { .. }
                | MigrationError::NotReplica { .. }
        )
    }

    /// True for connection-level failures (refused, reset, timed out): the node may be down.
    pub fn is_node_down(&self) -> bool {
        match self {
            MigrationError::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
            }
            MigrationError::GaveUp { last, .. } => last.is_node_down(),
            _ => false,
        }
    }

    /// True if waiting and retrying may help: node down, busy lock, loading server.
    pub fn is_transient(&self) -> bool {
        match self {
            MigrationError::Redis { source, .. } => {
                self.is_node_down()
                    || matches!(
                        source.kind(),
                        redis::ErrorKind::BusyLoadingError | redis::ErrorKind::TryAgain
                    )
            }
            MigrationError::LockBusy { .. } => true,
            _ => false,
        }
    }

    /// Maps a Redis error from `node` to the protocol refusal it encodes (the node scripts reply
    /// `-NOT_OWNER slot`, `-READ_ONLY slot`, `-STALE_MAP version`, `-NOT_REPLICA slot`,
    /// `-CONFLICT stored_ts`, `-STALE_FENCE seen`), or wraps it.
    pub(crate) fn from_redis(
        node: &str,
        context: &str,
        slot: &str,
        source: redis::RedisError,
    ) -> Self {
        let detail = source.detail().unwrap_or("").trim().to_string();
        let number = || detail.parse::<u64>().unwrap_or(0);
        let node = node.to_string();
        let slot = slot.to_string();
        match source.code() {
            Some("NOT_OWNER") => MigrationError::NotOwner { node, slot },
            Some("READ_ONLY") => MigrationError::ReadOnly { node, slot },
            Some("NOT_REPLICA") => MigrationError::NotReplica { node, slot },
            Some("STALE_MAP") => MigrationError::StaleMap {
                version: number(),
                node,
                slot,
            },
            Some("CONFLICT") => MigrationError::Conflict {
                stored_ts: number(),
                node,
                key: String::new(),
                ts: 0,
            },
            Some("STALE_FENCE") => MigrationError::StaleFence {
                seen: number(),
                node,
                slot,
                token: 0,
            },
            _ => MigrationError::Redis {
                node,
                context: context.to_string(),
                source,
            },
        }
    }
}
