//! The contract between the dataflow and every sink: a [`Change`] and the [`Sink`] trait.

use serde::{Deserialize, Serialize};

use crate::SinkError;

/// One change to one row of a decision table, emitted when the event-time frontier passes its epoch.
///
/// Serialized (field names and all) as the changelog record that the JSON-lines and Kafka sinks
/// write, so a consumer can deserialize a record straight back into a `Change`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The decision table, e.g. "assignments", "key_load", "affinity", "dead_letters".
    pub table: String,
    /// The row's primary key within the table, e.g. a customer id, or "c1/us-east".
    pub key: String,
    /// The row as a JSON object.
    pub row: serde_json::Value,
    /// +1 insert, -1 retract (an update = retract old + insert new, same version).
    pub diff: i64,
    /// The epoch this change belongs to; monotonically non-decreasing per sink.
    pub version: u64,
}

impl Change {
    /// A change of `diff` to the row `key` of `table`, in `version`.
    pub fn new(table: &str, key: &str, row: serde_json::Value, diff: i64, version: u64) -> Self {
        Change {
            table: table.into(),
            key: key.into(),
            row,
            diff,
            version,
        }
    }
}

/// A destination for decision changelogs, written one completed epoch (version) at a time.
pub trait Sink: Send {
    /// A short name for logs and statistics, e.g. "redis" or "kafka:decisions".
    fn name(&self) -> &str;

    /// Writes all changes of one version (one completed epoch). Called with strictly increasing
    /// versions (possibly with an empty slice, which still advances the version). Must be
    /// idempotent: rewriting a version already written (after a restart) must not duplicate or
    /// corrupt anything.
    fn write_version(&mut self, version: u64, changes: &[Change]) -> Result<(), SinkError>;

    /// Flushes buffered output; called on shutdown.
    fn flush(&mut self) -> Result<(), SinkError>;
}
