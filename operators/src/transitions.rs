//! `transitions`: "after X comes Y" with a probability and a confidence, from observed pairs.

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

/// How observed pairs become predictions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransitionConfig {
    /// Successors kept per key, the most probable first.
    pub top_k: usize,
    /// Pseudo-count that shrinks the confidence of rarely seen keys: `confidence = probability ·
    /// total / (total + prior)`, so one observation of X→Y gives probability 1 but confidence 1/(1+prior).
    pub prior: f64,
    /// Pairs seen fewer times than this in the window are not predictions.
    pub min_count: u64,
}

impl Default for TransitionConfig {
    fn default() -> Self {
        TransitionConfig {
            top_k: 4,
            prior: 1.0,
            min_count: 1,
        }
    }
}

/// One predicted successor of a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Successor {
    /// The key expected next.
    pub key: String,
    /// Times "after X comes `key`" was seen in the window.
    pub count: u64,
    /// Times anything came after X in the window.
    pub total: u64,
    /// `count / total`.
    pub probability: f64,
    /// The probability shrunk by the support: `probability · total / (total + prior)`.
    pub confidence: f64,
}

// Floats are compared by their bits so rows can live in differential collections; the values are
// computed deterministically from integer counts, so equal rows have equal bits.
impl Eq for Successor {}
impl PartialOrd for Successor {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Successor {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.key, self.count, self.total).cmp(&(&other.key, other.count, other.total))
    }
}
impl std::hash::Hash for Successor {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.key, self.count, self.total).hash(state);
    }
}

impl TransitionConfig {
    /// The successors of one key from the counts of its pairs, in prediction order: highest count first,
    /// ties by key, at most `top_k`, each seen at least `min_count` times.
    pub fn successors(&self, counts: &BTreeMap<String, u64>) -> Vec<Successor> {
        let total: u64 = counts.values().sum();
        if total == 0 {
            return Vec::new();
        }
        let mut ranked: Vec<(&String, u64)> = counts
            .iter()
            .filter(|(_, n)| **n >= self.min_count.max(1))
            .map(|(k, n)| (k, *n))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        ranked.truncate(self.top_k);
        ranked
            .into_iter()
            .map(|(key, count)| {
                let probability = count as f64 / total as f64;
                Successor {
                    key: key.clone(),
                    count,
                    total,
                    probability,
                    confidence: probability * total as f64 / (total as f64 + self.prior),
                }
            })
            .collect()
    }
}

/// Predicts successors from observed pairs.
///
/// **Computes:** from a collection of pairs `(x, y)` ("after `x` came `y`", usually windowed), for every
/// `x` its [`TransitionConfig::successors`]: the most frequent `y` with their probability and confidence.
///
/// **Time and frontier:** a `reduce` keyed by `x`: a key's successors change at the epochs where its pairs
/// change, and are final when the input frontier passes the epoch.
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::{TransitionConfig, Transitions};
///
/// timely::example(|scope| {
///     let (mut input, pairs) = scope.new_collection::<(String, String), isize>();
///     pairs
///         .transitions(TransitionConfig::default())
///         .inspect(|x| println!("{:?}", x));
///     input.insert(("/index.html".to_string(), "/logo.gif".to_string()));
///     input.advance_to(1);
/// });
/// ```
pub trait Transitions<'scope> {
    /// `(x, successor)` rows.
    fn transitions(
        self,
        config: TransitionConfig,
    ) -> VecCollection<'scope, u64, (String, Successor)>;
}

impl<'scope> Transitions<'scope> for VecCollection<'scope, u64, (String, String)> {
    fn transitions(
        self,
        config: TransitionConfig,
    ) -> VecCollection<'scope, u64, (String, Successor)> {
        self.reduce(move |_x, input, output| {
            let counts: BTreeMap<String, u64> = input
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(y, n)| ((*y).clone(), *n as u64))
                .collect();
            for successor in config.successors(&counts) {
                output.push((successor, 1));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_collection_on;
    use crate::SlidingWindow;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for round in 0..12 {
            let window = rng.random_range(1..5);
            let config = TransitionConfig {
                top_k: rng.random_range(1..4),
                prior: 1.0,
                min_count: rng.random_range(1..3),
            };
            let pairs: Vec<((String, String), u64)> = (0..rng.random_range(1..100))
                .map(|_| {
                    let x = format!("k{}", rng.random_range(0..4));
                    let y = format!("k{}", rng.random_range(0..5));
                    ((x, y), rng.random_range(0..12))
                })
                .collect();
            let last = 16;
            let states = run_collection_on(1 + round % 2, pairs.clone(), last, move |c| {
                c.sliding_window(window).transitions(config)
            });
            for epoch in 0..=last {
                let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
                for ((x, y), t) in &pairs {
                    if *t <= epoch && epoch < t + window {
                        *counts
                            .entry(x.clone())
                            .or_default()
                            .entry(y.clone())
                            .or_default() += 1;
                    }
                }
                let mut expected: Vec<((String, Successor), isize)> = counts
                    .iter()
                    .flat_map(|(x, c)| {
                        config
                            .successors(c)
                            .into_iter()
                            .map(move |s| ((x.clone(), s), 1))
                    })
                    .collect();
                expected.sort();
                let got = states.get(&epoch).cloned().unwrap_or_default();
                assert_eq!(got, expected, "round {round}, epoch {epoch}");
            }
        }
    }

    #[test]
    fn confidence_grows_with_support() {
        let config = TransitionConfig::default();
        let once = config.successors(&BTreeMap::from([("y".to_string(), 1)]));
        let often = config.successors(&BTreeMap::from([("y".to_string(), 9)]));
        assert_eq!(once[0].probability, 1.0);
        assert!(once[0].confidence < often[0].confidence);
        assert!((often[0].confidence - 0.9).abs() < 1e-12);
    }
}
