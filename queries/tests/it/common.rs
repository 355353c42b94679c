//! Row types and stores shared by the tests.

use std::sync::Arc;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use serde::{Deserialize, Serialize};
use shardcast_queries::{batch_from_rows, schema_of, SnapshotStore};

/// A typed row with every field kind the job's rows use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub customer: String,
    pub partition: u64,
    pub shift: i64,
    pub score: f64,
    pub note: Option<String>,
}

pub fn assignments() -> Vec<Assignment> {
    let customer =
        |name: &str, partition: u64, shift: i64, score: f64, note: Option<&str>| Assignment {
            customer: name.to_owned(),
            partition,
            shift,
            score,
            note: note.map(str::to_owned),
        };
    vec![
        customer("globex", 7, -2, 0.25, None),
        customer("acme", 3, 1, 1.5, Some("hot")),
        customer("initech", 1, 0, 2.0, None),
        customer("umbrella", 4, -1, 0.75, Some("moved")),
        customer("hooli", 2, 5, 3.25, None),
        customer("stark", 6, 0, 0.5, None),
        customer("wayne", 5, 2, 1.0, Some("new")),
    ]
}

/// A row whose every copy says which epoch it was published in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Versioned {
    pub k: u64,
    pub epoch: u64,
}

pub const VERSIONED_ROWS: u64 = 40;

pub fn versioned(epoch: u64) -> RecordBatch {
    let rows: Vec<Versioned> = (0..VERSIONED_ROWS)
        .map(|k| Versioned { k, epoch })
        .collect();
    batch_from_rows(&rows).expect("versioned rows convert")
}

/// A store with `assignments` plus the two epoch-stamped tables `a` and `b`.
pub fn store() -> SnapshotStore {
    let versioned = schema_of::<Versioned>().expect("schema of Versioned");
    SnapshotStore::new(vec![
        (
            "assignments".to_owned(),
            schema_of::<Assignment>().expect("schema of Assignment"),
        ),
        ("a".to_owned(), versioned.clone()),
        ("b".to_owned(), versioned),
    ])
}

/// Publishes `epoch` with the fixed assignments and both tables stamped.
pub fn publish(store: &SnapshotStore, epoch: u64) {
    store
        .publish(
            epoch,
            vec![
                (
                    "assignments".to_owned(),
                    batch_from_rows(&assignments()).expect("rows convert"),
                ),
                ("a".to_owned(), versioned(epoch)),
                ("b".to_owned(), versioned(epoch)),
            ],
        )
        .expect("publish succeeds");
}

/// The join whose answer must come from a single epoch:
/// `(pinned epoch, min a, max a, min b, max b, joined rows)`.
pub const CONSISTENCY_SQL: &str = "SELECT CAST(e.epoch AS BIGINT), CAST(min(a.epoch) AS BIGINT), \
     CAST(max(a.epoch) AS BIGINT), CAST(min(b.epoch) AS BIGINT), CAST(max(b.epoch) AS BIGINT), count(*) \
     FROM shardcast_epoch e, a JOIN b ON a.k = b.k GROUP BY e.epoch";

/// Every cell of the result, row by row, as display strings.
pub fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|column: &Arc<dyn Array>| {
                        array_value_to_string(column, row).expect("cell formats")
                    })
                    .collect(),
            );
        }
    }
    rows
}

/// Checks one answer of [`CONSISTENCY_SQL`] and returns its epoch.
pub fn check_consistent(row: &[String]) -> u64 {
    let epoch: u64 = row[0].parse().expect("epoch is a number");
    for (i, cell) in row[1..5].iter().enumerate() {
        assert_eq!(
            cell.parse::<u64>().ok(),
            Some(epoch),
            "column {} of {row:?} mixes epochs",
            i + 1
        );
    }
    assert_eq!(
        row[5],
        VERSIONED_ROWS.to_string(),
        "join of one epoch matches every row: {row:?}"
    );
    epoch
}
