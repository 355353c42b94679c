//! Counters the executor keeps per region.

use std::collections::BTreeMap;

/// What one region's worker has done since start.
///
/// Every order accepted for the region ends in exactly one of `copied`, `already_present`,
/// `missing_in_primary`, `shed` or `abandoned`, or is still `pending`, so
/// `submitted == settled() + pending`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionStats {
    /// Orders accepted for the region (queued, or shed at once because the queue was full).
    pub submitted: u64,
    /// Orders whose value was copied into the regional cache.
    pub copied: u64,
    /// Bytes of the values copied (as read from the primary).
    pub bytes_copied: u64,
    /// Orders skipped because the regional cache already held the key (also when someone else
    /// wrote it between the check and the copy).
    pub already_present: u64,
    /// Orders whose key the primary did not hold.
    pub missing_in_primary: u64,
    /// Orders dropped because the queue was full and they had the lowest priority.
    pub shed: u64,
    /// Orders dropped after a non-retryable error or after failing for longer than
    /// [`RetryPolicy::give_up_after`](crate::RetryPolicy::give_up_after).
    pub abandoned: u64,
    /// Failed attempts, retryable or not.
    pub failed_attempts: u64,
    /// Outages seen: runs of retryable failures, counted (and reported by one `tracing::warn!`)
    /// at the first failure of a run; a run ends with the next successful attempt.
    pub outages: u64,
    /// True while the worker is backing off after a retryable failure with orders waiting.
    pub retrying: bool,
    /// The most recent error (kept after recovery, for the record).
    pub last_error: Option<String>,
    /// Orders waiting in the queue or being copied right now.
    pub pending: u64,
}

impl RegionStats {
    /// Orders that reached a final state: copied, already present, missing, shed or abandoned.
    pub fn settled(&self) -> u64 {
        self.copied + self.already_present + self.missing_in_primary + self.shed + self.abandoned
    }
}

/// A snapshot of the executor's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrefetchStats {
    /// Per configured region.
    pub regions: BTreeMap<String, RegionStats>,
    /// Orders rejected because they named a region that is not configured.
    pub rejected_unknown_region: u64,
    /// Orders rejected because they were malformed (NaN priority).
    pub rejected_invalid: u64,
}
