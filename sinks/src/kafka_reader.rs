//! Reading a changelog topic written by [`crate::KafkaChangelogSink`] back: the whole log (for
//! tests, the end-to-end harness and the CLI) or only its last record (so the sink can resume).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::{Change, SinkError};

/// The single partition the changelog is written to: one partition gives one total order of
/// versions, which is what lets a writer resume from the last record.
pub const CHANGELOG_PARTITION: i32 = 0;

/// Header carrying the record's version (decimal).
pub const VERSION_HEADER: &str = "version";
/// Header carrying the record's 0-based position within its version (decimal).
pub const INDEX_HEADER: &str = "index";
/// Header carrying how many records its version has (decimal).
pub const COUNT_HEADER: &str = "count";

/// One record of a changelog topic, as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangelogRecord {
    /// The topic offset of the record.
    pub offset: i64,
    /// The message key, `TABLE/KEY`.
    pub key: String,
    /// The version header.
    pub version: u64,
    /// The position of the record within its version.
    pub index: u64,
    /// The number of records in its version.
    pub count: u64,
    /// The decoded payload.
    pub change: Change,
}

impl ChangelogRecord {
    /// True if this is the last record of its version, i.e. the version is complete in the log.
    pub fn ends_version(&self) -> bool {
        self.index + 1 >= self.count
    }
}

/// Reads every record of the changelog `topic` present when the call starts, in log order.
///
/// Fails (without panicking) if the brokers cannot be reached within `timeout`, if the topic does
/// not exist, or if a record is not in the changelog format.
pub fn read_changelog(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<ChangelogRecord>, SinkError> {
    read_from(brokers, topic, timeout, false)
}

/// Reads the last record of the changelog `topic`, `None` if the topic is empty.
pub fn read_last_record(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Option<ChangelogRecord>, SinkError> {
    Ok(read_from(brokers, topic, timeout, true)?.pop())
}

fn read_from(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    last_only: bool,
) -> Result<Vec<ChangelogRecord>, SinkError> {
    let context = format!("reading changelog topic {topic}");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // Required by librdkafka even though we only assign partitions and never commit.
        .set("group.id", "shardcast-changelog-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|e| SinkError::kafka(&context, e))?;
    let (low, high) = consumer
        .fetch_watermarks(topic, CHANGELOG_PARTITION, timeout)
        .map_err(|e| SinkError::kafka(&context, e))?;
    let from = if last_only { low.max(high - 1) } else { low };
    if high <= from {
        return Ok(Vec::new());
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, CHANGELOG_PARTITION, Offset::Offset(from))
        .and_then(|()| consumer.assign(&assignment))
        .map_err(|e| SinkError::kafka(&context, e))?;

    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => return Err(SinkError::kafka(&context, e)),
            Some(Ok(message)) => {
                let offset = message.offset();
                records.push(parse(&message)?);
                if offset >= high - 1 {
                    return Ok(records);
                }
            }
        }
    }
    Err(SinkError::kafka(
        format!(
            "{context}: reached offset {} of {high}",
            from + records.len() as i64
        ),
        KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
    ))
}

fn parse(message: &BorrowedMessage<'_>) -> Result<ChangelogRecord, SinkError> {
    let offset = message.offset();
    let bad =
        |what: &str| SinkError::Invalid(format!("changelog record at offset {offset}: {what}"));
    let key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .ok_or_else(|| bad("no key"))?;
    let header = |name: &str| -> Result<u64, SinkError> {
        message
            .headers()
            .and_then(|hs| hs.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad(&format!("missing or malformed header {name:?}")))
    };
    let change: Change = serde_json::from_slice(message.payload().unwrap_or_default())?;
    Ok(ChangelogRecord {
        offset,
        key,
        version: header(VERSION_HEADER)?,
        index: header(INDEX_HEADER)?,
        count: header(COUNT_HEADER)?,
        change,
    })
}
