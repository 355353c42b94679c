//! The offline optimum (Belady's MIN with bypass): the best hit ratio any demand-fetching cache of the
//! same capacity could reach, knowing the future. Only prefetching can beat it.

use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::lru::region_count;
use crate::{CacheStats, Capacities, ReplayError, Request};

/// "Not requested again."
const NEVER: u64 = u64::MAX;

/// Replays `requests` through one offline-optimal cache per region and counts hits and misses.
///
/// On a miss the cache compares the requested object's next use with the cached objects' and keeps the
/// ones needed soonest: when full, it evicts the cached object whose next use is farthest, or bypasses
/// (does not cache) the requested object when that object's own next use is the farthest. An object
/// never requested again is not cached, and a cached one leaves at its last request. For object-count
/// caches this is Belady's MIN, the optimum. For byte caches it evicts farthest-first until the object
/// fits, bypassing when that would evict anything needed sooner than the object itself; with unequal
/// sizes this is a strong bound, not the exact optimum (which is NP-hard). O(log n) per request.
pub fn simulate_belady(
    requests: &[Request],
    capacities: &Capacities,
) -> Result<CacheStats, ReplayError> {
    let regions = region_count(requests, capacities)?;
    let next = next_uses(requests);
    let mut caches = Vec::with_capacity(regions);
    for region in 0..regions {
        // `region_count` bounds `regions` by the region ids that exist.
        let capacity = capacities.get(region as u16)?;
        caches.push((capacity, Cache::new(capacity.units())));
    }
    let mut stats = CacheStats::new(regions);
    for (request, &next_use) in requests.iter().zip(&next) {
        let (capacity, cache) = &mut caches[usize::from(request.region)];
        let hit = cache.request(request.key, next_use, capacity.units_of(request.size));
        stats.record(request, hit);
    }
    Ok(stats)
}

/// For each request, the position of the next request for the same key in the same region.
fn next_uses(requests: &[Request]) -> Vec<u64> {
    let mut next = vec![NEVER; requests.len()];
    let mut later: FxHashMap<(u16, u32), u64> = FxHashMap::default();
    for (i, request) in requests.iter().enumerate().rev() {
        if let Some(j) = later.insert((request.region, request.key), i as u64) {
            next[i] = j;
        }
    }
    next
}

/// One region's cache: what is cached with its next use, and a max-heap of next uses whose stale
/// entries (superseded by a later request, or evicted) are skipped when they surface.
struct Cache {
    cached: FxHashMap<u32, Cached>,
    heap: BinaryHeap<(u64, u32)>,
    used: u64,
    capacity: u64,
    /// Victims considered for the current miss (kept to avoid an allocation per miss).
    victims: Vec<(u64, u32)>,
}

#[derive(Clone, Copy)]
struct Cached {
    next_use: u64,
    units: u64,
}

impl Cache {
    fn new(capacity: u64) -> Self {
        Cache {
            cached: FxHashMap::default(),
            heap: BinaryHeap::new(),
            used: 0,
            capacity,
            victims: Vec::new(),
        }
    }

    /// Serves one request; returns whether it hit.
    fn request(&mut self, key: u32, next_use: u64, units: u64) -> bool {
        if let Some(entry) = self.cached.get_mut(&key) {
            if next_use == NEVER {
                // Its last use: the room is worth more to anything else.
                self.used -= entry.units;
                self.cached.remove(&key);
            } else {
                entry.next_use = next_use;
                self.heap.push((next_use, key));
            }
            self.compact();
            return true;
        }
        if next_use == NEVER || units > self.capacity {
            return false;
        }
        let mut freed = 0;
        while self.used - freed + units > self.capacity {
            let Some(&(farthest, victim)) = self.heap.peek() else {
                break;
            };
            let live = self.cached.get(&victim).map(|c| c.next_use) == Some(farthest);
            if !live {
                self.heap.pop();
                continue;
            }
            if farthest <= next_use {
                // Everything left is needed sooner than the requested object: bypass it.
                break;
            }
            self.heap.pop();
            self.victims.push((farthest, victim));
            // A victim leaves the heap when chosen, so it is never counted twice.
            freed += self.cached[&victim].units;
        }
        if self.used - freed + units <= self.capacity {
            for (_, victim) in self.victims.drain(..) {
                self.cached.remove(&victim);
            }
            self.used = self.used - freed + units;
            self.cached.insert(key, Cached { next_use, units });
            self.heap.push((next_use, key));
        } else {
            self.heap.extend(self.victims.drain(..));
        }
        self.compact();
        false
    }

    /// Rebuilds the heap from the live entries once stale ones outnumber them, bounding its memory.
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.cached.len() + 1024 {
            self.heap = self
                .cached
                .iter()
                .map(|(&key, c)| (c.next_use, key))
                .collect();
        }
    }
}
