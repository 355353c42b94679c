//! The recency list behind the LRU simulators: O(1) hit, insert and evict, with an insertion point
//! below the most-recently-used end for objects that nobody has asked for yet.
//!
//! The list is kept as two linked segments, `top` (most recent) above `bottom`, and read top-to-bottom
//! it is one recency order. `top` holds at most `top_limit` units; whatever it pushes out moves to the
//! head of `bottom`, and eviction takes the tail of `bottom` (or of `top` when `bottom` is empty). An
//! object inserted at the head of `bottom` therefore enters `top_limit` units below the MRU end, which
//! is the midpoint insertion of InnoDB's buffer pool and of LIP/BIP: a prefetch that is never used
//! leaves sooner and displaces less than a demand fetch.

use rustc_hash::FxHashMap;

const NIL: u32 = u32::MAX;
const TOP: usize = 0;
const BOTTOM: usize = 1;

/// Where an object enters the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The most-recently-used end.
    Mru,
    /// `top_limit` units below the MRU end.
    Below,
}

#[derive(Clone, Debug)]
struct Node {
    key: u32,
    units: u64,
    prev: u32,
    next: u32,
    segment: u8,
    /// Inserted by a prefetch and not requested since.
    prefetched: bool,
}

/// A bounded recency list of keys.
#[derive(Clone, Debug)]
pub(crate) struct LruList {
    index: FxHashMap<u32, u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: [u32; 2],
    tail: [u32; 2],
    used: [u64; 2],
    capacity: u64,
    top_limit: u64,
}

impl LruList {
    /// An empty list holding at most `capacity` units, whose `Below` entry point is `top_limit` units
    /// under the MRU end.
    pub(crate) fn new(capacity: u64, top_limit: u64) -> Self {
        LruList {
            index: FxHashMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: [NIL; 2],
            tail: [NIL; 2],
            used: [0; 2],
            capacity,
            top_limit: top_limit.min(capacity),
        }
    }

    /// Whether `key` is cached.
    pub(crate) fn contains(&self, key: u32) -> bool {
        self.index.contains_key(&key)
    }

    /// Serves a request for `key`: if cached, moves it to the MRU end and returns whether it was an
    /// unused prefetch (which it no longer is); `None` on a miss.
    pub(crate) fn hit(&mut self, key: u32) -> Option<bool> {
        let id = *self.index.get(&key)?;
        let node = &mut self.nodes[id as usize];
        let was_prefetched = std::mem::replace(&mut node.prefetched, false);
        self.unlink(id);
        self.link_head(id, TOP);
        self.rebalance();
        Some(was_prefetched)
    }

    /// Caches `key` (not already cached) taking `units`, evicting from the LRU end as needed; each
    /// evicted key is passed to `evicted` with whether it was an unused prefetch. An object larger than
    /// the whole cache is not cached; the return says whether it was.
    pub(crate) fn insert(
        &mut self,
        key: u32,
        units: u64,
        entry: Entry,
        prefetched: bool,
        mut evicted: impl FnMut(u32, bool),
    ) -> bool {
        if units > self.capacity {
            return false;
        }
        while self.used[TOP] + self.used[BOTTOM] + units > self.capacity {
            let victim = if self.tail[BOTTOM] != NIL {
                self.tail[BOTTOM]
            } else {
                self.tail[TOP]
            };
            self.unlink(victim);
            let node = &self.nodes[victim as usize];
            self.index.remove(&node.key);
            evicted(node.key, node.prefetched);
            self.free.push(victim);
        }
        let node = Node {
            key,
            units,
            prev: NIL,
            next: NIL,
            segment: 0,
            prefetched,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                // Lists hold at most one node per cached object, far below 2^32.
                (self.nodes.len() - 1) as u32
            }
        };
        self.index.insert(key, id);
        let segment = match entry {
            Entry::Mru => TOP,
            Entry::Below => BOTTOM,
        };
        self.link_head(id, segment);
        self.rebalance();
        true
    }

    /// How many cached objects are unused prefetches.
    pub(crate) fn prefetched_unused(&self) -> u64 {
        self.index
            .values()
            .filter(|&&id| self.nodes[id as usize].prefetched)
            .count() as u64
    }

    /// Keeps `top` within `top_limit` by moving its oldest objects to the head of `bottom`.
    fn rebalance(&mut self) {
        while self.used[TOP] > self.top_limit && self.tail[TOP] != NIL {
            let id = self.tail[TOP];
            self.unlink(id);
            self.link_head(id, BOTTOM);
        }
    }

    fn unlink(&mut self, id: u32) {
        let Node {
            prev,
            next,
            segment,
            units,
            ..
        } = self.nodes[id as usize];
        let segment = usize::from(segment);
        if prev == NIL {
            self.head[segment] = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail[segment] = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        self.used[segment] -= units;
    }

    fn link_head(&mut self, id: u32, segment: usize) {
        let old_head = self.head[segment];
        {
            let node = &mut self.nodes[id as usize];
            node.prev = NIL;
            node.next = old_head;
            node.segment = segment as u8;
            self.used[segment] += node.units;
        }
        if old_head == NIL {
            self.tail[segment] = id;
        } else {
            self.nodes[old_head as usize].prev = id;
        }
        self.head[segment] = id;
    }

    /// The cached keys from the MRU end to the LRU end (for tests).
    #[cfg(test)]
    fn order(&self) -> Vec<u32> {
        let mut keys = Vec::new();
        for segment in [TOP, BOTTOM] {
            let mut id = self.head[segment];
            while id != NIL {
                keys.push(self.nodes[id as usize].key);
                id = self.nodes[id as usize].next;
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lru_order_and_eviction() {
        let mut list = LruList::new(3, 3);
        let mut gone = Vec::new();
        for k in [1, 2, 3] {
            assert!(list.insert(k, 1, Entry::Mru, false, |k, _| gone.push(k)));
        }
        assert_eq!(list.hit(1), Some(false));
        list.insert(4, 1, Entry::Mru, false, |k, _| gone.push(k));
        assert_eq!(gone, vec![2]);
        assert_eq!(list.order(), vec![4, 1, 3]);
        assert_eq!(list.hit(2), None);
    }

    #[test]
    fn below_entry_sits_under_the_top_segment() {
        let mut list = LruList::new(4, 2);
        for k in [1, 2, 3, 4] {
            list.insert(k, 1, Entry::Mru, false, |_, _| {});
        }
        assert_eq!(list.order(), vec![4, 3, 2, 1]);
        let mut gone = Vec::new();
        list.insert(9, 1, Entry::Below, true, |k, p| gone.push((k, p)));
        assert_eq!(gone, vec![(1, false)]);
        assert_eq!(list.order(), vec![4, 3, 9, 2]);
        assert_eq!(list.prefetched_unused(), 1);
        assert_eq!(list.hit(9), Some(true));
        assert_eq!(list.order(), vec![9, 4, 3, 2]);
        assert_eq!(list.prefetched_unused(), 0);
    }

    #[test]
    fn byte_units_evict_until_the_object_fits() {
        let mut list = LruList::new(10, 10);
        let mut gone = Vec::new();
        list.insert(1, 4, Entry::Mru, false, |k, _| gone.push(k));
        list.insert(2, 4, Entry::Mru, false, |k, _| gone.push(k));
        list.insert(3, 7, Entry::Mru, false, |k, _| gone.push(k));
        assert_eq!(gone, vec![1, 2]);
        assert!(!list.insert(4, 11, Entry::Mru, false, |_, _| {}));
        assert!(list.contains(3));
    }
}
