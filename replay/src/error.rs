//! Why a replay could not run: bad requests, capacities or settings. Each error says what to fix.

/// An input the simulators or the predictor cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    /// More distinct names than 32-bit ids can number.
    #[error("more than {limit} distinct {what}: ids are 32-bit")]
    TooManyNames {
        /// What was being numbered (keys, clients).
        what: &'static str,
        /// The largest number of names that fit.
        limit: u64,
    },
    /// More distinct regions than 16-bit ids can number.
    #[error("more than {limit} distinct regions: region ids are 16-bit")]
    TooManyRegions {
        /// The largest number of regions that fit.
        limit: u64,
    },
    /// An object larger than the 32-bit size field holds.
    #[error("request {index}: object of {size} bytes is larger than 4 GiB")]
    ObjectTooLarge {
        /// Position of the request in the trace.
        index: usize,
        /// The size it claimed.
        size: u64,
    },
    /// Requests must come in event-time order.
    #[error("request {index} goes back in time: ts {ts_ms} ms after {previous_ms} ms")]
    OutOfOrder {
        /// Position of the request in the trace.
        index: usize,
        /// Its timestamp.
        ts_ms: u64,
        /// The timestamp of the request before it.
        previous_ms: u64,
    },
    /// A request or prefetch order names a region that has no cache.
    #[error("region {region} has no capacity: resolve the cache size over the same requests")]
    NoCapacity {
        /// The region id.
        region: u16,
    },
    /// A cache size or capacity that cannot describe a cache.
    #[error("invalid cache size: {0}")]
    InvalidSize(String),
    /// A predictor or simulator setting out of its range.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidConfig {
        /// The setting.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}
