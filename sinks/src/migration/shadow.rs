//! Shadow copies (seed 002): a range's data copied from its owner to the node it will move to,
//! in the background, before the move is due.
//!
//! [`ShadowCopy::start`] first turns on the source's delta log for the shard (every later write
//! of the shard appends its key) and clears whatever an earlier, abandoned copy left on the
//! destination; only then does it list the range, so a write is either in the listing or in the
//! delta log. The range may be the whole shard or a part of it (the half that will split off and
//! move); the log records every write of the shard and the copy applies those inside its range.
//! A background thread copies the keys in segments, hottest first (the caller's priorities, e.g.
//! prefetch priorities; the rest in ring order), each validated by its token (see
//! [`ValidationToken`](super::ValidationToken)), under a [`Throttle`] that may change while it
//! runs. Once the listing is copied the copy is *caught up*; it keeps applying the delta log in
//! order until it is stopped (a switchover then takes over the log) or cancelled.
//!
//! A copy follows its range through a split: the split hands the parent's log feed to the child
//! holding the range in the same node script that gives the child its ownership
//! ([`Node::split_ownership`]), and [`ShadowCopy::hand_over`] re-aims the copy at that child. The
//! copy then drains what the parent's log holds, ends it, and follows the child's log. The same
//! call widens a copy to a whole shard (a switchover of a shard whose copy covers part of it) or
//! narrows it (a range that straddled the split point keeps its part in one child).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shardcast_shardmap::{ring_position, HashRange, ShardId};

use super::ranges::{minus, within};
use super::segment::copy_segment;
use super::throttle::Pacer;
use super::{MigrationError, Node, NodeSet, Throttle};

/// What to copy where.
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowPlan {
    /// The shard.
    pub shard: ShardId,
    /// The ring positions to copy: the shard's range or a part of it.
    pub range: HashRange,
    /// The node that owns it.
    pub from: String,
    /// The node it will move to.
    pub to: String,
    /// Keys to copy first, by priority (highest first); the others follow in ring order.
    pub priorities: Vec<(String, f64)>,
    /// The destination is a replica of the shard: its data is kept, not cleared first (and not
    /// dropped by a cancel or rollback).
    pub destination_is_replica: bool,
}

/// Tuning of shadow copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowConfig {
    /// Keys per segment (one read, one write and one validation each).
    pub segment_keys: usize,
    /// Copies of a segment whose token keeps failing before it is left to the delta log.
    pub max_attempts: u32,
    /// How often a caught-up copy applies the delta log.
    pub delta_interval: Duration,
}

impl Default for ShadowConfig {
    /// 64-key segments, 4 attempts, the delta log every 10 ms.
    fn default() -> Self {
        ShadowConfig {
            segment_keys: 64,
            max_attempts: 4,
            delta_interval: Duration::from_millis(10),
        }
    }
}

/// Where a shadow copy is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShadowPhase {
    /// Copying the range's keys.
    Copying,
    /// The range is copied; the delta log is being applied as it grows.
    CaughtUp,
    /// Stopped on request.
    Stopped,
    /// Stopped by an error (e.g. a node went down); the copy is not usable.
    Failed(String),
}

/// Counters of a shadow copy.
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowProgress {
    /// Where it is.
    pub phase: ShadowPhase,
    /// Keys in the range when it was listed (and in the parts a widening added).
    pub keys_total: u64,
    /// Keys copied so far (each counted once per segment, the last attempt).
    pub keys_copied: u64,
    /// Bytes written to the destination (keys and values, every attempt and delta included).
    pub bytes_copied: u64,
    /// Segments copied.
    pub segments: u64,
    /// Segments copied again because their validation token failed.
    pub recopied_segments: u64,
    /// Delta-log entries applied (entries for keys outside the range are skipped, not counted).
    pub deltas_applied: u64,
    /// Time from start to caught up (`None` before; the latest catch-up after a widening).
    pub copy_time: Option<Duration>,
}

/// What the copy is aimed at; changed by [`ShadowCopy::hand_over`], followed by the worker.
#[derive(Clone, Debug)]
struct Target {
    /// Bumped by every hand-over, so the worker sees a change it has not followed.
    generation: u64,
    shard: ShardId,
    range: HashRange,
    /// Slots of earlier ids of the shard (a split parent) whose logs still feed the copy: the
    /// worker drains each and ends it once its shard is retired on the source.
    inherited: Vec<String>,
}

struct State {
    progress: ShadowProgress,
    target: Target,
    /// The range the worker aims at (it lags the target until the worker's next step), so a
    /// cancel drops whatever it may have written.
    followed: HashRange,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_all();
        out
    }
}

/// A running shadow copy; stops (without cancelling) when dropped.
pub struct ShadowCopy {
    plan: ShadowPlan,
    nodes: NodeSet,
    throttle: Throttle,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ShadowCopy {
    /// Turns on the source's delta log, clears the destination's range (unless it is a replica)
    /// and starts copying in the background at `throttle`'s rate.
    pub fn start(
        plan: ShadowPlan,
        nodes: &NodeSet,
        throttle: Throttle,
        config: ShadowConfig,
    ) -> Result<Self, MigrationError> {
        if plan.from == plan.to {
            return Err(MigrationError::Invalid(format!(
                "shadow copy of shard {} from {} to itself",
                plan.shard, plan.from
            )));
        }
        if plan.range.lo >= plan.range.hi {
            return Err(MigrationError::Invalid(format!(
                "shadow copy of shard {}: empty range {:?}",
                plan.shard, plan.range
            )));
        }
        let slot = plan.shard.to_string();
        let mut source = nodes.node(&plan.from)?;
        let mut dest = nodes.node(&plan.to)?;
        source.shadow_begin(&slot, plan.range)?;
        if !plan.destination_is_replica {
            if let Err(err) = dest.drop_range(&slot, plan.range) {
                let _ = source.shadow_end(&slot);
                return Err(err);
            }
        }
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                progress: ShadowProgress {
                    phase: ShadowPhase::Copying,
                    keys_total: 0,
                    keys_copied: 0,
                    bytes_copied: 0,
                    segments: 0,
                    recopied_segments: 0,
                    deltas_applied: 0,
                    copy_time: None,
                },
                target: Target {
                    generation: 0,
                    shard: plan.shard,
                    range: plan.range,
                    inherited: Vec::new(),
                },
                followed: plan.range,
            }),
            changed: Condvar::new(),
        });
        let worker = Worker {
            plan: plan.clone(),
            generation: 0,
            slot,
            range: plan.range,
            config,
            shared: Arc::clone(&shared),
            pacer: Pacer::new(throttle.clone()),
        };
        let thread = std::thread::Builder::new()
            .name(format!("shadow-{}", plan.shard))
            .spawn(move || worker.run(source, dest))
            .map_err(|e| MigrationError::Invalid(format!("cannot start a copy thread: {e}")))?;
        Ok(ShadowCopy {
            plan,
            nodes: nodes.clone(),
            throttle,
            shared,
            thread: Some(thread),
        })
    }

    /// The plan (after a [`hand_over`](ShadowCopy::hand_over), with its new shard and range).
    pub fn plan(&self) -> &ShadowPlan {
        &self.plan
    }

    /// The throttle (shared: setting it changes this copy's pace).
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// A snapshot of the counters.
    pub fn progress(&self) -> ShadowProgress {
        self.shared.lock().progress.clone()
    }

    /// Re-aims the running copy at `shard` and `range`, without starting over:
    ///
    /// - after a split of the copied shard, at the child holding the copied range (`range` may
    ///   be the part of the old range inside the child). The split must have handed the
    ///   parent's log feed to the child ([`Node::split_ownership`]); the copy drains the
    ///   parent's log, ends it, and follows the child's from then on;
    /// - for the same shard, at a wider range within it (the added part is listed and copied;
    ///   the copy is *copying* again until it has been) or a narrower one.
    ///
    /// Keys the copy wrote outside the new range are dropped from the destination (unless it is
    /// a replica). Refused if `shard`'s writes do not feed a delta log on the source (the copy
    /// would miss them) or if the copy has stopped or failed.
    pub fn hand_over(&mut self, shard: ShardId, range: HashRange) -> Result<(), MigrationError> {
        if range.lo >= range.hi {
            return Err(MigrationError::Invalid(format!(
                "hand-over of the copy of shard {} to shard {shard}: empty range",
                self.plan.shard
            )));
        }
        self.usable()?;
        let mut source = self.nodes.node(&self.plan.from)?;
        if !source.shadow_follow(&shard.to_string(), range)? {
            return Err(MigrationError::Invalid(format!(
                "the copy of shard {} cannot follow shard {shard}: {} does not log its writes \
                 (split the shard while the copy runs, or start a new copy)",
                self.plan.shard, self.plan.from
            )));
        }
        self.shared.update(|state| {
            // Checked again under the lock: the worker may have failed since.
            if let ShadowPhase::Failed(_) | ShadowPhase::Stopped = state.progress.phase {
                return;
            }
            let target = &mut state.target;
            if shard != target.shard {
                let old = target.shard.to_string();
                if !target.inherited.contains(&old) {
                    target.inherited.push(old);
                }
                let new = shard.to_string();
                target.inherited.retain(|slot| *slot != new);
            }
            if !within(range, target.range) {
                state.progress.phase = ShadowPhase::Copying;
            }
            target.shard = shard;
            target.range = range;
            target.generation += 1;
        });
        self.usable()?;
        self.plan.shard = shard;
        self.plan.range = range;
        Ok(())
    }

    /// An error if the copy has failed or stopped.
    fn usable(&self) -> Result<(), MigrationError> {
        match &self.shared.lock().progress.phase {
            ShadowPhase::Failed(reason) => Err(self.failed(reason.clone())),
            ShadowPhase::Stopped => Err(self.failed("stopped".into())),
            ShadowPhase::Copying | ShadowPhase::CaughtUp => Ok(()),
        }
    }

    /// The slots whose delta logs feed this copy: its shard's, then those of earlier ids not
    /// yet drained (a switchover drains them all).
    pub(crate) fn feeding_slots(&self) -> Vec<String> {
        let state = self.shared.lock();
        let mut slots = vec![state.target.shard.to_string()];
        slots.extend(state.target.inherited.iter().cloned());
        slots
    }

    /// Waits until the copy is caught up; [`MigrationError::ShadowFailed`] if it failed (or
    /// stopped, or did not catch up within `timeout`).
    pub fn wait_caught_up(&self, timeout: Duration) -> Result<ShadowProgress, MigrationError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            let progress = &state.progress;
            match &progress.phase {
                ShadowPhase::CaughtUp => return Ok(progress.clone()),
                ShadowPhase::Failed(reason) => return Err(self.failed(reason.clone())),
                ShadowPhase::Stopped => return Err(self.failed("stopped".into())),
                ShadowPhase::Copying => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failed(format!(
                    "not caught up after {timeout:?} ({} of {} keys)",
                    progress.keys_copied, progress.keys_total
                )));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn failed(&self, reason: String) -> MigrationError {
        MigrationError::ShadowFailed {
            shard: self.plan.shard,
            reason,
        }
    }

    fn halt(&mut self) -> ShadowProgress {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.progress()
    }

    /// Stops the background thread and returns the final counters; the source keeps feeding the
    /// delta log (a switchover drains it). An error if the copy had failed.
    pub fn stop(mut self) -> Result<ShadowProgress, MigrationError> {
        let progress = self.halt();
        match &progress.phase {
            ShadowPhase::Failed(reason) => Err(self.failed(reason.clone())),
            _ => Ok(progress),
        }
    }

    /// Abandons the copy: stops the thread, turns off the source's delta logs (its shard's and
    /// any inherited) and drops the destination's partial copy (unless it is a replica). All of
    /// it is attempted even if one node is down; the first error is returned after.
    pub fn cancel(mut self) -> Result<ShadowProgress, MigrationError> {
        let progress = self.halt();
        let slots = self.feeding_slots();
        let (range, followed) = {
            let state = self.shared.lock();
            (state.target.range, state.followed)
        };
        let mut first = None;
        let mut note = |result: Result<(), MigrationError>| {
            if let Err(err) = result {
                first.get_or_insert(err);
            }
        };
        match self.nodes.node(&self.plan.from) {
            Ok(mut source) => {
                for slot in &slots {
                    note(source.shadow_end(slot));
                }
            }
            Err(err) => note(Err(err)),
        }
        if !self.plan.destination_is_replica {
            let ranges = if followed == range {
                vec![range]
            } else {
                vec![range, followed]
            };
            match self.nodes.node(&self.plan.to) {
                Ok(mut dest) => {
                    for r in ranges {
                        note(dest.drop_range(&slots[0], r).map(drop));
                    }
                }
                Err(err) => note(Err(err)),
            }
        }
        match first {
            None => Ok(progress),
            Some(err) => Err(err),
        }
    }
}

impl Drop for ShadowCopy {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The background half of a shadow copy.
struct Worker {
    plan: ShadowPlan,
    /// The target generation followed.
    generation: u64,
    slot: String,
    range: HashRange,
    config: ShadowConfig,
    shared: Arc<Shared>,
    pacer: Pacer,
}

impl Worker {
    fn run(mut self, mut source: Node, mut dest: Node) {
        let started = Instant::now();
        let result = self.copy(&mut source, &mut dest, started);
        self.shared.update(|s| {
            s.progress.phase = match result {
                Err(err) => ShadowPhase::Failed(err.to_string()),
                Ok(()) => ShadowPhase::Stopped,
            }
        });
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn copy(
        &mut self,
        source: &mut Node,
        dest: &mut Node,
        started: Instant,
    ) -> Result<(), MigrationError> {
        let listed = source.all_keys(self.range)?;
        let mut queue: VecDeque<String> =
            hottest_first(listed, &self.plan.priorities, self.range).into();
        let total = queue.len() as u64;
        self.shared.update(|s| s.progress.keys_total = total);
        loop {
            if self.stopping() {
                return Ok(());
            }
            self.follow(source, dest, &mut queue)?;
            if !queue.is_empty() {
                if !self.pacer.wait(&self.shared.stop) {
                    return Ok(());
                }
                let n = self.config.segment_keys.max(1).min(queue.len());
                let segment: Vec<String> = queue.drain(..n).collect();
                let copied =
                    copy_segment(source, dest, &self.slot, &segment, self.config.max_attempts)?;
                self.pacer.pay(copied.bytes);
                self.shared.update(|s| {
                    let p = &mut s.progress;
                    p.keys_copied += copied.keys;
                    p.bytes_copied += copied.bytes;
                    p.segments += 1;
                    p.recopied_segments += u64::from(copied.attempts > 1);
                });
                continue;
            }
            if !self.apply_deltas(source, dest)? {
                return Ok(());
            }
            // Caught up only if no hand-over came meanwhile (a widening must be copied first).
            let generation = self.generation;
            let (current, caught_up) = self.shared.update(|s| {
                let current = s.target.generation == generation;
                if current && s.progress.phase == ShadowPhase::Copying {
                    s.progress.phase = ShadowPhase::CaughtUp;
                    s.progress.copy_time = Some(started.elapsed());
                }
                (current, s.progress.phase == ShadowPhase::CaughtUp)
            });
            if current && caught_up {
                self.rest();
            }
        }
    }

    /// Sleeps until the next delta pass (or a stop request).
    fn rest(&self) {
        let wake = Instant::now() + self.config.delta_interval;
        while !self.stopping() && Instant::now() < wake {
            std::thread::sleep(Duration::from_millis(2).min(self.config.delta_interval));
        }
    }

    /// Follows a hand-over not followed yet: the queue keeps the keys of the new range, parts
    /// added to the range are cleared on the destination, listed and queued, parts removed are
    /// dropped from it.
    fn follow(
        &mut self,
        source: &mut Node,
        dest: &mut Node,
        queue: &mut VecDeque<String>,
    ) -> Result<(), MigrationError> {
        let target = {
            let state = self.shared.lock();
            if state.target.generation == self.generation {
                return Ok(());
            }
            state.target.clone()
        };
        let (old, new) = (self.range, target.range);
        self.generation = target.generation;
        self.slot = target.shard.to_string();
        self.range = new;
        queue.retain(|key| new.contains(ring_position(key)));
        let replica = self.plan.destination_is_replica;
        let mut added = Vec::new();
        for part in minus(new, old) {
            if !replica {
                dest.drop_range(&self.slot, part)?;
            }
            added.extend(source.all_keys(part)?);
        }
        if !replica {
            for part in minus(old, new) {
                dest.drop_range(&self.slot, part)?;
            }
        }
        let listed = added.len() as u64;
        self.shared.update(|s| {
            s.followed = new;
            s.progress.keys_total += listed;
        });
        queue.extend(added);
        Ok(())
    }

    /// Applies the inherited logs (ending each once drained and its shard retired), then the
    /// shard's own. False if stopped meanwhile.
    fn apply_deltas(&mut self, source: &mut Node, dest: &mut Node) -> Result<bool, MigrationError> {
        let inherited = self.shared.lock().target.inherited.clone();
        for slot in inherited {
            // Retired first, drained after: a retired shard takes no writes, so its log cannot
            // grow between the drain and the end.
            let retired = source.owner(&slot)?.is_none();
            if !self.drain(source, dest, &slot)? {
                return Ok(false);
            }
            if retired {
                source.shadow_end(&slot)?;
                self.shared
                    .update(|s| s.target.inherited.retain(|other| *other != slot));
            }
        }
        let slot = self.slot.clone();
        self.drain(source, dest, &slot)
    }

    /// Applies `slot`'s log until it is empty; false if stopped first.
    fn drain(
        &mut self,
        source: &mut Node,
        dest: &mut Node,
        slot: &str,
    ) -> Result<bool, MigrationError> {
        loop {
            if !self.pacer.wait(&self.shared.stop) {
                return Ok(false);
            }
            let batch = apply_delta_batch(source, dest, slot, self.range, 256)?;
            if batch.consumed == 0 {
                return Ok(true);
            }
            self.pacer.pay(batch.bytes);
            self.shared.update(|s| {
                s.progress.deltas_applied += batch.applied;
                s.progress.bytes_copied += batch.bytes;
            });
        }
    }
}

/// What one delta batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeltaBatch {
    /// Entries taken off the log.
    pub(crate) consumed: u64,
    /// Of those, entries for keys in the range (copied).
    pub(crate) applied: u64,
    /// Bytes written.
    pub(crate) bytes: u64,
}

/// Applies the oldest `batch` entries of `slot`'s delta log in order (each key's current source
/// state, so a key written twice is copied once) for the keys in `range`, and trims them from
/// the log. Keys outside `range` are written by the shard but not copied (a copy of part of a
/// shard).
pub(crate) fn apply_delta_batch(
    source: &mut Node,
    dest: &mut Node,
    slot: &str,
    range: HashRange,
    batch: usize,
) -> Result<DeltaBatch, MigrationError> {
    let logged = source.delta_peek(slot, batch)?;
    if logged.is_empty() {
        return Ok(DeltaBatch::default());
    }
    let wanted: Vec<&String> = logged
        .iter()
        .filter(|key| range.contains(ring_position(key)))
        .collect();
    let mut seen = HashSet::new();
    let keys: Vec<String> = wanted
        .iter()
        .filter(|key| seen.insert(key.as_str()))
        .map(|key| (*key).clone())
        .collect();
    // A key changed again after this read is logged again, so one attempt is enough here.
    let bytes = if keys.is_empty() {
        0
    } else {
        copy_segment(source, dest, slot, &keys, 1)?.bytes
    };
    source.delta_trim(slot, logged.len())?;
    Ok(DeltaBatch {
        consumed: logged.len() as u64,
        applied: wanted.len() as u64,
        bytes,
    })
}

/// The copy order: keys with a priority (inside the range), highest first, then the rest of
/// `listed` (already in ring order).
fn hottest_first(
    listed: Vec<String>,
    priorities: &[(String, f64)],
    range: HashRange,
) -> Vec<String> {
    let mut hot: Vec<&(String, f64)> = priorities
        .iter()
        .filter(|(key, _)| range.contains(ring_position(key)))
        .collect();
    hot.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut seen = HashSet::new();
    let mut order: Vec<String> = hot
        .into_iter()
        .filter(|(key, _)| seen.insert(key.clone()))
        .map(|(key, _)| key.clone())
        .collect();
    order.extend(listed.into_iter().filter(|key| !seen.contains(key)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardcast_shardmap::RING;

    #[test]
    fn hot_keys_come_first_then_ring_order() {
        let whole = HashRange { lo: 0, hi: RING };
        let listed: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let priorities = vec![("c".to_string(), 0.5), ("d".to_string(), 0.9)];
        assert_eq!(
            hottest_first(listed, &priorities, whole),
            ["d", "c", "a", "b"]
        );
    }
}
