//! `choose_partition`: seed 001's optimal partition per customer, with hysteresis and a load penalty.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{CapabilitySet, ConnectLoop, Feedback};
use timely::progress::Antichain;

use crate::Affinity;

/// How a customer's partition is chosen (seed 001, "Optimal Partition Lookup").
///
/// `score(p) = static_weight·[p is the customer's home] + affinity_weight·affinity[p]
///             − load_weight·load_share(p)`, where `load_share(p)` is the share of all assigned load
/// that sat on partition `p` at the end of the previous epoch. The seed's weights are 0.5 and 0.5.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionPolicy {
    /// Partitions to choose from. Empty: the customer's home plus every region it accesses from.
    pub partitions: Vec<String>,
    /// Bonus of the static (home) partition.
    pub static_weight: f64,
    /// Weight of the affinity share of a partition.
    pub affinity_weight: f64,
    /// Weight of the penalty for a partition's share of the total load.
    pub load_weight: f64,
    /// A customer moves only when the best score beats its current partition's by more than this.
    pub hysteresis: f64,
    /// A customer stays at least this many epochs on a partition before it may move again.
    pub min_dwell: u64,
}

impl Default for PartitionPolicy {
    fn default() -> Self {
        PartitionPolicy {
            partitions: Vec::new(),
            // Seed 001 uses 0.5 and 0.5, with which all accesses from elsewhere only tie with home;
            // 0.4 / 0.6 keeps home preferred until most accesses come from elsewhere.
            static_weight: 0.4,
            affinity_weight: 0.6,
            load_weight: 0.2,
            hysteresis: 0.1,
            min_dwell: 0,
        }
    }
}

/// A customer's current partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// The chosen partition.
    pub partition: String,
    /// The customer's static (home) partition when the choice was made.
    pub home: String,
    /// The epoch since which the customer has been on `partition`.
    pub since: u64,
}

/// Load per partition: the sum of the window loads of the customers assigned to it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionLoads {
    loads: BTreeMap<String, i64>,
    total: i64,
}

impl PartitionLoads {
    /// Adds `delta` to the load of `partition`.
    pub fn update(&mut self, partition: &str, delta: i64) {
        let load = self.loads.entry(partition.to_string()).or_default();
        *load += delta;
        self.total += delta;
        if *load == 0 {
            self.loads.remove(partition);
        }
    }

    /// Share of the total load on `partition`, in `[0, 1]`.
    pub fn share(&self, partition: &str) -> f64 {
        if self.total <= 0 {
            return 0.0;
        }
        *self.loads.get(partition).unwrap_or(&0) as f64 / self.total as f64
    }

    /// Load per partition.
    pub fn loads(&self) -> &BTreeMap<String, i64> {
        &self.loads
    }
}

impl PartitionPolicy {
    /// The partitions a customer with `affinity` may be placed on.
    pub fn candidates(&self, affinity: &Affinity) -> Vec<String> {
        if !self.partitions.is_empty() {
            return self.partitions.clone();
        }
        let mut set: BTreeSet<String> = affinity.regions.iter().map(|(r, _)| r.clone()).collect();
        if !affinity.home.is_empty() {
            set.insert(affinity.home.clone());
        }
        set.into_iter().collect()
    }

    /// The score of `partition` for a customer with `affinity`, given the current loads.
    pub fn score(&self, partition: &str, affinity: &Affinity, loads: &PartitionLoads) -> f64 {
        let home = if partition == affinity.home {
            self.static_weight
        } else {
            0.0
        };
        home + self.affinity_weight * affinity.share(partition)
            - self.load_weight * loads.share(partition)
    }

    /// The partition with the highest score; ties go to the smallest name so every worker and the
    /// reference agree.
    pub fn best(&self, affinity: &Affinity, loads: &PartitionLoads) -> Option<(String, f64)> {
        let mut best: Option<(String, f64)> = None;
        for p in self.candidates(affinity) {
            let s = self.score(&p, affinity, loads);
            if best.as_ref().is_none_or(|(_, b)| s > *b) {
                best = Some((p, s));
            }
        }
        best
    }

    /// The decision at `epoch` for a customer currently on `current` (if any): move to the best partition
    /// only if it beats the current one by more than `hysteresis` and the customer has dwelt long enough.
    pub fn decide(
        &self,
        current: Option<&Assignment>,
        affinity: &Affinity,
        loads: &PartitionLoads,
        epoch: u64,
    ) -> Option<Assignment> {
        let (best, best_score) = self.best(affinity, loads)?;
        let fresh = Assignment {
            partition: best,
            home: affinity.home.clone(),
            since: epoch,
        };
        let Some(current) = current else {
            return Some(fresh);
        };
        let stay = Assignment {
            home: affinity.home.clone(),
            ..current.clone()
        };
        if fresh.partition == current.partition || epoch < current.since + self.min_dwell {
            return Some(stay);
        }
        let current_score = self.score(&current.partition, affinity, loads);
        if best_score > current_score + self.hysteresis {
            Some(fresh)
        } else {
            Some(stay)
        }
    }
}

/// A change to one partition's load, as it travels around the feedback loop.
type LoadUpdate = ((String, isize), u64, isize);
/// A change to one customer's affinity vector.
type AffinityChange<K> = ((K, Affinity), isize);

/// Chooses a partition for every customer with an affinity vector.
///
/// **Computes:** for each `(customer, affinity)` the [`Assignment`] of [`PartitionPolicy::decide`]. A
/// customer is re-evaluated in the epochs where its affinity changes; a customer whose affinity is retracted
/// (no accesses left in the window) loses its assignment. Partition loads are the sum of the affinity
/// totals of the customers assigned to each partition, computed in differential from this operator's own
/// output and fed back one epoch later, so the penalty at epoch `t` uses the loads at the end of `t − 1`.
///
/// **Time and frontier:** the decision for epoch `t` is made once both the affinity input and the fed-back
/// loads have passed `t`; the feedback edge advances time by one epoch, so it never blocks `t`. Customers
/// are exchanged by hash over the workers; loads (one row per partition) are broadcast to all of them.
/// The state kept per customer is its current affinity and assignment (the state a checkpoint must hold).
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::{Affinity, ChoosePartition, PartitionPolicy};
///
/// timely::example(|scope| {
///     let (mut input, affinities) = scope.new_collection::<(String, Affinity), isize>();
///     affinities
///         .choose_partition(PartitionPolicy::default())
///         .inspect(|x| println!("{:?}", x));
///     let affinity = Affinity { home: "eu".into(), total: 4, regions: vec![("us".into(), 4)] };
///     input.insert(("c1".to_string(), affinity));
///     input.advance_to(1);
/// });
/// ```
pub trait ChoosePartition<'scope, K> {
    /// One [`Assignment`] per customer.
    fn choose_partition(
        self,
        policy: PartitionPolicy,
    ) -> VecCollection<'scope, u64, (K, Assignment)>;
}

impl<'scope, K> ChoosePartition<'scope, K> for VecCollection<'scope, u64, (K, Affinity)>
where
    K: ExchangeData + Hashable + Hash,
{
    fn choose_partition(
        self,
        policy: PartitionPolicy,
    ) -> VecCollection<'scope, u64, (K, Assignment)> {
        let scope = self.scope();
        let (loop_handle, fed_back) = scope.feedback::<Vec<LoadUpdate>>(1);
        let loads = fed_back.broadcast();

        let assignments = self
            .inner
            .clone()
            .binary_frontier(
                loads,
                Exchange::new(|((k, _), _, _): &((K, Affinity), u64, isize)| k.hashed().into()),
                Pipeline,
                "ChoosePartition",
                move |_capability, _info| {
                    let mut caps = CapabilitySet::<u64>::new();
                    // Affinity changes by epoch, waiting for both frontiers to pass the epoch.
                    let mut pending: BTreeMap<u64, Vec<AffinityChange<K>>> = BTreeMap::new();
                    let mut pending_loads: BTreeMap<u64, Vec<(String, isize)>> = BTreeMap::new();
                    let mut loads = PartitionLoads::default();
                    let mut affinities: HashMap<K, BTreeMap<Affinity, isize>> = HashMap::new();
                    let mut current: HashMap<K, Assignment> = HashMap::new();
                    move |(input1, frontier1), (input2, frontier2), output| {
                        input1.for_each_stamp(|cap, data| {
                            if let Some(cap) = cap.retain_least(output.output_index()) {
                                caps.insert(cap);
                            }
                            for batch in data {
                                for (d, t, r) in batch.drain(..) {
                                    pending.entry(t).or_default().push((d, r));
                                }
                            }
                        });
                        input2.for_each_stamp(|_cap, data| {
                            for batch in data {
                                for ((p, load), t, r) in batch.drain(..) {
                                    pending_loads.entry(t).or_default().push((p, load * r));
                                }
                            }
                        });
                        let f1 = frontier1.frontier();
                        let f2 = frontier2.frontier();
                        while let Some(&t) = pending.keys().next() {
                            if f1.less_equal(&t) || f2.less_equal(&t) {
                                break;
                            }
                            let changes = pending.remove(&t).unwrap_or_default();
                            // Loads stamped `t - 1` and earlier (the assignments up to the end of `t - 1`).
                            // They travel the feedback edge under a capability one epoch later, so the
                            // frontier of that input passing `t` means they have all arrived.
                            while let Some(entry) = pending_loads.first_entry() {
                                if *entry.key() >= t {
                                    break;
                                }
                                for (p, delta) in entry.remove() {
                                    loads.update(&p, delta as i64);
                                }
                            }
                            let mut touched = BTreeSet::new();
                            for ((k, a), r) in changes {
                                let per_key = affinities.entry(k.clone()).or_default();
                                *per_key.entry(a.clone()).or_default() += r;
                                if per_key[&a] == 0 {
                                    per_key.remove(&a);
                                }
                                touched.insert(k);
                            }
                            let cap = caps.delayed(&t);
                            let mut session = output.session(&cap);
                            for k in touched {
                                let affinity = affinities.get(&k).and_then(|m| {
                                    m.iter().find(|(_, r)| **r > 0).map(|(a, _)| a.clone())
                                });
                                if affinities.get(&k).is_some_and(|m| m.is_empty()) {
                                    affinities.remove(&k);
                                }
                                let before = current.get(&k).cloned();
                                let after = affinity
                                    .and_then(|a| policy.decide(before.as_ref(), &a, &loads, t));
                                if before == after {
                                    continue;
                                }
                                if let Some(old) = before {
                                    session.give(((k.clone(), old), t, -1isize));
                                }
                                match after {
                                    Some(new) => {
                                        session.give(((k.clone(), new.clone()), t, 1isize));
                                        current.insert(k, new);
                                    }
                                    None => {
                                        current.remove(&k);
                                    }
                                }
                            }
                        }
                        // Keep capabilities only for epochs that may still produce output.
                        let mut lower = Antichain::new();
                        if let Some(&t) = pending.keys().next() {
                            lower.insert(t);
                        }
                        for t in f1.iter() {
                            lower.insert(*t);
                        }
                        crate::capabilities::hold_from(&mut caps, lower.iter().copied().min());
                    }
                },
            )
            .container::<Vec<_>>()
            .as_collection();

        // Load per partition = sum of the window totals of its customers; fed back one epoch later.
        let customer_load = self.map(|(k, a)| (k, a.total));
        assignments
            .clone()
            .map(|(k, a)| (k, a.partition))
            .join_map(customer_load, |_k, partition, total| {
                (partition.clone(), *total)
            })
            .explode(|(partition, total)| Some((partition, total as isize)))
            .count()
            .inner
            .connect_loop(loop_handle);

        assignments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn affinity(home: &str, regions: &[(&str, u64)]) -> Affinity {
        Affinity {
            home: home.into(),
            total: regions.iter().map(|(_, n)| n).sum(),
            regions: regions.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn seed_scoring_prefers_home_until_affinity_dominates() {
        let seed = PartitionPolicy {
            static_weight: 0.5,
            affinity_weight: 0.5,
            load_weight: 0.0,
            hysteresis: 0.0,
            ..Default::default()
        };
        let loads = PartitionLoads::default();
        // Seed 001's weights: the 0.5 home bonus beats 0.5 * 0.6 affinity elsewhere ...
        let a = affinity("eu", &[("eu", 4), ("us", 6)]);
        assert_eq!(seed.best(&a, &loads).unwrap().0, "eu");
        // ... and even all accesses elsewhere only tie with home (0.5 each), so the tie goes by name.
        let a = affinity("eu", &[("us", 10)]);
        assert_eq!(seed.score("us", &a, &loads), seed.score("eu", &a, &loads));
        // The default weights (0.4 / 0.6) let a dominant affinity win.
        let policy = PartitionPolicy {
            load_weight: 0.0,
            hysteresis: 0.0,
            ..Default::default()
        };
        assert_eq!(policy.best(&a, &loads).unwrap().0, "us");
        let a = affinity("eu", &[("eu", 5), ("us", 5)]);
        assert_eq!(policy.best(&a, &loads).unwrap().0, "eu");
    }

    #[test]
    fn hysteresis_and_dwell_hold_a_customer() {
        let policy = PartitionPolicy {
            load_weight: 0.0,
            hysteresis: 0.2,
            min_dwell: 5,
            ..Default::default()
        };
        let loads = PartitionLoads::default();
        let on_eu = Assignment {
            partition: "eu".into(),
            home: "eu".into(),
            since: 0,
        };
        // us scores 0.6 vs eu 0.4: a gain of 0.2, not more than the hysteresis, so it stays.
        let a = affinity("eu", &[("us", 10)]);
        assert_eq!(
            policy
                .decide(Some(&on_eu), &a, &loads, 10)
                .unwrap()
                .partition,
            "eu"
        );
        // A home elsewhere makes us score 1.0 vs eu 0.0: it moves, but not inside the dwell time.
        let a = affinity("us", &[("us", 10)]);
        assert_eq!(
            policy
                .decide(Some(&on_eu), &a, &loads, 3)
                .unwrap()
                .partition,
            "eu"
        );
        let moved = policy.decide(Some(&on_eu), &a, &loads, 10).unwrap();
        assert_eq!((moved.partition.as_str(), moved.since), ("us", 10));
    }

    #[test]
    fn load_penalty_steers_away_from_a_loaded_partition() {
        let policy = PartitionPolicy {
            load_weight: 1.0,
            hysteresis: 0.0,
            ..Default::default()
        };
        let mut loads = PartitionLoads::default();
        loads.update("us", 90);
        loads.update("eu", 10);
        let a = affinity("", &[("us", 6), ("eu", 4)]);
        assert_eq!(policy.best(&a, &loads).unwrap().0, "eu");
    }
}
