//! Least-recently-used caching, one cache per region: the baseline every prefetch result is measured
//! against.

use crate::lru_list::{Entry, LruList};
use crate::{CacheStats, Capacities, ReplayError, Request};

/// Replays `requests` in order through one LRU cache per region and counts hits and misses.
///
/// A miss caches the object at the most-recently-used end, evicting least-recently-used objects until it
/// fits; an object larger than its cache is never cached. A hit keeps the size the object was cached
/// with, whatever size the request states. O(1) per request.
pub fn simulate_lru(
    requests: &[Request],
    capacities: &Capacities,
) -> Result<CacheStats, ReplayError> {
    let (mut caches, capacity_of) = region_lists(requests, capacities, |_| None)?;
    let mut stats = CacheStats::new(caches.len());
    for request in requests {
        let region = usize::from(request.region);
        let cache = &mut caches[region];
        let hit = cache.hit(request.key).is_some();
        if !hit {
            let units = capacity_of[region].units_of(request.size);
            cache.insert(request.key, units, Entry::Mru, false, |_, _| {});
        }
        stats.record(request, hit);
    }
    Ok(stats)
}

/// One empty list per region up to the highest region `requests` use, checking every such region has a
/// capacity. `top_limit` gives a region's `Below` entry point from its capacity (`None`: the whole
/// cache, which makes `Below` the LRU end).
pub(crate) fn region_lists(
    requests: &[Request],
    capacities: &Capacities,
    top_limit: impl Fn(u64) -> Option<u64>,
) -> Result<(Vec<LruList>, Vec<crate::Capacity>), ReplayError> {
    let regions = region_count(requests, capacities)?;
    let mut lists = Vec::with_capacity(regions);
    let mut caps = Vec::with_capacity(regions);
    for region in 0..regions {
        // `region_count` checked that every region below `regions` fits in u16 and has a capacity.
        let capacity = capacities.get(region as u16)?;
        let units = capacity.units();
        lists.push(LruList::new(units, top_limit(units).unwrap_or(units)));
        caps.push(capacity);
    }
    Ok((lists, caps))
}

/// The number of region caches a simulation needs: every region with a capacity, and at least up to
/// the highest region a request names (which must have one).
pub(crate) fn region_count(
    requests: &[Request],
    capacities: &Capacities,
) -> Result<usize, ReplayError> {
    if let Some(max) = requests.iter().map(|r| r.region).max() {
        capacities.get(max)?;
    }
    // Region ids are 16-bit: capacities past the last id can never be used.
    Ok(capacities.regions().len().min(usize::from(u16::MAX) + 1))
}
