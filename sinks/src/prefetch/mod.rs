//! The prefetch executor: copies data the dataflow predicts will be read in a region from the
//! primary store into that region's cache before the reads arrive.
//!
//! The dataflow emits [`PrefetchOrder`]s ("copy key K into region R, priority p"); the caller
//! hands them to [`PrefetchExecutor::submit`], which never blocks. One worker thread per region
//! takes the highest-priority pending order and, against real Redis servers (one primary, one
//! per region):
//!
//! 1. skips it if the regional cache already holds `PREFIX` + `K` (EXISTS),
//! 2. reads the value from the primary (GET); a key the primary lacks is counted, not an error,
//! 3. writes it to the region with `SET ... NX PX ttl` and, in the same Lua script, records the
//!    landing time as `HSET PREFIX + "prefetch:landed" K <unix ms>` (read it with
//!    [`read_landed`]).
//!
//! # Ordering
//!
//! - Within a region, orders are attempted highest priority first, first submitted first among
//!   equal priorities. An order whose attempt fails goes back into the queue at its old place,
//!   so after an outage the backlog is copied in priority order too.
//! - Regions are independent: no order holds between orders of different regions, and an
//!   outage of one region's cache does not slow the others.
//!
//! # Delivery
//!
//! - At most once per submit: each accepted order is written to its region at most once.
//! - Idempotent: the write is `SET NX`, so submitting a key twice, or a value written to the
//!   region by someone else (between the EXISTS and the SET included), is never overwritten;
//!   such orders count as `already_present`. If a reply is lost after the write succeeded, the
//!   retry finds the key and also counts it as `already_present`.
//! - Not every order is delivered, and every one that is not is counted in [`RegionStats`]:
//!   `shed` (queue full: the lowest priority goes, ties against the newer order),
//!   `missing_in_primary`, `abandoned` (an error retrying cannot fix, or failing for longer than
//!   [`RetryPolicy::give_up_after`](crate::RetryPolicy)), or still `pending` at shutdown.
//! - A copy is the primary's value when it was read; later changes in the primary are not
//!   propagated, and the TTL bounds how long a stale copy lives.
//!
//! # Outages
//!
//! When the primary or a regional cache is unreachable, the worker retries with exponential
//! back-off ([`RetryPolicy::delay_after`](crate::RetryPolicy::delay_after)), reconnecting on
//! each attempt, while `submit` keeps accepting orders into the bounded queue. Each outage is
//! reported once by `tracing::warn!` and shows in [`RegionStats::retrying`] and
//! [`RegionStats::last_error`]; the first success ends it (logged with `tracing::info!`).

mod config;
mod copy;
mod executor;
mod landed;
mod order;
mod queue;
mod stats;
mod worker;

pub use config::PrefetchExecutorConfig;
pub use executor::PrefetchExecutor;
pub use landed::{data_key, landed_key, read_landed};
pub use order::{PrefetchOrder, SubmitError, SubmitOutcome};
pub use stats::{PrefetchStats, RegionStats};
