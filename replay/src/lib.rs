//! The offline side of shardcast: cache simulation over a request trace (LRU, the offline Belady bound,
//! LRU fed by prefetches) and the next-access predictor whose orders `shardcast replay` measures.
//!
//! A trace becomes [`Request`]s through a [`TraceBuilder`] (keys, clients and regions as integers). A
//! [`CacheSpec`] resolves to one [`Capacity`] per region ([`Capacities`]); every region has its own
//! cache, and [`Trace::single_region`] maps them all to one. [`simulate_lru`], [`simulate_belady`] and
//! [`simulate_with_prefetch`] replay the requests; [`compare`] runs all three, and
//! [`NextAccessPredictor`] is the [`Prefetcher`] whose model a dataflow can compute epoch by epoch.

mod belady;
mod capacity;
mod comparison;
mod error;
mod lru;
mod lru_list;
mod predictor;
mod predictor_config;
mod prefetch;
mod request;
mod stats;
mod window_tables;

pub use belady::simulate_belady;
pub use capacity::{CacheSize, CacheSpec, CacheUnit, Capacities, Capacity};
pub use comparison::{compare, Comparison};
pub use error::ReplayError;
pub use lru::simulate_lru;
pub use predictor::NextAccessPredictor;
pub use predictor_config::{Budget, PredictorConfig};
pub use prefetch::{
    simulate_with_prefetch, CacheView, NoPrefetch, PrefetchCounts, PrefetchEntry, PrefetchOptions,
    PrefetchOrder, PrefetchStats, Prefetcher,
};
pub use request::{Interner, KeyKind, KeyNames, Request, Trace, TraceBuilder};
pub use stats::{CacheStats, RegionStats};
