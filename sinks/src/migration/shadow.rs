//! Shadow copies (seed 002): a range's data copied from its owner to the node it will move to,
//! in the background, before the move is due.
//!
//! [`ShadowCopy::start`] first turns on the source's delta log for the shard (every later write
//! of the shard appends its key) and clears whatever an earlier, abandoned copy left on the
//! destination; only then does it list the range, so a write is either in the listing or in the
//! delta log. A background thread copies the keys in segments, hottest first (the caller's
//! priorities, e.g. prefetch priorities; the rest in ring order), each validated by its token
//! (see [`ValidationToken`](super::ValidationToken)), under a [`Throttle`] that may change while
//! it runs. Once the listing is copied the copy is *caught up*; it keeps applying the delta log
//! in order until it is stopped (a switchover then takes over the log) or cancelled.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shardcast_shardmap::{HashRange, ShardId};

use super::segment::copy_segment;
use super::throttle::Pacer;
use super::{MigrationError, Node, NodeSet, Throttle};

/// What to copy where.
#[derive(Clone, Debug, PartialEq)]
pub struct ShadowPlan {
    /// The shard.
    pub shard: ShardId,
    /// Its range.
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
    /// Keys in the range when it was listed.
    pub keys_total: u64,
    /// Keys copied so far (each counted once per segment, the last attempt).
    pub keys_copied: u64,
    /// Bytes written to the destination (keys and values, every attempt and delta included).
    pub bytes_copied: u64,
    /// Segments copied.
    pub segments: u64,
    /// Segments copied again because their validation token failed.
    pub recopied_segments: u64,
    /// Delta-log entries applied.
    pub deltas_applied: u64,
    /// Time from start to caught up (`None` before).
    pub copy_time: Option<Duration>,
}

struct Shared {
    stop: AtomicBool,
    progress: Mutex<ShadowProgress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ShadowProgress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut ShadowProgress)) {
        f(&mut self.lock());
        self.changed.notify_all();
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
        let slot = plan.shard.to_string();
        let mut source = nodes.node(&plan.from)?;
        let mut dest = nodes.node(&plan.to)?;
        source.shadow_begin(&slot)?;
        if !plan.destination_is_replica {
            if let Err(err) = dest.drop_range(&slot, plan.range) {
                let _ = source.shadow_end(&slot);
                return Err(err);
            }
        }
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            progress: Mutex::new(ShadowProgress {
                phase: ShadowPhase::Copying,
                keys_total: 0,
                keys_copied: 0,
                bytes_copied: 0,
                segments: 0,
                recopied_segments: 0,
                deltas_applied: 0,
                copy_time: None,
            }),
            changed: Condvar::new(),
        });
        let worker = Worker {
            plan: plan.clone(),
            slot,
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

    /// The plan.
    pub fn plan(&self) -> &ShadowPlan {
        &self.plan
    }

    /// The throttle (shared: setting it changes this copy's pace).
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// A snapshot of the counters.
    pub fn progress(&self) -> ShadowProgress {
        self.shared.lock().clone()
    }

    /// Waits until the copy is caught up; [`MigrationError::ShadowFailed`] if it failed (or
    /// stopped, or did not catch up within `timeout`).
    pub fn wait_caught_up(&self, timeout: Duration) -> Result<ShadowProgress, MigrationError> {
        let deadline = Instant::now() + timeout;
        let mut progress = self.shared.lock();
        loop {
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
            progress = self
                .shared
                .changed
                .wait_timeout(progress, deadline - now)
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

    /// Abandons the copy: stops the thread, turns off the source's delta log and drops the
    /// destination's partial copy (unless it is a replica). Both are attempted even if one
    /// node is down; the first error is returned after.
    pub fn cancel(mut self) -> Result<ShadowProgress, MigrationError> {
        let progress = self.halt();
        let slot = self.plan.shard.to_string();
        let ended = self
            .nodes
            .node(&self.plan.from)
            .and_then(|mut source| source.shadow_end(&slot));
        let dropped = if self.plan.destination_is_replica {
            Ok(0)
        } else {
            self.nodes
                .node(&self.plan.to)
                .and_then(|mut dest| dest.drop_range(&slot, self.plan.range))
        };
        ended?;
        dropped?;
        Ok(progress)
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
    slot: String,
    config: ShadowConfig,
    shared: Arc<Shared>,
    pacer: Pacer,
}

impl Worker {
    fn run(mut self, mut source: Node, mut dest: Node) {
        let started = Instant::now();
        let result = self.copy(&mut source, &mut dest, started);
        self.shared.update(|p| {
            p.phase = match result {
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
        let listed = source.all_keys(self.plan.range)?;
        let order = hottest_first(listed, &self.plan.priorities, self.plan.range);
        self.shared.update(|p| p.keys_total = order.len() as u64);
        for segment in order.chunks(self.config.segment_keys.max(1)) {
            if !self.pacer.wait(&self.shared.stop) {
                return Ok(());
            }
            let copied = copy_segment(source, dest, &self.slot, segment, self.config.max_attempts)?;
            self.pacer.pay(copied.bytes);
            self.shared.update(|p| {
                p.keys_copied += copied.keys;
                p.bytes_copied += copied.bytes;
                p.segments += 1;
                p.recopied_segments += u64::from(copied.attempts > 1);
            });
        }
        self.apply_deltas(source, dest)?;
        self.shared.update(|p| {
            p.phase = ShadowPhase::CaughtUp;
            p.copy_time = Some(started.elapsed());
        });
        while !self.stopping() {
            let wake = Instant::now() + self.config.delta_interval;
            while !self.stopping() && Instant::now() < wake {
                std::thread::sleep(Duration::from_millis(2).min(self.config.delta_interval));
            }
            if !self.stopping() {
                self.apply_deltas(source, dest)?;
            }
        }
        Ok(())
    }

    fn apply_deltas(&mut self, source: &mut Node, dest: &mut Node) -> Result<(), MigrationError> {
        loop {
            if !self.pacer.wait(&self.shared.stop) {
                return Ok(());
            }
            let (applied, bytes) = apply_delta_batch(source, dest, &self.slot, 256)?;
            if applied == 0 {
                return Ok(());
            }
            self.pacer.pay(bytes);
            self.shared.update(|p| {
                p.deltas_applied += applied;
                p.bytes_copied += bytes;
            });
        }
    }
}

/// Applies the oldest `batch` entries of `slot`'s delta log in order (each key's current source
/// state, so a key written twice is copied once) and trims them from the log. Returns the
/// entries consumed and bytes written.
pub(crate) fn apply_delta_batch(
    source: &mut Node,
    dest: &mut Node,
    slot: &str,
    batch: usize,
) -> Result<(u64, u64), MigrationError> {
    let logged = source.delta_peek(slot, batch)?;
    if logged.is_empty() {
        return Ok((0, 0));
    }
    let mut seen = HashSet::new();
    let keys: Vec<String> = logged
        .iter()
        .filter(|key| seen.insert(key.as_str()))
        .cloned()
        .collect();
    // A key changed again after this read is logged again, so one attempt is enough here.
    let copied = copy_segment(source, dest, slot, &keys, 1)?;
    source.delta_trim(slot, logged.len())?;
    Ok((logged.len() as u64, copied.bytes))
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
        .filter(|(key, _)| range.contains(shardcast_shardmap::ring_position(key)))
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
