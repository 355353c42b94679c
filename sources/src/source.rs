//! The interface every source implements: poll for records, report event-time progress.

use crate::{DeadLetter, Event};

/// What one poll of a source returns.
#[derive(Debug, Default)]
pub struct Batch {
    /// Decoded events and the records that failed to decode, in arrival order.
    pub records: Vec<Result<Event, DeadLetter>>,
    /// Event-time progress in milliseconds: the source expects no more events older than this (before
    /// allowed lateness is subtracted by the dataflow). For Kafka, the minimum over the assigned,
    /// non-idle partitions of the largest timestamp seen. `None` until something is known.
    pub progress_ms: Option<u64>,
    /// True when the source is exhausted (end of file, generator limit); never true for Kafka.
    pub finished: bool,
    /// True when everything this source reads has been silent for its idle timeout (or it reads
    /// nothing, e.g. a worker without a Kafka partition). An idle source should not hold event time
    /// back: the worker may follow the other workers' progress, as Flink does with idle splits.
    pub idle: bool,
}

/// A source of access events that a timely worker polls from its own thread.
///
/// Each worker owns one instance (a share of the generator, every `peers`-th line of a file, or a member
/// of the Kafka consumer group), so `poll` never blocks for long: a worker also has a dataflow to step.
pub trait Source: Send {
    /// Up to `max` records that are ready now. May wait briefly (a few milliseconds) when none are.
    fn poll(&mut self, max: usize) -> Result<Batch, crate::SourceError>;
}
