//! `prefetch_queue`: a prefetch queue per consumer (seed 003), ordered by confidence, with invalidation.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use differential_dataflow::{AsCollection, Hashable, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::CapabilitySet;
use timely::progress::Antichain;

/// Limits of the queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// An entry not consumed within this many epochs of being enqueued is invalidated.
    pub timeout_epochs: u64,
    /// Entries kept per consumer; beyond it the least confident are invalidated.
    pub capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            timeout_epochs: 10,
            capacity: 16,
        }
    }
}

/// A change to a consumer's queue or counters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QueueRow {
    /// A queued key. `confidence_millionths` is the prediction confidence in millionths, so rows order
    /// and compare exactly.
    Entry {
        /// The consumer.
        consumer: String,
        /// The predicted key.
        key: String,
        /// Confidence, in millionths.
        confidence_millionths: u64,
        /// Epoch it was (last) enqueued.
        enqueued: u64,
        /// First epoch at which it is invalidated unless consumed.
        expires: u64,
    },
    /// A consumer's counters since the job started.
    Counters {
        /// The consumer.
        consumer: String,
        /// Queued keys the consumer then accessed.
        consumed: u64,
        /// Queued keys dropped because they timed out or the queue was full.
        invalidated: u64,
    },
}

/// One consumer's queue.
#[derive(Clone, Debug, Default)]
struct Queue {
    /// key -> (confidence millionths, enqueued)
    entries: BTreeMap<String, (u64, u64)>,
    consumed: u64,
    invalidated: u64,
}

impl Queue {
    fn rows(&self, consumer: &str, timeout: u64) -> Vec<QueueRow> {
        let mut rows: Vec<QueueRow> = self
            .entries
            .iter()
            .map(|(key, (c, e))| QueueRow::Entry {
                consumer: consumer.to_string(),
                key: key.clone(),
                confidence_millionths: *c,
                enqueued: *e,
                expires: e + timeout,
            })
            .collect();
        if self.consumed + self.invalidated > 0 {
            rows.push(QueueRow::Counters {
                consumer: consumer.to_string(),
                consumed: self.consumed,
                invalidated: self.invalidated,
            });
        }
        rows
    }

    /// Applies one epoch: consumption first, then timeouts, then new predictions, then the capacity.
    fn apply(
        &mut self,
        epoch: u64,
        accessed: &BTreeSet<String>,
        predicted: &BTreeMap<String, u64>,
        config: &QueueConfig,
    ) {
        for key in accessed {
            if self.entries.remove(key).is_some() {
                self.consumed += 1;
            }
        }
        let before = self.entries.len();
        self.entries
            .retain(|_, (_, enqueued)| *enqueued + config.timeout_epochs > epoch);
        self.invalidated += (before - self.entries.len()) as u64;
        for (key, confidence) in predicted {
            // A key the consumer just accessed is not queued for it again in the same epoch.
            if !accessed.contains(key) {
                self.entries.insert(key.clone(), (*confidence, epoch));
            }
        }
        while self.entries.len() > config.capacity {
            // Lowest confidence, then oldest, then the greatest key goes first.
            let victim = self
                .entries
                .iter()
                .min_by(|a, b| {
                    (a.1 .0, a.1 .1)
                        .cmp(&(b.1 .0, b.1 .1))
                        .then_with(|| b.0.cmp(a.0))
                })
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    self.entries.remove(&k);
                    self.invalidated += 1;
                }
                None => break,
            }
        }
    }
}

/// A consumer's input at one epoch: what it accessed and what is predicted for it.
type Input = (BTreeSet<String>, BTreeMap<String, u64>);

/// Keeps one prefetch queue per consumer.
///
/// **Computes:** from predictions `(consumer, key, confidence_millionths, made_at)` (an insert at epoch `t`
/// enqueues the key for the consumer at `t`, or refreshes it; `made_at` is when the access the prediction
/// follows from happened, so a prediction repeated by a later access is a new insert; retractions are ignored, since an entry leaves the queue
/// only by being consumed or invalidated) and accesses `(consumer, key)` (an access consumes a queued
/// key), the queue of every consumer as [`QueueRow::Entry`] rows plus its [`QueueRow::Counters`]. At each
/// epoch: entries the consumer accessed are consumed, entries older than `timeout_epochs` are invalidated,
/// new predictions are enqueued, and beyond `capacity` the least confident entries are invalidated.
///
/// **Time and frontier:** both inputs are exchanged by consumer; epoch `t` is applied once both input
/// frontiers have passed it, and its row changes are emitted at `t`. Queues waiting only for a timeout are
/// revisited at the epoch the timeout falls due, which holds a capability for that epoch. The queues are
/// the operator's state (what a checkpoint must hold).
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::{PrefetchQueue, QueueConfig};
///
/// timely::example(|scope| {
///     let (mut predictions, p) = scope.new_collection::<(String, String, u64, u64), isize>();
///     let (mut accesses, a) = scope.new_collection::<(String, String), isize>();
///     p.prefetch_queue(a, QueueConfig::default()).inspect(|x| println!("{:?}", x));
///     predictions.insert(("consumer-1".to_string(), "msg-7".to_string(), 800_000, 0));
///     predictions.advance_to(1);
///     accesses.advance_to(1);
/// });
/// ```
pub trait PrefetchQueue<'scope> {
    /// The queues, as rows.
    fn prefetch_queue(
        self,
        accesses: VecCollection<'scope, u64, (String, String)>,
        config: QueueConfig,
    ) -> VecCollection<'scope, u64, QueueRow>;
}

impl<'scope> PrefetchQueue<'scope> for VecCollection<'scope, u64, (String, String, u64, u64)> {
    fn prefetch_queue(
        self,
        accesses: VecCollection<'scope, u64, (String, String)>,
        config: QueueConfig,
    ) -> VecCollection<'scope, u64, QueueRow> {
        self.inner
            .binary_frontier(
                accesses.inner,
                Exchange::new(
                    |((c, _, _, _), _, _): &((String, String, u64, u64), u64, isize)| c.hashed(),
                ),
                Exchange::new(|((c, _), _, _): &((String, String), u64, isize)| c.hashed()),
                "PrefetchQueue",
                move |capability, _info| {
                    let mut caps = CapabilitySet::<u64>::from_elem(capability);
                    let mut pending: BTreeMap<u64, HashMap<String, Input>> = BTreeMap::new();
                    // Predictions by epoch, consolidated before use: a join upstream may send an
                    // insert and its retraction in the same epoch, which must cancel out.
                    type Prediction = (String, String, u64, u64);
                    let mut predictions: BTreeMap<u64, HashMap<Prediction, isize>> =
                        BTreeMap::new();
                    // Epochs at which some consumer's oldest entry times out.
                    let mut due: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
                    let mut queues: HashMap<String, Queue> = HashMap::new();
                    move |(input1, frontier1), (input2, frontier2), output| {
                        input1.for_each_stamp(|_cap, data| {
                            for batch in data {
                                for (prediction, t, r) in batch.drain(..) {
                                    *predictions
                                        .entry(t)
                                        .or_default()
                                        .entry(prediction)
                                        .or_default() += r;
                                }
                            }
                        });
                        input2.for_each_stamp(|_cap, data| {
                            for batch in data {
                                for ((c, k), t, r) in batch.drain(..) {
                                    if r > 0 {
                                        pending
                                            .entry(t)
                                            .or_default()
                                            .entry(c)
                                            .or_default()
                                            .0
                                            .insert(k);
                                    }
                                }
                            }
                        });
                        let (f1, f2) = (frontier1.frontier(), frontier2.frontier());
                        loop {
                            // Consolidated predictions of epochs both inputs have passed join the
                            // epoch's pending input.
                            while let Some(entry) = predictions.first_entry() {
                                let t = *entry.key();
                                if f1.less_equal(&t) || f2.less_equal(&t) {
                                    break;
                                }
                                for ((c, k, conf, _made_at), r) in entry.remove() {
                                    if r > 0 {
                                        let slot =
                                            pending.entry(t).or_default().entry(c).or_default();
                                        let best = slot.1.entry(k).or_default();
                                        *best = (*best).max(conf);
                                    }
                                }
                            }
                            let next_pending = pending.keys().next().copied();
                            let next_due = due.keys().next().copied();
                            let Some(t) = [next_pending, next_due].into_iter().flatten().min()
                            else {
                                break;
                            };
                            if f1.less_equal(&t) || f2.less_equal(&t) {
                                break;
                            }
                            let mut inputs = pending.remove(&t).unwrap_or_default();
                            for consumer in due.remove(&t).unwrap_or_default() {
                                inputs.entry(consumer).or_default();
                            }
                            let cap = caps.delayed(&t);
                            let mut session = output.session(&cap);
                            let mut touched: Vec<(String, Input)> = inputs.into_iter().collect();
                            touched.sort_by(|a, b| a.0.cmp(&b.0));
                            for (consumer, (accessed, predicted)) in touched {
                                let queue = queues.entry(consumer.clone()).or_default();
                                let before = queue.rows(&consumer, config.timeout_epochs);
                                queue.apply(t, &accessed, &predicted, &config);
                                let after = queue.rows(&consumer, config.timeout_epochs);
                                for row in before.iter().filter(|r| !after.contains(r)) {
                                    session.give((row.clone(), t, -1isize));
                                }
                                for row in after.iter().filter(|r| !before.contains(r)) {
                                    session.give((row.clone(), t, 1isize));
                                }
                                if let Some(oldest) = queue.entries.values().map(|(_, e)| *e).min()
                                {
                                    due.entry(oldest + config.timeout_epochs)
                                        .or_default()
                                        .insert(consumer.clone());
                                }
                            }
                        }
                        // Hold a capability for the earliest epoch that may still change a queue.
                        let mut lower = Antichain::new();
                        for t in pending
                            .keys()
                            .next()
                            .into_iter()
                            .chain(due.keys().next())
                            .chain(predictions.keys().next())
                        {
                            lower.insert(*t);
                        }
                        for t in f1.iter().chain(f2.iter()) {
                            lower.insert(*t);
                        }
                        crate::capabilities::hold_from(&mut caps, lower.iter().copied().min());
                    }
                },
            )
            .as_collection()
    }
}

/// The plain sequential version: applies every epoch in order to every consumer and returns the rows
/// at the end of epoch `last`. Predictions and accesses are `(consumer, key[, confidence]), epoch)`.
pub fn prefetch_queue_reference(
    predictions: &[((String, String, u64), u64)],
    accesses: &[((String, String), u64)],
    last: u64,
    config: &QueueConfig,
) -> Vec<QueueRow> {
    let mut queues: BTreeMap<String, Queue> = BTreeMap::new();
    for epoch in 0..=last {
        let mut inputs: BTreeMap<String, Input> = BTreeMap::new();
        for ((c, k, conf), t) in predictions {
            if *t == epoch {
                let best = inputs
                    .entry(c.clone())
                    .or_default()
                    .1
                    .entry(k.clone())
                    .or_default();
                *best = (*best).max(*conf);
            }
        }
        for ((c, k), t) in accesses {
            if *t == epoch {
                inputs.entry(c.clone()).or_default().0.insert(k.clone());
            }
        }
        for c in queues.keys() {
            inputs.entry(c.clone()).or_default();
        }
        for (c, (accessed, predicted)) in inputs {
            queues
                .entry(c)
                .or_default()
                .apply(epoch, &accessed, &predicted, config);
        }
    }
    let mut rows: Vec<QueueRow> = queues
        .iter()
        .flat_map(|(c, q)| q.rows(c, config.timeout_epochs))
        .collect();
    rows.sort();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::input::Input as _;
    use rand::{Rng, SeedableRng};
    use std::sync::{Arc, Mutex};

    type Predictions = Vec<((String, String, u64), u64)>;
    type Accesses = Vec<((String, String), u64)>;

    fn run(
        workers: usize,
        predictions: Predictions,
        accesses: Accesses,
        last: u64,
        config: QueueConfig,
    ) -> Vec<QueueRow> {
        let out: Arc<Mutex<BTreeMap<QueueRow, isize>>> = Arc::default();
        let sink = out.clone();
        let shared = Arc::new(Mutex::new((predictions, accesses)));
        timely::execute(timely::Config::process(workers), move |worker| {
            let (index, peers) = (worker.index(), worker.peers());
            let sink = sink.clone();
            let (mut p_in, mut a_in, probe) = worker.dataflow::<u64, _, _>(move |scope| {
                let (p_in, p) = scope.new_collection::<(String, String, u64, u64), isize>();
                let (a_in, a) = scope.new_collection::<(String, String), isize>();
                let probe = p
                    .prefetch_queue(a, config)
                    .inspect(move |(row, t, r)| {
                        if *t <= last {
                            *sink.lock().unwrap().entry(row.clone()).or_default() += r;
                        }
                    })
                    .probe()
                    .0;
                (p_in, a_in, probe)
            });
            let (predictions, accesses) = shared.lock().unwrap().clone();
            for (i, ((c, k, conf), t)) in predictions.into_iter().enumerate() {
                if i % peers == index {
                    p_in.update_at((c, k, conf, i as u64), t, 1);
                }
            }
            for (i, (d, t)) in accesses.into_iter().enumerate() {
                if i % peers == index {
                    a_in.update_at(d, t, 1);
                }
            }
            p_in.advance_to(last + 1);
            a_in.advance_to(last + 1);
            p_in.flush();
            a_in.flush();
            worker.step_while(|| probe.less_than(&(last + 1)));
        })
        .expect("timely")
        .join()
        .into_iter()
        .for_each(|r| r.expect("worker"));
        let rows = out.lock().unwrap();
        rows.iter()
            .filter(|(_, r)| **r != 0)
            .map(|(row, r)| {
                assert_eq!(*r, 1, "{row:?}");
                row.clone()
            })
            .collect()
    }

    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for round in 0..12 {
            let config = QueueConfig {
                timeout_epochs: rng.random_range(1..5),
                capacity: rng.random_range(1..4),
            };
            let predictions: Predictions = (0..rng.random_range(0..60))
                .map(|_| {
                    let c = format!("c{}", rng.random_range(0..3));
                    let k = format!("k{}", rng.random_range(0..6));
                    (
                        (c, k, rng.random_range(0..4) * 250_000),
                        rng.random_range(0..15),
                    )
                })
                .collect();
            let accesses: Accesses = (0..rng.random_range(0..60))
                .map(|_| {
                    let c = format!("c{}", rng.random_range(0..3));
                    let k = format!("k{}", rng.random_range(0..6));
                    ((c, k), rng.random_range(0..15))
                })
                .collect();
            let last = 20;
            let expected = prefetch_queue_reference(&predictions, &accesses, last, &config);
            let got = run(1 + round % 2, predictions, accesses, last, config);
            assert_eq!(got, expected, "round {round}");
        }
    }

    #[test]
    fn consumed_and_timed_out_entries_leave() {
        let config = QueueConfig {
            timeout_epochs: 2,
            capacity: 8,
        };
        let p = |k: &str, t| (("c".to_string(), k.to_string(), 500_000), t);
        let a = |k: &str, t| (("c".to_string(), k.to_string()), t);
        let rows = prefetch_queue_reference(&[p("x", 0), p("y", 0)], &[a("x", 1)], 5, &config);
        assert_eq!(
            rows,
            vec![QueueRow::Counters {
                consumer: "c".into(),
                consumed: 1,
                invalidated: 1
            }]
        );
    }
}
