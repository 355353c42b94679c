//! Pinning one snapshot for the duration of a statement, so that every table
//! a statement scans comes from the same epoch.

use std::future::Future;
use std::sync::Arc;

use crate::{Snapshot, SnapshotStore};

tokio::task_local! {
    // A task-local rather than a session setting: the PostgreSQL endpoint
    // shares one DataFusion `SessionContext` between all connections, so the
    // pin has to travel with the statement's task, not with the context.
    static PINNED: Arc<Snapshot>;
}

/// Runs `work` with `snapshot` pinned: every [`SnapshotTable`](crate::SnapshotTable)
/// and the `shardcast_epoch` table scanned while `work` runs, on this task,
/// read `snapshot` instead of the store's latest one.
///
/// DataFusion creates table scans while building the physical plan, which
/// happens inside the `execute_*`/`collect` call on the calling task; the
/// scans capture the snapshot's batches, so streams that are polled after
/// `work` returns still read the pinned epoch. Work spawned onto other tasks
/// inside `work` does not inherit the pin.
pub async fn with_snapshot<F: Future>(snapshot: Arc<Snapshot>, work: F) -> F::Output {
    PINNED.scope(snapshot, work).await
}

/// The snapshot pinned by the enclosing [`with_snapshot`], if any.
pub fn pinned_snapshot() -> Option<Arc<Snapshot>> {
    PINNED.try_with(Arc::clone).ok()
}

/// The snapshot a scan should read: the pinned one, or else the store's
/// latest. An unpinned statement reading several tables may therefore mix
/// epochs, which is why every entry point of this crate pins.
pub(crate) fn snapshot_for_scan(store: &SnapshotStore) -> Arc<Snapshot> {
    pinned_snapshot().unwrap_or_else(|| {
        tracing::debug!("table scanned outside a pinned statement; reading the latest snapshot");
        store.latest()
    })
}
