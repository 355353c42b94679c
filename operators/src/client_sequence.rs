//! `client_sequence`: each client's accesses in event-time order, linked to the access before.

use std::collections::{BTreeMap, HashMap};

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;
use timely::progress::Antichain;

/// An access `(client, ts in ms, key)`.
pub type TimedAccess<K = String> = (String, u64, K);

/// How consecutive accesses of a client are linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceConfig {
    /// Two accesses of a client at most this far apart (ms) form a transition "after X comes Y".
    pub pair_gap_ms: u64,
    /// A client silent for longer than this (ms) starts a new session.
    pub session_gap_ms: u64,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        SequenceConfig {
            pair_gap_ms: 60_000,
            session_gap_ms: 30 * 60_000,
        }
    }
}

/// One access with its place in the client's sequence.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Step<K = String> {
    /// The client.
    pub client: String,
    /// The key accessed.
    pub key: K,
    /// When (ms).
    pub ts: u64,
    /// The key the same client accessed just before, when at most `pair_gap_ms` earlier.
    pub prev: Option<K>,
    /// The session: the time (ms) of the session's first access.
    pub session: u64,
}

/// The state kept per client between epochs.
#[derive(Clone, Debug)]
struct Last<K> {
    ts: u64,
    key: K,
    session: u64,
}

/// Links each client's accesses in event-time order.
///
/// **Computes:** for each access `(client, ts, key)` one [`Step`]: `prev` is the client's previous access
/// when it happened at most `pair_gap_ms` before (so "after `prev` comes `key`" is a transition), and
/// `session` is the start of the client's session, where a silence longer than `session_gap_ms` begins a
/// new one. Within an epoch a client's accesses are ordered by `(ts, key)`. Inputs must be inserts
/// (positive differences; a difference of `n` is `n` accesses); retractions are ignored.
///
/// **Time and frontier:** clients are exchanged by hash. An epoch's accesses are ordered when the input
/// frontier passes the epoch, and its steps are emitted at that epoch, so the output lags the input by one
/// frontier advance. The state kept is the last access and session of each client seen within the larger
/// of the two gaps (the state a checkpoint must hold).
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::{ClientSequence, SequenceConfig};
///
/// timely::example(|scope| {
///     let (mut input, accesses) = scope.new_collection::<(String, u64, String), isize>();
///     accesses
///         .client_sequence(SequenceConfig::default())
///         .inspect(|x| println!("{:?}", x));
///     input.insert(("alice".to_string(), 10, "/index.html".to_string()));
///     input.insert(("alice".to_string(), 12, "/logo.gif".to_string()));
///     input.advance_to(1);
/// });
/// ```
pub trait ClientSequence<'scope, K = String> {
    /// One [`Step`] per access.
    fn client_sequence(self, config: SequenceConfig) -> VecCollection<'scope, u64, Step<K>>;
}

impl<'scope, K> ClientSequence<'scope, K> for VecCollection<'scope, u64, TimedAccess<K>>
where
    K: ExchangeData + Ord,
{
    fn client_sequence(self, config: SequenceConfig) -> VecCollection<'scope, u64, Step<K>> {
        let forget_after = config.pair_gap_ms.max(config.session_gap_ms);
        self.inner
            .unary_frontier(
                Exchange::new(|((client, _, _), _, _): &(TimedAccess<K>, u64, isize)| {
                    client.hashed()
                }),
                "ClientSequence",
                move |_capability, _info| {
                    let mut caps = CapabilitySet::<u64>::new();
                    let mut pending: BTreeMap<u64, Vec<TimedAccess<K>>> = BTreeMap::new();
                    let mut last: HashMap<String, Last<K>> = HashMap::new();
                    let mut latest_ts = 0u64;
                    let mut epochs_since_sweep = 0u32;
                    move |(input, frontier), output| {
                        input.for_each_stamp(|cap, data| {
                            if let Some(cap) = cap.retain_least(output.output_index()) {
                                caps.insert(cap);
                            }
                            for batch in data {
                                for (access, t, r) in batch.drain(..) {
                                    let copies = usize::try_from(r).unwrap_or(0);
                                    let epoch = pending.entry(t).or_default();
                                    for _ in 0..copies {
                                        epoch.push(access.clone());
                                    }
                                }
                            }
                        });
                        let f = frontier.frontier();
                        while let Some(&t) = pending.keys().next() {
                            if f.less_equal(&t) {
                                break;
                            }
                            let mut accesses = pending.remove(&t).unwrap_or_default();
                            accesses.sort();
                            let cap = caps.delayed(&t);
                            let mut session = output.session(&cap);
                            for (client, ts, key) in accesses {
                                latest_ts = latest_ts.max(ts);
                                let step = link(&mut last, &config, client, ts, key);
                                session.give((step, t, 1isize));
                            }
                            epochs_since_sweep += 1;
                            if epochs_since_sweep >= 16 {
                                // Clients silent for longer than both gaps can form no pair and
                                // continue no session: forget them so state follows the live clients.
                                epochs_since_sweep = 0;
                                last.retain(|_, l| l.ts.saturating_add(forget_after) >= latest_ts);
                            }
                        }
                        let mut lower = Antichain::new();
                        if let Some(&t) = pending.keys().next() {
                            lower.insert(t);
                        }
                        for t in f.iter() {
                            lower.insert(*t);
                        }
                        crate::capabilities::hold_from(&mut caps, lower.iter().copied().min());
                    }
                },
            )
            .as_collection()
    }
}

/// Links one access to the client's previous one and updates the client's state.
fn link<K: Clone>(
    last: &mut HashMap<String, Last<K>>,
    config: &SequenceConfig,
    client: String,
    ts: u64,
    key: K,
) -> Step<K> {
    let before = last.get(&client);
    let prev = before
        .filter(|l| ts.saturating_sub(l.ts) <= config.pair_gap_ms)
        .map(|l| l.key.clone());
    let session = match before {
        Some(l) if ts.saturating_sub(l.ts) <= config.session_gap_ms => l.session,
        _ => ts,
    };
    last.insert(
        client.clone(),
        Last {
            ts,
            key: key.clone(),
            session,
        },
    );
    Step {
        client,
        key,
        ts,
        prev,
        session,
    }
}

/// The plain sequential version: every access's [`Step`], with accesses taken in `(epoch, client, ts,
/// key)` order, as the operator orders them.
pub fn client_steps_reference<K: Clone + Ord>(
    accesses: &[(TimedAccess<K>, u64)],
    config: &SequenceConfig,
) -> Vec<(Step<K>, u64)> {
    let mut sorted: Vec<(u64, TimedAccess<K>)> =
        accesses.iter().map(|(a, t)| (*t, a.clone())).collect();
    sorted.sort();
    let mut last = HashMap::new();
    sorted
        .into_iter()
        .map(|(t, (client, ts, key))| (link(&mut last, config, client, ts, key), t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_collection_on;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for round in 0..12 {
            let config = SequenceConfig {
                pair_gap_ms: rng.random_range(1..40),
                session_gap_ms: rng.random_range(1..80),
            };
            let accesses: Vec<(TimedAccess, u64)> = (0..rng.random_range(1..120))
                .map(|_| {
                    let ts: u64 = rng.random_range(0..200);
                    let client = format!("c{}", rng.random_range(0..4));
                    let key = format!("k{}", rng.random_range(0..6));
                    ((client, ts, key), ts / 10)
                })
                .collect();
            let last = 25;
            let workers = 1 + round % 2;
            let states = run_collection_on(workers, accesses.clone(), last, move |c| {
                c.client_sequence(config)
            });
            let mut expected: BTreeMap<Step, isize> = BTreeMap::new();
            for (step, _) in client_steps_reference(&accesses, &config) {
                *expected.entry(step).or_default() += 1;
            }
            let expected: Vec<(Step, isize)> = expected.into_iter().collect();
            assert_eq!(states[&last], expected, "round {round}");
        }
    }

    #[test]
    fn gaps_break_pairs_and_sessions() {
        let config = SequenceConfig {
            pair_gap_ms: 10,
            session_gap_ms: 100,
        };
        let a = |ts: u64, key: &str| (("c".to_string(), ts, key.to_string()), ts / 1000);
        let steps =
            client_steps_reference(&[a(0, "x"), a(5, "y"), a(50, "z"), a(500, "w")], &config);
        let prevs: Vec<Option<&str>> = steps.iter().map(|(s, _)| s.prev.as_deref()).collect();
        assert_eq!(prevs, vec![None, Some("x"), None, None]);
        let sessions: Vec<u64> = steps.iter().map(|(s, _)| s.session).collect();
        assert_eq!(sessions, vec![0, 0, 0, 500]);
    }
}
