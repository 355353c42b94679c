//! The three numbers `shardcast replay` puts side by side on one trace and capacity: LRU, LRU fed by
//! prefetches, and the offline Belady bound.

use serde::{Deserialize, Serialize};

use crate::{
    simulate_belady, simulate_with_prefetch, CacheStats, Capacities, PrefetchOptions,
    PrefetchStats, Prefetcher, ReplayError, Request,
};

/// LRU, LRU with prefetching and Belady on the same requests and capacities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Plain LRU.
    pub lru: CacheStats,
    /// LRU fed by the prefetcher (its `baseline` is `lru`).
    pub prefetch: PrefetchStats,
    /// The offline optimum without prefetching.
    pub belady: CacheStats,
}

impl Comparison {
    /// The share of the LRU-to-Belady hit-ratio gap that prefetching closes: 0 = no better than LRU,
    /// 1 = as good as Belady, above 1 = better than any demand-fetching cache. 0 when there is no gap.
    pub fn gap_closed(&self) -> f64 {
        let gap = self.belady.hit_ratio() - self.lru.hit_ratio();
        if gap <= 0.0 {
            0.0
        } else {
            (self.prefetch.hit_ratio() - self.lru.hit_ratio()) / gap
        }
    }
}

/// Runs LRU, LRU with `prefetcher` and Belady over `requests`.
pub fn compare(
    requests: &[Request],
    capacities: &Capacities,
    prefetcher: &mut dyn Prefetcher,
    options: PrefetchOptions,
) -> Result<Comparison, ReplayError> {
    let prefetch = simulate_with_prefetch(requests, capacities, prefetcher, options)?;
    let belady = simulate_belady(requests, capacities)?;
    Ok(Comparison {
        lru: prefetch.baseline.clone(),
        prefetch,
        belady,
    })
}
