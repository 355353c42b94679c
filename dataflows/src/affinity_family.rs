//! The first decision family: windowed load per key, affinity vectors, and the optimal partition.

use differential_dataflow::VecCollection;
use shardcast_operators::{AffinityVectors, ChoosePartition, PartitionPolicy, SlidingWindow};
use shardcast_sources::Event;

use crate::Decision;

/// An access as this family reads it: `(key, customer, home, region)`.
pub type AccessTuple = (String, String, String, String);

/// The static partition of an event's customer: the `home` attribute when the source states it, otherwise
/// a stable hash of the customer over the configured partitions (static hashing), otherwise none.
pub fn home_of(event: &Event, policy: &PartitionPolicy) -> String {
    if let Some(home) = event.attrs.get("home") {
        return home.clone();
    }
    if policy.partitions.is_empty() {
        return String::new();
    }
    // FNV-1a: stable across processes and versions, unlike the std hasher.
    let hash = event.client.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    policy.partitions[(hash % policy.partitions.len() as u64) as usize].clone()
}

/// The tuple this family reads from an event.
pub fn access_of(event: &Event, policy: &PartitionPolicy) -> AccessTuple {
    (
        event.key.clone(),
        event.client.clone(),
        home_of(event, policy),
        event.region.clone(),
    )
}

/// Builds the family over `accesses` (each inserted at its epoch): a window of `window` epochs, then
/// key loads, affinity vectors and assignments, all as [`Decision`] rows.
pub fn affinity_family<'scope>(
    accesses: VecCollection<'scope, u64, AccessTuple>,
    window: u64,
    policy: PartitionPolicy,
) -> VecCollection<'scope, u64, Decision> {
    let windowed = accesses.sliding_window(window);
    let key_load = windowed
        .clone()
        .map(|(key, _, _, _)| key)
        .count()
        .map(|(key, accesses)| Decision::KeyLoad {
            key,
            accesses: accesses as u64,
        });
    let affinity = windowed
        .map(|(_, customer, home, region)| (customer, (home, region)))
        .affinity_vectors();
    let assignments = affinity
        .clone()
        .choose_partition(policy)
        .map(|(customer, assignment)| Decision::Assignment {
            customer,
            assignment,
        });
    let affinity = affinity.map(|(customer, affinity)| Decision::Affinity { customer, affinity });
    key_load.concat(affinity).concat(assignments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use shardcast_operators::reference::{self, Access};
    use shardcast_operators::testing::run_collection_on;

    fn decisions_of(state: &reference::FamilyState) -> Vec<(Decision, isize)> {
        let mut rows: Vec<(Decision, isize)> = Vec::new();
        for (key, n) in &state.key_load {
            rows.push((
                Decision::KeyLoad {
                    key: key.clone(),
                    accesses: *n,
                },
                1,
            ));
        }
        for (customer, affinity) in &state.affinity {
            rows.push((
                Decision::Affinity {
                    customer: customer.clone(),
                    affinity: affinity.clone(),
                },
                1,
            ));
        }
        for (customer, assignment) in &state.assignments {
            rows.push((
                Decision::Assignment {
                    customer: customer.clone(),
                    assignment: assignment.clone(),
                },
                1,
            ));
        }
        rows.sort();
        rows
    }

    /// The whole family, dataflow against the sequential reference, over random workloads where
    /// customers drift between regions, windows expire, and the load penalty and hysteresis matter.
    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
        let regions = ["ap", "eu", "us"];
        for round in 0..16 {
            let window = rng.random_range(2..8);
            let policy = PartitionPolicy {
                partitions: if round % 2 == 0 {
                    vec![]
                } else {
                    regions.iter().map(|r| r.to_string()).collect()
                },
                static_weight: 0.5,
                affinity_weight: 0.5,
                load_weight: rng.random_range(0.0..0.6),
                hysteresis: rng.random_range(0.0..0.3),
                min_dwell: rng.random_range(0..3),
            };
            let accesses: Vec<Access> = (0..rng.random_range(5..120))
                .map(|_| {
                    let c = rng.random_range(0..6usize);
                    Access {
                        epoch: rng.random_range(0..20),
                        key: format!("k{}", rng.random_range(0..8)),
                        customer: format!("c{c}"),
                        home: regions[c % 3].to_string(),
                        region: regions[rng.random_range(0..3)].to_string(),
                    }
                })
                .collect();
            let last = 30;
            let inserts: Vec<(AccessTuple, u64)> = accesses
                .iter()
                .map(|a| {
                    (
                        (
                            a.key.clone(),
                            a.customer.clone(),
                            a.home.clone(),
                            a.region.clone(),
                        ),
                        a.epoch,
                    )
                })
                .collect();
            let p = policy.clone();
            // Alternate one and two workers: with two, customers are exchanged and loads broadcast.
            let workers = 1 + round % 2;
            let states = run_collection_on(workers, inserts, last, move |c| {
                affinity_family(c, window, p.clone())
            });
            let expected = reference::affinity_family(&accesses, window, &policy, last);
            for epoch in 0..=last {
                let want = decisions_of(&reference::state_at(&expected, epoch));
                assert_eq!(
                    states[&epoch], want,
                    "round {round} epoch {epoch} window {window} policy {policy:?}"
                );
            }
        }
    }
}
