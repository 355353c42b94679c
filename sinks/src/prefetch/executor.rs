//! The executor: one worker thread per region behind a non-blocking `submit`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::copy::Copier;
use super::queue::Pushed;
use super::worker::{Pending, RegionShared, Stop, Worker};
use super::{PrefetchExecutorConfig, PrefetchOrder, PrefetchStats, SubmitError, SubmitOutcome};
use crate::SinkError;

/// A region's shared state and its worker thread (taken when joined).
struct Region {
    shared: Arc<RegionShared>,
    thread: Option<JoinHandle<()>>,
}

/// Copies predicted data from the primary store into regional caches, one worker per region.
///
/// See the [module documentation](crate::prefetch) for ordering and delivery guarantees.
/// Dropping the executor without [`PrefetchExecutor::shutdown`] stops the workers without
/// draining their queues.
pub struct PrefetchExecutor {
    regions: BTreeMap<String, Region>,
    rejected_unknown_region: AtomicU64,
    rejected_invalid: AtomicU64,
}

impl PrefetchExecutor {
    /// Validates `config` (settings and URLs, without connecting) and starts one worker thread
    /// per region. Stores that are down at start are waited for like any later outage.
    pub fn start(config: PrefetchExecutorConfig) -> Result<PrefetchExecutor, SinkError> {
        let valid = config.validate()?;
        let mut executor = PrefetchExecutor {
            regions: BTreeMap::new(),
            rejected_unknown_region: AtomicU64::new(0),
            rejected_invalid: AtomicU64::new(0),
        };
        for (name, client) in valid.regions {
            let shared = Arc::new(RegionShared::new(config.queue_capacity));
            let worker = Worker {
                region: name.clone(),
                shared: Arc::clone(&shared),
                copier: Copier::new(
                    valid.primary.clone(),
                    &name,
                    client,
                    &config.key_prefix,
                    valid.ttl_ms,
                ),
                retry: config.retry,
            };
            // On error, dropping `executor` stops the workers already started.
            let thread = std::thread::Builder::new()
                .name(format!("prefetch-{name}"))
                .spawn(move || worker.run())
                .map_err(|source| SinkError::Io {
                    sink: format!("prefetch executor: starting the worker of region {name:?}"),
                    source,
                })?;
            executor.regions.insert(
                name,
                Region {
                    shared,
                    thread: Some(thread),
                },
            );
        }
        Ok(executor)
    }

    /// Queues `order` for its region without waiting for any store. When the region's queue is
    /// full, the lowest-priority order (possibly this one) is dropped and counted as shed.
    /// Orders for an unknown region or with a NaN priority are rejected and counted.
    pub fn submit(&self, order: PrefetchOrder) -> SubmitOutcome {
        let Some(region) = self.regions.get(&order.region) else {
            self.rejected_unknown_region.fetch_add(1, Ordering::Relaxed);
            return SubmitOutcome::Rejected(SubmitError::UnknownRegion {
                key: order.key,
                region: order.region,
            });
        };
        if order.priority.is_nan() {
            self.rejected_invalid.fetch_add(1, Ordering::Relaxed);
            return SubmitOutcome::Rejected(SubmitError::NanPriority { key: order.key });
        }
        let mut state = region.shared.lock();
        state.stats.submitted += 1;
        let priority = order.priority;
        let pending = Pending {
            order,
            first_failure: None,
        };
        let outcome = match state.queue.push(priority, pending) {
            Pushed::Queued => SubmitOutcome::Queued,
            Pushed::Evicted(old) => SubmitOutcome::QueuedAndShed(old.order),
            Pushed::Rejected(_) => SubmitOutcome::Shed,
        };
        if !matches!(outcome, SubmitOutcome::Queued) {
            state.stats.shed += 1;
        }
        drop(state);
        region.shared.notify();
        outcome
    }

    /// A snapshot of every region's counters and the rejection counts.
    pub fn stats(&self) -> PrefetchStats {
        PrefetchStats {
            regions: self
                .regions
                .iter()
                .map(|(name, region)| (name.clone(), region.shared.lock().snapshot()))
                .collect(),
            rejected_unknown_region: self.rejected_unknown_region.load(Ordering::Relaxed),
            rejected_invalid: self.rejected_invalid.load(Ordering::Relaxed),
        }
    }

    /// Lets the workers copy what is queued for up to `drain_timeout` (retrying outages
    /// meanwhile), then stops them and returns the final counters; orders not copied by then
    /// are left in `pending`. A worker in the middle of a Redis call finishes it first, which
    /// can add up to the I/O timeout (5 s) when a server hangs.
    pub fn shutdown(mut self, drain_timeout: Duration) -> PrefetchStats {
        let stop = match Instant::now().checked_add(drain_timeout) {
            Some(deadline) => Stop::Drain(deadline),
            // A timeout too large for the clock means "drain everything".
            None => Stop::Drain(Instant::now() + Duration::from_secs(u32::MAX.into())),
        };
        self.stop_and_join(stop);
        self.stats()
    }

    fn stop_and_join(&mut self, stop: Stop) {
        for region in self.regions.values() {
            region.shared.request_stop(stop);
        }
        for (name, region) in &mut self.regions {
            if let Some(thread) = region.thread.take() {
                if thread.join().is_err() {
                    tracing::error!(region = %name, "prefetch: worker thread panicked");
                }
            }
        }
    }
}

impl Drop for PrefetchExecutor {
    fn drop(&mut self) {
        self.stop_and_join(Stop::Now);
    }
}
