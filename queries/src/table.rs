//! A DataFusion table backed by the live [`SnapshotStore`].

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::pin::snapshot_for_scan;
use crate::SnapshotStore;

/// One table of a [`SnapshotStore`], registered once in a long-lived
/// DataFusion context while its contents change every epoch.
///
/// Its schema is the declared one and never changes. Each scan reads the
/// snapshot pinned with [`with_snapshot`](crate::with_snapshot) (or, outside
/// a pin, the latest one) and captures that snapshot's batch, so a running
/// query is unaffected by later publishes.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    store: SnapshotStore,
    name: String,
    schema: SchemaRef,
}

impl SnapshotTable {
    /// The table `name` of `store`, or `None` if `name` was not declared.
    pub fn new(store: &SnapshotStore, name: &str) -> Option<Self> {
        let schema = store.schemas().get(name)?.clone();
        Some(SnapshotTable {
            store: store.clone(),
            name: name.to_owned(),
            schema,
        })
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = snapshot_for_scan(&self.store);
        // Every declared table is in every snapshot; the fallback only covers
        // a snapshot pinned from a different store.
        let batch = snapshot
            .tables
            .get(&self.name)
            .cloned()
            .unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
        // Filters and limit are left to DataFusion (they are not declared as
        // pushed down), so the whole batch is offered; cloning it only clones
        // `Arc`s.
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
