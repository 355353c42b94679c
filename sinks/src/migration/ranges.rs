//! Set arithmetic on ring ranges, for copies that cover part of a shard and follow it through a
//! split: whether one range holds another, their overlap, and what one has that the other has
//! not.

use shardcast_shardmap::HashRange;

/// Whether `inner` lies within `outer` (an empty `inner` lies anywhere).
pub(crate) fn within(inner: HashRange, outer: HashRange) -> bool {
    inner.lo >= inner.hi || (outer.lo <= inner.lo && inner.hi <= outer.hi)
}

/// The positions in both ranges, `None` if there are none.
pub(crate) fn overlap(a: HashRange, b: HashRange) -> Option<HashRange> {
    let lo = a.lo.max(b.lo);
    let hi = a.hi.min(b.hi);
    (lo < hi).then_some(HashRange { lo, hi })
}

/// The positions of `a` outside `b`: at most one range below `b` and one above it.
pub(crate) fn minus(a: HashRange, b: HashRange) -> Vec<HashRange> {
    if overlap(a, b).is_none() {
        return if a.lo < a.hi { vec![a] } else { Vec::new() };
    }
    let below = HashRange {
        lo: a.lo,
        hi: a.hi.min(b.lo),
    };
    let above = HashRange {
        lo: a.lo.max(b.hi),
        hi: a.hi,
    };
    [below, above].into_iter().filter(|r| r.lo < r.hi).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: u64, hi: u64) -> HashRange {
        HashRange { lo, hi }
    }

    #[test]
    fn overlap_and_difference_partition_a_range() {
        let (a, b) = (r(10, 50), r(20, 30));
        assert!(within(b, a));
        assert!(!within(a, b));
        assert_eq!(overlap(a, b), Some(b));
        assert_eq!(minus(a, b), vec![r(10, 20), r(30, 50)]);
        assert_eq!(minus(b, a), vec![]);
        // Straddling: the part below the cut and the part above it.
        assert_eq!(overlap(r(10, 30), r(20, 60)), Some(r(20, 30)));
        assert_eq!(minus(r(10, 30), r(20, 60)), vec![r(10, 20)]);
        assert_eq!(minus(r(20, 60), r(10, 30)), vec![r(30, 60)]);
        // Disjoint and adjacent ranges share nothing.
        assert_eq!(overlap(r(0, 10), r(10, 20)), None);
        assert_eq!(minus(r(0, 10), r(10, 20)), vec![r(0, 10)]);
        // Every position of the first range is in exactly one of overlap and difference.
        let (x, y) = (r(5, 40), r(12, 90));
        let parts: u64 = minus(x, y).iter().map(HashRange::width).sum::<u64>()
            + overlap(x, y).map_or(0, |o| o.width());
        assert_eq!(parts, x.width());
    }
}
