//! Two group members share a two-partition topic on librdkafka's in-process mock cluster: every valid
//! event arrives exactly once across them and every malformed message becomes a dead letter.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use shardcast_sources::{Event, KafkaEventProducer, KafkaSource, KafkaSourceConfig, Source};

const TOPIC: &str = "events";
const VALID: u64 = 300;
const DEADLINE: Duration = Duration::from_secs(90);

fn event(i: u64) -> Event {
    Event {
        ts: 1_700_000_000_000 + i * 10,
        key: format!("k{i:06}"),
        client: format!("c{:05}", i % 7),
        region: "eu-west".into(),
        op: "read".into(),
        bytes: i,
        attrs: BTreeMap::new(),
    }
}

#[test]
fn workers_split_the_topic_and_dead_letter_bad_messages() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 2, 1).expect("mock topic");
    let brokers = cluster.bootstrap_servers();
    let config = KafkaSourceConfig {
        brokers: brokers.clone(),
        topic: TOPIC.into(),
        group_id: "sources-test".into(),
        idle_timeout_ms: 60_000,
    };
    let mut members = [
        KafkaSource::for_worker(config.clone(), 0, 2).unwrap(),
        KafkaSource::for_worker(config, 1, 2).unwrap(),
    ];

    // Each worker owns its partitions from the start: worker 0 partition 0, worker 1 partition 1.
    assert_eq!(members[0].assigned_partitions(), [0]);
    assert_eq!(members[1].assigned_partitions(), [1]);
    let mut all: Vec<i32> = members
        .iter()
        .flat_map(|m| m.assigned_partitions())
        .collect();
    all.sort_unstable();
    assert_eq!(all, [0, 1]);

    let producer = KafkaEventProducer::new(&brokers, TOPIC).unwrap();
    for i in 0..VALID {
        producer.send_event(&event(i)).unwrap();
    }
    let malformed: [&[u8]; 3] = [b"{not json", br#"{"ts":1}"#, b"[]"];
    for (i, payload) in malformed.iter().enumerate() {
        producer.send(&format!("bad{i}"), payload).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    // A message without a payload (a tombstone), which the event producer cannot send.
    let raw: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    raw.send(BaseRecord::<str, ()>::to(TOPIC).key("tombstone"))
        .map_err(|(e, _)| e)
        .unwrap();
    raw.flush(Duration::from_secs(30)).unwrap();

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut dead = Vec::new();
    let mut per_member = [0usize; 2];
    let mut quiet_since = None;
    let started = Instant::now();
    // Read until everything arrived, then a little longer to catch duplicates.
    while quiet_since.is_none_or(|t: Instant| t.elapsed() < Duration::from_millis(500)) {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} events arrived",
            seen.len()
        );
        for (index, member) in members.iter_mut().enumerate() {
            let batch = member.poll(50).unwrap();
            assert!(!batch.finished);
            for record in batch.records {
                per_member[index] += 1;
                match record {
                    Ok(e) => *seen.entry(e.key).or_default() += 1,
                    Err(d) => dead.push(d),
                }
            }
        }
        if quiet_since.is_none() && seen.len() as u64 == VALID && dead.len() == 4 {
            quiet_since = Some(Instant::now());
        }
    }

    assert_eq!(seen.len() as u64, VALID);
    assert!(seen.values().all(|n| *n == 1), "duplicates arrived");
    assert!(
        per_member.iter().all(|n| *n > 0),
        "one member got nothing: {per_member:?}"
    );
    dead.sort_by(|a, b| a.raw.cmp(&b.raw));
    let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(reasons[0], "message has no payload");
    assert!(reasons[1].starts_with("invalid event: "), "{}", reasons[1]);
    assert_eq!(reasons[2], "missing field key");
    assert!(reasons[3].starts_with("invalid JSON: "), "{}", reasons[3]);
    for d in &dead {
        assert!(
            d.origin.starts_with(&format!("kafka://{brokers}/{TOPIC}[")),
            "{}",
            d.origin
        );
    }

    // Both partitions are active, so progress is the smaller of their largest timestamps.
    let last = event(VALID - 1).ts;
    for member in &mut members {
        let progress = member.poll(10).unwrap().progress_ms.expect("progress");
        assert!(progress > event(0).ts && progress <= last, "{progress}");
    }
}
