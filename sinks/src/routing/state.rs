//! The state the routing API answers from, shared between the writer (the dataflow's routing
//! changelog) and the server.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use shardcast_shardmap::{MapChange, ShardMap};

use super::change_log::{ChangeLog, ChangesSince, VersionedChange};
use super::{PartitionView, RouteAnswer, StateError};

/// The current shard map, its recent changes and the partition view of every customer.
///
/// Cloning is cheap and every clone sees the same state, so one clone goes to the server and one to
/// whoever applies the routing changelog. Readers never see a half-applied change: each setter
/// takes the write lock once.
///
/// ```
/// use shardcast_shardmap::ShardMap;
/// use shardcast_sinks::routing::RoutingState;
/// let map = ShardMap::uniform(4, &["a".to_string(), "b".to_string()], 1).unwrap();
/// let state = RoutingState::new(map.clone());
/// let shard = map.lookup("k1");
/// let change = map.split_change(shard.id, (shard.range.lo + shard.range.hi) / 2).unwrap();
/// assert_eq!(state.apply(1, change.clone()), Ok(true));
/// assert_eq!(state.apply(1, change), Ok(false), "a redelivered change is ignored");
/// assert_eq!(state.version(), 1);
/// assert_eq!(state.changes_since(0).changes.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct RoutingState {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug)]
struct Inner {
    map: ShardMap,
    log: ChangeLog,
    partitions: BTreeMap<String, PartitionView>,
}

impl RoutingState {
    /// How many recent changes are kept by default: enough for clients that check every few
    /// seconds to catch up through many split/merge rounds without refetching the map.
    pub const DEFAULT_CHANGE_CAPACITY: usize = 4096;

    /// A state serving `map`, keeping [`Self::DEFAULT_CHANGE_CAPACITY`] changes.
    pub fn new(map: ShardMap) -> Self {
        Self::with_change_capacity(map, Self::DEFAULT_CHANGE_CAPACITY)
    }

    /// A state serving `map`, keeping the last `capacity` changes for `GET /v1/changes`.
    pub fn with_change_capacity(map: ShardMap, capacity: usize) -> Self {
        let log = ChangeLog::new(capacity, map.version());
        RoutingState {
            inner: Arc::new(RwLock::new(Inner {
                map,
                log,
                partitions: BTreeMap::new(),
            })),
        }
    }

    // Every update leaves the state valid before it can panic (there is no panicking code inside
    // the critical sections), so a poisoned lock holds a consistent state and is safe to reuse.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the map (e.g. after reading it back from the routing store). The change log restarts
    /// at the new map's version, so clients older than it fetch the whole map.
    pub fn set_map(&self, map: ShardMap) {
        let mut inner = self.write();
        if inner.map == map {
            return;
        }
        inner.log.reset(map.version());
        inner.map = map;
    }

    /// Applies `change`, which produced map version `version`.
    ///
    /// Returns `Ok(true)` when applied and `Ok(false)` when the map is already at or past `version`
    /// (a redelivered change, as a changelog consumer sees after a restart). Errors, leaving the
    /// state unchanged, when `version` skips versions, when a different change was logged for
    /// `version`, or when the map refuses the change.
    pub fn apply(&self, version: u64, change: MapChange) -> Result<bool, StateError> {
        let mut inner = self.write();
        let current = inner.map.version();
        if version <= current {
            return match inner.log.get(version) {
                Some(logged) if *logged != change => Err(StateError::Conflict { version }),
                _ => Ok(false),
            };
        }
        if version != current + 1 {
            return Err(StateError::VersionGap {
                current,
                got: version,
            });
        }
        inner.map.apply(&change)?;
        inner.log.push(VersionedChange { version, change });
        Ok(true)
    }

    /// Sets (or replaces) the partition view of `view.customer`; refuses views that cannot be
    /// served (see [`PartitionView::problem`]).
    pub fn set_partition(&self, view: PartitionView) -> Result<(), StateError> {
        if let Some(reason) = view.problem() {
            return Err(StateError::InvalidView {
                customer: view.customer,
                reason,
            });
        }
        self.write().partitions.insert(view.customer.clone(), view);
        Ok(())
    }

    /// Removes the partition view of `customer` (it has no assignment any more), returning it.
    pub fn remove_partition(&self, customer: &str) -> Option<PartitionView> {
        self.write().partitions.remove(customer)
    }

    /// The partition view of `customer`.
    pub fn partition(&self, customer: &str) -> Option<PartitionView> {
        self.read().partitions.get(customer).cloned()
    }

    /// Number of customers with a partition view.
    pub fn partition_count(&self) -> usize {
        self.read().partitions.len()
    }

    /// Where `key` lives in the current map.
    pub fn route(&self, key: &str) -> RouteAnswer {
        RouteAnswer::from_map(&self.read().map, key)
    }

    /// A copy of the current map.
    pub fn map(&self) -> ShardMap {
        self.read().map.clone()
    }

    /// The current map version.
    pub fn version(&self) -> u64 {
        self.read().map.version()
    }

    /// Number of shards in the current map.
    pub fn shard_count(&self) -> usize {
        self.read().map.shards().count()
    }

    /// The changes after version `since` (see [`ChangesSince`]).
    pub fn changes_since(&self, since: u64) -> ChangesSince {
        let inner = self.read();
        inner.log.since(since, inner.map.version())
    }
}
