//! The migration executor: takes plans (shadow copies to start or cancel, map changes to carry
//! out, nodes found down) and drives copies, switchovers, splits, merges and failovers against
//! the real stores, one at a time, reporting each outcome.
//!
//! Shadow copies run in the background, many at once, all paced by one shared [`Throttle`];
//! everything else runs in the executor's thread in the order submitted, so at most one change
//! per range (in fact one change in all) is under way from this executor, and the range locks
//! keep other executors out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use shardcast_shardmap::{HashRange, MapChange, MapError, ShardId};

use super::ranges::{overlap, within};
use super::{
    set_replicas, Failover, FailoverReport, MigrationError, NodeSet, ReplicaReport, Reshape,
    ReshapeReport, RoutingStore, ShadowConfig, ShadowCopy, ShadowPhase, ShadowPlan, ShadowProgress,
    Switchover, SwitchoverConfig, SwitchoverReport, Throttle,
};

/// What the executor is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Start copying `range` of `shard` (owned by `from`) to `to`, hottest keys first. The range
    /// is the shard's or a part of it (the half that will split off and move): a later `Split`
    /// hands the copy to the child holding it, and that child's `Move` uses it.
    Shadow {
        /// The shard.
        shard: ShardId,
        /// The range to copy: the shard's range or a part of it.
        range: HashRange,
        /// Its owner.
        from: String,
        /// Where it will move.
        to: String,
        /// Keys to copy first, by priority.
        priorities: Vec<(String, f64)>,
    },
    /// Abandon the shadow copy of `shard` (after a split, the parent's id names the copy handed
    /// to its child too).
    CancelShadow {
        /// The shard.
        shard: ShardId,
    },
    /// Carry out a map change: `Move` is a switchover (using the shard's shadow copy if one is
    /// running), `Split` and `Merge` are reshapes (a split hands a running copy of the parent to
    /// the child holding its range; a merge cancels the copies of both shards, and if they are on
    /// two nodes first moves the right one), `Failover` promotes the named replica, `Replicas`
    /// sets and fills a replica set.
    Change(MapChange),
    /// `node` stopped answering: fail its shards over to their replicas.
    NodeDown {
        /// The node.
        node: String,
    },
}

/// What a plan achieved.
#[derive(Clone, Debug, PartialEq)]
pub enum Done {
    /// The shadow copy started.
    ShadowStarted {
        /// The shard.
        shard: ShardId,
    },
    /// The shadow copy has copied the whole range and follows the delta log.
    ShadowCaughtUp {
        /// The shard.
        shard: ShardId,
        /// Its counters then.
        progress: ShadowProgress,
    },
    /// A split handed the shadow copy of its parent to a child (reported with the copy's
    /// `Shadow` plan, now naming the child).
    ShadowHandedOver {
        /// The split shard the copy was running for.
        from: ShardId,
        /// The child it now runs for.
        shard: ShardId,
        /// The range it copies (within the child's).
        range: HashRange,
    },
    /// The shadow copy was abandoned.
    ShadowCancelled {
        /// The shard.
        shard: ShardId,
        /// Its final counters.
        progress: ShadowProgress,
    },
    /// A switchover completed.
    Switched(SwitchoverReport),
    /// A split or merge completed.
    Reshaped(ReshapeReport),
    /// A node was failed over.
    FailedOver(FailoverReport),
    /// A shard was promoted to a named replica (`Change(Failover)`).
    Promoted {
        /// The shard.
        shard: ShardId,
        /// Its new owner (`None` if it had already left the failed node).
        to: Option<String>,
    },
    /// A replica set was changed and filled.
    ReplicasSet(ReplicaReport),
}

/// One plan's outcome. Background events of a shadow copy (caught up, handed over, failed) come
/// with its `Shadow` plan, which names the child after a split handed the copy over.
#[derive(Debug)]
pub struct Outcome {
    /// The plan.
    pub plan: Plan,
    /// What it achieved, or why not.
    pub result: Result<Done, MigrationError>,
}

/// Tuning of the executor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Switchovers.
    pub switchover: SwitchoverConfig,
    /// Shadow copies.
    pub shadow: ShadowConfig,
    /// Initial copy rate in bytes per second (`0`: unlimited); see [`Executor::throttle`].
    pub rate: u64,
}

impl Default for ExecutorConfig {
    /// Default switchovers and copies, unlimited rate.
    fn default() -> Self {
        ExecutorConfig {
            switchover: SwitchoverConfig::default(),
            shadow: ShadowConfig::default(),
            rate: 0,
        }
    }
}

/// The executor; its thread stops (cancelling running shadow copies) when it is dropped.
pub struct Executor {
    plans: Option<Sender<Plan>>,
    outcomes: Receiver<Outcome>,
    throttle: Throttle,
    shadows: Arc<Mutex<BTreeMap<ShardId, ShadowProgress>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Executor {
    /// Starts the executor's thread over `store` and `nodes`.
    pub fn start(
        store: Arc<RoutingStore>,
        nodes: NodeSet,
        config: ExecutorConfig,
    ) -> Result<Self, MigrationError> {
        let (plans, inbox) = channel();
        let (report, outcomes) = channel();
        let throttle = Throttle::new(config.rate);
        let shadows = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            store,
            nodes,
            config,
            throttle: throttle.clone(),
            running: BTreeMap::new(),
            published: Arc::clone(&shadows),
            report,
        };
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("migration-executor".into())
            .spawn(move || worker.run(inbox, stopping))
            .map_err(|e| MigrationError::Invalid(format!("cannot start the executor: {e}")))?;
        Ok(Executor {
            plans: Some(plans),
            outcomes,
            throttle,
            shadows,
            stop,
            thread: Some(thread),
        })
    }

    /// Queues `plan`.
    pub fn submit(&self, plan: Plan) -> Result<(), MigrationError> {
        self.plans
            .as_ref()
            .and_then(|p| p.send(plan).ok())
            .ok_or_else(|| MigrationError::Invalid("the executor has stopped".into()))
    }

    /// The next outcome, waiting up to `timeout`.
    pub fn next_outcome(&self, timeout: Duration) -> Option<Outcome> {
        self.outcomes.recv_timeout(timeout).ok()
    }

    /// The copy throttle shared by every shadow copy: set it to change their rate while they run.
    pub fn throttle(&self) -> Throttle {
        self.throttle.clone()
    }

    /// The counters of the running shadow copies, as of the executor's last look (every 10 ms).
    pub fn shadows(&self) -> BTreeMap<ShardId, ShadowProgress> {
        self.shadows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.plans = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A running shadow copy and what has been reported of it.
struct Running {
    plan: Plan,
    copy: ShadowCopy,
    reported: bool,
    /// Ids the copy ran for before splits handed it on (a cancel may name them).
    former: Vec<ShardId>,
}

struct Worker {
    store: Arc<RoutingStore>,
    nodes: NodeSet,
    config: ExecutorConfig,
    throttle: Throttle,
    running: BTreeMap<ShardId, Running>,
    published: Arc<Mutex<BTreeMap<ShardId, ShadowProgress>>>,
    report: Sender<Outcome>,
}

impl Worker {
    fn run(mut self, inbox: Receiver<Plan>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            match inbox.recv_timeout(Duration::from_millis(10)) {
                Ok(plan) => {
                    let result = self.carry_out(&plan);
                    self.send(plan, result);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.watch_shadows();
        }
        for (_, running) in std::mem::take(&mut self.running) {
            let _ = running.copy.cancel();
        }
    }

    fn send(&self, plan: Plan, result: Result<Done, MigrationError>) {
        if let Err(err) = &result {
            tracing::warn!(?plan, error = %err, "migration plan failed");
        }
        // Nobody listening is not an error: the outcome was logged.
        let _ = self.report.send(Outcome { plan, result });
    }

    /// Publishes the copies' counters and reports each copy's first catch-up or failure.
    fn watch_shadows(&mut self) {
        let mut snapshot = BTreeMap::new();
        let mut events = Vec::new();
        let mut failed = Vec::new();
        for (shard, running) in &mut self.running {
            let progress = running.copy.progress();
            match &progress.phase {
                ShadowPhase::CaughtUp if !running.reported => {
                    running.reported = true;
                    events.push((
                        running.plan.clone(),
                        Ok(Done::ShadowCaughtUp {
                            shard: *shard,
                            progress: progress.clone(),
                        }),
                    ));
                }
                ShadowPhase::Failed(reason) => {
                    failed.push(*shard);
                    events.push((
                        running.plan.clone(),
                        Err(MigrationError::ShadowFailed {
                            shard: *shard,
                            reason: reason.clone(),
                        }),
                    ));
                }
                _ => {}
            }
            snapshot.insert(*shard, progress);
        }
        for shard in failed {
            if let Some(running) = self.running.remove(&shard) {
                // Turn the delta log off and drop the partial copy where the nodes still answer.
                let _ = running.copy.cancel();
            }
        }
        *self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = snapshot;
        for (plan, result) in events {
            self.send(plan, result);
        }
    }

    /// The key of the running copy for `shard`, or handed on from `shard` by a split.
    fn find_shadow(&self, shard: ShardId) -> Option<ShardId> {
        if self.running.contains_key(&shard) {
            return Some(shard);
        }
        self.running
            .iter()
            .find(|(_, r)| r.former.contains(&shard))
            .map(|(key, _)| *key)
    }

    fn cancel_shadow(&mut self, shard: ShardId) -> Option<Result<ShadowProgress, MigrationError>> {
        let key = self.find_shadow(shard)?;
        self.running.remove(&key).map(|r| r.copy.cancel())
    }

    /// Splits `shard` at `at`, handing a running copy of it to the child holding its range.
    fn split(&mut self, shard: ShardId, at: u64) -> Result<Done, MigrationError> {
        let result = Reshape::new(&self.store, &self.nodes).split(shard, at);
        let Some(running) = self.running.remove(&shard) else {
            return result.map(Done::Reshaped);
        };
        match &result {
            Ok(report) => self.hand_over(shard, running, report),
            Err(_) => {
                // A split refused before its commit leaves the parent as it was, and its copy
                // goes on; otherwise the copy cannot follow (the children may not log their
                // writes) and is abandoned, with any log the split turned on.
                let intact = self.store.load().is_ok_and(|map| map.get(shard).is_some());
                if intact {
                    self.running.insert(shard, running);
                } else {
                    self.abandon(running, &[]);
                }
            }
        }
        result.map(Done::Reshaped)
    }

    /// After a split of `parent`: re-keys its running copy to the child holding the copied range,
    /// or abandons it if no child can take it. A range straddling the cut keeps its larger part
    /// (the upper one on a tie): the balancer plans the copy of the half that will move, so the
    /// cut moving a little leaves most of that half on the moving child's side.
    fn hand_over(&mut self, parent: ShardId, mut running: Running, report: &ReshapeReport) {
        let MapChange::Split {
            left, right, at, ..
        } = report.change.clone()
        else {
            self.abandon(running, &report.shadowed);
            return;
        };
        // The copied range lies within the parent, so the cut alone divides it.
        let copied = running.copy.plan().range;
        let parts: Vec<(ShardId, HashRange)> = [
            (left, HashRange { lo: 0, hi: at }),
            (
                right,
                HashRange {
                    lo: at,
                    hi: u64::MAX,
                },
            ),
        ]
        .into_iter()
        .filter_map(|(id, side)| overlap(copied, side).map(|part| (id, part)))
        .collect();
        let Some(&(child, part)) = parts.iter().max_by_key(|(_, part)| part.width()) else {
            self.abandon(running, &report.shadowed);
            return;
        };
        if !report.shadowed.contains(&child) {
            // The split did not feed the child's writes to a log (the parent's feed was gone):
            // the copy would miss them.
            self.abandon(running, &report.shadowed);
            return;
        }
        let others: Vec<ShardId> = report
            .shadowed
            .iter()
            .copied()
            .filter(|id| *id != child)
            .collect();
        if let Err(err) = running.copy.hand_over(child, part) {
            tracing::warn!(shard = parent, child, error = %err, "the shadow copy could not follow the split");
            self.abandon(running, &report.shadowed);
            return;
        }
        // The other child's part of a straddling range is not copied: stop logging its writes.
        self.end_logs(&running, &others);
        if let Plan::Shadow { shard, range, .. } = &mut running.plan {
            *shard = child;
            *range = part;
        }
        running.former.push(parent);
        tracing::info!(
            "migration: shadow copy of shard {parent} handed to its child {child} ({}..{})",
            part.lo,
            part.hi
        );
        let plan = running.plan.clone();
        self.running.insert(child, running);
        self.send(
            plan,
            Ok(Done::ShadowHandedOver {
                from: parent,
                shard: child,
                range: part,
            }),
        );
    }

    /// Cancels `running`, ends the delta logs of `children` that a split fed for it, and reports
    /// the cancel with the copy's plan.
    fn abandon(&mut self, running: Running, children: &[ShardId]) {
        self.end_logs(&running, children);
        let shard = running.copy.plan().shard;
        let result = running
            .copy
            .cancel()
            .map(|progress| Done::ShadowCancelled { shard, progress });
        self.send(running.plan, result);
    }

    /// Ends the delta logs of `shards` on the source of `running`.
    fn end_logs(&self, running: &Running, shards: &[ShardId]) {
        if shards.is_empty() {
            return;
        }
        let ended = self
            .nodes
            .node(&running.copy.plan().from)
            .and_then(|mut source| {
                shards
                    .iter()
                    .try_for_each(|id| source.shadow_end(&id.to_string()))
            });
        if let Err(err) = ended {
            tracing::warn!(error = %err, "a delta log no copy follows is still fed");
        }
    }

    fn carry_out(&mut self, plan: &Plan) -> Result<Done, MigrationError> {
        match plan {
            Plan::Shadow {
                shard,
                range,
                from,
                to,
                priorities,
            } => {
                if let Some(running) = self.running.get(shard) {
                    let p = running.copy.plan();
                    if p.from == *from && p.to == *to && p.range == *range {
                        return Err(MigrationError::Invalid(format!(
                            "shard {shard} is already being copied to {to}"
                        )));
                    }
                    self.cancel_shadow(*shard);
                }
                let map = self.store.load()?;
                let current = map.get(*shard).ok_or(MapError::UnknownShard(*shard))?;
                if current.node != *from || range.lo >= range.hi || !within(*range, current.range) {
                    return Err(MigrationError::Invalid(format!(
                        "stale plan: shard {shard} is on {} with {:?}, not on {from} holding {:?}",
                        current.node, current.range, range
                    )));
                }
                let copy = ShadowCopy::start(
                    ShadowPlan {
                        shard: *shard,
                        range: *range,
                        from: from.clone(),
                        to: to.clone(),
                        priorities: priorities.clone(),
                        destination_is_replica: current.replicas.contains(to),
                    },
                    &self.nodes,
                    self.throttle.clone(),
                    self.config.shadow.clone(),
                )?;
                self.running.insert(
                    *shard,
                    Running {
                        plan: plan.clone(),
                        copy,
                        reported: false,
                        former: Vec::new(),
                    },
                );
                Ok(Done::ShadowStarted { shard: *shard })
            }
            Plan::CancelShadow { shard } => match self.cancel_shadow(*shard) {
                Some(progress) => Ok(Done::ShadowCancelled {
                    shard: *shard,
                    progress: progress?,
                }),
                None => Err(MigrationError::Invalid(format!(
                    "no shadow copy of shard {shard} is running"
                ))),
            },
            Plan::Change(MapChange::Move { shard, from, to }) => {
                let map = self.store.load()?;
                let current = map.get(*shard).ok_or(MapError::UnknownShard(*shard))?;
                if current.node != *from {
                    return Err(MigrationError::Invalid(format!(
                        "stale plan: shard {shard} is on {}, not {from}",
                        current.node
                    )));
                }
                self.switch(*shard, to).map(Done::Switched)
            }
            Plan::Change(MapChange::Split { shard, at, .. }) => self.split(*shard, *at),
            Plan::Change(MapChange::Merge { left, right, .. }) => {
                self.cancel_shadow(*left);
                self.cancel_shadow(*right);
                let map = self.store.load()?;
                let l = map.get(*left).ok_or(MapError::UnknownShard(*left))?;
                let r = map.next_of(*left).ok_or(MapError::NotAdjacent {
                    left: *left,
                    right: *right,
                })?;
                if r.id != *right {
                    return Err(MapError::NotAdjacent {
                        left: *left,
                        right: *right,
                    }
                    .into());
                }
                if l.node != r.node {
                    let (from, to) = (r.node.clone(), l.node.clone());
                    let moved = self.switch(*right, &to);
                    let move_plan = Plan::Change(MapChange::Move {
                        shard: *right,
                        from,
                        to,
                    });
                    let failed = moved.is_err();
                    self.send(move_plan, moved.map(Done::Switched));
                    if failed {
                        return Err(MigrationError::Invalid(format!(
                            "merge of {left} and {right}: moving {right} failed"
                        )));
                    }
                }
                Reshape::new(&self.store, &self.nodes)
                    .merge(*left)
                    .map(Done::Reshaped)
            }
            Plan::Change(MapChange::Failover { shard, from, to }) => {
                let to = Failover::new(&self.store, &self.nodes).promote(*shard, from, Some(to))?;
                Ok(Done::Promoted { shard: *shard, to })
            }
            Plan::Change(MapChange::Replicas { shard, replicas }) => {
                set_replicas(&self.store, &self.nodes, *shard, replicas.clone())
                    .map(Done::ReplicasSet)
            }
            Plan::NodeDown { node } => {
                let touching: Vec<ShardId> = self
                    .running
                    .iter()
                    .filter(|(_, r)| r.copy.plan().from == *node || r.copy.plan().to == *node)
                    .map(|(shard, _)| *shard)
                    .collect();
                for shard in touching {
                    self.cancel_shadow(shard);
                }
                Failover::new(&self.store, &self.nodes)
                    .fail_over(node)
                    .map(Done::FailedOver)
            }
        }
    }

    /// A switchover of `shard` to `to`, with its running shadow copy if there is one.
    fn switch(&mut self, shard: ShardId, to: &str) -> Result<SwitchoverReport, MigrationError> {
        let shadow = self.running.remove(&shard).map(|r| r.copy);
        Switchover::new(&self.store, &self.nodes, self.config.switchover.clone())
            .run(shard, to, shadow)
    }
}
