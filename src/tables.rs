//! The decision tables as rows: what sinks write and SQL reads.

use serde::{Deserialize, Serialize};
use shardcast_dataflows::Decision;
use shardcast_sources::DeadLetter;

/// `key_load`: accesses per key in the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyLoadRow {
    /// The key.
    pub key: String,
    /// Accesses in the window.
    pub accesses: i64,
}

/// `affinity`: one row per customer and region it accessed from in the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AffinityRow {
    /// The customer.
    pub customer: String,
    /// The region.
    pub region: String,
    /// Accesses by the customer from the region.
    pub accesses: i64,
    /// All accesses by the customer (its load).
    pub total: i64,
    /// `accesses / total`.
    pub share: f64,
    /// The customer's static (home) partition.
    pub home: String,
}

/// `assignments`: the partition per customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentRow {
    /// The customer.
    pub customer: String,
    /// Its partition.
    pub partition: String,
    /// Its static (home) partition.
    pub home: String,
    /// Epoch since which it is on `partition`.
    pub since_epoch: i64,
}

/// `dead_letters`: records that could not be used, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRow {
    /// Sequence number in this job.
    pub seq: i64,
    /// Epoch at which it was observed.
    pub epoch: i64,
    /// Where it came from.
    pub origin: String,
    /// Why it was rejected.
    pub reason: String,
    /// The raw record (truncated).
    pub raw: String,
}

/// A row of any table, with its table name and key.
#[derive(Clone, Debug, PartialEq)]
pub enum TableRow {
    /// A `key_load` row.
    KeyLoad(KeyLoadRow),
    /// An `affinity` row.
    Affinity(AffinityRow),
    /// An `assignments` row.
    Assignment(AssignmentRow),
    /// A `dead_letters` row.
    DeadLetter(DeadLetterRow),
}

/// Table names, in the order they are published.
pub const TABLES: [&str; 4] = ["key_load", "affinity", "assignments", "dead_letters"];

impl TableRow {
    /// The table this row belongs to.
    pub fn table(&self) -> &'static str {
        match self {
            TableRow::KeyLoad(_) => "key_load",
            TableRow::Affinity(_) => "affinity",
            TableRow::Assignment(_) => "assignments",
            TableRow::DeadLetter(_) => "dead_letters",
        }
    }

    /// The row's primary key within its table.
    pub fn key(&self) -> String {
        match self {
            TableRow::KeyLoad(r) => r.key.clone(),
            TableRow::Affinity(r) => format!("{}/{}", r.customer, r.region),
            TableRow::Assignment(r) => r.customer.clone(),
            TableRow::DeadLetter(r) => r.seq.to_string(),
        }
    }

    /// The row as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            TableRow::KeyLoad(r) => serde_json::to_value(r),
            TableRow::Affinity(r) => serde_json::to_value(r),
            TableRow::Assignment(r) => serde_json::to_value(r),
            TableRow::DeadLetter(r) => serde_json::to_value(r),
        };
        value.unwrap_or(serde_json::Value::Null)
    }

    /// The rows a decision stands for (an affinity vector is one row per region).
    pub fn from_decision(decision: &Decision) -> Vec<TableRow> {
        match decision {
            Decision::KeyLoad { key, accesses } => {
                vec![TableRow::KeyLoad(KeyLoadRow {
                    key: key.clone(),
                    accesses: *accesses as i64,
                })]
            }
            Decision::Affinity { customer, affinity } => affinity
                .regions
                .iter()
                .map(|(region, n)| {
                    TableRow::Affinity(AffinityRow {
                        customer: customer.clone(),
                        region: region.clone(),
                        accesses: *n as i64,
                        total: affinity.total as i64,
                        share: affinity.share(region),
                        home: affinity.home.clone(),
                    })
                })
                .collect(),
            Decision::Assignment {
                customer,
                assignment,
            } => vec![TableRow::Assignment(AssignmentRow {
                customer: customer.clone(),
                partition: assignment.partition.clone(),
                home: assignment.home.clone(),
                since_epoch: assignment.since as i64,
            })],
        }
    }

    /// The row for a dead letter.
    pub fn from_dead_letter(seq: i64, epoch: u64, letter: &DeadLetter) -> TableRow {
        TableRow::DeadLetter(DeadLetterRow {
            seq,
            epoch: epoch as i64,
            origin: letter.origin.clone(),
            reason: letter.reason.clone(),
            raw: letter.raw.clone(),
        })
    }
}
