//! Agreement among the workers of one process on where a finite input ends and when to leave.
//!
//! Each worker of a finite source knows only its own last epoch. If one worker closed its epochs at its
//! own end and left (dropping its dataflow) while another still had later epochs, the other's frontier
//! could never pass them. So workers publish their ends, all advance to the largest, and leave only once
//! every one of them has seen its frontier reach it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared by the workers of one process (clone it into each).
#[derive(Clone, Debug)]
pub struct FinishLine {
    workers: usize,
    finished: Arc<AtomicUsize>,
    end: Arc<AtomicU64>,
    arrived: Arc<AtomicUsize>,
}

impl FinishLine {
    /// A finish line for `workers` workers.
    pub fn new(workers: usize) -> Self {
        FinishLine {
            workers: workers.max(1),
            finished: Arc::default(),
            end: Arc::default(),
            arrived: Arc::default(),
        }
    }

    /// A worker's input is exhausted; its epochs end before `end`. Call once per worker.
    pub fn finish(&self, end: u64) {
        self.end.fetch_max(end, Ordering::SeqCst);
        self.finished.fetch_add(1, Ordering::SeqCst);
    }

    /// The common end once every worker has finished: every worker advances its input to it.
    pub fn end(&self) -> Option<u64> {
        (self.finished.load(Ordering::SeqCst) == self.workers)
            .then(|| self.end.load(Ordering::SeqCst))
    }

    /// A worker's output frontier has passed the common end. Call once per worker.
    pub fn arrive(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
    }

    /// Every worker has arrived: it is safe to stop stepping and drop the dataflow.
    pub fn all_arrived(&self) -> bool {
        self.arrived.load(Ordering::SeqCst) == self.workers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_is_the_largest_once_all_finished() {
        let line = FinishLine::new(2);
        line.finish(7);
        assert_eq!(line.end(), None);
        line.finish(5);
        assert_eq!(line.end(), Some(7));
        line.arrive();
        assert!(!line.all_arrived());
        line.arrive();
        assert!(line.all_arrived());
    }
}
