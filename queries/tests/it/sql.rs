//! `query` over the store: errors, read-only, snapshot pinning and
//! consistency under concurrent publishing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use shardcast_queries::{query, with_snapshot, QueryError, SnapshotTable};

use crate::common::{cells, check_consistent, publish, store, versioned, CONSISTENCY_SQL};

#[tokio::test]
async fn before_the_first_publish_tables_exist_and_are_empty() {
    let store = store();
    let (epoch, batches) = query(&store, "SELECT count(*) FROM assignments")
        .await
        .unwrap();
    assert_eq!(epoch, 0);
    assert_eq!(cells(&batches), vec![vec!["0"]]);
}

#[tokio::test]
async fn bad_sql_is_an_error() {
    let store = store();
    for sql in [
        "SELEC 1",
        "SELECT nope FROM assignments",
        "SELECT * FROM missing",
    ] {
        let error = query(&store, sql).await.unwrap_err();
        assert!(matches!(error, QueryError::Sql(_)), "{sql}: {error}");
    }
}

#[tokio::test]
async fn query_is_read_only() {
    let store = store();
    for sql in [
        "CREATE TABLE t AS SELECT 1",
        "DROP TABLE a",
        "INSERT INTO a VALUES (1, 1)",
        "COPY a TO 'a.csv'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        assert!(query(&store, sql).await.is_err(), "{sql} must be refused");
    }
    assert!(!std::path::Path::new("a.csv").exists());
}

#[test]
fn publish_validates_and_is_all_or_nothing() {
    let store = store();
    publish(&store, 5);
    let unknown = store.publish(6, vec![("nope".to_owned(), versioned(6))]);
    assert!(matches!(unknown, Err(QueryError::UnknownTable { .. })));
    let wrong_schema = store.publish(
        6,
        vec![
            ("a".to_owned(), versioned(6)),
            ("assignments".to_owned(), versioned(6)),
        ],
    );
    assert!(
        matches!(wrong_schema, Err(QueryError::SchemaMismatch { .. })),
        "{wrong_schema:?}"
    );
    let twice = store.publish(
        6,
        vec![
            ("a".to_owned(), versioned(6)),
            ("a".to_owned(), versioned(6)),
        ],
    );
    assert!(matches!(twice, Err(QueryError::DuplicateTable { .. })));
    let stale = store.publish(4, vec![]);
    assert!(matches!(
        stale,
        Err(QueryError::StaleEpoch {
            published: 4,
            current: 5
        })
    ));
    // None of the rejected publishes is visible.
    assert_eq!(store.latest().epoch, 5);
    assert_eq!(store.latest().tables["a"], versioned(5));

    // Tables left out of a publish are empty in it, not stale.
    store
        .publish(7, vec![("a".to_owned(), versioned(7))])
        .unwrap();
    let latest = store.latest();
    assert_eq!(latest.epoch, 7);
    assert_eq!(latest.tables["b"].num_rows(), 0);
    assert_eq!(latest.tables["assignments"].num_rows(), 0);
}

/// A `SnapshotTable` scan reads the pinned snapshot, not the latest one, so
/// a statement pinned before a publish still answers from its epoch.
#[tokio::test]
async fn snapshot_tables_read_the_pinned_snapshot() {
    let store = store();
    publish(&store, 1);
    let ctx = SessionContext::new();
    ctx.register_table("a", Arc::new(SnapshotTable::new(&store, "a").unwrap()))
        .unwrap();
    assert!(SnapshotTable::new(&store, "missing").is_none());

    let pinned = store.latest();
    publish(&store, 2);
    let sql = "SELECT min(epoch), max(epoch) FROM a";
    let pinned_run = async {
        let frame = ctx.sql(sql).await?;
        frame.collect().await
    };
    let batches = with_snapshot(pinned, pinned_run).await.unwrap();
    assert_eq!(cells(&batches), vec![vec!["1", "1"]]);

    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    assert_eq!(
        cells(&batches),
        vec![vec!["2", "2"]],
        "unpinned scans read the latest snapshot"
    );
}

/// One thread publishes epochs as fast as it can while queries join two
/// tables stamped with the epoch: every answer must be from one epoch, the
/// one `query` reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_never_mix_epochs() {
    let store = store();
    publish(&store, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut epoch = 1;
            while !stop.load(Ordering::SeqCst) {
                epoch += 1;
                publish(&store, epoch);
            }
        })
    };

    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let (epoch, batches) = query(&store, CONSISTENCY_SQL).await.unwrap();
        let rows = cells(&batches);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(check_consistent(&rows[0]), epoch);
        seen.insert(epoch);
    }
    stop.store(true, Ordering::SeqCst);
    publisher.join().unwrap();
    assert!(
        seen.len() > 1,
        "queries overlapped with publishing (saw epochs {seen:?})"
    );
}
