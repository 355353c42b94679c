//! The published state of the job: one immutable snapshot per completed
//! event-time epoch, swapped in atomically.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::QueryError;

/// The full contents of every table as of one completed epoch.
///
/// A snapshot is immutable: once a reader holds an `Arc<Snapshot>`, later
/// publishes cannot change what it sees.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The event-time epoch these contents belong to (0 before the first
    /// publish).
    pub epoch: u64,
    /// Every declared table, by name, with the declared schema.
    pub tables: BTreeMap<String, RecordBatch>,
}

/// Shared holder of the latest [`Snapshot`].
///
/// Cheap to clone (one `Arc`); all clones see the same snapshots. The job
/// calls [`publish`](Self::publish) after each completed epoch; readers call
/// [`latest`](Self::latest) once and keep the returned `Arc` for the whole
/// query, so every table they read comes from the same epoch.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    schemas: BTreeMap<String, SchemaRef>,
    // A lock rather than a lock-free swap: both sides only clone or replace
    // an `Arc` while holding it, and the write side needs compare-then-swap
    // for the epoch check.
    current: RwLock<Arc<Snapshot>>,
}

impl SnapshotStore {
    /// Declares the tables and their schemas. Until the first publish, the
    /// latest snapshot is epoch 0 with every table present and empty.
    ///
    /// If a name is declared twice, the last schema wins.
    pub fn new(schemas: Vec<(String, SchemaRef)>) -> Self {
        let schemas: BTreeMap<String, SchemaRef> = schemas.into_iter().collect();
        let tables = schemas
            .iter()
            .map(|(name, schema)| (name.clone(), RecordBatch::new_empty(schema.clone())))
            .collect();
        SnapshotStore {
            inner: Arc::new(Inner {
                schemas,
                current: RwLock::new(Arc::new(Snapshot { epoch: 0, tables })),
            }),
        }
    }

    /// The declared tables and their schemas. They never change, so query
    /// engines can register the tables once.
    pub fn schemas(&self) -> &BTreeMap<String, SchemaRef> {
        &self.inner.schemas
    }

    /// Replaces the whole snapshot with `tables` as of `epoch`, in one swap:
    /// a reader sees either all of the previous snapshot or all of this one.
    ///
    /// `tables` is the full contents of the job's state; a declared table
    /// that is not listed is published empty (never left at an older epoch).
    /// Each batch must have its table's declared column names and types;
    /// metadata is ignored and the declared schema is attached.
    ///
    /// On error nothing is published and the previous snapshot stays
    /// visible: unknown or repeated table names, schema mismatches, and an
    /// epoch lower than the one already published are rejected. Republishing
    /// the current epoch is allowed.
    pub fn publish(
        &self,
        epoch: u64,
        tables: Vec<(String, RecordBatch)>,
    ) -> Result<(), QueryError> {
        let mut published = BTreeMap::new();
        for (name, batch) in tables {
            let Some(schema) = self.inner.schemas.get(&name) else {
                return Err(QueryError::UnknownTable { table: name });
            };
            let batch = conform(&name, schema, batch)?;
            if published.insert(name.clone(), batch).is_some() {
                return Err(QueryError::DuplicateTable { table: name });
            }
        }
        for (name, schema) in &self.inner.schemas {
            published
                .entry(name.clone())
                .or_insert_with(|| RecordBatch::new_empty(schema.clone()));
        }
        let next = Arc::new(Snapshot {
            epoch,
            tables: published,
        });

        // A panic elsewhere while holding the lock cannot leave a half-written
        // snapshot (the only write is one assignment), so a poisoned lock is
        // still safe to use.
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if epoch < current.epoch {
            return Err(QueryError::StaleEpoch {
                published: epoch,
                current: current.epoch,
            });
        }
        // The old snapshot is dropped here only if no query still pins it.
        *current = next;
        Ok(())
    }

    /// The most recently published snapshot. Hold on to the returned `Arc`
    /// to read one consistent epoch.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Checks `batch` against the declared `schema` and re-labels it with that
/// schema, so every snapshot of a table has exactly the schema the query
/// engines registered.
fn conform(table: &str, schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch, QueryError> {
    let mismatch = |reason: String| QueryError::SchemaMismatch {
        table: table.to_owned(),
        reason,
    };
    let found = batch.schema();
    if found.fields().len() != schema.fields().len() {
        return Err(mismatch(format!(
            "expected {} columns, got {}",
            schema.fields().len(),
            found.fields().len()
        )));
    }
    for (index, (want, got)) in schema.fields().iter().zip(found.fields()).enumerate() {
        if want.name() != got.name() || want.data_type() != got.data_type() {
            return Err(mismatch(format!(
                "column {index} should be `{}` {}, got `{}` {}",
                want.name(),
                want.data_type(),
                got.name(),
                got.data_type()
            )));
        }
    }
    // `try_new` also rejects nulls in columns declared non-nullable.
    RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
        .map_err(|error| mismatch(error.to_string()))
}
