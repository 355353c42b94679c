//! Kafka helpers for the command line and tests: creating a topic and producing events to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use crate::block_on::block_on;
use crate::{encode_json, Event, SourceError};

/// How long topic creation may take before it is reported as failed.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before retrying a send that found the local queue full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Creates `topic` with `partitions` partitions (replication factor 1) unless it exists already.
///
/// Needed because some brokers (tansu among them) do not create topics on first use. It never deletes
/// anything: on such brokers deleting one topic can delete them all.
pub fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), SourceError> {
    if partitions < 1 {
        return Err(SourceError::Invalid(format!(
            "a topic needs at least one partition, got {partitions}"
        )));
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| SourceError::Kafka(format!("creating admin client: {e}")))?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    let results = block_on(admin.create_topics([&new_topic], &options))
        .map_err(|e| SourceError::Kafka(format!("creating topic {topic} on {brokers}: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(SourceError::Kafka(format!(
                    "creating topic {name} on {brokers}: {code}"
                )))
            }
        }
    }
    Ok(())
}

/// Counts failed deliveries so that [`KafkaEventProducer::flush`] can report them.
#[derive(Default)]
struct DeliveryReport {
    failed: AtomicU64,
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            // Only the first few are logged; the count says how many there were.
            if self.failed.fetch_add(1, Ordering::Relaxed) < 10 {
                tracing::warn!("kafka delivery failed: {error}");
            }
        }
    }
}

/// Produces events to one topic: idempotent (no duplicates from retries) and lz4-compressed.
pub struct KafkaEventProducer {
    producer: ThreadedProducer<DeliveryReport>,
    topic: String,
}

impl KafkaEventProducer {
    /// A producer to `topic` on `brokers`.
    pub fn new(brokers: &str, topic: &str) -> Result<Self, SourceError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            // lz4, not snappy: some brokers (tansu among them) cannot read snappy batches.
            .set("compression.type", "lz4")
            .create_with_context(DeliveryReport::default())
            .map_err(|e| SourceError::Kafka(format!("creating producer: {e}")))?;
        Ok(KafkaEventProducer {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Queues one message; the key picks the partition. Waits while the local queue is full.
    pub fn send(&self, key: &str, payload: &[u8]) -> Result<(), SourceError> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // The polling thread drains the queue as deliveries complete.
                    record = returned;
                    thread::sleep(QUEUE_FULL_PAUSE);
                }
                Err((error, _)) => {
                    return Err(SourceError::Kafka(format!(
                        "producing to {}: {error}",
                        self.topic
                    )))
                }
            }
        }
    }

    /// Queues one event as JSON (see [`encode_json`]), keyed by its key.
    pub fn send_event(&self, event: &Event) -> Result<(), SourceError> {
        self.send(&event.key, &encode_json(event))
    }

    /// Waits up to `timeout` for every queued message to be delivered. Fails if that takes longer or if
    /// any delivery since the previous flush failed.
    pub fn flush(&self, timeout: Duration) -> Result<(), SourceError> {
        let started = Instant::now();
        self.producer
            .flush(timeout)
            .map_err(|e| SourceError::Kafka(format!("flushing to {}: {e}", self.topic)))?;
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            return Err(SourceError::Kafka(format!(
                "{failed} messages to {} were not delivered",
                self.topic
            )));
        }
        tracing::debug!(topic = %self.topic, "flushed in {:?}", started.elapsed());
        Ok(())
    }
}
