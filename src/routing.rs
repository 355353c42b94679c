//! Keeps the routing API's state in step with the job: the shard map from the balancer's decisions,
//! and each customer's partition with seed 001's score breakdown.

use std::collections::{BTreeMap, BTreeSet};

use shardcast_dataflows::Decision;
use shardcast_operators::{Affinity, Assignment, PartitionPolicy};
use shardcast_shardmap::BalanceAction;
use shardcast_sinks::routing::{PartitionScore, PartitionView, RoutingState};

use crate::migration::JobMigration;

/// Something that wants each final epoch's decision changes, in epoch order.
pub trait EpochObserver {
    /// Epoch `epoch` is final and these are its changes.
    fn observe(&mut self, epoch: u64, decisions: &[(Decision, isize)]);

    /// Called every collector tick, between epochs, for background work.
    fn tick(&mut self) {}

    /// A line for the final summary, if there is something to say.
    fn summary(&self) -> Option<String> {
        None
    }
}

/// Feeds a [`RoutingState`] from the decision changes.
pub struct RoutingPublisher {
    state: RoutingState,
    policy: PartitionPolicy,
    affinities: BTreeMap<String, Affinity>,
    assignments: BTreeMap<String, Assignment>,
    /// Carries the balancer's actions out on the nodes; then the map served is the one the nodes
    /// serve, read from the routing store, not the balancer's.
    migration: Option<JobMigration>,
    /// Window load per key (from `key_load`), for hottest-first shadow copies.
    heat: BTreeMap<String, f64>,
}

impl RoutingPublisher {
    /// Publishes into `state`, scoring partitions with `policy`.
    pub fn new(state: RoutingState, policy: PartitionPolicy) -> Self {
        RoutingPublisher {
            state,
            policy,
            affinities: BTreeMap::new(),
            assignments: BTreeMap::new(),
            migration: None,
            heat: BTreeMap::new(),
        }
    }

    /// Hands every balancer action to `migration`, which also keeps the served map.
    pub fn with_migration(mut self, mut migration: JobMigration) -> Self {
        migration.serve(self.state.clone());
        self.migration = Some(migration);
        self
    }

    /// Seed 001's score of every candidate partition of `customer`, with the load shares of all
    /// assigned customers' window loads.
    fn view(
        &self,
        customer: &str,
        loads: &BTreeMap<&str, u64>,
        total: u64,
    ) -> Option<PartitionView> {
        let assignment = self.assignments.get(customer)?;
        let affinity = self.affinities.get(customer);
        let mut candidates: BTreeSet<String> = self.policy.partitions.iter().cloned().collect();
        if candidates.is_empty() {
            candidates.insert(assignment.home.clone());
            candidates.extend(
                affinity
                    .iter()
                    .flat_map(|a| a.regions.iter().map(|(r, _)| r.clone())),
            );
        }
        candidates.insert(assignment.partition.clone());
        let scores = candidates
            .into_iter()
            .map(|p| {
                let static_part = if p == assignment.home {
                    self.policy.static_weight
                } else {
                    0.0
                };
                let affinity_part =
                    self.policy.affinity_weight * affinity.map_or(0.0, |a| a.share(&p));
                let share = if total == 0 {
                    0.0
                } else {
                    loads.get(p.as_str()).copied().unwrap_or(0) as f64 / total as f64
                };
                PartitionScore::from_parts(
                    p,
                    static_part,
                    affinity_part,
                    -self.policy.load_weight * share,
                )
            })
            .collect();
        Some(PartitionView {
            customer: customer.to_string(),
            partition: assignment.partition.clone(),
            home: assignment.home.clone(),
            since: assignment.since,
            scores,
            phase: None,
        })
    }
}

impl EpochObserver for RoutingPublisher {
    fn tick(&mut self) {
        if let Some(migration) = &mut self.migration {
            migration.poll();
        }
    }

    fn summary(&self) -> Option<String> {
        let s = self.migration.as_ref()?.stats();
        Some(format!(
            "migration: {} shadow copies, {} switchovers ({} copied ahead, longest write pause {:?}), {} splits/merges, {} failovers, {} failed",
            s.shadows, s.switchovers, s.copied_ahead, s.longest_pause, s.reshapes, s.failovers, s.failed
        ))
    }

    fn observe(&mut self, _epoch: u64, decisions: &[(Decision, isize)]) {
        let mut changes: Vec<(u64, BalanceAction)> = Vec::new();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        // Retractions first, so a customer's new row replaces its old one.
        let mut ordered: Vec<&(Decision, isize)> = decisions.iter().collect();
        ordered.sort_by_key(|(_, diff)| *diff > 0);
        for (decision, diff) in ordered {
            match decision {
                Decision::Routing(row) if *diff > 0 => {
                    changes.push((row.version, row.action.clone()))
                }
                Decision::Affinity { customer, affinity } => {
                    touched.insert(customer.clone());
                    if *diff > 0 {
                        self.affinities.insert(customer.clone(), affinity.clone());
                    } else if self.affinities.get(customer) == Some(affinity) {
                        self.affinities.remove(customer);
                    }
                }
                Decision::Assignment {
                    customer,
                    assignment,
                } => {
                    touched.insert(customer.clone());
                    if *diff > 0 {
                        self.assignments
                            .insert(customer.clone(), assignment.clone());
                    } else if self.assignments.get(customer) == Some(assignment) {
                        self.assignments.remove(customer);
                    }
                }
                _ => {}
            }
        }
        changes.sort_by_key(|(version, _)| *version);
        for (version, action) in &changes {
            if let Some(migration) = &mut self.migration {
                migration.submit(action, &self.heat);
            } else if let BalanceAction::Change(change) = action {
                if let Err(e) = self.state.apply(*version, change.clone()) {
                    tracing::warn!("routing map: change {version} not applied: {e}");
                }
            }
        }
        if touched.is_empty() {
            return;
        }
        let mut loads: BTreeMap<&str, u64> = BTreeMap::new();
        let mut total = 0;
        for (customer, assignment) in &self.assignments {
            let load = self.affinities.get(customer).map_or(0, |a| a.total);
            *loads.entry(assignment.partition.as_str()).or_default() += load;
            total += load;
        }
        let views: Vec<(String, Option<PartitionView>)> = touched
            .into_iter()
            .map(|c| {
                let view = self.view(&c, &loads, total);
                (c, view)
            })
            .collect();
        for (customer, view) in views {
            match view {
                Some(view) => {
                    if let Err(e) = self.state.set_partition(view) {
                        tracing::warn!("routing API: partition of {customer} not served: {e}");
                    }
                }
                None => {
                    self.state.remove_partition(&customer);
                }
            }
        }
    }
}
