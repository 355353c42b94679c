//! The Kafka helpers against a real broker (tansu or Kafka), which the mock cluster cannot stand in
//! for: topic creation through the admin API, and an idempotent lz4 producer read back by a group.
//!
//! Run with `SHARDCAST_TEST_BROKERS=HOST:PORT cargo test -p shardcast-sources --test kafka_live --
//! --ignored`. It creates a fresh topic each run and never deletes topics.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardcast_sources::{
    ensure_topic, Event, KafkaEventProducer, KafkaSource, KafkaSourceConfig, Source,
};

const EVENTS: u64 = 200;

#[test]
#[ignore = "needs a Kafka-protocol broker: set SHARDCAST_TEST_BROKERS=HOST:PORT"]
fn topic_produce_and_consume_on_a_real_broker() {
    let brokers = std::env::var("SHARDCAST_TEST_BROKERS")
        .expect("SHARDCAST_TEST_BROKERS must name the broker, e.g. 127.0.0.1:9092");
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let topic = format!("sources-live-{run}");

    ensure_topic(&brokers, &topic, 2).unwrap();
    // A second call finds the topic and is fine with it.
    ensure_topic(&brokers, &topic, 2).unwrap();

    let producer = KafkaEventProducer::new(&brokers, &topic).unwrap();
    for i in 0..EVENTS {
        let event = Event {
            ts: 1_700_000_000_000 + i,
            key: format!("k{i:06}"),
            client: format!("c{:05}", i % 5),
            region: "us-east".into(),
            op: "read".into(),
            bytes: 100,
            attrs: BTreeMap::new(),
        };
        producer.send_event(&event).unwrap();
    }
    producer.send("bad", b"{oops").unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();

    let mut source = KafkaSource::new(KafkaSourceConfig {
        brokers,
        topic: topic.clone(),
        group_id: format!("{topic}-group"),
        idle_timeout_ms: 60_000,
    })
    .unwrap();
    let started = Instant::now();
    let (mut events, mut dead) = (BTreeMap::<String, usize>::new(), Vec::new());
    while (events.len() as u64) < EVENTS || dead.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} events and {} dead letters arrived",
            events.len(),
            dead.len()
        );
        for record in source.poll(100).unwrap().records {
            match record {
                Ok(e) => *events.entry(e.key).or_default() += 1,
                Err(d) => dead.push(d),
            }
        }
    }
    assert!(events.values().all(|n| *n == 1), "duplicates arrived");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("invalid JSON"),
        "{}",
        dead[0].reason
    );
    let progress = source.poll(1).unwrap().progress_ms.expect("progress");
    assert!((1_700_000_000_000..1_700_000_000_000 + EVENTS).contains(&progress));
    assert_eq!(source.assigned_partitions(), [0, 1]);
}
