//! `similar_keys`: messages whose payloads are alike, by MinHash over their token sets (seed 003).

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

/// How payload similarity is estimated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimilarityConfig {
    /// MinHash values per signature, `bands · rows`.
    pub bands: usize,
    /// Rows per band: two payloads become candidates when all rows of some band agree, which happens
    /// with probability `1 − (1 − J^rows)^bands` for Jaccard similarity `J`.
    pub rows: usize,
    /// Pairs whose estimated Jaccard similarity is below this are dropped.
    pub threshold: f64,
}

impl Default for SimilarityConfig {
    fn default() -> Self {
        // 16 bands of 2 rows: a pair at J = 0.5 becomes a candidate with probability 0.99.
        SimilarityConfig {
            bands: 16,
            rows: 2,
            threshold: 0.5,
        }
    }
}

/// The lower-cased alphanumeric words of a payload, the set MinHash estimates Jaccard similarity on.
pub fn tokens(payload: &str) -> Vec<String> {
    let mut words: Vec<String> = payload
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    words
}

/// FNV-1a of `bytes` after `seed`: one of the signature's hash functions.
fn hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    // A final mix so that seeds differing in few bits give unrelated orders.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The MinHash signature of a payload: for each of `len` hash functions the least hash of its tokens
/// (all `u64::MAX` for a payload without tokens, which is similar to nothing).
pub fn signature(payload: &str, len: usize) -> Vec<u64> {
    let tokens = tokens(payload);
    (0..len as u64)
        .map(|seed| {
            tokens
                .iter()
                .map(|t| hash(seed, t.as_bytes()))
                .min()
                .unwrap_or(u64::MAX)
        })
        .collect()
}

/// The estimated Jaccard similarity of two signatures: the share of positions where they agree.
pub fn estimated_similarity(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() || a.len() != b.len() || a[0] == u64::MAX || b[0] == u64::MAX {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// The bands of a signature: `(band index, hash of its rows)`.
fn bands(signature: &[u64], rows: usize) -> Vec<(u32, u64)> {
    signature
        .chunks(rows.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            (i as u32, hash(i as u64, &bytes))
        })
        .collect()
}

/// Whether two signatures share a band (locality-sensitive hashing: only such pairs are compared).
pub fn share_a_band(a: &[u64], b: &[u64], rows: usize) -> bool {
    bands(a, rows)
        .iter()
        .zip(bands(b, rows))
        .any(|(x, y)| *x == y)
}

/// Finds messages with similar payloads.
///
/// **Computes:** from `(key, payload)` rows (usually the windowed messages), every ordered pair of
/// distinct keys `(x, (y, similarity))` whose MinHash signatures share a band and whose estimated Jaccard
/// similarity is at least `threshold`. A key with several payloads in the window is compared through
/// each of them and keeps its most similar match per other key.
///
/// **Time and frontier:** signatures are computed per row; candidate pairs come from a differential
/// join on band hashes, so pairs appear and disappear at the epochs where their payloads enter or leave
/// the input, and are final when the input frontier passes the epoch.
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::{SimilarKeys, SimilarityConfig};
///
/// timely::example(|scope| {
///     let (mut input, messages) = scope.new_collection::<(String, String), isize>();
///     messages
///         .similar_keys(SimilarityConfig::default())
///         .inspect(|x| println!("{:?}", x));
///     input.insert(("m1".to_string(), "order shipped to Paris".to_string()));
///     input.insert(("m2".to_string(), "order shipped to Lyon".to_string()));
///     input.advance_to(1);
/// });
/// ```
pub trait SimilarKeys<'scope> {
    /// `(x, (y, similarity in millionths))` for similar keys `x != y`.
    fn similar_keys(
        self,
        config: SimilarityConfig,
    ) -> VecCollection<'scope, u64, (String, (String, u64))>;
}

impl<'scope> SimilarKeys<'scope> for VecCollection<'scope, u64, (String, String)> {
    fn similar_keys(
        self,
        config: SimilarityConfig,
    ) -> VecCollection<'scope, u64, (String, (String, u64))> {
        let len = config.bands.max(1) * config.rows.max(1);
        let rows = config.rows.max(1);
        let threshold = config.threshold;
        let signed = self
            .distinct()
            .map(move |(key, payload)| (key, signature(&payload, len)));
        let by_band = signed.flat_map(move |(key, sig)| {
            // A payload without tokens is similar to nothing: it joins no band.
            let bands = if sig.first() == Some(&u64::MAX) {
                Vec::new()
            } else {
                bands(&sig, rows)
            };
            bands
                .into_iter()
                .map(move |band| (band, (key.clone(), sig.clone())))
        });
        by_band
            .clone()
            .join(by_band)
            .flat_map(move |(_band, ((x, sx), (y, sy)))| {
                let similarity = estimated_similarity(&sx, &sy);
                (x != y && similarity >= threshold)
                    .then(|| ((x, y), (similarity * 1e6).round() as u64))
            })
            .reduce(|_pair, input, output| {
                if let Some((best, _)) = input.iter().rfind(|(_, r)| *r > 0) {
                    output.push((**best, 1isize));
                }
            })
            .map(|((x, y), similarity)| (x, (y, similarity)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_collection_on;
    use std::collections::BTreeMap;

    #[test]
    fn similar_payloads_pair_and_others_do_not() {
        let a = signature("order 17 shipped to paris by rail", 32);
        let b = signature("Order 17 shipped to Paris by road", 32);
        let c = signature("invoice overdue for customer 9", 32);
        assert!(
            estimated_similarity(&a, &b) > 0.4,
            "{}",
            estimated_similarity(&a, &b)
        );
        assert!(estimated_similarity(&a, &c) < 0.2);
        assert_eq!(estimated_similarity(&a, &a), 1.0);
        assert_eq!(
            estimated_similarity(&signature("", 32), &signature("", 32)),
            0.0
        );
    }

    #[test]
    fn matches_reference_on_messages() {
        let config = SimilarityConfig {
            bands: 8,
            rows: 2,
            threshold: 0.3,
        };
        let words = [
            "red", "green", "blue", "order", "ship", "paris", "lyon", "rail",
        ];
        let mut inserts = Vec::new();
        for i in 0..24u64 {
            let payload: Vec<&str> = (0..4)
                .map(|j| words[((i * 7 + j * (i % 3 + 1)) % 8) as usize])
                .collect();
            inserts.push(((format!("m{}", i % 12), payload.join(" ")), i % 5));
        }
        let last = 6;
        let states = run_collection_on(2, inserts.clone(), last, move |c| c.similar_keys(config));
        let len = config.bands * config.rows;
        for epoch in 0..=last {
            let live: Vec<&(String, String)> = inserts
                .iter()
                .filter(|(_, t)| *t <= epoch)
                .map(|(m, _)| m)
                .collect();
            let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
            for (x, px) in &live {
                for (y, py) in &live {
                    let (sx, sy) = (signature(px, len), signature(py, len));
                    let s = estimated_similarity(&sx, &sy);
                    if x != y && s >= config.threshold && share_a_band(&sx, &sy, config.rows) {
                        let e = expected.entry((x.clone(), y.clone())).or_default();
                        *e = (*e).max((s * 1e6).round() as u64);
                    }
                }
            }
            type Pair = (String, (String, u64));
            let expected: Vec<(Pair, isize)> = expected
                .into_iter()
                .map(|((x, y), s)| ((x, (y, s)), 1))
                .collect();
            assert_eq!(states[&epoch], expected, "epoch {epoch}");
        }
        assert!(
            !states[&last].is_empty(),
            "the workload should have similar pairs"
        );
    }
}
