//! KafkaChangelogSink against librdkafka's in-process mock cluster.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use serde_json::json;
use shardcast_sinks::{
    canonical_order, encode_record, read_changelog, Change, KafkaChangelogSink, KafkaSinkOptions,
    RetryPolicy, Sink, SinkError, CHANGELOG_PARTITION, COUNT_HEADER, INDEX_HEADER, VERSION_HEADER,
};

const TOPIC: &str = "decisions";
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A one-broker mock cluster holding the changelog topic. librdkafka's mock brokers do not
/// implement CreateTopics, so the topic is made here, as an operator would.
fn mock_cluster() -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

fn options(budget: Duration) -> KafkaSinkOptions {
    KafkaSinkOptions {
        retry: RetryPolicy {
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            give_up_after: budget,
        },
        attempt_timeout: Duration::from_secs(2),
        replication_factor: 1,
    }
}

/// Version `v` has `v % 7 + 3` changes: inserts of fresh keys plus an update of key `c0`.
fn version_changes(v: u64) -> Vec<Change> {
    let mut changes: Vec<Change> = (0..v % 7 + 1)
        .map(|i| Change {
            table: if i % 2 == 0 {
                "assignments"
            } else {
                "key_load"
            }
            .into(),
            key: format!("c{v}-{i}"),
            row: json!({"version": v, "i": i}),
            diff: 1,
            version: v,
        })
        .collect();
    changes.push(Change {
        table: "assignments".into(),
        key: "c0".into(),
        row: json!({"region": v}),
        diff: 1,
        version: v,
    });
    changes.push(Change {
        table: "assignments".into(),
        key: "c0".into(),
        row: json!({"region": v - 1}),
        diff: -1,
        version: v,
    });
    changes
}

/// The (key, version, change) sequence the topic must hold after versions `range`.
fn expected(range: std::ops::RangeInclusive<u64>) -> Vec<(String, u64, Change)> {
    range
        .flat_map(|v| {
            let changes = version_changes(v);
            canonical_order(&changes)
                .into_iter()
                .map(|c| (format!("{}/{}", c.table, c.key), v, c.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn topic_contents(brokers: &str) -> Vec<(String, u64, Change)> {
    let records = read_changelog(brokers, TOPIC, READ_TIMEOUT).unwrap();
    // Headers agree with the payload and positions are consecutive within each version.
    for pair in records.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.version == b.version {
            assert_eq!(b.index, a.index + 1);
        } else {
            assert!(a.ends_version() && b.index == 0, "{a:?} then {b:?}");
            assert!(a.version < b.version);
        }
    }
    records
        .into_iter()
        .map(|r| {
            assert_eq!(r.change.version, r.version);
            (r.key, r.version, r.change)
        })
        .collect()
}

fn write(sink: &mut KafkaChangelogSink, range: std::ops::RangeInclusive<u64>) {
    for v in range {
        sink.write_version(v, &version_changes(v)).unwrap();
    }
}

#[test]
fn changelog_arrives_in_order_and_replays_are_not_duplicated() {
    let (_cluster, brokers) = mock_cluster();
    let mut sink =
        KafkaChangelogSink::with_options(&brokers, TOPIC, options(Duration::from_secs(60)))
            .unwrap();
    write(&mut sink, 1..=20);
    sink.write_version(21, &[]).unwrap();
    sink.flush().unwrap();
    let after_20 = topic_contents(&brokers);
    assert_eq!(after_20, expected(1..=20));
    assert!(after_20.len() > 100 && after_20.len() < 500);

    // A restarted process replays from version 5: versions up to 20 are already there.
    let mut restarted =
        KafkaChangelogSink::with_options(&brokers, TOPIC, options(Duration::from_secs(60)))
            .unwrap();
    write(&mut restarted, 5..=25);
    restarted.flush().unwrap();
    assert_eq!(topic_contents(&brokers), expected(1..=25));
}

#[test]
fn half_written_version_is_completed_not_duplicated() {
    let (_cluster, brokers) = mock_cluster();
    let mut sink =
        KafkaChangelogSink::with_options(&brokers, TOPIC, options(Duration::from_secs(60)))
            .unwrap();
    write(&mut sink, 1..=3);
    drop(sink);

    // A crash in the middle of version 4: only its first 3 records reached the topic.
    let v4 = version_changes(4);
    let ordered = canonical_order(&v4);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for (index, change) in ordered.iter().take(3).enumerate() {
        let key = format!("{}/{}", change.table, change.key);
        let payload = encode_record(4, change).unwrap();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: VERSION_HEADER,
                value: Some("4"),
            })
            .insert(Header {
                key: INDEX_HEADER,
                value: Some(&index.to_string()),
            })
            .insert(Header {
                key: COUNT_HEADER,
                value: Some(&ordered.len().to_string()),
            });
        producer
            .send(
                BaseRecord::to(TOPIC)
                    .partition(CHANGELOG_PARTITION)
                    .key(&key)
                    .payload(&payload)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let mut restarted =
        KafkaChangelogSink::with_options(&brokers, TOPIC, options(Duration::from_secs(60)))
            .unwrap();
    write(&mut restarted, 1..=6);
    assert_eq!(topic_contents(&brokers), expected(1..=6));
}

#[test]
fn broker_outage_is_retried_until_it_recovers() {
    let (cluster, brokers) = mock_cluster();
    let mut sink =
        KafkaChangelogSink::with_options(&brokers, TOPIC, options(Duration::from_secs(60)))
            .unwrap();
    write(&mut sink, 1..=2);

    cluster.broker_down(1).unwrap();
    // MockCluster is not Sync, so the writer runs on another thread and this one heals it.
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| write(&mut sink, 3..=4));
        std::thread::sleep(Duration::from_secs(3));
        assert!(!writer.is_finished(), "wrote with the only broker down");
        cluster.broker_up(1).unwrap();
        writer.join().unwrap();
    });
    assert_eq!(topic_contents(&brokers), expected(1..=4));
}

#[test]
fn unreachable_brokers_give_up_with_an_error() {
    let mut opts = options(Duration::from_secs(2));
    opts.attempt_timeout = Duration::from_millis(500);
    // Port 1 on loopback: nothing listens there.
    let mut sink = KafkaChangelogSink::with_options("127.0.0.1:1", TOPIC, opts).unwrap();
    let err = sink
        .write_version(1, &version_changes(1))
        .expect_err("no broker: must fail");
    assert!(matches!(err, SinkError::GaveUp { .. }), "{err}");
    // Empty versions need no broker.
    sink.write_version(2, &[]).unwrap();
}
