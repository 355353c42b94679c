//! The loop that drains one region's queue into its cache, riding out outages.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::copy::{Copied, Copier};
use super::queue::{PendingQueue, Pushed};
use super::stats::RegionStats;
use super::PrefetchOrder;
use crate::RetryPolicy;

/// When the worker should stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Keep working and wait for orders.
    Never,
    /// Finish the queue, but stop at the deadline whatever is left.
    Drain(Instant),
    /// Stop as soon as the current attempt is over.
    Now,
}

/// An order in the queue, with the time its first attempt failed (for the give-up budget).
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) order: PrefetchOrder,
    pub(crate) first_failure: Option<Instant>,
}

/// Everything the submitting side and the worker share, under one lock held only for queue and
/// counter updates, never across I/O, so `submit` never waits for a store.
#[derive(Debug)]
pub(crate) struct RegionState {
    pub(crate) queue: PendingQueue<Pending>,
    pub(crate) stats: RegionStats,
    pub(crate) in_flight: bool,
    pub(crate) stop: Stop,
}

impl RegionState {
    /// The counters with `pending` filled in.
    pub(crate) fn snapshot(&self) -> RegionStats {
        RegionStats {
            pending: self.queue.len() as u64 + u64::from(self.in_flight),
            ..self.stats.clone()
        }
    }

    fn stopping(&self, now: Instant) -> bool {
        match self.stop {
            Stop::Never => false,
            Stop::Drain(deadline) => now >= deadline,
            Stop::Now => true,
        }
    }
}

/// A region's shared state and the condition variable that wakes its worker (new order or stop).
#[derive(Debug)]
pub(crate) struct RegionShared {
    state: Mutex<RegionState>,
    wake: Condvar,
}

impl RegionShared {
    /// An idle region with an empty queue of `capacity`.
    pub(crate) fn new(capacity: usize) -> Self {
        RegionShared {
            state: Mutex::new(RegionState {
                queue: PendingQueue::new(capacity),
                stats: RegionStats::default(),
                in_flight: false,
                stop: Stop::Never,
            }),
            wake: Condvar::new(),
        }
    }

    /// Locks the state. A poisoned lock is used anyway: every update leaves the counters
    /// consistent, and the executor must keep running rather than cascade a panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, RegionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the worker after a change it may be waiting for.
    pub(crate) fn notify(&self) {
        self.wake.notify_all();
    }

    /// Asks the worker to stop; a `Now` is never weakened to a `Drain`.
    pub(crate) fn request_stop(&self, stop: Stop) {
        let mut state = self.lock();
        if state.stop != Stop::Now {
            state.stop = stop;
        }
        drop(state);
        self.notify();
    }
}

/// The run of retryable failures the worker is in, if any.
struct Outage {
    attempts: u32,
}

/// Copies one region's orders, highest priority first, until told to stop.
pub(crate) struct Worker {
    pub(crate) region: String,
    pub(crate) shared: std::sync::Arc<RegionShared>,
    pub(crate) copier: Copier,
    pub(crate) retry: RetryPolicy,
}

impl Worker {
    /// The worker's thread body.
    ///
    /// A failed order goes back into the queue at its old rank and the worker waits out the
    /// back-off before taking the best order again, so orders submitted during an outage are
    /// still copied in priority order once the store is back.
    pub(crate) fn run(mut self) {
        let mut outage: Option<Outage> = None;
        while let Some((rank, pending)) = self.next() {
            let result = self.copier.copy_once(&pending.order.key);
            let mut state = self.shared.lock();
            state.in_flight = false;
            let err = match result {
                Ok(copied) => {
                    match copied {
                        Copied::Landed { bytes } => {
                            state.stats.copied += 1;
                            state.stats.bytes_copied += bytes;
                        }
                        Copied::AlreadyPresent => state.stats.already_present += 1,
                        Copied::MissingInPrimary => state.stats.missing_in_primary += 1,
                    }
                    if let Some(ended) = outage.take() {
                        state.stats.retrying = false;
                        tracing::info!(
                            region = %self.region,
                            failed_attempts = ended.attempts,
                            "prefetch: stores reachable again; resuming"
                        );
                    }
                    continue;
                }
                Err(err) => err,
            };
            state.stats.failed_attempts += 1;
            state.stats.last_error = Some(err.to_string());
            if !err.is_transient() {
                state.stats.abandoned += 1;
                tracing::warn!(
                    region = %self.region,
                    key = %pending.order.key,
                    error = %err,
                    "prefetch: dropping order after an error that retrying cannot fix"
                );
                continue;
            }
            let current = outage.get_or_insert_with(|| {
                state.stats.outages += 1;
                tracing::warn!(
                    region = %self.region,
                    error = %err,
                    "prefetch: store unreachable; retrying with back-off until it is back"
                );
                Outage { attempts: 0 }
            });
            current.attempts = current.attempts.saturating_add(1);
            let delay = self.retry.delay_after(current.attempts);
            let now = Instant::now();
            let first_failure = pending.first_failure.unwrap_or(now);
            if now.duration_since(first_failure) >= self.retry.give_up_after {
                state.stats.abandoned += 1;
                // Debug, not warn: the outage was already reported once, and a long one would
                // otherwise log every queued order; the count is in the stats.
                tracing::debug!(
                    region = %self.region,
                    key = %pending.order.key,
                    budget = ?self.retry.give_up_after,
                    error = %err,
                    "prefetch: giving up on order after the retry budget"
                );
            } else {
                let again = Pending {
                    order: pending.order,
                    first_failure: Some(first_failure),
                };
                if !matches!(state.queue.restore(rank, again), Pushed::Queued) {
                    // Newer orders filled the queue meanwhile; one order was dropped either way.
                    state.stats.shed += 1;
                }
            }
            // Only "retrying" while something waits; the outage itself lasts until a success.
            state.stats.retrying = state.queue.len() > 0;
            drop(state);
            self.pause(delay);
        }
    }

    /// Waits for the best order and marks it in flight; `None` when the worker should stop.
    fn next(&self) -> Option<(super::queue::Rank, Pending)> {
        let mut state = self.shared.lock();
        loop {
            if state.stopping(Instant::now()) {
                return None;
            }
            if let Some(entry) = state.queue.pop() {
                state.in_flight = true;
                return Some(entry);
            }
            // Nothing left to retry; an unfinished outage still warns only once.
            state.stats.retrying = false;
            if matches!(state.stop, Stop::Drain(_)) {
                return None;
            }
            state = self
                .shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Sleeps for `delay`, ignoring new orders but not a stop request.
    fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut state = self.shared.lock();
        loop {
            let now = Instant::now();
            if now >= until || state.stopping(now) {
                return;
            }
            let wake_at = match state.stop {
                Stop::Drain(deadline) => until.min(deadline),
                _ => until,
            };
            state = self
                .shared
                .wake
                .wait_timeout(state, wake_at - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
