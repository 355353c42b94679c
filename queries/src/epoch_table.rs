//! `shardcast_epoch`: a one-row table telling a query which epoch it reads.

use std::sync::Arc;

use arrow::array::UInt64Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::pin::snapshot_for_scan;
use crate::SnapshotStore;

/// Name of the table with one row and one column, `epoch`, holding the epoch
/// of the snapshot the statement reads. Joining it with job tables shows
/// which epoch an answer comes from. Not registered if the job declares a
/// table of the same name.
pub const EPOCH_TABLE: &str = "shardcast_epoch";

pub(crate) fn epoch_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "epoch",
        DataType::UInt64,
        false,
    )]))
}

pub(crate) fn epoch_batch(epoch: u64) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        epoch_schema(),
        vec![Arc::new(UInt64Array::from(vec![epoch]))],
    )?)
}

/// The live `shardcast_epoch` table of the PostgreSQL endpoint: reads the
/// pinned snapshot's epoch like [`SnapshotTable`](crate::SnapshotTable)
/// reads its rows.
#[derive(Debug)]
pub(crate) struct EpochTable {
    pub(crate) store: SnapshotStore,
}

#[async_trait]
impl TableProvider for EpochTable {
    fn schema(&self) -> SchemaRef {
        epoch_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = epoch_batch(snapshot_for_scan(&self.store).epoch)?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], epoch_schema(), projection.cloned())?;
        Ok(exec)
    }
}
