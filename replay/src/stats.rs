//! Hit and miss counts of a simulated cache, in total and per region.

use serde::{Deserialize, Serialize};

use crate::Request;

/// Hits and misses of one region's cache (or of all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionStats {
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests the cache did not hold when they came.
    pub misses: u64,
    /// Bytes of the requests that hit (each request's own size).
    pub hit_bytes: u64,
    /// Bytes of the requests that missed.
    pub miss_bytes: u64,
}

impl RegionStats {
    /// Counts one request.
    pub(crate) fn record(&mut self, request: &Request, hit: bool) {
        let bytes = u64::from(request.size);
        if hit {
            self.hits += 1;
            self.hit_bytes += bytes;
        } else {
            self.misses += 1;
            self.miss_bytes += bytes;
        }
    }

    /// Requests counted.
    pub fn requests(&self) -> u64 {
        self.hits + self.misses
    }

    /// Hits over requests (0 when there were none).
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.requests())
    }

    /// Hit bytes over requested bytes (0 when there were none).
    pub fn byte_hit_ratio(&self) -> f64 {
        ratio(self.hit_bytes, self.hit_bytes + self.miss_bytes)
    }
}

/// The outcome of a simulation: totals and the same counts per region id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// All regions together.
    pub total: RegionStats,
    /// Indexed by region id.
    pub regions: Vec<RegionStats>,
}

impl CacheStats {
    /// Empty counts for `regions` regions.
    pub(crate) fn new(regions: usize) -> Self {
        CacheStats {
            total: RegionStats::default(),
            regions: vec![RegionStats::default(); regions],
        }
    }

    /// Counts one request in its region and in the total.
    pub(crate) fn record(&mut self, request: &Request, hit: bool) {
        self.total.record(request, hit);
        if let Some(region) = self.regions.get_mut(usize::from(request.region)) {
            region.record(request, hit);
        }
    }

    /// Total hits.
    pub fn hits(&self) -> u64 {
        self.total.hits
    }

    /// Total misses.
    pub fn misses(&self) -> u64 {
        self.total.misses
    }

    /// Hits over requests, all regions together.
    pub fn hit_ratio(&self) -> f64 {
        self.total.hit_ratio()
    }
}

/// `num / den`, or 0 when `den` is 0.
pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}
