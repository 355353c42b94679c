//! The decision tables as rows: what sinks write and SQL reads.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use shardcast_dataflows::Decision;
use shardcast_operators::QueueRow;
use shardcast_queries::{batch_from_rows, schema_of, QueryError};
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

/// `transitions`: "after `key` comes `next_key`", over the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransitionRow {
    /// The key.
    pub key: String,
    /// A key that followed it.
    pub next_key: String,
    /// Times `next_key` followed `key` in the window.
    pub count: i64,
    /// Times anything followed `key`.
    pub total: i64,
    /// `count / total`.
    pub probability: f64,
    /// The probability shrunk by its support.
    pub confidence: f64,
}

/// `co_access`: after one client accesses `key`, another client of its region accesses `next_key`.
pub type CoAccessRow = TransitionRow;

/// `similar_messages`: messages whose payloads are alike (MinHash-estimated Jaccard similarity of words).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimilarMessageRow {
    /// The message.
    pub key: String,
    /// A message like it.
    pub other: String,
    /// Estimated similarity, 0 to 1.
    pub similarity: f64,
}

impl TransitionRow {
    fn new(key: &str, successor: &shardcast_operators::Successor) -> Self {
        TransitionRow {
            key: key.to_string(),
            next_key: successor.key.clone(),
            count: successor.count as i64,
            total: successor.total as i64,
            probability: successor.probability,
            confidence: successor.confidence,
        }
    }
}

/// `prefetch`: the orders of the latest epoch, per region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrefetchRow {
    /// The region whose cache should receive the key.
    pub region: String,
    /// The key.
    pub key: String,
    /// Priority: chance that a client of the region asks for it soon, discounted by confidence.
    pub priority: f64,
    /// Highest probability among the clients predicted to ask.
    pub probability: f64,
    /// Highest confidence among them.
    pub confidence: f64,
    /// Bytes to move.
    pub bytes: i64,
    /// Clients of the region predicted to ask.
    pub clients: i64,
}

/// `prefetch_queue`: the queued predictions of each consumer (order by confidence to read a queue).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrefetchQueueRow {
    /// The consumer.
    pub consumer: String,
    /// The predicted key.
    pub key: String,
    /// Prediction confidence.
    pub confidence: f64,
    /// Epoch it was enqueued.
    pub enqueued_epoch: i64,
    /// Epoch at which it is invalidated unless consumed.
    pub expires_epoch: i64,
}

/// `queue_stats`: per consumer, queued keys consumed and invalidated since the job started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueStatsRow {
    /// The consumer.
    pub consumer: String,
    /// Queued keys it then accessed.
    pub consumed: i64,
    /// Queued keys dropped (timed out or pushed out by more confident ones).
    pub invalidated: i64,
}

/// `key_index`: seed 000's fast key index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyIndexRow {
    /// The key.
    pub key: String,
    /// Version tag: event time (ms) of its latest access.
    pub version: i64,
    /// Session of that access (`client/session-start-ms`).
    pub session: String,
    /// Keys expected after it, most likely first, comma-separated.
    pub event_keys: String,
    /// Highest confidence with which it is predicted next (0 if not).
    pub confidence: f64,
}

/// `forecasts`: the forecast load of each series for the next epochs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastTableRow {
    /// The series: `key:K`, `partition:P` or `shard:N`.
    pub series: String,
    /// Epochs ahead.
    pub horizon: i64,
    /// Forecast accesses in that epoch.
    pub value: f64,
    /// The forecaster's recent accuracy on this series, 0 to 1.
    pub confidence: f64,
    /// The forecaster.
    pub model: String,
}

/// `shards`: the current shard map, one row per hash range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardTableRow {
    /// The shard's id (a split or merge makes new ids).
    pub shard: i64,
    /// First ring position of its range.
    pub range_lo: i64,
    /// One past its last ring position.
    pub range_hi: i64,
    /// The node serving it.
    pub node: String,
    /// Nodes with replicas, in failover order, comma-separated.
    pub replicas: String,
    /// Map version at which it took this range and node.
    pub version: i64,
}

/// `routing`: the balancer's latest decisions (the routing changelog), newest with the highest version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutingTableRow {
    /// Map version after the decision (a shadow plan does not change the map).
    pub version: i64,
    /// Epoch of the decision.
    pub epoch: i64,
    /// `split`, `merge`, `move`, `failover`, `replicas`, `shadow` or `cancel_shadow`.
    pub action: String,
    /// The shard acted on.
    pub shard: i64,
    /// The whole action as JSON (split point, nodes, new shard ids).
    pub detail: String,
    /// Why it was decided.
    pub reason: String,
    /// The shard's load in the epoch.
    pub shard_load: f64,
    /// Highest forecast of the shard's load within the horizon.
    pub forecast_peak: f64,
    /// Load of the keys whose node changes.
    pub load_moved: f64,
    /// Keys whose node changes.
    pub keys_moved: i64,
    /// Max / mean shard load before.
    pub imbalance_before: f64,
    /// Max / mean shard load after.
    pub imbalance_after: f64,
}

/// Declares [`TableRow`] with one variant per table, its name and its row type, in publication order.
macro_rules! tables {
    ($($variant:ident($row:ident) = $name:literal),* $(,)?) => {
        /// A row of any table.
        #[derive(Clone, Debug, PartialEq)]
        pub enum TableRow {
            $(
                #[doc = concat!("A `", $name, "` row.")]
                $variant($row),
            )*
        }

        /// Table names, in the order they are published.
        pub const TABLES: &[&str] = &[$($name),*];

        impl TableRow {
            /// The table this row belongs to.
            pub fn table(&self) -> &'static str {
                match self {
                    $(TableRow::$variant(_) => $name,)*
                }
            }

            /// The row as a JSON object.
            pub fn to_json(&self) -> serde_json::Value {
                let value = match self {
                    $(TableRow::$variant(r) => serde_json::to_value(r),)*
                };
                value.unwrap_or(serde_json::Value::Null)
            }

            /// The Arrow schema of every table.
            pub fn schemas() -> Result<Vec<(String, SchemaRef)>, QueryError> {
                Ok(vec![$(($name.to_string(), schema_of::<$row>()?)),*])
            }

            /// The Arrow batch of `table` from its rows (rows of other tables are ignored).
            pub fn batch(table: &str, rows: &[&TableRow]) -> Result<RecordBatch, QueryError> {
                match table {
                    $($name => {
                        let rows: Vec<$row> = rows
                            .iter()
                            .filter_map(|r| match r {
                                TableRow::$variant(x) => Some(x.clone()),
                                #[allow(unreachable_patterns)]
                                _ => None,
                            })
                            .collect();
                        batch_from_rows(&rows)
                    })*
                    other => Err(QueryError::UnknownTable {
                        table: other.to_string(),
                    }),
                }
            }
        }
    };
}

tables! {
    KeyLoad(KeyLoadRow) = "key_load",
    Affinity(AffinityRow) = "affinity",
    Assignment(AssignmentRow) = "assignments",
    DeadLetter(DeadLetterRow) = "dead_letters",
    Transition(TransitionRow) = "transitions",
    CoAccess(CoAccessRow) = "co_access",
    SimilarMessage(SimilarMessageRow) = "similar_messages",
    Prefetch(PrefetchRow) = "prefetch",
    PrefetchQueue(PrefetchQueueRow) = "prefetch_queue",
    QueueStats(QueueStatsRow) = "queue_stats",
    KeyIndex(KeyIndexRow) = "key_index",
    Forecast(ForecastTableRow) = "forecasts",
    Shard(ShardTableRow) = "shards",
    Routing(RoutingTableRow) = "routing",
}

impl TableRow {
    /// The row's primary key within its table.
    pub fn key(&self) -> String {
        match self {
            TableRow::KeyLoad(r) => r.key.clone(),
            TableRow::Affinity(r) => format!("{}/{}", r.customer, r.region),
            TableRow::Assignment(r) => r.customer.clone(),
            TableRow::DeadLetter(r) => r.seq.to_string(),
            TableRow::Transition(r) => format!("{}/{}", r.key, r.next_key),
            TableRow::Prefetch(r) => format!("{}/{}", r.region, r.key),
            TableRow::CoAccess(r) => format!("{}/{}", r.key, r.next_key),
            TableRow::SimilarMessage(r) => format!("{}/{}", r.key, r.other),
            TableRow::PrefetchQueue(r) => format!("{}/{}", r.consumer, r.key),
            TableRow::QueueStats(r) => r.consumer.clone(),
            TableRow::KeyIndex(r) => r.key.clone(),
            TableRow::Forecast(r) => format!("{}/{}", r.series, r.horizon),
            TableRow::Shard(r) => r.shard.to_string(),
            TableRow::Routing(r) => format!("{}/{}/{}", r.version, r.action, r.shard),
        }
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
            Decision::Transition { key, successor } => {
                vec![TableRow::Transition(TransitionRow::new(key, successor))]
            }
            Decision::CoAccess { key, successor } => {
                vec![TableRow::CoAccess(TransitionRow::new(key, successor))]
            }
            Decision::Similar {
                key,
                other,
                similarity,
            } => vec![TableRow::SimilarMessage(SimilarMessageRow {
                key: key.clone(),
                other: other.clone(),
                similarity: *similarity as f64 / 1e6,
            })],
            Decision::Prefetch(o) => vec![TableRow::Prefetch(PrefetchRow {
                region: o.region.clone(),
                key: o.key.clone(),
                priority: o.priority.0,
                probability: o.probability.0,
                confidence: o.confidence.0,
                bytes: o.bytes as i64,
                clients: o.clients as i64,
            })],
            Decision::KeyIndex(e) => vec![TableRow::KeyIndex(KeyIndexRow {
                key: e.key.clone(),
                version: e.version as i64,
                session: e.session.clone(),
                event_keys: e.event_keys.join(","),
                confidence: e.confidence.0,
            })],
            Decision::Queue(QueueRow::Entry {
                consumer,
                key,
                confidence_millionths,
                enqueued,
                expires,
            }) => vec![TableRow::PrefetchQueue(PrefetchQueueRow {
                consumer: consumer.clone(),
                key: key.clone(),
                confidence: *confidence_millionths as f64 / 1e6,
                enqueued_epoch: *enqueued as i64,
                expires_epoch: *expires as i64,
            })],
            Decision::Forecast(f) => vec![TableRow::Forecast(ForecastTableRow {
                series: f.series.clone(),
                horizon: i64::from(f.horizon),
                value: f.value,
                confidence: f.confidence,
                model: f.model.clone(),
            })],
            Decision::Shard(r) => vec![TableRow::Shard(ShardTableRow {
                shard: r.id as i64,
                range_lo: r.lo as i64,
                range_hi: r.hi as i64,
                node: r.node.clone(),
                replicas: r.replicas.join(","),
                version: r.version as i64,
            })],
            Decision::Routing(r) => vec![TableRow::Routing(RoutingTableRow {
                version: r.version as i64,
                epoch: r.epoch as i64,
                action: r.kind().to_string(),
                shard: r.shard() as i64,
                detail: serde_json::to_string(&r.action).unwrap_or_default(),
                reason: r.reason.clone(),
                shard_load: r.shard_load.0,
                forecast_peak: r.forecast_peak.0,
                load_moved: r.load_moved.0,
                keys_moved: r.keys_moved as i64,
                imbalance_before: r.imbalance_before.0,
                imbalance_after: r.imbalance_after.0,
            })],
            Decision::Queue(QueueRow::Counters {
                consumer,
                consumed,
                invalidated,
            }) => vec![TableRow::QueueStats(QueueStatsRow {
                consumer: consumer.clone(),
                consumed: *consumed as i64,
                invalidated: *invalidated as i64,
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
