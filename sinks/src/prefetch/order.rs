//! What the dataflow asks the executor to do, and what `submit` answers.

/// "Copy `key` into the regional cache of `region`": one prefetch decision of the dataflow.
#[derive(Clone, Debug, PartialEq)]
pub struct PrefetchOrder {
    /// The data key, without the store prefix (the executor adds
    /// [`PrefetchExecutorConfig::key_prefix`](crate::PrefetchExecutorConfig::key_prefix)).
    pub key: String,
    /// The region whose cache should receive the copy; must be one of the configured regions.
    pub region: String,
    /// Higher is copied first and shed last. Must not be NaN.
    pub priority: f64,
    /// How sure the predictor was that the key will be read in `region`; carried for the
    /// caller's accounting, not used by the executor.
    pub confidence: f64,
    /// The predicted size of the value; the executor counts the bytes it actually copies.
    pub bytes: u64,
    /// The event-time epoch in which the decision was made.
    pub epoch: u64,
}

/// What [`PrefetchExecutor::submit`](crate::PrefetchExecutor::submit) did with an order.
#[derive(Clone, Debug, PartialEq)]
pub enum SubmitOutcome {
    /// The order waits in its region's queue.
    Queued,
    /// The order waits in its region's queue; the queue was full, so the pending order with the
    /// lowest priority (returned here) was dropped and counted as shed.
    QueuedAndShed(PrefetchOrder),
    /// The region's queue was full and this order had the lowest priority (ties go against the
    /// newer order): it was dropped and counted as shed.
    Shed,
    /// The order was invalid and was not queued; counted in
    /// [`PrefetchStats`](crate::PrefetchStats).
    Rejected(SubmitError),
}

impl SubmitOutcome {
    /// True if the submitted order itself is now queued (whether or not another was shed).
    pub fn is_queued(&self) -> bool {
        matches!(
            self,
            SubmitOutcome::Queued | SubmitOutcome::QueuedAndShed(_)
        )
    }
}

/// Why an order was rejected at submit.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// The order names a region the executor was not configured with.
    #[error("prefetch order for key {key:?}: unknown region {region:?}")]
    UnknownRegion {
        /// The order's key.
        key: String,
        /// The region it named.
        region: String,
    },
    /// The order's priority is NaN, so it cannot be ranked against other orders.
    #[error("prefetch order for key {key:?}: priority is NaN")]
    NanPriority {
        /// The order's key.
        key: String,
    },
}
