//! Changing a shard's replica set: nodes added to it are filled with the shard's data.
//!
//! Under the shard's lock the routing store records the new set, then the owner's ownership is
//! raised to the new shard version, so clients that still know the old set are refused
//! (`STALE_MAP`) and refresh before their next write is acknowledged. Only then is the range
//! copied to the added nodes: every write the owner accepted before is in the copy, and every
//! write after reaches them directly. Both only move a key forward (by version), so their order
//! does not matter. Until the copy ends an added replica is incomplete; new replicas are best
//! appended to the set, since failover promotes the first live one.

use std::time::Duration;

use shardcast_shardmap::{MapChange, MapError, ShardId};

use super::segment::copy_segment;
use super::{LockGuard, MigrationError, NodeSet, OwnerState, RoutingStore};

/// What a replica-set change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The shard.
    pub shard: ShardId,
    /// Its new replicas.
    pub replicas: Vec<String>,
    /// Nodes that were added and filled.
    pub filled: Vec<String>,
    /// Keys copied to them (per node, summed).
    pub keys_copied: u64,
    /// The map version that records the change.
    pub version: u64,
}

/// Sets `shard`'s replicas to `replicas` and fills the added ones.
pub fn set_replicas(
    store: &RoutingStore,
    nodes: &NodeSet,
    shard: ShardId,
    replicas: Vec<String>,
) -> Result<ReplicaReport, MigrationError> {
    let lock = LockGuard::acquire(
        store,
        shard,
        Duration::from_secs(5),
        Duration::from_secs(10),
    )?;
    let token = lock.token();
    let before = store
        .load()?
        .get(shard)
        .cloned()
        .ok_or(MapError::UnknownShard(shard))?;
    if replicas.contains(&before.node) {
        return Err(MigrationError::Invalid(format!(
            "{} owns shard {shard}: it cannot be its replica",
            before.node
        )));
    }
    let committed = store.apply_latest(&[&lock], |_| {
        Ok(vec![MapChange::Replicas {
            shard,
            replicas: replicas.clone(),
        }])
    })?;
    let version = committed.get(shard).map(|s| s.version).unwrap_or(0);
    let slot = shard.to_string();
    let mut owner = nodes.node(&before.node)?;
    let after_commit = |cause| MigrationError::AfterCommit {
        shard,
        version: committed.version(),
        cause: Box::new(cause),
    };
    owner
        .set_owner(&slot, token, Some(OwnerState::rw(token, version)))
        .map_err(after_commit)?;
    let added: Vec<String> = replicas
        .iter()
        .filter(|r| !before.replicas.contains(r))
        .cloned()
        .collect();
    let mut keys_copied = 0;
    let keys = owner.all_keys(before.range).map_err(after_commit)?;
    for replica in &added {
        let mut dest = nodes.node(replica)?;
        for segment in keys.chunks(256) {
            keys_copied += copy_segment(&mut owner, &mut dest, &slot, segment, 1)
                .map_err(after_commit)?
                .keys;
            lock.renew().map_err(after_commit)?;
        }
    }
    let _ = lock.release();
    Ok(ReplicaReport {
        shard,
        replicas,
        filled: added,
        keys_copied,
        version: committed.version(),
    })
}
