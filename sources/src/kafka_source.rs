//! A [`Source`] that reads one worker's share of a Kafka topic's partitions as JSON events.
//!
//! Partitions are assigned by the job, not by group rebalancing (as Flink's Kafka source does): worker
//! `i` of `n` owns the partitions `p` with `p % n == i`, starting from the group's committed offsets. A
//! rebalance would hand a partition to another worker that re-reads it from the last commit, and those
//! duplicates would be counted twice in every window. The group still stores offsets for restarts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::{decode_json, Batch, DeadLetter, Event, Source, SourceError};

/// How long the first poll of a batch waits for a message; later ones in the batch do not wait.
const POLL_WAIT: Duration = Duration::from_millis(5);
/// Back-off after a consumer error, doubled per consecutive error up to the maximum.
const BACKOFF_START: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where and how a [`KafkaSource`] consumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic to read.
    pub topic: String,
    /// Consumer group; workers that share it share the topic's partitions.
    pub group_id: String,
    /// A partition that has received nothing for this long stops holding event-time progress back.
    pub idle_timeout_ms: u64,
}

/// Parses `kafka://HOST:PORT[,HOST:PORT...]/TOPIC` into the bootstrap servers and the topic.
pub fn parse_kafka_url(url: &str) -> Result<(String, String), SourceError> {
    let bad = |why: &str| {
        SourceError::Invalid(format!(
            "{why} in {url:?}: expected kafka://HOST:PORT/TOPIC"
        ))
    };
    let rest = url
        .strip_prefix("kafka://")
        .ok_or_else(|| bad("missing kafka:// scheme"))?;
    let (brokers, topic) = rest.split_once('/').ok_or_else(|| bad("missing /TOPIC"))?;
    if brokers.is_empty() {
        return Err(bad("no broker"));
    }
    for broker in brokers.split(',') {
        let port_ok = broker
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(bad(&format!("broker {broker:?} is not HOST:PORT")));
        }
    }
    // Kafka's own rule for topic names.
    let topic_ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !topic_ok {
        return Err(bad(&format!("invalid topic {topic:?}")));
    }
    Ok((brokers.to_string(), topic.to_string()))
}

/// Receives rebalances and client logs: it records which partitions this member owns and sends
/// librdkafka's logs to `tracing`.
#[derive(Default)]
struct GroupMember {
    assigned: Mutex<BTreeSet<i32>>,
}

impl ClientContext for GroupMember {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka retries these itself (broker down, connection refused); they are worth seeing but
        // not fatal.
        tracing::warn!(target: "librdkafka", "{error}: {reason}");
    }
}

impl ConsumerContext for GroupMember {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Both the eager and the cooperative protocol are covered: an assignment adds partitions and a
        // revocation removes the ones it lists (eager revocations list them all).
        let mut assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        match rebalance {
            Rebalance::Assign(tpl) => {
                assigned.extend(tpl.elements().iter().map(|e| e.partition()));
                tracing::info!(partitions = ?*assigned, "kafka partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                for e in tpl.elements() {
                    assigned.remove(&e.partition());
                }
                tracing::info!(partitions = ?*assigned, "kafka partitions revoked");
            }
            Rebalance::Error(e) => tracing::warn!("kafka rebalance failed: {e}"),
        }
    }
}

/// Event-time knowledge of one partition.
#[derive(Clone, Copy, Debug)]
struct PartitionClock {
    max_ts: u64,
    last_arrival: Instant,
}

/// Decodes one message from the brokers `brokers`, noting its timestamp for its partition in `clocks`.
fn decode_message(
    brokers: &str,
    clocks: &mut HashMap<i32, PartitionClock>,
    message: &BorrowedMessage<'_>,
) -> Result<Event, DeadLetter> {
    let origin = format!(
        "kafka://{brokers}/{}[{}]@{}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    let payload = message
        .payload()
        .ok_or_else(|| DeadLetter::new(&origin, "message has no payload", b""))?;
    let event = decode_json(&origin, payload)?;
    let now = Instant::now();
    let clock = clocks.entry(message.partition()).or_insert(PartitionClock {
        max_ts: event.ts,
        last_arrival: now,
    });
    clock.max_ts = clock.max_ts.max(event.ts);
    clock.last_arrival = now;
    Ok(event)
}

/// Event-time progress over the partitions' clocks at `now`: the smallest largest-timestamp of the
/// partitions that received something within `idle`, so that an idle partition does not hold progress
/// back. When all are idle, nothing holds it back and it is the largest timestamp seen. `None` when no
/// partition has received anything.
fn partition_progress<'a>(
    clocks: impl Iterator<Item = &'a PartitionClock> + Clone,
    idle: Duration,
    now: Instant,
) -> Option<u64> {
    let active = clocks
        .clone()
        .filter(|c| now.duration_since(c.last_arrival) <= idle)
        .map(|c| c.max_ts)
        .min();
    active.or_else(|| clocks.map(|c| c.max_ts).max())
}

/// One member of a consumer group reading JSON events (see [`decode_json`]) from a topic.
///
/// Each worker creates one with the same group, and the group spreads the partitions over them.
/// Offsets are committed automatically, so a restart resumes about where the group left off (records
/// since the last commit are read again). Progress is the smallest of the largest timestamps of the
/// partitions that received something within the idle timeout; idle partitions do not hold it back.
pub struct KafkaSource {
    consumer: BaseConsumer<GroupMember>,
    config: KafkaSourceConfig,
    clocks: HashMap<i32, PartitionClock>,
    progress_ms: Option<u64>,
    consecutive_errors: u32,
    backoff_until: Option<Instant>,
    /// `(worker index, workers)` until the partitions are assigned.
    unassigned: Option<(usize, usize)>,
    /// When the partitions were assigned: a partition that has received nothing since is idle after
    /// the idle timeout, like one that went quiet.
    assigned_at: Option<Instant>,
}

impl KafkaSource {
    /// Worker `index` of `workers`: it will own the topic's partitions `p` with `p % workers == index`,
    /// each from the group's committed offset (or the earliest). Only a configuration error fails here;
    /// while the broker or the topic is not reachable, `poll` retries the assignment with back-off.
    pub fn for_worker(
        config: KafkaSourceConfig,
        index: usize,
        workers: usize,
    ) -> Result<Self, SourceError> {
        if config.topic.is_empty() {
            return Err(SourceError::Kafka("no topic given".into()));
        }
        let consumer: BaseConsumer<GroupMember> = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("group.protocol", "classic")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("enable.partition.eof", "false")
            .create_with_context(GroupMember::default())
            .map_err(|e| SourceError::Kafka(format!("creating consumer: {e}")))?;
        let mut source = KafkaSource {
            consumer,
            config,
            clocks: HashMap::new(),
            progress_ms: None,
            consecutive_errors: 0,
            backoff_until: None,
            unassigned: Some((index, workers.max(1))),
            assigned_at: None,
        };
        source.try_assign(Duration::from_secs(2))?;
        Ok(source)
    }

    /// Assigns this worker's partitions once the topic's metadata is known. Not knowing it yet is not an
    /// error (it is retried); a failing `assign` is.
    fn try_assign(&mut self, wait: Duration) -> Result<(), SourceError> {
        let Some((index, workers)) = self.unassigned else {
            return Ok(());
        };
        let topic = self.config.topic.clone();
        let partitions = match self.consumer.fetch_metadata(Some(&topic), wait) {
            Ok(metadata) => metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<i32>>())
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(topic = %topic, "kafka metadata not available yet, retrying: {e}");
                Vec::new()
            }
        };
        if partitions.is_empty() {
            return Ok(());
        }
        let mine: Vec<i32> = partitions
            .into_iter()
            .filter(|p| *p as usize % workers == index)
            .collect();
        let mut assignment = TopicPartitionList::new();
        for partition in &mine {
            assignment
                .add_partition_offset(&topic, *partition, Offset::Stored)
                .map_err(|e| SourceError::Kafka(format!("assigning partition {partition}: {e}")))?;
        }
        self.consumer
            .assign(&assignment)
            .map_err(|e| SourceError::Kafka(format!("assigning partitions of {topic}: {e}")))?;
        self.consumer
            .context()
            .assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(mine.iter().copied());
        tracing::info!(topic = %topic, worker = index, partitions = ?mine, "kafka partitions assigned");
        self.unassigned = None;
        self.assigned_at = Some(Instant::now());
        Ok(())
    }

    /// A single reader of every partition of the topic.
    pub fn new(config: KafkaSourceConfig) -> Result<Self, SourceError> {
        Self::for_worker(config, 0, 1)
    }

    /// The partitions currently assigned to this member, ascending.
    pub fn assigned_partitions(&self) -> Vec<i32> {
        let assigned = self.consumer.context().assigned.lock();
        assigned
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Progress after this poll (see [`partition_progress`]); it never goes back. A worker that owns no
    /// partition (more workers than partitions) has nothing to wait for and never holds progress back.
    fn update_progress(&mut self) {
        let assigned: BTreeSet<i32> = self.assigned_partitions().into_iter().collect();
        self.clocks.retain(|p, _| assigned.contains(p));
        let idle = Duration::from_millis(self.config.idle_timeout_ms);
        let candidate = partition_progress(self.clocks.values(), idle, Instant::now());
        self.progress_ms = self.progress_ms.max(candidate);
    }

    /// Every assigned partition has been silent for the idle timeout (one that never received anything
    /// counts from the assignment), or there is no partition to read.
    fn is_idle(&self) -> bool {
        let Some(assigned_at) = self.assigned_at else {
            return false;
        };
        let idle = Duration::from_millis(self.config.idle_timeout_ms);
        let now = Instant::now();
        self.assigned_partitions().iter().all(|p| {
            let last = self.clocks.get(p).map_or(assigned_at, |c| c.last_arrival);
            now.duration_since(last) > idle
        })
    }

    /// Logs a consumer error and backs off; only a fatal error (the client cannot go on) is returned.
    fn consumer_error(&mut self, error: KafkaError) -> Result<(), SourceError> {
        if let KafkaError::MessageConsumptionFatal(code) = error {
            return Err(SourceError::Kafka(format!(
                "fatal consumer error on {}: {code}",
                self.config.topic
            )));
        }
        let backoff = BACKOFF_START
            .saturating_mul(1 << self.consecutive_errors.min(10))
            .min(BACKOFF_MAX);
        self.consecutive_errors = self.consecutive_errors.saturating_add(1);
        tracing::warn!(
            topic = %self.config.topic,
            consecutive = self.consecutive_errors,
            "kafka consumer error, retrying in {backoff:?}: {error}"
        );
        self.backoff_until = Some(Instant::now() + backoff);
        Ok(())
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, max: usize) -> Result<Batch, SourceError> {
        let mut batch = Batch::default();
        if self.unassigned.is_some() && self.backoff_until.is_none_or(|t| Instant::now() >= t) {
            self.try_assign(Duration::from_millis(50))?;
            if self.unassigned.is_some() {
                self.backoff_until = Some(Instant::now() + BACKOFF_MAX);
                return Ok(batch);
            }
        }
        if let Some(until) = self.backoff_until {
            let now = Instant::now();
            if now < until {
                thread::sleep((until - now).min(POLL_WAIT));
                self.update_progress();
                batch.progress_ms = self.progress_ms;
                return Ok(batch);
            }
            self.backoff_until = None;
        }
        let mut wait = POLL_WAIT;
        while batch.records.len() < max {
            // Only the first poll waits: a worker also has a dataflow to step.
            let error = match self.consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    self.consecutive_errors = 0;
                    let record = decode_message(&self.config.brokers, &mut self.clocks, &message);
                    batch.records.push(record);
                    wait = Duration::ZERO;
                    continue;
                }
                Some(Err(error)) => error,
            };
            self.consumer_error(error)?;
            break;
        }
        self.update_progress();
        batch.progress_ms = self.progress_ms;
        batch.idle = self.is_idle();
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_partitions_do_not_hold_progress_back() {
        let now = Instant::now();
        let idle = Duration::from_secs(10);
        let clock = |max_ts, ago: u64| PartitionClock {
            max_ts,
            last_arrival: now - Duration::from_secs(ago),
        };
        let progress = |clocks: &[PartitionClock]| partition_progress(clocks.iter(), idle, now);
        assert_eq!(progress(&[]), None);
        assert_eq!(progress(&[clock(500, 1), clock(300, 2)]), Some(300));
        // The partition at 300 went quiet: only the active one counts.
        assert_eq!(progress(&[clock(500, 1), clock(300, 20)]), Some(500));
        // All quiet: nothing is arriving, so everything seen is complete.
        assert_eq!(progress(&[clock(500, 30), clock(300, 20)]), Some(500));
    }

    #[test]
    fn unreachable_broker_is_retried_not_fatal() {
        let mut source = KafkaSource::new(KafkaSourceConfig {
            brokers: "127.0.0.1:1".into(),
            topic: "events".into(),
            group_id: "nobody".into(),
            idle_timeout_ms: 1000,
        })
        .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1500) {
            let poll_started = Instant::now();
            let batch = source.poll(10).unwrap();
            assert!(batch.records.is_empty() && batch.progress_ms.is_none());
            assert!(poll_started.elapsed() < Duration::from_millis(200));
        }
    }

    #[test]
    fn bad_settings_are_configuration_errors() {
        let result = KafkaSource::new(KafkaSourceConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: String::new(),
            group_id: "g".into(),
            idle_timeout_ms: 1000,
        });
        assert!(matches!(result, Err(SourceError::Kafka(_))));
    }

    #[test]
    fn parses_kafka_urls() {
        assert_eq!(
            parse_kafka_url("kafka://127.0.0.1:9092/events").unwrap(),
            ("127.0.0.1:9092".to_string(), "events".to_string())
        );
        assert_eq!(
            parse_kafka_url("kafka://a:1,b:2/t.x_y-z").unwrap(),
            ("a:1,b:2".to_string(), "t.x_y-z".to_string())
        );
        for bad in [
            "http://h:1/t",
            "kafka://h:1",
            "kafka://h:1/",
            "kafka:///t",
            "kafka://h/t",
            "kafka://h:port/t",
            "kafka://:1/t",
            "kafka://h:1/a/b",
            "kafka://h:1/sp ace",
        ] {
            let err = parse_kafka_url(bad).unwrap_err().to_string();
            assert!(err.contains("kafka://HOST:PORT/TOPIC"), "{bad}: {err}");
        }
    }
}
