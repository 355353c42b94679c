//! `balance_shards`: the live shard map, split, merged and placed ahead of the predicted load (seed 003).

use std::collections::{BTreeMap, HashMap, VecDeque};

use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use shardcast_shardmap::{
    BalanceAction, BalanceDecision, Balancer, LoadForecaster, MapChange, Shard, ShardId,
};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;

use crate::capabilities::hold_from;
use crate::Score;

/// A shard as the `shards` table shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardRow {
    /// The shard's id.
    pub id: ShardId,
    /// First ring position of its range.
    pub lo: u64,
    /// One past its last ring position.
    pub hi: u64,
    /// The node serving it.
    pub node: String,
    /// Nodes holding replicas, in failover order.
    pub replicas: Vec<String>,
    /// Map version at which it took this range and node.
    pub version: u64,
}

impl From<&Shard> for ShardRow {
    fn from(shard: &Shard) -> Self {
        ShardRow {
            id: shard.id,
            lo: shard.range.lo,
            hi: shard.range.hi,
            node: shard.node.clone(),
            replicas: shard.replicas.clone(),
            version: shard.version,
        }
    }
}

/// One decision of the balancer, as the `routing` changelog shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoutingRow {
    /// Map version after the decision (a shadow plan leaves it unchanged).
    pub version: u64,
    /// Epoch (window) of the decision.
    pub epoch: u64,
    /// What was decided.
    pub action: BalanceAction,
    /// Why.
    pub reason: String,
    /// The shard's load in the epoch.
    pub shard_load: Score,
    /// The highest forecast of the shard's load within the horizon.
    pub forecast_peak: Score,
    /// Load (accesses in the epoch) of the keys whose node changes.
    pub load_moved: Score,
    /// Keys whose node changes.
    pub keys_moved: u64,
    /// Max / mean shard load before the decision.
    pub imbalance_before: Score,
    /// Max / mean shard load after it.
    pub imbalance_after: Score,
}

impl RoutingRow {
    /// The action's kind: `split`, `merge`, `move`, `failover`, `replicas`, `shadow` or `cancel_shadow`.
    pub fn kind(&self) -> &'static str {
        match &self.action {
            BalanceAction::Change(MapChange::Split { .. }) => "split",
            BalanceAction::Change(MapChange::Merge { .. }) => "merge",
            BalanceAction::Change(MapChange::Move { .. }) => "move",
            BalanceAction::Change(MapChange::Failover { .. }) => "failover",
            BalanceAction::Change(MapChange::Replicas { .. }) => "replicas",
            BalanceAction::Shadow { .. } => "shadow",
            BalanceAction::CancelShadow { .. } => "cancel_shadow",
        }
    }

    /// The shard acted on (for a merge, the left one).
    pub fn shard(&self) -> ShardId {
        match &self.action {
            BalanceAction::Change(MapChange::Split { shard, .. })
            | BalanceAction::Change(MapChange::Move { shard, .. })
            | BalanceAction::Change(MapChange::Failover { shard, .. })
            | BalanceAction::Change(MapChange::Replicas { shard, .. })
            | BalanceAction::Shadow { shard, .. }
            | BalanceAction::CancelShadow { shard, .. } => *shard,
            BalanceAction::Change(MapChange::Merge { left, .. }) => *left,
        }
    }
}

impl From<BalanceDecision> for RoutingRow {
    fn from(d: BalanceDecision) -> Self {
        RoutingRow {
            version: d.version,
            epoch: d.window,
            action: d.action,
            reason: d.reason,
            shard_load: Score(d.shard_load),
            forecast_peak: Score(d.forecast_peak),
            load_moved: Score(d.load_moved),
            keys_moved: d.keys_moved,
            imbalance_before: Score(d.imbalance_before),
            imbalance_after: Score(d.imbalance_after),
        }
    }
}

/// An output row of [`BalanceShards::balance_shards`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ShardEvent {
    /// A shard of the current map.
    Shard(ShardRow),
    /// A decision, kept for the last `routing_history` decisions.
    Routing(RoutingRow),
}

/// Keeps the shard map in step with the predicted load.
///
/// **Computes:** the input holds, at each epoch, the ring position of every access of that epoch (a
/// position with multiplicity `n` counts `n` times). When an epoch is complete its per-position loads go
/// to [`Balancer::observe`], and [`Balancer::decide`] (with the given forecaster) splits, merges, moves
/// and plans shadow copies. The output holds the current map, one [`ShardEvent::Shard`] per shard (a
/// shard that did not change is never re-sent), and the latest `routing_history` decisions as
/// [`ShardEvent::Routing`] rows (older ones are retracted).
///
/// **Time and frontier:** all positions go to worker 0, which owns the balancer (the map is one global
/// state; the state a checkpoint must hold is the balancer). Every epoch from the first with data up to the
/// input frontier is processed in order, so forecasts see the empty epochs too; after `history` empty
/// epochs in a row the rest of a quiet gap is skipped, since the load history is all zeros by then. The
/// initial map is emitted at the first epoch with data. When the input closes, pending epochs are
/// processed and the operator stops. Other workers hold no capability.
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::forecast::{Ewma, ShardLoadForecaster};
/// use shardcast_operators::{BalanceShards, ShardEvent};
/// use shardcast_shardmap::{BalanceConfig, Balancer, ShardMap};
///
/// timely::example(|scope| {
///     let nodes = vec!["a".to_string(), "b".to_string()];
///     let map = ShardMap::uniform(4, &nodes, 1).unwrap();
///     let balancer = Balancer::new(map, nodes, BalanceConfig::default());
///     let (mut input, positions) = scope.new_collection::<u32, isize>();
///     positions
///         .balance_shards(balancer, ShardLoadForecaster::new(Ewma::default(), 1000), 100)
///         .inspect(|(event, _, _)| {
///             if let ShardEvent::Shard(row) = event {
///                 println!("{row:?}");
///             }
///         });
///     input.update(7, 3);
///     input.advance_to(1);
/// });
/// ```
pub trait BalanceShards<'scope> {
    /// The shard map and its decisions, kept by `balancer` with `forecaster` on worker 0.
    fn balance_shards<L>(
        self,
        balancer: Balancer,
        forecaster: L,
        routing_history: usize,
    ) -> VecCollection<'scope, u64, ShardEvent>
    where
        L: LoadForecaster + 'static;
}

impl<'scope> BalanceShards<'scope> for VecCollection<'scope, u64, u32> {
    fn balance_shards<L>(
        self,
        mut balancer: Balancer,
        mut forecaster: L,
        routing_history: usize,
    ) -> VecCollection<'scope, u64, ShardEvent>
    where
        L: LoadForecaster + 'static,
    {
        let quiet_limit = balancer.config().history.max(1) as u64;
        self.inner
            .unary_frontier(
                Exchange::new(|_: &(u32, u64, isize)| 0),
                "BalanceShards",
                move |capability, _info| {
                    let mut caps = CapabilitySet::from_elem(capability);
                    let mut pending: BTreeMap<u64, HashMap<u32, i64>> = BTreeMap::new();
                    let mut shown: BTreeMap<ShardId, ShardRow> = BTreeMap::new();
                    let mut decisions: VecDeque<(RoutingRow, u64)> = VecDeque::new();
                    // The next epoch to process; `None` until the first data arrives.
                    let mut next: Option<u64> = None;
                    let mut quiet = 0u64;
                    move |(input, frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            if let Some(cap) = cap.retain_least(output.output_index()) {
                                caps.insert(cap);
                            }
                            for batch in data {
                                for (position, t, r) in batch.drain(..) {
                                    *pending.entry(t).or_default().entry(position).or_default() +=
                                        r as i64;
                                }
                            }
                        });
                        let frontier = frontier.frontier();
                        loop {
                            let epoch = match next {
                                None => match pending.keys().next() {
                                    Some(&t) => t,
                                    None => break,
                                },
                                Some(n) if quiet >= quiet_limit => match pending.keys().next() {
                                    Some(&t) => t.max(n),
                                    None => break,
                                },
                                Some(n) => n,
                            };
                            if frontier.less_equal(&epoch) {
                                break;
                            }
                            if frontier.is_empty() && pending.range(epoch..).next().is_none() {
                                break;
                            }
                            let loads = pending.remove(&epoch).unwrap_or_default();
                            quiet = if loads.values().any(|n| *n > 0) {
                                0
                            } else {
                                quiet + 1
                            };
                            balancer.observe(
                                epoch,
                                loads
                                    .into_iter()
                                    .filter(|(_, n)| *n > 0)
                                    .map(|(p, n)| (p, n as f64)),
                            );
                            let made = balancer.decide(epoch, &mut forecaster);
                            let cap = caps.delayed(&epoch);
                            let mut session = output.session(&cap);
                            for decision in made {
                                let row = RoutingRow::from(decision);
                                session.give((ShardEvent::Routing(row.clone()), epoch, 1isize));
                                decisions.push_back((row, epoch));
                            }
                            while decisions.len() > routing_history {
                                let (old, _) = decisions.pop_front().expect("not empty");
                                session.give((ShardEvent::Routing(old), epoch, -1isize));
                            }
                            let current: BTreeMap<ShardId, ShardRow> = balancer
                                .map()
                                .shards()
                                .map(|s| (s.id, ShardRow::from(s)))
                                .collect();
                            for (id, row) in &shown {
                                if current.get(id) != Some(row) {
                                    session.give((ShardEvent::Shard(row.clone()), epoch, -1isize));
                                }
                            }
                            for (id, row) in &current {
                                if shown.get(id) != Some(row) {
                                    session.give((ShardEvent::Shard(row.clone()), epoch, 1isize));
                                }
                            }
                            shown = current;
                            next = Some(epoch + 1);
                        }
                        // Hold the next epoch while the balancer runs and the input is open; else only
                        // what pending data still needs.
                        let lower = match next {
                            Some(n) if !frontier.is_empty() && quiet < quiet_limit => Some(n),
                            _ => pending.keys().next().map(|&t| next.map_or(t, |n| t.max(n))),
                        };
                        hold_from(&mut caps, lower);
                    }
                },
            )
            .as_collection()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};
    use shardcast_shardmap::{BalanceConfig, ShardMap, RING};

    use super::*;
    use crate::forecast::{Holt, ShardLoadForecaster};
    use crate::testing::run_collection_on;

    const HISTORY: usize = 8;

    fn balancer() -> Balancer {
        let nodes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let map = ShardMap::uniform(4, &nodes, 1).unwrap();
        let config = BalanceConfig {
            warmup_windows: 2,
            cooldown_windows: 2,
            churn_budget: 0.5,
            history: HISTORY,
            ..BalanceConfig::default()
        };
        Balancer::new(map, nodes, config)
    }

    /// Accesses whose hot spot grows over the epochs, with quiet gaps shorter and longer than the
    /// history.
    fn accesses(seed: u64) -> Vec<(u32, u64)> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        for epoch in (0..40u64).filter(|e| !(12..14).contains(e) && !(20..30).contains(e)) {
            for _ in 0..50 {
                out.push((rng.random_range(0..u32::MAX), epoch));
            }
            // A hot range in the second quarter of the ring, heating up.
            for _ in 0..epoch * 10 {
                let lo = (RING / 4) as u32;
                out.push((rng.random_range(lo..lo + (1 << 24)), epoch));
            }
        }
        out
    }

    /// The plain reference: the balancer driven epoch by epoch, every epoch from the first with data,
    /// skipping the rest of a gap once `history` quiet epochs have gone by.
    fn reference(inserts: &[(u32, u64)], last: u64) -> BTreeMap<u64, Vec<(ShardEvent, isize)>> {
        let mut by_epoch: BTreeMap<u64, BTreeMap<u32, f64>> = BTreeMap::new();
        for (p, t) in inserts {
            *by_epoch.entry(*t).or_default().entry(*p).or_default() += 1.0;
        }
        let mut b = balancer();
        let mut forecaster = ShardLoadForecaster::new(Holt::default(), 1000);
        let mut routing: Vec<RoutingRow> = Vec::new();
        let mut out = BTreeMap::new();
        let (mut quiet, mut epoch) = (0usize, *by_epoch.keys().next().unwrap());
        let mut state = BTreeMap::new();
        let mut t = 0;
        while t <= last {
            if t == epoch {
                let loads = by_epoch.get(&t).cloned().unwrap_or_default();
                quiet = if loads.is_empty() { quiet + 1 } else { 0 };
                b.observe(t, loads);
                for d in b.decide(t, &mut forecaster) {
                    routing.push(d.into());
                }
                epoch = if quiet >= HISTORY {
                    by_epoch.range(t + 1..).next().map_or(u64::MAX, |(k, _)| *k)
                } else {
                    t + 1
                };
                let mut rows: BTreeMap<ShardEvent, isize> = b
                    .map()
                    .shards()
                    .map(|s| (ShardEvent::Shard(ShardRow::from(s)), 1))
                    .collect();
                let keep = routing.len().saturating_sub(5);
                for r in &routing[keep..] {
                    rows.insert(ShardEvent::Routing(r.clone()), 1);
                }
                state = rows;
            }
            out.insert(t, state.clone().into_iter().collect());
            t += 1;
        }
        out
    }

    #[test]
    fn matches_the_sequential_balancer_on_one_and_two_workers() {
        let inserts = accesses(7);
        let expected = reference(&inserts, 45);
        let decisions: usize = expected[&45]
            .iter()
            .filter(|(e, _)| matches!(e, ShardEvent::Routing(_)))
            .count();
        assert!(decisions > 0, "the hot spot should make the balancer act");
        for workers in [1, 2] {
            let got = run_collection_on(workers, inserts.clone(), 45, |positions| {
                positions.balance_shards(
                    balancer(),
                    ShardLoadForecaster::new(Holt::default(), 1000),
                    5,
                )
            });
            for t in 0..=45 {
                assert_eq!(
                    got.get(&t).cloned().unwrap_or_default(),
                    expected[&t],
                    "epoch {t} on {workers} workers"
                );
            }
        }
    }
}
