//! `sliding_window`: keep each update for `width` epochs, then retract it.

use differential_dataflow::difference::Abelian;
use differential_dataflow::VecCollection;

/// Restricts a collection to a sliding event-time window.
///
/// **Computes:** for every update `(d, t, r)` the window holds `d` from epoch `t` (inclusive) to
/// `t + width` (exclusive): the update itself plus a retraction `(d, t + width, -r)`. Anything computed
/// downstream (counts, affinity vectors, decisions) therefore describes the last `width` epochs, and the
/// state of every downstream arrangement stays bounded by what the window holds.
///
/// **Time and frontier:** retractions are emitted under a capability delayed by `width`, so this operator
/// holds the output frontier back at most `width` epochs behind data it has seen; epochs that close are
/// final as soon as the input frontier passes them, like any differential operator.
///
/// # Example
/// ```
/// use differential_dataflow::input::Input;
/// use shardcast_operators::SlidingWindow;
///
/// timely::example(|scope| {
///     let (mut input, accesses) = scope.new_collection::<String, isize>();
///     accesses
///         .sliding_window(3)
///         .count()
///         .inspect(|x| println!("{:?}", x));
///     input.insert("k1".to_string());
///     input.advance_to(1);
/// });
/// ```
pub trait SlidingWindow {
    /// Each update is retracted `width` epochs after it happened.
    fn sliding_window(self, width: u64) -> Self;
}

impl<'scope, D, R> SlidingWindow for VecCollection<'scope, u64, D, R>
where
    D: Clone + 'static,
    R: Abelian + Clone + 'static,
{
    fn sliding_window(self, width: u64) -> Self {
        let expired = self.clone().negate().delay(move |t| t + width);
        self.concat(expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run_collection;
    use rand::{Rng, SeedableRng};

    /// Reference: the multiset of records with `t <= e < t + width`, for each epoch `e`.
    fn window_reference(updates: &[(u32, u64)], width: u64, epoch: u64) -> Vec<(u32, isize)> {
        let mut counts = std::collections::BTreeMap::new();
        for &(d, t) in updates {
            if t <= epoch && epoch < t + width {
                *counts.entry(d).or_insert(0isize) += 1;
            }
        }
        counts.into_iter().collect()
    }

    #[test]
    fn matches_reference_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..20 {
            let width = rng.random_range(1..6);
            let updates: Vec<(u32, u64)> = (0..rng.random_range(1..80))
                .map(|_| (rng.random_range(0..5), rng.random_range(0..15)))
                .collect();
            let last = 25;
            let states = run_collection(updates.clone(), last, move |c| c.sliding_window(width));
            for epoch in 0..=last {
                let expected = window_reference(&updates, width, epoch);
                let got = states.get(&epoch).cloned().unwrap_or_default();
                assert_eq!(got, expected, "round {round}, width {width}, epoch {epoch}");
            }
        }
    }
}
