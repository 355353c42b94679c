//! `affinity_vectors`: each customer's share of accesses per region.

use std::collections::BTreeMap;

use differential_dataflow::{ExchangeData, Hashable, VecCollection};
use serde::{Deserialize, Serialize};

/// A customer's affinity vector over the window: how many of its accesses came from each region, and the
/// customer's static ("home") partition, which seed 001's scoring prefers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Affinity {
    /// The static partition of the customer (its home region); empty when unknown.
    pub home: String,
    /// Accesses by the customer in the window: its load.
    pub total: u64,
    /// Accesses per region, sorted by region name; counts sum to `total`.
    pub regions: Vec<(String, u64)>,
}

impl Affinity {
    /// Builds the vector from per-(home, region) access counts; the home is the most frequent one
    /// (ties broken by name) so one odd record cannot flip it.
    pub fn from_counts<'a>(
        counts: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
    ) -> Option<Self> {
        let mut homes: BTreeMap<&str, u64> = BTreeMap::new();
        let mut regions: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0;
        for (home, region, count) in counts {
            if count == 0 {
                continue;
            }
            *homes.entry(home).or_default() += count;
            *regions.entry(region.to_string()).or_default() += count;
            total += count;
        }
        if total == 0 {
            return None;
        }
        let home = homes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(home, _)| home.to_string())
            .unwrap_or_default();
        Some(Affinity {
            home,
            total,
            regions: regions.into_iter().collect(),
        })
    }

    /// Share of the customer's accesses that came from `region`, in `[0, 1]`.
    pub fn share(&self, region: &str) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.regions
            .binary_search_by(|(r, _)| r.as_str().cmp(region))
            .map(|i| self.regions[i].1 as f64 / self.total as f64)
            .unwrap_or(0.0)
    }
}

/// Computes affinity vectors from `(customer, (home, region))` accesses.
///
/// **Computes:** for each customer present in the input collection, one [`Affinity`] holding its access
/// count per region, its total, and its home. A customer with no accesses (all retracted, e.g. when they
/// slide out of the window) has no row.
///
/// **Time and frontier:** a `reduce`, so each epoch's vector is final when the input frontier passes the
/// epoch; a customer's row changes only in epochs where its accesses changed.
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::AffinityVectors;
///
/// timely::example(|scope| {
///     let (mut input, accesses) = scope.new_collection::<(String, (String, String)), isize>();
///     accesses.affinity_vectors().inspect(|x| println!("{:?}", x));
///     input.insert(("c1".into(), ("eu".into(), "us".into())));
///     input.insert(("c1".into(), ("eu".into(), "eu".into())));
///     input.advance_to(1);
/// });
/// ```
pub trait AffinityVectors<'scope, K> {
    /// One [`Affinity`] per customer.
    fn affinity_vectors(self) -> VecCollection<'scope, u64, (K, Affinity)>;
}

impl<'scope, K> AffinityVectors<'scope, K> for VecCollection<'scope, u64, (K, (String, String))>
where
    K: ExchangeData + Hashable,
{
    fn affinity_vectors(self) -> VecCollection<'scope, u64, (K, Affinity)> {
        self.reduce_named("AffinityVectors", |_customer, input, output| {
            let counts = input
                .iter()
                .filter(|(_, count)| *count > 0)
                .map(|((home, region), count)| (home.as_str(), region.as_str(), *count as u64));
            if let Some(affinity) = Affinity::from_counts(counts) {
                output.push((affinity, 1));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_collection;
    use rand::{Rng, SeedableRng};

    #[test]
    fn share_and_home() {
        let a = Affinity::from_counts([("eu", "us", 3), ("eu", "eu", 1), ("us", "us", 1)]).unwrap();
        assert_eq!(a.home, "eu");
        assert_eq!(a.total, 5);
        assert!((a.share("us") - 0.8).abs() < 1e-12);
        assert_eq!(a.share("ap"), 0.0);
        assert!(Affinity::from_counts([("eu", "us", 0)]).is_none());
    }

    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let names = ["a", "b", "c"];
        for round in 0..10 {
            type Access = (u32, (String, String));
            let updates: Vec<(Access, u64)> = (0..rng.random_range(1..60))
                .map(|_| {
                    let customer = rng.random_range(0..4);
                    let home = names[rng.random_range(0..2)].to_string();
                    let region = names[rng.random_range(0..3)].to_string();
                    ((customer, (home, region)), rng.random_range(0..8))
                })
                .collect();
            let last = 10;
            let states = run_collection(updates.clone(), last, |c| c.affinity_vectors());
            for epoch in 0..=last {
                // Reference: accumulate every access up to `epoch`, group by customer by hand.
                let mut per_customer: BTreeMap<u32, BTreeMap<(String, String), u64>> =
                    BTreeMap::new();
                for ((customer, hr), t) in &updates {
                    if *t <= epoch {
                        *per_customer
                            .entry(*customer)
                            .or_default()
                            .entry(hr.clone())
                            .or_default() += 1;
                    }
                }
                let expected: Vec<((u32, Affinity), isize)> = per_customer
                    .into_iter()
                    .filter_map(|(c, m)| {
                        Affinity::from_counts(
                            m.iter().map(|((h, r), n)| (h.as_str(), r.as_str(), *n)),
                        )
                        .map(|a| ((c, a), 1))
                    })
                    .collect();
                assert_eq!(
                    states.get(&epoch).cloned().unwrap_or_default(),
                    expected,
                    "round {round} epoch {epoch}"
                );
            }
        }
    }
}
