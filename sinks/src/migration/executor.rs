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

use super::{
    set_replicas, Failover, FailoverReport, MigrationError, NodeSet, ReplicaReport, Reshape,
    ReshapeReport, RoutingStore, ShadowConfig, ShadowCopy, ShadowPhase, ShadowPlan, ShadowProgress,
    Switchover, SwitchoverConfig, SwitchoverReport, Throttle,
};

/// What the executor is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Start copying `shard` (`range`, owned by `from`) to `to`, hottest keys first.
    Shadow {
        /// The shard.
        shard: ShardId,
        /// Its range.
        range: HashRange,
        /// Its owner.
        from: String,
        /// Where it will move.
        to: String,
        /// Keys to copy first, by priority.
        priorities: Vec<(String, f64)>,
    },
    /// Abandon the shadow copy of `shard`.
    CancelShadow {
        /// The shard.
        shard: ShardId,
    },
    /// Carry out a map change: `Move` is a switchover (using the shard's shadow copy if one is
    /// running), `Split` and `Merge` are reshapes (a merge of shards on two nodes first moves the
    /// right one), `Failover` promotes the named replica, `Replicas` sets and fills a replica set.
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

/// One plan's outcome. Background events of a shadow copy (caught up, failed) come with its
/// `Shadow` plan.
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

    fn cancel_shadow(&mut self, shard: ShardId) -> Option<Result<ShadowProgress, MigrationError>> {
        self.running.remove(&shard).map(|r| r.copy.cancel())
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
                    if p.from == *from && p.to == *to {
                        return Err(MigrationError::Invalid(format!(
                            "shard {shard} is already being copied to {to}"
                        )));
                    }
                    self.cancel_shadow(*shard);
                }
                let map = self.store.load()?;
                let current = map.get(*shard).ok_or(MapError::UnknownShard(*shard))?;
                if current.node != *from || current.range != *range {
                    return Err(MigrationError::Invalid(format!(
                        "stale plan: shard {shard} is on {} with {:?}",
                        current.node, current.range
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
            Plan::Change(MapChange::Split { shard, at, .. }) => {
                self.cancel_shadow(*shard);
                Reshape::new(&self.store, &self.nodes)
                    .split(*shard, *at)
                    .map(Done::Reshaped)
            }
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
