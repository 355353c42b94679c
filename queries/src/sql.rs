//! In-process SQL over one pinned snapshot.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::epoch_table::{epoch_batch, epoch_schema, EPOCH_TABLE};
use crate::{QueryError, SnapshotStore};

/// Catalog and schema the tables are registered under, here and on the
/// PostgreSQL endpoint, so qualified names work the same in both.
pub(crate) const CATALOG: &str = "shardcast";
pub(crate) const SCHEMA: &str = "public";

/// Runs one read-only SQL text over the latest snapshot and returns the
/// epoch it read with the result batches.
///
/// The snapshot is pinned once, before planning, and the query runs in a
/// fresh DataFusion context holding only that snapshot's data, so every
/// table (and `shardcast_epoch`) in the answer is from the returned epoch,
/// however many publishes happen meanwhile.
///
/// DDL, DML (including `COPY`) and session statements (`SET`, ...) are
/// rejected; errors in the SQL come back as [`QueryError::Sql`].
pub async fn query(
    store: &SnapshotStore,
    sql: &str,
) -> Result<(u64, Vec<RecordBatch>), QueryError> {
    let snapshot = store.latest();
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG, SCHEMA)
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    for (name, batch) in &snapshot.tables {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
        ctx.register_table(name.as_str(), Arc::new(table))?;
    }
    if !snapshot.tables.contains_key(EPOCH_TABLE) {
        let table = MemTable::try_new(epoch_schema(), vec![vec![epoch_batch(snapshot.epoch)?]])?;
        ctx.register_table(EPOCH_TABLE, Arc::new(table))?;
    }
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let batches = ctx
        .sql_with_options(sql, read_only)
        .await?
        .collect()
        .await?;
    Ok((snapshot.epoch, batches))
}

/// Formats batches as an aligned text table with a header (Arrow's pretty
/// printer). Returns the formatting error's text instead of failing, since
/// this is only used for display.
pub fn format_batches(batches: &[RecordBatch]) -> String {
    match pretty_format_batches(batches) {
        Ok(table) => table.to_string(),
        Err(error) => format!("cannot format result: {error}"),
    }
}
