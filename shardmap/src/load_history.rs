//! The load the balancer remembers: per-shard histories that survive splits and merges, the key
//! loads split points are chosen from, and window totals. Memory is bounded by the configuration,
//! never by the length of the stream.

use std::collections::{BTreeMap, HashMap};

use crate::{HashRange, ShardId, ShardMap, RING};

/// Load history of the ring, kept three ways:
///
/// - per shard, the last `history` window loads (what the forecaster reads), exact from the window
///   the shard got its range on;
/// - per bucket of the ring (`2^bucket_bits` equal buckets), the same windows, so that a split can
///   give each half the history of its own range and not half of its parent's: a half that holds the
///   ramp inherits the ramp;
/// - per key (ring position), the latest window's loads (exact, for loads moved and keys counted)
///   and a decayed sum over recent windows (for split points), at most `max_keys` of them.
#[derive(Clone, Debug)]
pub struct LoadHistory {
    history: usize,
    bucket_bits: u32,
    /// Slot-major: window slot `s` holds buckets `s·n .. (s+1)·n`, so finishing a window clears one
    /// contiguous slice.
    buckets: Vec<f32>,
    /// Windows finished so far; the slot of the latest is `(windows − 1) mod history`.
    windows: u64,
    totals: Vec<f64>,
    shards: HashMap<ShardId, Vec<f64>>,
    pending: HashMap<u32, f64>,
    latest: Vec<(u32, f64)>,
    latest_total: f64,
    decayed: BTreeMap<u32, f64>,
    key_decay: f64,
    max_keys: usize,
}

impl LoadHistory {
    /// An empty history for the shards of `map`.
    pub fn new(
        map: &ShardMap,
        history: usize,
        bucket_bits: u32,
        key_decay: f64,
        max_keys: usize,
    ) -> Self {
        let history = history.max(1);
        let bucket_bits = bucket_bits.min(crate::balance_config::MAX_BUCKET_BITS);
        LoadHistory {
            history,
            bucket_bits,
            buckets: vec![0.0; history << bucket_bits],
            windows: 0,
            totals: Vec::new(),
            shards: map.shards().map(|s| (s.id, Vec::new())).collect(),
            pending: HashMap::new(),
            latest: Vec::new(),
            latest_total: 0.0,
            decayed: BTreeMap::new(),
            key_decay: key_decay.clamp(0.0, 0.999),
            max_keys: max_keys.max(1),
        }
    }

    /// Adds `load` at ring position `position` to the window being filled.
    pub fn add(&mut self, position: u32, load: f64) {
        *self.pending.entry(position).or_insert(0.0) += load;
    }

    /// Windows finished so far.
    pub fn windows(&self) -> u64 {
        self.windows
    }

    /// The load history of shard `id`, oldest first (empty for an unknown shard).
    pub fn shard(&self, id: ShardId) -> &[f64] {
        self.shards.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Total load of the remembered windows, oldest first (aligned with the end of every shard's
    /// history).
    pub fn totals(&self) -> &[f64] {
        &self.totals
    }

    /// Total load of the latest finished window.
    pub fn latest_total(&self) -> f64 {
        self.latest_total
    }

    /// The latest finished window's loads per ring position, in ring order.
    pub fn latest(&self) -> &[(u32, f64)] {
        &self.latest
    }

    /// Load and number of keys of the latest window within `range`.
    pub fn latest_in(&self, range: HashRange) -> (f64, u64) {
        let slice = positions_in(&self.latest, range);
        (slice.iter().map(|(_, l)| l).sum(), slice.len() as u64)
    }

    /// Decayed key loads within `range`, in ring order: what split points are chosen from.
    pub fn split_keys(&self, range: HashRange) -> Vec<(u32, f64)> {
        let hi = range.hi.min(RING);
        if range.lo >= hi {
            return Vec::new();
        }
        let lo = range.lo as u32;
        let last = (hi - 1) as u32;
        self.decayed
            .range(lo..=last)
            .map(|(p, l)| (*p, *l))
            .collect()
    }

    /// Numbers held (bucket cells, shard and total histories, keys): bounded by the configuration
    /// and the keys of one window.
    pub fn footprint(&self) -> usize {
        self.buckets.len()
            + self.totals.len()
            + self.shards.values().map(Vec::len).sum::<usize>()
            + self.latest.len()
            + self.decayed.len()
            + self.pending.len()
    }

    /// Closes the window being filled: its loads become the latest window, and every shard of `map`
    /// gets its load appended.
    pub fn finish(&mut self, map: &ShardMap) {
        let mut latest: Vec<(u32, f64)> = self.pending.drain().collect();
        latest.sort_unstable_by_key(|(p, _)| *p);
        let slot = self.slot(self.windows);
        let n = 1usize << self.bucket_bits;
        let column = &mut self.buckets[slot * n..(slot + 1) * n];
        column.fill(0.0);
        for &(p, l) in &latest {
            column[(u64::from(p) >> (32 - self.bucket_bits)) as usize] += l as f32;
        }
        self.latest_total = latest.iter().map(|(_, l)| l).sum();
        push_bounded(&mut self.totals, self.latest_total, self.history);
        let mut keys = latest.iter().peekable();
        for shard in map.shards() {
            let mut load = 0.0;
            while let Some((p, l)) = keys.peek() {
                if u64::from(*p) >= shard.range.hi {
                    break;
                }
                load += l;
                keys.next();
            }
            push_bounded(self.shards.entry(shard.id).or_default(), load, self.history);
        }
        self.shards.retain(|id, _| map.get(*id).is_some());
        self.decay_keys(&latest);
        self.latest = latest;
        self.windows += 1;
    }

    /// Finishes `count` windows in which nothing was observed (at most `history` are recorded: older
    /// ones would all be zeros anyway).
    pub fn finish_empty(&mut self, count: u64, map: &ShardMap) {
        let count = count.min(self.history as u64);
        if count == 0 {
            return;
        }
        for _ in 0..count {
            self.pending.clear();
            self.finish(map);
        }
    }

    /// Gives the halves `left` (`lo..at`) and `right` (`at..hi`) of `parent` histories of their own:
    /// each window of the parent's history is shared in the proportion of the bucket loads of the
    /// two ranges in that window (the latest window: of the exact key loads), or of their widths
    /// where those are zero.
    pub fn split(
        &mut self,
        parent: ShardId,
        range: HashRange,
        at: u64,
        left: ShardId,
        right: ShardId,
    ) {
        let history = self.shards.remove(&parent).unwrap_or_default();
        let len = history.len();
        let width_share = (at - range.lo) as f64 / range.width().max(1) as f64;
        let mut lower = Vec::with_capacity(len);
        let mut upper = Vec::with_capacity(len);
        for (i, load) in history.iter().enumerate() {
            let age = (len - 1 - i) as u64;
            let (l, r) = if age == 0 {
                (
                    self.latest_in(HashRange {
                        lo: range.lo,
                        hi: at,
                    })
                    .0,
                    self.latest_in(HashRange {
                        lo: at,
                        hi: range.hi,
                    })
                    .0,
                )
            } else if age < self.windows {
                let slot = self.slot(self.windows - 1 - age);
                (
                    self.bucket_sum(slot, range.lo, at),
                    self.bucket_sum(slot, at, range.hi),
                )
            } else {
                (0.0, 0.0)
            };
            let share = if l + r > 0.0 {
                l / (l + r)
            } else {
                width_share
            };
            lower.push(load * share);
            upper.push(load * (1.0 - share));
        }
        self.shards.insert(left, lower);
        self.shards.insert(right, upper);
    }

    /// The history of `into` is the sum of those of `left` and `right`, window by window.
    pub fn merge(&mut self, left: ShardId, right: ShardId, into: ShardId) {
        let a = self.shards.remove(&left).unwrap_or_default();
        let b = self.shards.remove(&right).unwrap_or_default();
        let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
        let offset = long.len() - short.len();
        let mut merged = long;
        for (i, v) in short.into_iter().enumerate() {
            merged[offset + i] += v;
        }
        self.shards.insert(into, merged);
    }

    fn slot(&self, window: u64) -> usize {
        (window % self.history as u64) as usize
    }

    /// Load of ring positions `lo..hi` in window slot `slot`; a bucket cut by a bound counts in
    /// proportion to the width inside.
    fn bucket_sum(&self, slot: usize, lo: u64, hi: u64) -> f64 {
        if lo >= hi {
            return 0.0;
        }
        let n = 1usize << self.bucket_bits;
        let width = RING >> self.bucket_bits;
        let column = &self.buckets[slot * n..(slot + 1) * n];
        let first = (lo / width) as usize;
        let last = ((hi - 1) / width) as usize;
        let mut sum = 0.0;
        for (b, load) in column.iter().enumerate().take(last + 1).skip(first) {
            let b_lo = b as u64 * width;
            let inside = hi.min(b_lo + width) - lo.max(b_lo);
            sum += f64::from(*load) * inside as f64 / width as f64;
        }
        sum
    }

    /// `decayed = decay · decayed + latest`, dropping keys that no longer matter and the coldest
    /// beyond `max_keys`.
    fn decay_keys(&mut self, latest: &[(u32, f64)]) {
        let factor = self.key_decay;
        if factor == 0.0 {
            self.decayed.clear();
        } else {
            for v in self.decayed.values_mut() {
                *v *= factor;
            }
        }
        for &(p, l) in latest {
            *self.decayed.entry(p).or_insert(0.0) += l;
        }
        // A key under a millionth of the remembered load can no longer move a split point.
        let floor = 1e-6 * self.decayed.values().sum::<f64>();
        self.decayed.retain(|_, v| *v > floor);
        if self.decayed.len() > self.max_keys {
            let mut values: Vec<f64> = self.decayed.values().copied().collect();
            let cut = values.len() - self.max_keys;
            values.select_nth_unstable_by(cut, f64::total_cmp);
            let cutoff = values[cut];
            self.decayed.retain(|_, v| *v >= cutoff);
            // Ties at the cutoff may leave a few too many: drop the highest positions among them.
            while self.decayed.len() > self.max_keys {
                let Some((&p, _)) = self.decayed.iter().rev().find(|(_, v)| **v <= cutoff) else {
                    break;
                };
                self.decayed.remove(&p);
            }
        }
    }
}

/// The entries of `keys` (sorted by position) whose position falls in `range`.
pub(crate) fn positions_in(keys: &[(u32, f64)], range: HashRange) -> &[(u32, f64)] {
    let start = keys.partition_point(|(p, _)| u64::from(*p) < range.lo);
    let end = keys.partition_point(|(p, _)| u64::from(*p) < range.hi);
    &keys[start..end.max(start)]
}

fn push_bounded(values: &mut Vec<f64>, value: f64, bound: usize) {
    if values.len() == bound {
        values.remove(0);
    }
    values.push(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-9, "{actual:?} against {expected:?}");
        }
    }

    fn map(count: u64) -> ShardMap {
        ShardMap::uniform(count, &["a".to_string()], 0).unwrap()
    }

    #[test]
    fn shard_histories_follow_their_keys_and_stay_bounded() {
        let m = map(2);
        let mut h = LoadHistory::new(&m, 3, 4, 0.0, 10);
        for w in 0..5u32 {
            h.add(10, 1.0 + f64::from(w));
            h.add(u32::MAX - 5, 2.0);
            h.finish(&m);
        }
        assert_eq!(h.shard(0), &[3.0, 4.0, 5.0]);
        assert_eq!(h.shard(1), &[2.0, 2.0, 2.0]);
        assert_eq!(h.totals(), &[5.0, 6.0, 7.0]);
        assert_eq!(h.latest_in(HashRange { lo: 0, hi: 11 }), (5.0, 1));
    }

    #[test]
    fn a_split_hands_each_half_the_history_of_its_own_range() {
        let mut m = map(1);
        let mut h = LoadHistory::new(&m, 4, 8, 0.0, 100);
        // The lower quarter ramps, the rest is flat.
        for w in 0..4 {
            h.add(1 << 20, f64::from(w) * 10.0);
            h.add(3 << 30, 5.0);
            h.finish(&m);
        }
        let at = 1u64 << 30;
        let change = m.split_change(0, at).unwrap();
        m.apply(&change).unwrap();
        h.split(0, HashRange { lo: 0, hi: RING }, at, 1, 2);
        close(h.shard(1), &[0.0, 10.0, 20.0, 30.0]);
        close(h.shard(2), &[5.0, 5.0, 5.0, 5.0]);
        h.merge(1, 2, 3);
        close(h.shard(3), &[5.0, 15.0, 25.0, 35.0]);
    }

    #[test]
    fn one_bucket_is_a_valid_ring() {
        let mut m = map(1);
        let mut h = LoadHistory::new(&m, 2, 0, 0.0, 10);
        for _ in 0..2 {
            h.add(u32::MAX, 3.0);
            h.add(0, 1.0);
            h.finish(&m);
        }
        m.apply(&m.split_change(0, 1 << 31).unwrap()).unwrap();
        h.split(0, HashRange { lo: 0, hi: RING }, 1 << 31, 1, 2);
        // The older window falls back on the one bucket (shared by width), the latest is exact.
        close(h.shard(1), &[2.0, 1.0]);
        close(h.shard(2), &[2.0, 3.0]);
    }

    #[test]
    fn decayed_keys_are_capped_and_empty_windows_decay_them() {
        let m = map(1);
        let mut h = LoadHistory::new(&m, 2, 4, 0.5, 3);
        for p in 0..10u32 {
            h.add(p * 1000, f64::from(p + 1));
        }
        h.finish(&m);
        let keys = h.split_keys(HashRange { lo: 0, hi: RING });
        assert_eq!(keys.len(), 3);
        assert_eq!(
            keys.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            vec![7000, 8000, 9000]
        );
        h.finish_empty(2, &m);
        let keys = h.split_keys(HashRange { lo: 0, hi: RING });
        assert_eq!(keys[2].1, 10.0 * 0.25);
        assert_eq!(h.shard(0), &[0.0, 0.0]);
    }
}
