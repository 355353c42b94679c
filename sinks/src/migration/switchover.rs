//! The switchover of a shard from its owner to the node holding its shadow copy (seed 002's
//! procedure, with a lock and fencing):
//!
//! 1. take the shard's range lock in the routing store (its token fences every step below);
//! 2. make the source read-only for the shard: writes wait (clients retry), reads go on;
//! 3. apply the rest of the delta log, then compare every key's version on both sides and copy
//!    any that differ;
//! 4. compare the range's checksum on source and destination;
//! 5. commit: the routing store compare-and-sets `MapChange::Move` (a new map version), the source
//!    gives the shard up and the destination takes it read-write; the write pause is measured
//!    from step 2 to here;
//! 6. if anything fails before the commit (checksum mismatch, a node down, the lock lost), roll
//!    back: the source serves read-write again, the destination's copy is dropped and the map is
//!    unchanged, and the error says why.
//!
//! No acknowledged write is lost: a write is acknowledged only after the source applied it
//! while read-write, i.e. before step 2, and step 3 carries every such write over (the version
//! comparison catches even one the delta log missed); after step 2 the source takes no writes,
//! and clients reach the destination only through the map committed in step 5.

use std::time::{Duration, Instant};

use shardcast_shardmap::{MapChange, MapError, Shard, ShardId, ShardMap};

use super::ranges::within;
use super::segment::copy_segment;
use super::shadow::apply_delta_batch;
use super::{
    Checksum, LockGuard, MigrationError, Node, NodeSet, OwnerState, RoutingStore, ShadowConfig,
    ShadowCopy, ShadowPhase, ShadowPlan, ShadowProgress, Throttle,
};

/// Tuning of switchovers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchoverConfig {
    /// How long a lock lives without renewal (each step renews it).
    pub lock_ttl: Duration,
    /// How long to wait for another executor's lock on the shard.
    pub lock_wait: Duration,
    /// How long a shadow copy may take to catch up before the switchover gives up.
    pub catch_up_timeout: Duration,
    /// Shadow copies started by the switchover itself (when none was running).
    pub shadow: ShadowConfig,
}

impl Default for SwitchoverConfig {
    /// A 5 s lock, waiting up to 10 s for it; 60 s to catch up.
    fn default() -> Self {
        SwitchoverConfig {
            lock_ttl: Duration::from_secs(5),
            lock_wait: Duration::from_secs(10),
            catch_up_timeout: Duration::from_secs(60),
            shadow: ShadowConfig::default(),
        }
    }
}

/// What a completed switchover did.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchoverReport {
    /// The shard.
    pub shard: ShardId,
    /// The node it left.
    pub from: String,
    /// The node it moved to.
    pub to: String,
    /// The map version that records the move.
    pub version: u64,
    /// Writes were refused (clients retried) for this long: source read-only to destination
    /// read-write.
    pub pause: Duration,
    /// Lock to release.
    pub total: Duration,
    /// Delta-log entries applied during the pause.
    pub deltas_applied: u64,
    /// Keys found different by the version comparison and copied during the pause.
    pub keys_recopied: u64,
    /// The checksum both sides agreed on.
    pub checksum: Checksum,
    /// The fencing token used.
    pub fence: u64,
    /// Whether the switchover drew on a shadow copy running before it (planned ahead, e.g. of
    /// the half of a split shard) rather than one it had to start itself.
    pub copied_ahead: bool,
    /// The counters of the copy it drew on, when it stopped before the pause.
    pub copy: ShadowProgress,
}

/// Runs switchovers against a routing store and data nodes.
pub struct Switchover<'a> {
    store: &'a RoutingStore,
    nodes: &'a NodeSet,
    config: SwitchoverConfig,
}

impl<'a> Switchover<'a> {
    /// Switchovers over `store` and `nodes`.
    pub fn new(store: &'a RoutingStore, nodes: &'a NodeSet, config: SwitchoverConfig) -> Self {
        Switchover {
            store,
            nodes,
            config,
        }
    }

    /// Moves `shard` to node `to`, using `shadow` (a running copy of that shard, or of a part of
    /// it, to `to`; a part is widened to the whole shard before the pause) or starting one. On failure before the commit everything is rolled back
    /// ([`MigrationError::RolledBack`]); a failure after it is [`MigrationError::AfterCommit`].
    pub fn run(
        &self,
        shard: ShardId,
        to: &str,
        shadow: Option<ShadowCopy>,
    ) -> Result<SwitchoverReport, MigrationError> {
        let started = Instant::now();
        // The shard is read under its lock: nobody else can move, split or fail it over until
        // this switchover ends.
        let locked = LockGuard::acquire(
            self.store,
            shard,
            self.config.lock_ttl,
            self.config.lock_wait,
        )
        .and_then(|lock| Ok((self.current(shard, to)?, lock)));
        let (before, lock) = match locked {
            Ok(locked) => locked,
            Err(err) => {
                // The copy is of no use: stop feeding the delta log and drop it.
                if let Some(copy) = shadow {
                    let _ = copy.cancel();
                }
                return Err(err);
            }
        };
        let destination_is_replica = before.replicas.iter().any(|r| r == to);
        let plan = ShadowPlan {
            shard,
            range: before.range,
            from: before.node.clone(),
            to: to.to_string(),
            priorities: Vec::new(),
            destination_is_replica,
        };
        let shadow = match shadow {
            Some(copy) => usable_copy(copy, &plan),
            None => None,
        };
        let mut steps = Steps {
            store: self.store,
            lock: &lock,
            shard: before,
            to: to.to_string(),
            source: self.nodes.node(&plan.from)?,
            dest: self.nodes.node(to)?,
            destination_is_replica,
            inherited: Vec::new(),
            copied_ahead: false,
            copy: None,
            source_read_only: false,
            dest_claimed: false,
        };
        let outcome = steps.prepare(shadow, &plan, self.nodes, &self.config);
        let outcome = outcome.and_then(|()| steps.cut_over(started));
        match outcome {
            Ok(report) => {
                let _ = lock.release();
                Ok(SwitchoverReport {
                    total: started.elapsed(),
                    ..report
                })
            }
            Err(err @ MigrationError::AfterCommit { .. }) => {
                let _ = lock.release();
                Err(err)
            }
            Err(cause) => {
                let rollback = steps.roll_back().err().map(Box::new);
                let _ = lock.release();
                Err(MigrationError::RolledBack {
                    shard,
                    cause: Box::new(cause),
                    rollback,
                })
            }
        }
    }
}

/// `copy` if it can serve the switchover `plan` describes: a copy of the shard (or of a part of
/// it, then widened to the whole shard) from its owner to the destination. Any other copy is of
/// no use here and is cancelled.
fn usable_copy(mut copy: ShadowCopy, plan: &ShadowPlan) -> Option<ShadowCopy> {
    let p = copy.plan();
    if p.shard != plan.shard
        || p.from != plan.from
        || p.to != plan.to
        || !within(p.range, plan.range)
    {
        let _ = copy.cancel();
        return None;
    }
    if p.range != plan.range {
        // The part already copied stays; the rest is copied before the pause, not during it.
        if let Err(err) = copy.hand_over(plan.shard, plan.range) {
            tracing::warn!(shard = plan.shard, error = %err, "the shadow copy could not be widened to the whole shard; copying afresh");
            let _ = copy.cancel();
            return None;
        }
    }
    Some(copy)
}

impl Switchover<'_> {
    /// The shard as the map has it now, if it can move to `to`.
    fn current(&self, shard: ShardId, to: &str) -> Result<Shard, MigrationError> {
        let map = self.store.load()?;
        let before = map
            .get(shard)
            .cloned()
            .ok_or(MigrationError::Map(MapError::UnknownShard(shard)))?;
        if before.node == to {
            return Err(MigrationError::Invalid(format!(
                "shard {shard} is already on {to}"
            )));
        }
        self.nodes.node(to)?;
        Ok(before)
    }
}

/// The state of one switchover, for its steps and its rollback.
struct Steps<'s, 'l> {
    store: &'s RoutingStore,
    lock: &'s LockGuard<'l>,
    shard: Shard,
    to: String,
    source: Node,
    dest: Node,
    destination_is_replica: bool,
    /// Delta logs of earlier ids of the shard (a split parent) the copy still drew on: drained
    /// in the pause and ended with the shard's own.
    inherited: Vec<String>,
    copied_ahead: bool,
    copy: Option<ShadowProgress>,
    source_read_only: bool,
    dest_claimed: bool,
}

impl Steps<'_, '_> {
    fn slot(&self) -> String {
        self.shard.id.to_string()
    }

    /// Brings the shadow copy up to date (starting one if needed) and stops its thread.
    fn prepare(
        &mut self,
        shadow: Option<ShadowCopy>,
        plan: &ShadowPlan,
        nodes: &NodeSet,
        config: &SwitchoverConfig,
    ) -> Result<(), MigrationError> {
        self.copied_ahead = shadow.is_some();
        let copy = match shadow {
            Some(copy) => copy,
            None => {
                ShadowCopy::start(plan.clone(), nodes, Throttle::new(0), config.shadow.clone())?
            }
        };
        // Wait in slices of a third of the lock's life, renewing it, so a long catch-up does
        // not cost the lock.
        let deadline = Instant::now() + config.catch_up_timeout;
        let caught_up = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match copy.wait_caught_up((config.lock_ttl / 3).min(left)) {
                Ok(progress) => break Ok(progress),
                Err(err) => {
                    let still_copying = copy.progress().phase == ShadowPhase::Copying;
                    if !still_copying || left.is_zero() {
                        break Err(err);
                    }
                    if let Err(lost) = self.lock.renew() {
                        break Err(lost);
                    }
                }
            }
        };
        let slot = self.slot();
        self.inherited = copy
            .feeding_slots()
            .into_iter()
            .filter(|s| *s != slot)
            .collect();
        let stopped = copy.stop();
        caught_up?;
        self.copy = Some(stopped?);
        self.lock.renew()
    }

    /// Steps 2 to 5.
    fn cut_over(&mut self, started: Instant) -> Result<SwitchoverReport, MigrationError> {
        let slot = self.slot();
        let token = self.lock.token();
        let version = self.shard.version;
        let copy = self
            .copy
            .clone()
            .ok_or_else(|| MigrationError::Invalid("no copy was prepared".into()))?;
        // 2. Source read-only: writes wait from here.
        self.source_read_only = true;
        self.source
            .set_owner(&slot, token, Some(OwnerState::ro(token, version)))?;
        let paused = Instant::now();
        // 3. The rest of the delta log, then every key whose version differs.
        let mut deltas_applied = 0;
        for log in self.inherited.iter().chain(std::iter::once(&slot)) {
            loop {
                let batch = apply_delta_batch(
                    &mut self.source,
                    &mut self.dest,
                    log,
                    self.shard.range,
                    1024,
                )?;
                if batch.consumed == 0 {
                    break;
                }
                deltas_applied += batch.applied;
            }
        }
        let keys_recopied = self.copy_differences(&slot)?;
        // 4. Checksums.
        let at_source = self.source.checksum(self.shard.range)?;
        let at_destination = self.dest.checksum(self.shard.range)?;
        if at_source != at_destination {
            return Err(MigrationError::ChecksumMismatch {
                shard: self.shard.id,
                at_source,
                at_destination,
            });
        }
        self.lock.renew()?;
        // 5. Let the destination serve reads already (clients reach it only after the commit).
        self.dest_claimed = true;
        self.dest
            .set_owner(&slot, token, Some(OwnerState::ro(token, version)))?;
        let committed = self.commit()?;
        let new_version = committed
            .get(self.shard.id)
            .map(|s| s.version)
            .unwrap_or(committed.version());
        // Past the commit: the source gives the shard up first, so that (when it becomes a
        // replica) replica writes are not refused as writes to an owner.
        if let Err(err) = self.source.set_owner(&slot, token, None) {
            tracing::warn!(shard = self.shard.id, error = %err, "the old owner did not give the shard up; its stale ownership only serves reads");
        }
        for log in self.inherited.iter().chain(std::iter::once(&slot)) {
            let _ = self.source.shadow_end(log);
        }
        self.dest
            .set_owner(&slot, token, Some(OwnerState::rw(token, new_version)))
            .map_err(|cause| MigrationError::AfterCommit {
                shard: self.shard.id,
                version: committed.version(),
                cause: Box::new(cause),
            })?;
        let pause = paused.elapsed();
        Ok(SwitchoverReport {
            shard: self.shard.id,
            from: self.shard.node.clone(),
            to: self.to.clone(),
            version: committed.version(),
            pause,
            total: started.elapsed(),
            deltas_applied,
            keys_recopied,
            checksum: at_source,
            fence: token,
            copied_ahead: self.copied_ahead,
            copy,
        })
    }

    /// Copies every key whose version differs between source and destination; returns how many.
    fn copy_differences(&mut self, slot: &str) -> Result<u64, MigrationError> {
        let at_source = self.source.range_versions(self.shard.range)?;
        let at_dest: std::collections::HashMap<String, u64> = self
            .dest
            .range_versions(self.shard.range)?
            .into_iter()
            .collect();
        let differing: Vec<String> = at_source
            .into_iter()
            .filter(|(key, ver)| at_dest.get(key) != Some(ver))
            .map(|(key, _)| key)
            .collect();
        for segment in differing.chunks(256) {
            copy_segment(&mut self.source, &mut self.dest, slot, segment, 1)?;
        }
        Ok(differing.len() as u64)
    }

    /// The routing change: the move, and if the destination was a replica, the source becomes a
    /// replica in its place (it holds exactly the shard's data), so the replica count stays.
    fn commit(&self) -> Result<ShardMap, MigrationError> {
        let expected = self.shard.clone();
        let to = self.to.clone();
        let restore = self.destination_is_replica;
        self.store.apply_latest(&[self.lock], |current| {
            let now = current
                .get(expected.id)
                .ok_or(MigrationError::Map(MapError::UnknownShard(expected.id)))?;
            if now.node != expected.node || now.range != expected.range {
                return Err(MigrationError::Invalid(format!(
                    "shard {} changed under the lock (now on {} {:?})",
                    expected.id, now.node, now.range
                )));
            }
            let mut changes = vec![MapChange::Move {
                shard: expected.id,
                from: expected.node.clone(),
                to: to.clone(),
            }];
            if restore {
                let mut replicas: Vec<String> =
                    now.replicas.iter().filter(|r| **r != to).cloned().collect();
                replicas.push(expected.node.clone());
                changes.push(MapChange::Replicas {
                    shard: expected.id,
                    replicas,
                });
            }
            Ok(changes)
        })
    }

    /// Undoes what was done before the commit: source read-write again, destination ownership
    /// removed and its copy dropped (unless a replica), the delta log off. Every step is tried;
    /// the first error is returned.
    fn roll_back(&mut self) -> Result<(), MigrationError> {
        let slot = self.slot();
        let token = self.lock.token();
        let mut first: Option<MigrationError> = None;
        let mut note = |result: Result<(), MigrationError>| {
            if let Err(err) = result {
                first.get_or_insert(err);
            }
        };
        if self.source_read_only {
            note(self.source.set_owner(
                &slot,
                token,
                Some(OwnerState::rw(token, self.shard.version)),
            ));
        }
        if self.dest_claimed {
            note(self.dest.set_owner(&slot, token, None));
        }
        if !self.destination_is_replica {
            note(self.dest.drop_range(&slot, self.shard.range).map(drop));
        }
        for log in self.inherited.iter().chain(std::iter::once(&slot)) {
            note(self.source.shadow_end(log));
        }
        match first {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }
}
