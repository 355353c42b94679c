//! Replica failover (seed 004): when a node stops answering, each shard it owns moves to its
//! first live replica, and it leaves the replica sets of the others.
//!
//! A write is acknowledged only once the owner and every replica hold it, so any replica holds
//! every acknowledged write of its shard and may take over. Each shard is failed over under its
//! range lock: the routing store records `MapChange::Failover` (which also drops the failed node
//! from the shard's replicas), then the replica takes ownership read-write with the lock's token,
//! a token higher than any the failed node's last owner ever used. If the failed node is in fact
//! alive, it is asked to give the shard up too; if it cannot be reached, clients still cannot
//! write through it, because every write must also reach the replicas, and the promoted replica
//! now refuses replica writes for the shard (`NOT_REPLICA`).

use std::time::Duration;

use shardcast_shardmap::{MapChange, ShardId};

use super::{LockGuard, MigrationError, NodeSet, OwnerState, RoutingStore};

/// What a failover did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverReport {
    /// The failed node.
    pub node: String,
    /// Shards moved to a replica: (shard, new owner).
    pub promoted: Vec<(ShardId, String)>,
    /// Shards the node was a replica of, whose replica sets no longer list it.
    pub replica_removed: Vec<ShardId>,
    /// Shards with no live replica: unavailable until the node returns.
    pub unavailable: Vec<ShardId>,
    /// The map version after the failover.
    pub version: u64,
}

/// Fails nodes over to replicas.
pub struct Failover<'a> {
    store: &'a RoutingStore,
    nodes: &'a NodeSet,
    lock_ttl: Duration,
    lock_wait: Duration,
}

impl<'a> Failover<'a> {
    /// Failovers with 5 s locks, waiting up to 15 s for a running switchover to end.
    pub fn new(store: &'a RoutingStore, nodes: &'a NodeSet) -> Self {
        Failover {
            store,
            nodes,
            lock_ttl: Duration::from_secs(5),
            lock_wait: Duration::from_secs(15),
        }
    }

    /// Moves every shard of `failed` to its first live replica and removes `failed` from every
    /// replica set.
    pub fn fail_over(&self, failed: &str) -> Result<FailoverReport, MigrationError> {
        let mut report = FailoverReport {
            node: failed.to_string(),
            ..FailoverReport::default()
        };
        let map = self.store.load()?;
        let owned: Vec<ShardId> = map
            .shards()
            .filter(|s| s.node == failed)
            .map(|s| s.id)
            .collect();
        for shard in owned {
            match self.promote(shard, failed, None) {
                Ok(Some(to)) => report.promoted.push((shard, to)),
                Ok(None) => {}
                Err(MigrationError::NoLiveReplica { .. }) => report.unavailable.push(shard),
                Err(err) => return Err(err),
            }
        }
        // Shards split or merged meanwhile may list the node as a replica under new ids: read
        // the map again.
        let map = self.store.load()?;
        let replicated: Vec<ShardId> = map
            .shards()
            .filter(|s| s.replicas.iter().any(|r| r == failed))
            .map(|s| s.id)
            .collect();
        for shard in replicated {
            let lock = LockGuard::acquire(self.store, shard, self.lock_ttl, self.lock_wait)?;
            let mut changed = false;
            self.store.apply_latest(&[&lock], |map| {
                let Some(s) = map.get(shard) else {
                    changed = false;
                    return Ok(Vec::new());
                };
                changed = s.replicas.iter().any(|r| r == failed);
                Ok(if changed {
                    vec![MapChange::Replicas {
                        shard,
                        replicas: s
                            .replicas
                            .iter()
                            .filter(|r| *r != failed)
                            .cloned()
                            .collect(),
                    }]
                } else {
                    Vec::new()
                })
            })?;
            if changed {
                report.replica_removed.push(shard);
            }
            let _ = lock.release();
        }
        report.version = self.store.version()?;
        Ok(report)
    }

    /// Moves `shard`, if still owned by `failed`, to `to` (or its first live replica); returns
    /// the new owner, `None` if the shard had already moved.
    pub fn promote(
        &self,
        shard: ShardId,
        failed: &str,
        to: Option<&str>,
    ) -> Result<Option<String>, MigrationError> {
        let lock = LockGuard::acquire(self.store, shard, self.lock_ttl, self.lock_wait)?;
        let token = lock.token();
        let map = self.store.load()?;
        let Some(current) = map.get(shard) else {
            return Ok(None);
        };
        if current.node != failed {
            return Ok(None);
        }
        let candidates: Vec<String> = match to {
            Some(to) => vec![to.to_string()],
            None => current.replicas.clone(),
        };
        let mut chosen = None;
        for candidate in candidates {
            if self
                .nodes
                .node(&candidate)
                .and_then(|mut n| n.ping())
                .is_ok()
            {
                chosen = Some(candidate);
                break;
            }
        }
        let Some(to) = chosen else {
            return Err(MigrationError::NoLiveReplica { shard });
        };
        let committed = self
            .store
            .apply_latest(&[&lock], |map| match map.get(shard) {
                Some(s) if s.node == failed => Ok(vec![MapChange::Failover {
                    shard,
                    from: failed.to_string(),
                    to: to.clone(),
                }]),
                _ => Err(MigrationError::Invalid(format!(
                    "shard {shard} left {failed} during its failover"
                ))),
            })?;
        let version = committed.get(shard).map(|s| s.version).unwrap_or(0);
        let slot = shard.to_string();
        self.nodes
            .node(&to)?
            .set_owner(&slot, token, Some(OwnerState::rw(token, version)))
            .map_err(|cause| MigrationError::AfterCommit {
                shard,
                version: committed.version(),
                cause: Box::new(cause),
            })?;
        // If the failed node is alive after all, it gives the shard up (best effort).
        if let Ok(mut old) = self.nodes.node(failed) {
            let _ = old.set_owner(&slot, token, None);
        }
        let _ = lock.release();
        Ok(Some(to))
    }
}
