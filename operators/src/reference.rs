//! Plain, sequential implementations of the first decision family, epoch by epoch.
//!
//! Tests run the dataflow operators and these functions on the same input and require the same result;
//! the end-to-end test checks a real job's output (Kafka changelog, Redis table, SQL) against
//! [`affinity_family`].

use std::collections::{BTreeMap, BTreeSet};

use crate::{Affinity, Assignment, PartitionLoads, PartitionPolicy};

/// One access, reduced to what the first decision family reads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    /// Event-time epoch.
    pub epoch: u64,
    /// Key accessed.
    pub key: String,
    /// Customer (client) that accessed it.
    pub customer: String,
    /// The customer's static partition as the event states it.
    pub home: String,
    /// Region the access came from.
    pub region: String,
}

/// The decision tables at the end of one epoch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FamilyState {
    /// Accesses per key in the window.
    pub key_load: BTreeMap<String, u64>,
    /// Affinity vector per customer.
    pub affinity: BTreeMap<String, Affinity>,
    /// Partition per customer.
    pub assignments: BTreeMap<String, Assignment>,
}

/// The state after every epoch up to `last` in which something changed, with a sliding window of
/// `window` epochs, exactly as the dataflow computes it: a customer is re-decided in the epochs where its
/// affinity changes, against the partition loads at the end of the previous epoch.
pub fn affinity_family(
    accesses: &[Access],
    window: u64,
    policy: &PartitionPolicy,
    last: u64,
) -> Vec<(u64, FamilyState)> {
    let mut epochs: BTreeSet<u64> = BTreeSet::new();
    for a in accesses {
        epochs.insert(a.epoch);
        epochs.insert(a.epoch + window);
    }
    let mut states = Vec::new();
    let mut state = FamilyState::default();
    for &t in epochs.iter().filter(|t| **t <= last) {
        let in_window: Vec<&Access> = accesses
            .iter()
            .filter(|a| a.epoch <= t && t < a.epoch + window)
            .collect();
        let mut key_load = BTreeMap::new();
        let mut counts: BTreeMap<&str, BTreeMap<(&str, &str), u64>> = BTreeMap::new();
        for a in &in_window {
            *key_load.entry(a.key.clone()).or_default() += 1;
            *counts
                .entry(a.customer.as_str())
                .or_default()
                .entry((a.home.as_str(), a.region.as_str()))
                .or_default() += 1;
        }
        let affinity: BTreeMap<String, Affinity> = counts
            .into_iter()
            .filter_map(|(c, m)| {
                Affinity::from_counts(m.into_iter().map(|((h, r), n)| (h, r, n)))
                    .map(|a| (c.to_string(), a))
            })
            .collect();
        // Loads at the end of the previous epoch.
        let mut loads = PartitionLoads::default();
        for (c, asg) in &state.assignments {
            if let Some(a) = state.affinity.get(c) {
                loads.update(&asg.partition, a.total as i64);
            }
        }
        let customers: BTreeSet<&String> = affinity.keys().chain(state.affinity.keys()).collect();
        let mut assignments = state.assignments.clone();
        for c in customers {
            let (before, now) = (state.affinity.get(c), affinity.get(c));
            if before == now {
                continue;
            }
            match now.and_then(|a| policy.decide(state.assignments.get(c), a, &loads, t)) {
                Some(asg) => {
                    assignments.insert(c.clone(), asg);
                }
                None => {
                    assignments.remove(c);
                }
            }
        }
        state = FamilyState {
            key_load,
            affinity,
            assignments,
        };
        states.push((t, state.clone()));
    }
    states
}

/// The state at the end of epoch `at` (the last change at or before it).
pub fn state_at(states: &[(u64, FamilyState)], at: u64) -> FamilyState {
    states
        .iter()
        .rev()
        .find(|(t, _)| *t <= at)
        .map(|(_, s)| s.clone())
        .unwrap_or_default()
}
