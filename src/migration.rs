//! The migration executor of a running job: the balancer's decisions carried out on the nodes' Redis
//! servers (shadow copies, switchovers, splits and merges), node health watched, and the routing API
//! kept on the map the nodes actually serve.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use shardcast_dataflows::ShardsSection;
use shardcast_shardmap::{ring_position, BalanceAction, HashRange, ShardMap};
use shardcast_sinks::migration::{
    bootstrap, Done, Executor, ExecutorConfig, HealthMonitor, NodeSet, Plan, RoutingStore, Throttle,
};
use shardcast_sinks::routing::RoutingState;

/// Key prefix of the routing store, the locks and the data on the nodes.
const PREFIX: &str = "shardcast:";
/// A node is down after this many failed probes in a row, one probe a second.
const DOWN_AFTER: u32 = 3;
/// Keys named hottest-first in a shadow plan; the rest of the range follows in ring order.
const PRIORITY_KEYS: usize = 10_000;

/// Counters printed when the job stops.
#[derive(Clone, Debug, Default)]
pub struct MigrationStats {
    /// Shadow copies started.
    pub shadows: u64,
    /// Switchovers completed.
    pub switchovers: u64,
    /// Of those, switchovers whose data was copied ahead by a shadow copy.
    pub copied_ahead: u64,
    /// Splits and merges carried out on the nodes.
    pub reshapes: u64,
    /// Nodes failed over.
    pub failovers: u64,
    /// Plans that failed (rolled back, refused).
    pub failed: u64,
    /// The longest write pause of a switchover.
    pub longest_pause: Duration,
}

/// See the module documentation.
pub struct JobMigration {
    executor: Executor,
    store: Arc<RoutingStore>,
    health: HealthMonitor,
    last_probe: Instant,
    state: Option<RoutingState>,
    stats: MigrationStats,
}

impl JobMigration {
    /// Connects to the coordinator and the nodes of `section`, stores `initial` unless a map is stored
    /// already, and starts the executor. Returns the map the nodes serve, which the balancer must start
    /// from.
    pub fn start(section: &ShardsSection, initial: &ShardMap) -> anyhow::Result<(Self, ShardMap)> {
        let coordinator = section
            .coordinator
            .as_deref()
            .context("shards.stores needs shards.coordinator")?;
        let store = Arc::new(
            RoutingStore::open(coordinator, PREFIX)
                .with_context(|| format!("shards.coordinator {coordinator}"))?,
        );
        let nodes = NodeSet::new(PREFIX, section.stores.clone());
        let map = bootstrap(&store, &nodes, initial)
            .context("setting up the routing store and the nodes (shards.stores)")?;
        let health = HealthMonitor::new(&nodes, DOWN_AFTER);
        let executor = Executor::start(
            store.clone(),
            nodes,
            ExecutorConfig {
                rate: section.copy_bytes_per_second,
                ..ExecutorConfig::default()
            },
        )
        .context("starting the migration executor")?;
        Ok((
            JobMigration {
                executor,
                store,
                health,
                last_probe: Instant::now(),
                state: None,
                stats: MigrationStats::default(),
            },
            map,
        ))
    }

    /// Keeps `state` (the routing API's) on the stored map.
    pub fn serve(&mut self, state: RoutingState) {
        self.state = Some(state);
        self.refresh_state();
    }

    /// The copy rate of running and future shadow copies: set it to change their bandwidth.
    pub fn throttle(&self) -> Throttle {
        self.executor.throttle()
    }

    /// Hands one balancer action to the executor; `heat` gives the window load of known keys, so a
    /// shadow copy takes the hottest keys of its range first.
    pub fn submit(&mut self, action: &BalanceAction, heat: &BTreeMap<String, f64>) {
        let plan = match action.clone() {
            BalanceAction::Change(change) => Plan::Change(change),
            BalanceAction::Shadow {
                shard,
                range,
                from,
                to,
            } => Plan::Shadow {
                shard,
                range,
                from,
                to,
                priorities: hottest_in(range, heat),
            },
            BalanceAction::CancelShadow { shard, .. } => Plan::CancelShadow { shard },
        };
        if let Err(e) = self.executor.submit(plan) {
            self.stats.failed += 1;
            tracing::warn!("migration: plan not submitted: {e}");
        }
    }

    /// Takes in finished plans, probes node health once a second (a node down is failed over to its
    /// replicas) and refreshes the routing API's map.
    pub fn poll(&mut self) {
        while let Some(outcome) = self.executor.next_outcome(Duration::ZERO) {
            match outcome.result {
                Ok(Done::ShadowStarted { .. }) => self.stats.shadows += 1,
                Ok(Done::Switched(report)) => {
                    self.stats.switchovers += 1;
                    self.stats.copied_ahead += u64::from(report.copied_ahead);
                    self.stats.longest_pause = self.stats.longest_pause.max(report.pause);
                    tracing::info!(
                        "migration: shard {} moved {} -> {} (version {}, writes paused {:?})",
                        report.shard,
                        report.from,
                        report.to,
                        report.version,
                        report.pause
                    );
                }
                Ok(Done::Reshaped(_)) => self.stats.reshapes += 1,
                Ok(Done::FailedOver(_)) | Ok(Done::Promoted { .. }) => self.stats.failovers += 1,
                Ok(_) => {}
                Err(e) => {
                    self.stats.failed += 1;
                    eprintln!("shardcast: migration: {:?} failed: {e}", outcome.plan);
                }
            }
        }
        if self.last_probe.elapsed() >= Duration::from_secs(1) {
            self.last_probe = Instant::now();
            let change = self.health.probe();
            for node in change.went_down {
                eprintln!("shardcast: node {node} stopped answering; failing its shards over");
                if let Err(e) = self.executor.submit(Plan::NodeDown { node }) {
                    tracing::warn!("migration: failover not submitted: {e}");
                }
            }
            for node in change.came_back {
                eprintln!("shardcast: node {node} answers again");
            }
        }
        self.refresh_state();
    }

    fn refresh_state(&mut self) {
        let Some(state) = &self.state else {
            return;
        };
        let Ok(version) = self.store.version() else {
            return;
        };
        if version == state.version() {
            return;
        }
        let caught_up = self
            .store
            .changes_since(state.version())
            .is_ok_and(|changes| {
                changes
                    .into_iter()
                    .all(|c| state.apply(c.version, c.change).is_ok())
            });
        if !caught_up || state.version() != version {
            match self.store.load() {
                Ok(map) => state.set_map(map),
                Err(e) => tracing::warn!("routing store unreadable: {e}"),
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &MigrationStats {
        &self.stats
    }
}

/// The keys of `range` by window load, hottest first, at most [`PRIORITY_KEYS`].
fn hottest_in(range: HashRange, heat: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut keys: Vec<(String, f64)> = heat
        .iter()
        .filter(|(key, _)| range.contains(ring_position(key)))
        .map(|(key, load)| (key.clone(), *load))
        .collect();
    keys.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    keys.truncate(PRIORITY_KEYS);
    keys
}
