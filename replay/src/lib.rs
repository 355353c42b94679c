//! The offline side of shardcast: cache simulation over a request trace (LRU, the offline Belady bound,
//! LRU fed by prefetches) and the next-access predictor whose orders `shardcast replay` measures.
//!
//! A trace becomes [`Request`]s through a [`TraceBuilder`] (keys, clients and regions as integers). A
//! [`CacheSpec`] resolves to one [`Capacity`] per region ([`Capacities`]); every region has its own
//! cache, and [`Trace::single_region`] maps them all to one. [`simulate_lru`], [`simulate_belady`] and
//! [`simulate_with_prefetch`] replay the requests; [`compare`] runs all three, and
//! [`NextAccessPredictor`] is the [`Prefetcher`] whose model a dataflow can compute epoch by epoch.
//! [`simulate_balance`] replays the requests through a shard [`Balancer`] window by window and
//! [`compare_balance`] sets the predictive balancer against a reactive one and static hashing
//! ([`BalanceReport`]).
//!
//! # Measurements
//!
//! LRU and Belady reproduce the reference figures of the traces' README, the ARC paper's LRU hit
//! ratios on OLTP and libCacheSim's byte-capacity LRU misses on CloudPhysics (the tests check them).
//! With [`PredictorConfig::default`] (timestamped traces) or [`PredictorConfig::order_only`] (the
//! others), object caches of 1% / 10% of the keys, one cache, prefetches landing before the next
//! request:
//!
//! | trace | LRU | LRU + prefetch | Belady | gap closed | accuracy |
//! |---|---|---|---|---|---|
//! | nasa_http_19950801 | 0.370 / 0.753 | 0.610 / 0.832 | 0.599 / 0.858 | 1.05 / 0.75 | 0.29 / 0.51 |
//! | cloudphysics_libcachesim | 0.162 / 0.195 | 0.746 / 0.772 | 0.207 / 0.371 | 12.9 / 3.28 | 0.46 / 0.53 |
//! | arc_OLTP | 0.416 / 0.665 | 0.645 / 0.866 | 0.598 / 0.762 | 1.26 / 2.08 | 0.24 / 0.41 |
//! | cache2k_orm_busy | 0.770 / 0.880 | 0.954 / 0.965 | 0.828 / 0.933 | 3.17 / 1.61 | 0.43 / 0.39 |
//! | LIRS (8 traces) | 0.004-0.865 | 0.72-0.98 | 0.027-0.914 | 1.9-99 | 0.29-0.99 |
//!
//! Prefetching goes past Belady where strides reach blocks never requested before (Belady cannot
//! avoid a first miss). With a second of latency NASA keeps 0.583 / 0.828 (91% / 97% of the used
//! prefetches on time); CloudPhysics drops to 0.223 / 0.270, because its timestamps are whole seconds
//! and its sequential runs fall within one. Prefetched objects do best at the MRU end at 1% (NASA
//! 0.610, then 0.594 / 0.573 / 0.522 entering 25% / 50% / 75% down the list, 0.405 at the LRU end); at
//! 10% a lower entry changes NASA by under +0.001 and costs CloudPhysics 0.002 to 0.008, and the LRU
//! end is the worst everywhere. The `report` test prints these tables.
//!
//! Shard balance (`shardcast replay`, 16 shards on 8 nodes, the shipped ONNX forecaster, default
//! balancer settings): max/mean shard load per window, p50 / p95, and the share of a window's load
//! moved per hour.
//!
//! | trace, window | static | reactive (3 windows) | predictive | moved/h reactive, predictive |
//! |---|---|---|---|---|
//! | nasa_http_19950801, 1 min | 3.46 / 5.82 | 2.38 / 5.00 | 2.18 / 4.33 | 0.205, 0.027 |
//! | nasa_http_19950801, 10 min | 3.09 / 4.23 | 1.78 / 2.76 | 2.76 / 3.70 | 0.015, 0.007 |
//! | cloudphysics_libcachesim, 1 min | 2.00 / 2.79 | 1.93 / 2.66 | 1.85 / 2.64 | 0.080, 0.067 |
//! | cloudphysics_libcachesim, 10 s | 3.05 / 6.67 | 2.98 / 6.80 | 2.60 / 5.54 | 1.283, 0.082 |
//! | cache2k_orm_busy, 1000 requests | 1.54 / 2.90 | 1.57 / 2.94 | 1.54 / 2.90 | 0.564, 0 |
//! | arc_OLTP, 1000 requests | 1.26 / 1.44 | 1.26 / 1.44 | 1.26 / 1.44 | 0, 0 |
//!
//! Hashing spreads keys over the ring, so the skew left is that of single hot keys (NASA's seven
//! busiest URLs carry 4-7% of the requests each); with few requests per shard and window much of
//! the figure is sampling noise, which a reactive rule chases. On NASA at 10-minute windows (77 of
//! them) the predictive balancer splits once where the reactive one splits three times, and ends
//! behind it.

mod balance;
mod balance_report;
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

pub use balance::{compare_balance, simulate_balance, BalanceComparison, BalanceOptions};
pub use balance_report::{BalanceReport, Spread};
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
pub use shardcast_shardmap::{
    BalanceConfig, BalanceMode, Balancer, HoltForecaster, LastValueForecaster, LoadForecaster,
    Threshold,
};
pub use stats::{CacheStats, RegionStats};
