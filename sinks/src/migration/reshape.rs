//! Splits and merges of shards on one node: changes of the map, not of the data, made under the
//! shards' locks.
//!
//! The data of a node is keyed by key, not by shard, so a shard split into two halves on the same
//! node, or two neighbours merged, need no copy: the routing store records the change and the
//! node's ownership follows (children given, parent removed). Clients with the old map keep
//! writing the old shard until its ownership goes, then refresh. A split hands the parent's
//! delta-log feed (a shadow copy of it is running) to the children in the same node script that
//! gives them ownership, so the copy can follow the child it covers. One case needs data after all:
//! a merged shard keeps the left shard's replicas, so the right shard's range is first copied to
//! those of them that do not already replicate it, with both shards read-only meanwhile (or a
//! write to the right shard could reach its old replicas but not the new ones).

use std::time::{Duration, Instant};

use shardcast_shardmap::{HashRange, MapChange, MapError, ShardId};

use super::segment::copy_segment;
use super::{lock_all, MigrationError, Node, NodeSet, OwnerState, RoutingStore};

/// What a split or merge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshapeReport {
    /// The change recorded.
    pub change: MapChange,
    /// The map version that records it.
    pub version: u64,
    /// The node serving the shards.
    pub node: String,
    /// How long writes to the shards were refused (zero when no data had to move).
    pub pause: Duration,
    /// Keys copied to the merged shard's new replicas.
    pub keys_copied: u64,
    /// Children of a split whose writes feed a delta log from the split on, because a shadow
    /// copy of the parent covered part of their range (whoever runs that copy hands it over
    /// with [`ShadowCopy::hand_over`](super::ShadowCopy::hand_over) or ends their logs).
    pub shadowed: Vec<ShardId>,
}

/// Splits and merges over a routing store and data nodes.
pub struct Reshape<'a> {
    store: &'a RoutingStore,
    nodes: &'a NodeSet,
    lock_ttl: Duration,
    lock_wait: Duration,
}

impl<'a> Reshape<'a> {
    /// Reshapes with 5 s locks, waiting up to 10 s for them.
    pub fn new(store: &'a RoutingStore, nodes: &'a NodeSet) -> Self {
        Reshape {
            store,
            nodes,
            lock_ttl: Duration::from_secs(5),
            lock_wait: Duration::from_secs(10),
        }
    }

    /// Splits `shard` at ring position `at` (the halves stay on its node).
    pub fn split(&self, shard: ShardId, at: u64) -> Result<ReshapeReport, MigrationError> {
        let locks = lock_all(self.store, &[shard], self.lock_ttl, self.lock_wait)?;
        let token = locks[0].token();
        let mut recorded = None;
        let map = self.store.apply_latest(&[&locks[0]], |map| {
            let change = map.split_change(shard, at)?;
            recorded = Some(change.clone());
            Ok(vec![change])
        })?;
        let change = recorded.expect("apply_latest ran the closure");
        let MapChange::Split { left, right, .. } = change else {
            unreachable!("split_change makes a split")
        };
        let after_commit = |cause| MigrationError::AfterCommit {
            shard,
            version: map.version(),
            cause: Box::new(cause),
        };
        let halves = [left, right].map(|id| map.get(id).cloned());
        let [Some(l), Some(r)] = halves else {
            return Err(after_commit(MapError::UnknownShard(left).into()));
        };
        let mut node = self.nodes.node(&l.node).map_err(after_commit)?;
        let parent_range = HashRange {
            lo: l.range.lo,
            hi: r.range.hi,
        };
        // One script: a write reaches the parent or a child, never neither, and a child whose
        // range a running shadow copy of the parent covers logs its writes from the moment it
        // takes any.
        let fed = node
            .split_ownership(
                &shard.to_string(),
                parent_range,
                token,
                [
                    (&left.to_string(), OwnerState::rw(token, l.version), l.range),
                    (
                        &right.to_string(),
                        OwnerState::rw(token, r.version),
                        r.range,
                    ),
                ],
            )
            .map_err(after_commit)?;
        drop(locks);
        Ok(ReshapeReport {
            change,
            version: map.version(),
            node: l.node,
            pause: Duration::ZERO,
            keys_copied: 0,
            shadowed: [left, right]
                .into_iter()
                .filter(|id| fed.contains(&id.to_string()))
                .collect(),
        })
    }

    /// Merges `left` with the shard after it; both must be on the same node.
    pub fn merge(&self, left: ShardId) -> Result<ReshapeReport, MigrationError> {
        let map = self.store.load()?;
        let change = map.merge_change(left)?;
        let MapChange::Merge { right, .. } = change else {
            unreachable!("merge_change makes a merge")
        };
        let locks = lock_all(self.store, &[left, right], self.lock_ttl, self.lock_wait)?;
        let token = locks.iter().map(|l| l.token()).max().unwrap_or(0);
        // Under the locks, the two shards cannot change any more: read them again.
        let map = self.store.load()?;
        let l = map.get(left).ok_or(MapError::UnknownShard(left))?.clone();
        let r = map.get(right).ok_or(MapError::UnknownShard(right))?.clone();
        if l.range.hi != r.range.lo {
            return Err(MapError::NotAdjacent { left, right }.into());
        }
        if l.node != r.node {
            return Err(MigrationError::Invalid(format!(
                "shards {left} ({}) and {right} ({}) are on different nodes: move one first",
                l.node, r.node
            )));
        }
        let mut node = self.nodes.node(&l.node)?;
        let missing: Vec<String> = l
            .replicas
            .iter()
            .filter(|n| !r.replicas.contains(n))
            .cloned()
            .collect();
        let paused = Instant::now();
        let mut keys_copied = 0;
        if !missing.is_empty() {
            let mut fill = || -> Result<(), MigrationError> {
                for (shard, version) in [(left, l.version), (right, r.version)] {
                    node.set_owner(
                        &shard.to_string(),
                        token,
                        Some(OwnerState::ro(token, version)),
                    )?;
                }
                let keys = node.all_keys(r.range)?;
                for replica in &missing {
                    let mut dest = self.nodes.node(replica)?;
                    for segment in keys.chunks(256) {
                        keys_copied +=
                            copy_segment(&mut node, &mut dest, &right.to_string(), segment, 1)?
                                .keys;
                    }
                }
                for lock in &locks {
                    lock.renew()?;
                }
                Ok(())
            };
            if let Err(cause) = fill() {
                let rollback = restore(&mut node, token, &[(left, l.version), (right, r.version)]);
                return Err(MigrationError::RolledBack {
                    shard: right,
                    cause: Box::new(cause),
                    rollback: rollback.err().map(Box::new),
                });
            }
        }
        let guards: Vec<_> = locks.iter().collect();
        let committed = self
            .store
            .apply(map.version(), std::slice::from_ref(&change), &guards);
        let committed = match committed {
            Ok(committed) => committed,
            Err(MigrationError::VersionConflict { .. }) => {
                // Another shard changed meanwhile; ours cannot have (we hold their locks).
                match self
                    .store
                    .apply_latest(&guards, |_| Ok(vec![change.clone()]))
                {
                    Ok(committed) => committed,
                    Err(cause) => return Err(self.undo(&mut node, token, &l, &r, cause)),
                }
            }
            Err(cause) => return Err(self.undo(&mut node, token, &l, &r, cause)),
        };
        let MapChange::Merge { into, .. } = change else {
            unreachable!()
        };
        let version = committed.get(into).map(|s| s.version).unwrap_or(0);
        let after_commit = |cause| MigrationError::AfterCommit {
            shard: into,
            version: committed.version(),
            cause: Box::new(cause),
        };
        node.set_owner(
            &into.to_string(),
            token,
            Some(OwnerState::rw(token, version)),
        )
        .map_err(after_commit)?;
        for shard in [left, right] {
            node.set_owner(&shard.to_string(), token, None)
                .map_err(after_commit)?;
        }
        let pause = if missing.is_empty() {
            Duration::ZERO
        } else {
            paused.elapsed()
        };
        drop(guards);
        drop(locks);
        Ok(ReshapeReport {
            change,
            version: committed.version(),
            node: l.node,
            pause,
            keys_copied,
            shadowed: Vec::new(),
        })
    }

    fn undo(
        &self,
        node: &mut Node,
        token: u64,
        l: &shardcast_shardmap::Shard,
        r: &shardcast_shardmap::Shard,
        cause: MigrationError,
    ) -> MigrationError {
        let rollback = restore(node, token, &[(l.id, l.version), (r.id, r.version)]);
        MigrationError::RolledBack {
            shard: r.id,
            cause: Box::new(cause),
            rollback: rollback.err().map(Box::new),
        }
    }
}

/// Gives `shards` back read-write ownership (at their versions).
fn restore(node: &mut Node, token: u64, shards: &[(ShardId, u64)]) -> Result<(), MigrationError> {
    for (shard, version) in shards {
        node.set_owner(
            &shard.to_string(),
            token,
            Some(OwnerState::rw(token, *version)),
        )?;
    }
    Ok(())
}
