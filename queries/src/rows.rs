//! Typed Rust rows to Arrow batches, so row structs defined by other crates
//! can be published without hand-written Arrow code.

use std::sync::Arc;

use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_arrow::schema::{SchemaLike, TracingOptions};

use crate::QueryError;

/// How row types map to Arrow types. Chosen for the PostgreSQL endpoint:
/// plain `Utf8`/`Binary`/`List` rather than serde_arrow's `Large*` defaults,
/// and field-less enums as strings so they read as text in SQL.
fn tracing_options() -> TracingOptions {
    TracingOptions::default()
        .strings_as_large_utf8(false)
        .bytes_as_large_binary(false)
        .sequence_as_large_list(false)
        .enums_without_data_as_strings(true)
}

fn fields_of<T>() -> Result<Vec<FieldRef>, QueryError>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    Ok(Vec::<FieldRef>::from_type::<T>(tracing_options())?)
}

/// The Arrow schema of row type `T`, derived from its serde description:
/// one column per struct field, nullable exactly for `Option` fields.
///
/// Always equal to the schema of [`batch_from_rows::<T>`](batch_from_rows),
/// so it is what to declare in [`SnapshotStore::new`](crate::SnapshotStore::new).
/// Fails for types serde_arrow cannot describe (e.g. non-struct rows).
pub fn schema_of<T>() -> Result<SchemaRef, QueryError>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    Ok(Arc::new(Schema::new(fields_of::<T>()?)))
}

/// Converts `rows` to one Arrow batch with the schema [`schema_of::<T>`](schema_of).
/// An empty slice gives an empty batch with that schema.
pub fn batch_from_rows<T>(rows: &[T]) -> Result<RecordBatch, QueryError>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let fields = fields_of::<T>()?;
    Ok(serde_arrow::to_record_batch(&fields, &rows)?)
}
