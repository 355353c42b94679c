//! Where to split a shard: at the load-weighted median of its keys.

use crate::HashRange;

/// A split of a shard's range at `at`, with the load that falls on each side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitPoint {
    /// The first ring position of the upper half.
    pub at: u64,
    /// Load of the keys below `at`.
    pub left_load: f64,
    /// Load of the keys from `at` up.
    pub right_load: f64,
    /// Whether one key carries more than half the load: the split then cuts right beside it, on
    /// the side that leaves it with less company, so that a later split can isolate it.
    pub isolates_key: bool,
}

impl SplitPoint {
    /// The load of the busier half.
    pub fn busier(&self) -> f64 {
        self.left_load.max(self.right_load)
    }

    /// The share of the load below `at` (half when there is no load).
    pub fn left_share(&self) -> f64 {
        let total = self.left_load + self.right_load;
        if total > 0.0 {
            self.left_load / total
        } else {
            0.5
        }
    }
}

/// The split of `range` that leaves the busier half as light as possible, given the loads of its
/// keys (`(ring position, load)`, sorted by position; keys outside `range` are ignored).
///
/// The load-weighted median key `m` is the first whose cumulative load reaches half the total; the
/// best cut is right before or right after it, whichever gives the lighter busier half (a cut
/// anywhere else leaves more than half on one side). Neither half may be narrower than `min_width`
/// positions: a cut closer to an end is moved to that bound. `None` when no cut leaves load on both
/// sides (a single loaded key, no load at all) or the range is too narrow to cut.
///
/// ```
/// use shardcast_shardmap::{split_point, HashRange};
/// let range = HashRange { lo: 0, hi: 1000 };
/// let p = split_point(&[(100, 1.0), (200, 1.0), (300, 1.0), (400, 1.0)], range, 1).unwrap();
/// assert_eq!((p.left_load, p.right_load), (2.0, 2.0));
/// // A key with most of the load is cut off from the larger side.
/// let p = split_point(&[(100, 1.0), (200, 9.0), (300, 3.0)], range, 1).unwrap();
/// assert_eq!((p.at, p.left_load, p.right_load, p.isolates_key), (201, 10.0, 3.0, true));
/// ```
pub fn split_point(keys: &[(u32, f64)], range: HashRange, min_width: u64) -> Option<SplitPoint> {
    let keys = crate::load_history::positions_in(keys, range);
    let keys: Vec<(u32, f64)> = keys
        .iter()
        .copied()
        .filter(|(_, l)| l.is_finite() && *l > 0.0)
        .collect();
    let total: f64 = keys.iter().map(|(_, l)| l).sum();
    let min_width = min_width.max(1);
    let (first, last) = (range.lo + min_width, range.hi.checked_sub(min_width)?);
    if total <= 0.0 || first > last {
        return None;
    }
    let mut below = 0.0;
    let mut median = keys.len() - 1;
    for (i, (_, l)) in keys.iter().enumerate() {
        if below + l >= total / 2.0 {
            median = i;
            break;
        }
        below += l;
    }
    let (position, load) = keys[median];
    let load_below = |at: u64| -> f64 {
        keys.iter()
            .take_while(|(p, _)| u64::from(*p) < at)
            .map(|(_, l)| l)
            .sum()
    };
    let candidates = [u64::from(position), u64::from(position) + 1];
    candidates
        .into_iter()
        .map(|at| at.clamp(first, last))
        .map(|at| {
            let left = load_below(at);
            SplitPoint {
                at,
                left_load: left,
                right_load: total - left,
                isolates_key: load > total / 2.0,
            }
        })
        .filter(|p| p.left_load > 0.0 && p.right_load > 0.0)
        .min_by(|a, b| a.busier().total_cmp(&b.busier()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_ranges_and_lone_keys_do_not_split() {
        let range = HashRange { lo: 0, hi: 100 };
        assert_eq!(split_point(&[(50, 5.0)], range, 1), None);
        assert_eq!(split_point(&[], range, 1), None);
        assert_eq!(split_point(&[(10, 1.0), (90, 1.0)], range, 60), None);
        // min_width moves the cut but keeps it useful.
        let p = split_point(&[(10, 1.0), (90, 1.0)], range, 20).unwrap();
        assert_eq!(p.at, 20);
    }
}
