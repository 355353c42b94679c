//! A sink producing the changelog to a Kafka topic.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::types::RDKafkaErrorCode;

use crate::kafka_reader::{
    read_last_record, CHANGELOG_PARTITION, COUNT_HEADER, INDEX_HEADER, VERSION_HEADER,
};
use crate::record::{canonical_order, encode_record};
use crate::{retry, Change, RetryPolicy, Sink, SinkError};

/// Settings of a [`KafkaChangelogSink`] beyond brokers and topic.
#[derive(Clone, Debug)]
pub struct KafkaSinkOptions {
    /// Back-off and total time budget for broker outages and delivery failures.
    pub retry: RetryPolicy,
    /// How long one attempt may take (librdkafka's `message.timeout.ms`, admin and metadata
    /// timeouts); bounds how long an outage goes unreported before the next warning.
    pub attempt_timeout: Duration,
    /// Replication factor used if the sink has to create the topic.
    pub replication_factor: i32,
}

impl Default for KafkaSinkOptions {
    /// Default retry policy, 5 s attempts, replication factor 1 (single-broker setups).
    fn default() -> Self {
        KafkaSinkOptions {
            retry: RetryPolicy::default(),
            attempt_timeout: Duration::from_secs(5),
            replication_factor: 1,
        }
    }
}

/// Produces each change as one Kafka message to partition 0 of a topic: key `TABLE/KEY`, payload
/// the JSON object `{"table","key","version","diff","row"}`, headers `version`, `index` (position
/// within the version) and `count` (records in the version). Read it back with
/// [`crate::read_changelog`].
///
/// Guarantees:
/// - The topic is created (one partition) before the first message if it is missing; an existing
///   topic is used as is and never deleted.
/// - The producer is idempotent (`enable.idempotence=true`) and compresses with lz4.
/// - Records appear in version order, and within a version in [`canonical_order`].
/// - `write_version` returns only once every record of the version is acknowledged.
/// - Exactly once across retries and restarts: before writing, the sink reads the last record of
///   the topic; versions below it are skipped, and a half-written version is completed from the
///   record after it (this relies on a single writer per topic and on a version being rewritten
///   with the same set of changes).
/// - Broker outages and delivery failures are retried with exponential back-off (warning on
///   each attempt) and reported as [`SinkError::GaveUp`] after `retry.give_up_after`.
pub struct KafkaChangelogSink {
    name: String,
    brokers: String,
    topic: String,
    options: KafkaSinkOptions,
    producer: BaseProducer<DeliveryTracker>,
    topic_ready: bool,
    /// Where the topic's log ends: `None` = unknown (re-read before writing), `Some(None)` = empty.
    tail: Option<Option<Tail>>,
    last_written: Option<u64>,
}

/// The position of the last record in the topic.
#[derive(Clone, Copy, Debug)]
struct Tail {
    version: u64,
    index: u64,
}

impl KafkaChangelogSink {
    /// A sink producing to `topic` on `brokers` (comma-separated `host:port`) with default
    /// options. No network I/O happens until the first non-empty version is written.
    pub fn new(brokers: &str, topic: &str) -> Result<Self, SinkError> {
        Self::with_options(brokers, topic, KafkaSinkOptions::default())
    }

    /// Like [`KafkaChangelogSink::new`] with explicit options.
    pub fn with_options(
        brokers: &str,
        topic: &str,
        options: KafkaSinkOptions,
    ) -> Result<Self, SinkError> {
        if options.attempt_timeout.is_zero() {
            return Err(SinkError::Invalid(
                "kafka sink: attempt_timeout must be positive".into(),
            ));
        }
        let producer = create_producer(brokers, options.attempt_timeout)?;
        Ok(KafkaChangelogSink {
            name: format!("kafka:{topic}"),
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            options,
            producer,
            topic_ready: false,
            tail: None,
            last_written: None,
        })
    }

    /// One attempt at getting all of `records` (the whole version) into the topic.
    fn attempt(&mut self, version: u64, records: &[(String, Vec<u8>)]) -> Result<(), SinkError> {
        if !self.topic_ready {
            ensure_topic(
                &self.brokers,
                &self.topic,
                self.options.replication_factor,
                self.options.attempt_timeout,
            )?;
            self.topic_ready = true;
        }
        let tail = match self.tail {
            Some(tail) => tail,
            None => {
                let tail = self.read_tail()?;
                self.tail = Some(tail);
                tail
            }
        };
        let start = match tail {
            Some(t) if t.version > version => {
                tracing::info!(sink = %self.name, version, topic_version = t.version,
                    "topic already holds a later version; skipping");
                return Ok(());
            }
            Some(t) if t.version == version => t.index + 1,
            _ => 0,
        };
        let count = records.len() as u64;
        if start >= count {
            return Ok(());
        }
        if start > 0 {
            tracing::info!(sink = %self.name, version, start, count,
                "completing a partially written version");
        }
        match self.produce(version, start, records) {
            Ok(()) => {
                self.tail = Some(Some(Tail {
                    version,
                    index: count - 1,
                }));
                Ok(())
            }
            Err(err) => {
                // Some records may have landed; learn from the topic where to resume, and start
                // over with a fresh producer so no stale in-flight state (or a fatal idempotence
                // error) carries over.
                self.tail = None;
                self.producer
                    .purge(PurgeConfig::default().queue().inflight());
                let _ = self.producer.flush(Duration::from_millis(500));
                self.producer = create_producer(&self.brokers, self.options.attempt_timeout)?;
                Err(err)
            }
        }
    }

    fn read_tail(&self) -> Result<Option<Tail>, SinkError> {
        match read_last_record(&self.brokers, &self.topic, self.options.attempt_timeout) {
            Ok(last) => Ok(last.map(|r| Tail {
                version: r.version,
                index: r.index,
            })),
            // A record we did not write (no headers) cannot tell us where we stopped; appending
            // whole versions is the only sensible fallback.
            Err(SinkError::Invalid(why)) => {
                tracing::warn!(sink = %self.name, %why, "cannot resume from the topic's last record");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Sends `records[start..]` and waits until librdkafka reports every one of them.
    fn produce(
        &self,
        version: u64,
        start: u64,
        records: &[(String, Vec<u8>)],
    ) -> Result<(), SinkError> {
        let context = || format!("producing version {version} to {}", self.topic);
        let tracker = self.producer.context();
        tracker.reset();
        let version_text = version.to_string();
        let count_text = records.len().to_string();
        let mut sent = 0usize;
        for (index, (key, payload)) in records.iter().enumerate().skip(start as usize) {
            let index_text = index.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: VERSION_HEADER,
                    value: Some(&version_text),
                })
                .insert(Header {
                    key: INDEX_HEADER,
                    value: Some(&index_text),
                })
                .insert(Header {
                    key: COUNT_HEADER,
                    value: Some(&count_text),
                });
            let mut record = BaseRecord::to(&self.topic)
                .partition(CHANGELOG_PARTITION)
                .key(key)
                .payload(payload)
                .headers(headers);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    // The local queue is full: serve delivery reports to make room.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(SinkError::kafka(context(), e)),
                }
            }
            sent += 1;
        }
        // message.timeout.ms bounds when every report arrives; the margin covers scheduling.
        let deadline = Instant::now() + self.options.attempt_timeout + Duration::from_secs(5);
        while tracker.reported() < sent && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(50));
        }
        let outcome = tracker.outcome();
        match outcome.first_error {
            Some(e) => Err(SinkError::kafka(
                format!(
                    "{}: {} of {sent} deliveries failed",
                    context(),
                    outcome.failed
                ),
                e,
            )),
            None if outcome.ok < sent => Err(SinkError::kafka(
                format!(
                    "{}: {} of {sent} deliveries unconfirmed",
                    context(),
                    sent - outcome.ok
                ),
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            )),
            None => Ok(()),
        }
    }
}

impl Sink for KafkaChangelogSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_version(&mut self, version: u64, changes: &[Change]) -> Result<(), SinkError> {
        if self.last_written.is_some_and(|last| version <= last) {
            return Ok(());
        }
        let records = canonical_order(changes)
            .into_iter()
            .map(|c| Ok((format!("{}/{}", c.table, c.key), encode_record(version, c)?)))
            .collect::<Result<Vec<_>, SinkError>>()?;
        if !records.is_empty() {
            let policy = self.options.retry;
            let what = format!("{}: writing version {version}", self.name);
            retry(&policy, &what, |_| self.attempt(version, &records))?;
        }
        self.last_written = Some(version);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Every version is acknowledged before write_version returns; this only covers
        // anything librdkafka still holds.
        self.producer
            .flush(self.options.attempt_timeout)
            .map_err(|e| SinkError::kafka(format!("flushing {}", self.name), e))
    }
}

fn create_producer(
    brokers: &str,
    attempt_timeout: Duration,
) -> Result<BaseProducer<DeliveryTracker>, SinkError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        // The sink creates the topic itself (one partition); never let a produce create it with
        // broker defaults.
        .set("allow.auto.create.topics", "false")
        .set("enable.idempotence", "true")
        // lz4, not snappy: the broker used in tests mishandles snappy batches.
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            attempt_timeout.as_millis().to_string(),
        )
        .create_with_context(DeliveryTracker::default())
        .map_err(|e| SinkError::kafka("creating producer", e))
}

/// Creates `topic` with one partition unless the brokers already know it. Never deletes anything.
///
/// Existence is checked first (without triggering auto-creation), so an existing topic needs no
/// CreateTopics permission; a concurrent creator winning the race ("already exists") is fine.
fn ensure_topic(
    brokers: &str,
    topic: &str,
    replication_factor: i32,
    timeout: Duration,
) -> Result<(), SinkError> {
    let context = format!("creating topic {topic}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| SinkError::kafka(&context, e))?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| SinkError::kafka(format!("looking up topic {topic}"), e))?;
    let known = metadata.topics().iter().find(|t| t.name() == topic);
    match known.map(|t| {
        (
            t.error().map(RDKafkaErrorCode::from),
            t.partitions().is_empty(),
        )
    }) {
        Some((None, false)) => return Ok(()),
        None
        | Some((None, true))
        | Some((Some(RDKafkaErrorCode::UnknownTopicOrPartition), _))
        | Some((Some(RDKafkaErrorCode::UnknownTopic), _)) => {}
        Some((Some(code), _)) => {
            return Err(SinkError::kafka(
                format!("looking up topic {topic}"),
                KafkaError::MetadataFetch(code),
            ))
        }
    }
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(replication_factor));
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = futures_executor::block_on(admin.create_topics([&new_topic], &options))
        .map_err(|e| SinkError::kafka(&context, e))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created changelog topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(SinkError::kafka(&context, KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}

/// Producer context counting delivery reports of the current attempt.
#[derive(Default)]
struct DeliveryTracker {
    state: Mutex<DeliveryOutcome>,
}

#[derive(Clone, Default)]
struct DeliveryOutcome {
    ok: usize,
    failed: usize,
    first_error: Option<KafkaError>,
}

impl DeliveryTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, DeliveryOutcome> {
        // A panic elsewhere while holding the lock cannot leave counters inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reset(&self) {
        *self.lock() = DeliveryOutcome::default();
    }

    fn reported(&self) -> usize {
        let s = self.lock();
        s.ok + s.failed
    }

    fn outcome(&self) -> DeliveryOutcome {
        self.lock().clone()
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: KafkaError, reason: &str) {
        // Outages are reported by the retry loop; librdkafka's own view is detail.
        tracing::debug!(%error, reason, "librdkafka client error");
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut s = self.lock();
        match result {
            Ok(_) => s.ok += 1,
            Err((e, _)) => {
                s.failed += 1;
                s.first_error.get_or_insert_with(|| e.clone());
            }
        }
    }
}
