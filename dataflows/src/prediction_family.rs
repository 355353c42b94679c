//! The prediction family: next-access prediction, prefetch priorities under a bandwidth budget,
//! per-consumer prefetch queues and the fast key index (seeds 000, 003 and 004).

use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use shardcast_operators::{
    ClientSequence, PrefetchQueue, QueueConfig, SequenceConfig, SimilarKeys, SimilarityConfig,
    SlidingWindow, Successor, TransitionConfig, Transitions,
};
use timely::dataflow::operators::vec::Map;

use crate::{Access, Decision, KeyIndexEntry, PrefetchOrder, Score};

/// Settings of the prediction family (`[pipeline.NAME.prefetch]` in `pipelines.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionConfig {
    /// How a client's consecutive accesses are linked into transitions and sessions.
    pub sequence: SequenceConfig,
    /// How transitions become predictions.
    pub transitions: TransitionConfig,
    /// Predictions less confident than this are not prefetched (seed 000's threshold).
    pub threshold: f64,
    /// Per-consumer prefetch queues.
    pub queue: QueueConfig,
    /// Content similarity of message payloads for the queues; `None` turns it off.
    pub similarity: Option<SimilarityConfig>,
}

impl Default for PredictionConfig {
    fn default() -> Self {
        PredictionConfig {
            sequence: SequenceConfig::default(),
            transitions: TransitionConfig::default(),
            threshold: 0.3,
            queue: QueueConfig::default(),
            similarity: Some(SimilarityConfig::default()),
        }
    }
}

/// A prediction for one client: `(client, region, successor, ts of the access it follows)`.
type ClientPrediction = (String, String, Successor, u64);

/// Parts of a prefetch decision that meet in one reduce per region.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum RegionItem {
    /// The region's budget, bytes per epoch.
    Budget(u64),
    /// A candidate order.
    Candidate(PrefetchOrder),
}

/// Parts of a key index entry that meet in one reduce per key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum KeyItem {
    /// The latest access: `(ts, client, session)`.
    Access(u64, String, u64),
    /// A predicted successor, with its rank-defining count.
    Successor(u64, String),
    /// A confidence with which the key is predicted.
    Predicted(Score),
}

/// Builds the family over `accesses` (each inserted at its epoch) with a window of `window` epochs.
/// `budget` holds one row, the bytes each region may receive per epoch; changing it (a retraction and an
/// insertion at some epoch) re-plans the orders from that epoch on.
///
/// Tables: `transitions` (the successors of each key, over the window), `prefetch` (this epoch's orders:
/// for every client active in the epoch, the successors of its latest key, gated by `threshold`, combined
/// per region and key, and cut to the region's budget by priority), `prefetch_queue` (per consumer) and
/// `key_index`.
pub fn prediction_family<'scope>(
    accesses: VecCollection<'scope, u64, Access>,
    budget: VecCollection<'scope, u64, u64>,
    window: u64,
    config: PredictionConfig,
) -> VecCollection<'scope, u64, Decision> {
    let steps = accesses
        .clone()
        .map(|a| (a.client, a.ts, a.key))
        .client_sequence(config.sequence);
    let transitions = steps
        .clone()
        .flat_map(|s| s.prev.map(|prev| (prev, s.key)))
        .sliding_window(window)
        .transitions(config.transitions);

    // Each client active in the epoch, with its latest key and region.
    let latest = accesses
        .clone()
        .map(|a| (a.client, (a.ts, a.key, a.region)))
        .sliding_window(1)
        .reduce(|_client, input, output| {
            if let Some(((ts, key, region), _)) = input.iter().rfind(|(_, r)| *r > 0) {
                output.push(((key.clone(), region.clone(), *ts), 1isize));
            }
        });
    let predictions = gated_predictions(latest.clone(), transitions.clone(), config.threshold);

    // Seed 004, correlated access across clients: "if A requests X, B is likely to request Y". Per
    // region, an access by one client followed within `pair_gap` by another client's access to another
    // key. The successors of a client's latest key there are prefetched into its region too (for the
    // other clients), but are not queued for the client itself.
    let co_access = accesses
        .clone()
        .map(|a| (a.region, a.ts, (a.key, a.client)))
        .client_sequence(config.sequence)
        .flat_map(|s| match s.prev {
            Some((prev_key, prev_client)) if prev_client != s.key.1 && prev_key != s.key.0 => {
                Some((prev_key, s.key.0))
            }
            _ => None,
        })
        .sliding_window(window)
        .transitions(config.transitions);
    let co_predictions = gated_predictions(latest.clone(), co_access.clone(), config.threshold);
    let all_predictions = predictions.clone().concat(co_predictions);

    let orders = prefetch_orders(accesses.clone(), all_predictions.clone(), budget, window);

    let mut queued = predictions.clone().map(|(client, _, s, ts)| {
        let millionths = (s.confidence * 1e6).round() as u64;
        (client, s.key, millionths, ts)
    });
    let mut similar_rows = None;
    if let Some(similarity) = config.similarity {
        // Seed 003: a consumer is offered the messages most like the one it just took, that it has
        // not taken within the window; the similarity is the confidence.
        let similar = accesses
            .clone()
            .filter(|a| !a.payload.is_empty())
            .map(|a| (a.key, a.payload))
            .sliding_window(window)
            .similar_keys(similarity);
        let taken = accesses
            .clone()
            .map(|a| (a.client, a.key))
            .sliding_window(window)
            .distinct();
        let offered = latest
            .clone()
            .map(|(client, (key, _region, ts))| (key, (client, ts)))
            .join(similar.clone())
            .map(|(_key, ((client, ts), (other, millionths)))| ((client, other), (millionths, ts)))
            .antijoin(taken)
            .map(|((client, other), (millionths, ts))| (client, other, millionths, ts));
        queued = queued.concat(offered);
        similar_rows = Some(similar.map(|(key, (other, similarity))| Decision::Similar {
            key,
            other,
            similarity,
        }));
    }
    let queue = queued
        .prefetch_queue(accesses.map(|a| (a.client, a.key)), config.queue)
        .map(Decision::Queue);

    let index = key_index(steps, transitions.clone(), all_predictions, window);

    let decisions = transitions
        .map(|(key, successor)| Decision::Transition { key, successor })
        .concat(co_access.map(|(key, successor)| Decision::CoAccess { key, successor }))
        .concat(orders.map(Decision::Prefetch))
        .concat(queue)
        .concat(index.map(Decision::KeyIndex));
    match similar_rows {
        Some(rows) => decisions.concat(rows),
        None => decisions,
    }
}

/// The successors in `table` of each active client's latest key (`latest`: client -> (key, region,
/// ts)) that are at least `threshold` confident, as that client's predictions.
fn gated_predictions<'scope>(
    latest: VecCollection<'scope, u64, (String, (String, String, u64))>,
    table: VecCollection<'scope, u64, (String, Successor)>,
    threshold: f64,
) -> VecCollection<'scope, u64, ClientPrediction> {
    latest
        .map(|(client, (key, region, ts))| (key, (client, region, ts)))
        .join(table)
        .flat_map(move |(_key, ((client, region, ts), successor))| {
            (successor.confidence >= threshold).then_some((client, region, successor, ts))
        })
}

/// Combines the clients' predictions per region and key and cuts them to the region's budget.
fn prefetch_orders<'scope>(
    accesses: VecCollection<'scope, u64, Access>,
    predictions: VecCollection<'scope, u64, ClientPrediction>,
    budget: VecCollection<'scope, u64, u64>,
    window: u64,
) -> VecCollection<'scope, u64, PrefetchOrder> {
    // The size of a key: the largest seen in the window.
    let sizes = accesses
        .map(|a| (a.key, a.bytes))
        .sliding_window(window)
        .reduce(|_key, input, output| {
            if let Some((bytes, _)) = input.iter().rfind(|(_, r)| *r > 0) {
                output.push((**bytes, 1isize));
            }
        });
    let combined = predictions
        .map(|(_client, region, s, _)| {
            ((region, s.key), (Score(s.probability), Score(s.confidence)))
        })
        .reduce(|_region_key, input, output| {
            let (mut miss, mut probability, mut confidence, mut clients) =
                (1.0f64, 0f64, 0f64, 0u64);
            for ((p, c), n) in input {
                for _ in 0..(*n).max(0) {
                    miss *= 1.0 - p.0 * c.0;
                    clients += 1;
                }
                probability = probability.max(p.0);
                confidence = confidence.max(c.0);
            }
            output.push((
                (
                    Score(1.0 - miss),
                    Score(probability),
                    Score(confidence),
                    clients,
                ),
                1isize,
            ));
        })
        .map(|((region, key), rest)| (key, (region, rest)))
        .join(sizes)
        .map(
            |(key, ((region, (priority, probability, confidence, clients)), bytes))| {
                (
                    region.clone(),
                    RegionItem::Candidate(PrefetchOrder {
                        region,
                        key,
                        priority,
                        probability,
                        confidence,
                        bytes,
                        clients,
                    }),
                )
            },
        );
    // Every region with candidates gets the budget row; there are few regions, so the unit-keyed join
    // that spreads it is small.
    let region_budgets = combined
        .clone()
        .map(|(region, _)| ((), region))
        .distinct()
        .join(budget.map(|b| ((), b)))
        .map(|((), (region, b))| (region, RegionItem::Budget(b)));
    combined
        .concat(region_budgets)
        .reduce(|_region, input, output| {
            let mut budget = None;
            let mut candidates: Vec<&PrefetchOrder> = Vec::new();
            for (item, r) in input {
                if *r <= 0 {
                    continue;
                }
                match item {
                    RegionItem::Budget(b) => budget = Some(budget.map_or(*b, |x: u64| x.min(*b))),
                    RegionItem::Candidate(order) => candidates.push(order),
                }
            }
            let Some(mut left) = budget else {
                return;
            };
            // Highest priority first; ties by key, so every worker and run agree.
            candidates.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.key.cmp(&b.key)));
            for order in candidates {
                // Greedy: an order that does not fit is skipped, a smaller one after it may still fit.
                if order.bytes <= left {
                    left -= order.bytes;
                    output.push((order.clone(), 1isize));
                }
            }
        })
        .map(|(_, order)| order)
}

/// The fast key index: for every key accessed in the window, its latest access (version tag and
/// session), its predicted successors, and the confidence with which it is itself predicted.
fn key_index<'scope>(
    steps: VecCollection<'scope, u64, shardcast_operators::Step>,
    transitions: VecCollection<'scope, u64, (String, Successor)>,
    predictions: VecCollection<'scope, u64, ClientPrediction>,
    window: u64,
) -> VecCollection<'scope, u64, KeyIndexEntry> {
    // The latest access of each key within each epoch first, then the window over those: a hot key
    // brings at most one row per epoch to the final reduce instead of every access in the window.
    let latest = steps
        .map(|s| (s.key, (s.ts, s.client, s.session)))
        .sliding_window(1)
        .reduce(|_key, input, output| {
            if let Some((access, _)) = input.iter().rfind(|(_, r)| *r > 0) {
                output.push(((*access).clone(), 1isize));
            }
        })
        .inner
        .flat_map(|((key, (ts, client, session)), t, r)| {
            // Keep only the insertions: each epoch's latest access lives for the window from its
            // epoch on, whatever later epochs bring.
            (r > 0).then_some(((key, KeyItem::Access(ts, client, session)), t, r))
        })
        .as_collection()
        .sliding_window(window);
    let successors = transitions.map(|(key, s)| (key, KeyItem::Successor(s.count, s.key)));
    let predicted =
        predictions.map(|(_, _, s, _)| (s.key, KeyItem::Predicted(Score(s.confidence))));
    latest
        .concat(successors)
        .concat(predicted)
        .reduce(|key, input, output| {
            let mut access: Option<(u64, &String, u64)> = None;
            let mut successors: Vec<(u64, &String)> = Vec::new();
            let mut confidence = 0f64;
            for (item, r) in input {
                if *r <= 0 {
                    continue;
                }
                match item {
                    KeyItem::Access(ts, client, session) => {
                        if access.is_none_or(|(t, c, _)| (*ts, client) > (t, c)) {
                            access = Some((*ts, client, *session));
                        }
                    }
                    KeyItem::Successor(count, next) => successors.push((*count, next)),
                    KeyItem::Predicted(c) => confidence = confidence.max(c.0),
                }
            }
            let Some((version, client, session)) = access else {
                return;
            };
            successors.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            output.push((
                KeyIndexEntry {
                    key: key.clone(),
                    version,
                    session: format!("{client}/{session}"),
                    event_keys: successors.into_iter().map(|(_, k)| k.clone()).collect(),
                    confidence: Score(confidence),
                },
                1isize,
            ));
        })
        .map(|(_, entry)| entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::input::Input;
    use rand::{Rng, SeedableRng};
    use shardcast_operators::{
        client_steps_reference, estimated_similarity, prefetch_queue_reference, share_a_band,
        signature,
    };
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    type Rows = BTreeMap<u64, Vec<Decision>>;

    /// Runs the family on `workers` workers and returns its rows at every epoch `0..=last`.
    fn run(
        workers: usize,
        accesses: Vec<(Access, u64)>,
        budget: u64,
        window: u64,
        last: u64,
        config: PredictionConfig,
    ) -> Rows {
        let changes: Arc<Mutex<Vec<(Decision, u64, isize)>>> = Arc::default();
        let sink = changes.clone();
        let accesses = Arc::new(accesses);
        timely::execute(timely::Config::process(workers), move |worker| {
            let (index, peers) = (worker.index(), worker.peers());
            let (sink, config) = (sink.clone(), config.clone());
            let (mut a_in, mut b_in, probe) = worker.dataflow::<u64, _, _>(move |scope| {
                let (a_in, a) = scope.new_collection::<Access, isize>();
                let (b_in, b) = scope.new_collection::<u64, isize>();
                let probe = prediction_family(a, b, window, config)
                    .inspect(move |(d, t, r)| sink.lock().unwrap().push((d.clone(), *t, *r)))
                    .probe()
                    .0;
                (a_in, b_in, probe)
            });
            for (i, (a, t)) in accesses.iter().enumerate() {
                if i % peers == index {
                    a_in.update_at(a.clone(), *t, 1);
                }
            }
            if index == 0 {
                b_in.insert(budget);
            }
            a_in.advance_to(last + 1);
            b_in.advance_to(last + 1);
            a_in.flush();
            b_in.flush();
            worker.step_while(|| probe.less_than(&(last + 1)));
        })
        .expect("timely")
        .join()
        .into_iter()
        .for_each(|r| r.expect("worker"));
        let changes = changes.lock().unwrap();
        (0..=last)
            .map(|epoch| {
                let mut state: BTreeMap<Decision, isize> = BTreeMap::new();
                for (d, t, r) in changes.iter().filter(|(_, t, _)| *t <= epoch) {
                    let _ = t;
                    *state.entry(d.clone()).or_default() += r;
                }
                let rows = state
                    .into_iter()
                    .filter(|(_, r)| *r != 0)
                    .map(|(d, r)| {
                        assert_eq!(r, 1, "{d:?} at epoch {epoch}");
                        d
                    })
                    .collect();
                (epoch, rows)
            })
            .collect()
    }

    /// The successors of every key from `(x, y)` pairs, as the `transitions` operator defines them.
    fn successor_table(
        pairs: impl Iterator<Item = (String, String)>,
        config: &TransitionConfig,
    ) -> BTreeMap<String, Vec<Successor>> {
        let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (x, y) in pairs {
            *counts.entry(x).or_default().entry(y).or_default() += 1;
        }
        counts
            .iter()
            .map(|(x, c)| (x.clone(), config.successors(c)))
            .collect()
    }

    /// The family computed sequentially, epoch by epoch, from its definition.
    fn reference(
        accesses: &[(Access, u64)],
        budget: u64,
        window: u64,
        last: u64,
        config: &PredictionConfig,
    ) -> Rows {
        let timed: Vec<((String, u64, String), u64)> = accesses
            .iter()
            .map(|(a, t)| ((a.client.clone(), a.ts, a.key.clone()), *t))
            .collect();
        let steps = client_steps_reference(&timed, &config.sequence);
        // Accesses grouped by region, keyed by (key, client), as the co-access sequence reads them.
        type RegionAccess = (String, u64, (String, String));
        let by_region: Vec<(RegionAccess, u64)> = accesses
            .iter()
            .map(|(a, t)| {
                (
                    (a.region.clone(), a.ts, (a.key.clone(), a.client.clone())),
                    *t,
                )
            })
            .collect();
        let region_steps = client_steps_reference(&by_region, &config.sequence);
        let in_window = |t: u64, epoch: u64| t <= epoch && epoch < t + window;
        let mut queue_predictions = Vec::new();
        let queue_accesses: Vec<((String, String), u64)> = accesses
            .iter()
            .map(|(a, t)| ((a.client.clone(), a.key.clone()), *t))
            .collect();
        let mut rows = Rows::new();
        for epoch in 0..=last {
            let mut out = Vec::new();
            // Transitions over the window.
            let successors = successor_table(
                steps
                    .iter()
                    .filter(|(_, t)| in_window(*t, epoch))
                    .filter_map(|(s, _)| s.prev.as_ref().map(|prev| (prev.clone(), s.key.clone()))),
                &config.transitions,
            );
            for (x, list) in &successors {
                for s in list {
                    out.push(Decision::Transition {
                        key: x.clone(),
                        successor: s.clone(),
                    });
                }
            }
            // Clients active this epoch, their latest key, and the predictions.
            let mut latest: BTreeMap<String, (u64, String, String)> = BTreeMap::new();
            for (a, t) in accesses.iter().filter(|(_, t)| *t == epoch) {
                let _ = t;
                let v = (a.ts, a.key.clone(), a.region.clone());
                let e = latest.entry(a.client.clone()).or_insert(v.clone());
                if v > *e {
                    *e = v;
                }
            }
            // Co-access across clients of a region.
            let co_successors = successor_table(
                region_steps
                    .iter()
                    .filter(|(_, t)| in_window(*t, epoch))
                    .filter_map(|(s, _)| match &s.prev {
                        Some((px, pc)) if *pc != s.key.1 && *px != s.key.0 => {
                            Some((px.clone(), s.key.0.clone()))
                        }
                        _ => None,
                    }),
                &config.transitions,
            );
            for (x, list) in &co_successors {
                for s in list {
                    out.push(Decision::CoAccess {
                        key: x.clone(),
                        successor: s.clone(),
                    });
                }
            }
            let mut per_region_key: BTreeMap<(String, String), Vec<(Score, Score)>> =
                BTreeMap::new();
            let mut predicted_conf: BTreeMap<String, f64> = BTreeMap::new();
            for (_, key, region) in latest.values() {
                for s in co_successors.get(key).into_iter().flatten() {
                    if s.confidence >= config.threshold {
                        per_region_key
                            .entry((region.clone(), s.key.clone()))
                            .or_default()
                            .push((Score(s.probability), Score(s.confidence)));
                        let c = predicted_conf.entry(s.key.clone()).or_default();
                        *c = c.max(s.confidence);
                    }
                }
            }
            for (client, (_, key, region)) in &latest {
                for s in successors.get(key).into_iter().flatten() {
                    if s.confidence >= config.threshold {
                        per_region_key
                            .entry((region.clone(), s.key.clone()))
                            .or_default()
                            .push((Score(s.probability), Score(s.confidence)));
                        let c = predicted_conf.entry(s.key.clone()).or_default();
                        *c = c.max(s.confidence);
                        let millionths = (s.confidence * 1e6).round() as u64;
                        queue_predictions
                            .push(((client.clone(), s.key.clone(), millionths), epoch));
                    }
                }
            }
            let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
            for (a, t) in accesses {
                if in_window(*t, epoch) {
                    let b = sizes.entry(a.key.clone()).or_default();
                    *b = (*b).max(a.bytes);
                }
            }
            let mut by_region: BTreeMap<String, Vec<PrefetchOrder>> = BTreeMap::new();
            for ((region, key), mut list) in per_region_key {
                let Some(bytes) = sizes.get(&key) else {
                    continue;
                };
                list.sort();
                let miss = list.iter().fold(1.0, |m, (p, c)| m * (1.0 - p.0 * c.0));
                by_region
                    .entry(region.clone())
                    .or_default()
                    .push(PrefetchOrder {
                        region,
                        key,
                        priority: Score(1.0 - miss),
                        probability: list.iter().map(|x| x.0).max().unwrap_or_default(),
                        confidence: list.iter().map(|x| x.1).max().unwrap_or_default(),
                        bytes: *bytes,
                        clients: list.len() as u64,
                    });
            }
            for (_, mut orders) in by_region {
                orders.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.key.cmp(&b.key)));
                let mut left = budget;
                for o in orders {
                    if o.bytes <= left {
                        left -= o.bytes;
                        out.push(Decision::Prefetch(o));
                    }
                }
            }
            // Key index.
            let mut index: BTreeMap<String, (u64, String, u64)> = BTreeMap::new();
            for (s, t) in &steps {
                if in_window(*t, epoch) {
                    let v = (s.ts, s.client.clone(), s.session);
                    let e = index.entry(s.key.clone()).or_insert(v.clone());
                    if (v.0, &v.1) > (e.0, &e.1) {
                        *e = v;
                    }
                }
            }
            for (key, (ts, client, session)) in index {
                let mut next: Vec<&Successor> =
                    successors.get(&key).into_iter().flatten().collect();
                next.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
                out.push(Decision::KeyIndex(KeyIndexEntry {
                    event_keys: next.iter().map(|s| s.key.clone()).collect(),
                    confidence: Score(predicted_conf.get(&key).copied().unwrap_or(0.0)),
                    key,
                    version: ts,
                    session: format!("{client}/{session}"),
                }));
            }
            // Similar messages offered to the consumers active this epoch.
            if let Some(sim) = config.similarity {
                let len = sim.bands * sim.rows;
                let mut similar: BTreeMap<(String, String), u64> = BTreeMap::new();
                let messages: BTreeSet<(String, String)> = accesses
                    .iter()
                    .filter(|(a, t)| in_window(*t, epoch) && !a.payload.is_empty())
                    .map(|(a, _)| (a.key.clone(), a.payload.clone()))
                    .collect();
                for (x, px) in &messages {
                    for (y, py) in &messages {
                        let (sx, sy) = (signature(px, len), signature(py, len));
                        let s = estimated_similarity(&sx, &sy);
                        if x != y && s >= sim.threshold && share_a_band(&sx, &sy, sim.rows) {
                            let e = similar.entry((x.clone(), y.clone())).or_default();
                            *e = (*e).max((s * 1e6).round() as u64);
                        }
                    }
                }
                for ((x, y), s) in &similar {
                    out.push(Decision::Similar {
                        key: x.clone(),
                        other: y.clone(),
                        similarity: *s,
                    });
                }
                let taken: BTreeSet<(String, String)> = accesses
                    .iter()
                    .filter(|(_, t)| in_window(*t, epoch))
                    .map(|(a, _)| (a.client.clone(), a.key.clone()))
                    .collect();
                for (client, (ts, key, _)) in &latest {
                    for ((x, y), s) in &similar {
                        if x == key && !taken.contains(&(client.clone(), y.clone())) {
                            let _ = ts;
                            queue_predictions.push(((client.clone(), y.clone(), *s), epoch));
                        }
                    }
                }
            }
            for row in
                prefetch_queue_reference(&queue_predictions, &queue_accesses, epoch, &config.queue)
            {
                out.push(Decision::Queue(row));
            }
            out.sort();
            rows.insert(epoch, out);
        }
        rows
    }

    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(17);
        for round in 0..10 {
            let window = rng.random_range(1..5);
            let mut config = PredictionConfig::default();
            config.sequence.pair_gap_ms = rng.random_range(5..40);
            config.threshold = [0.0, 0.3, 0.5][round % 3];
            config.queue.timeout_epochs = rng.random_range(1..4);
            config.queue.capacity = rng.random_range(1..4);
            let budget = rng.random_range(50..400);
            let accesses: Vec<(Access, u64)> = (0..rng.random_range(1..150))
                .map(|_| {
                    let ts: u64 = rng.random_range(0..150);
                    let key = format!("k{}", rng.random_range(0..6));
                    let access = Access {
                        ts,
                        bytes: 10 * (1 + key.len() as u64 + rng.random_range(0..3)),
                        key,
                        client: format!("c{}", rng.random_range(0..4)),
                        home: String::new(),
                        region: ["eu", "us"][rng.random_range(0..2)].to_string(),
                        payload: match rng.random_range(0..3) {
                            0 => String::new(),
                            1 => "order shipped to paris by rail".to_string(),
                            _ => format!(
                                "order shipped to paris by {}",
                                ["road", "air"][rng.random_range(0..2)]
                            ),
                        },
                    };
                    (access, ts / 10)
                })
                .collect();
            let last = 18;
            let expected = reference(&accesses, budget, window, last, &config);
            let got = run(1 + round % 2, accesses, budget, window, last, config);
            for epoch in 0..=last {
                assert_eq!(
                    got[&epoch], expected[&epoch],
                    "round {round}, epoch {epoch}"
                );
            }
            assert!(
                expected
                    .values()
                    .any(|rows| rows.iter().any(|d| matches!(d, Decision::Prefetch(_)))),
                "round {round}: the workload should produce prefetch orders"
            );
        }
    }
}
