//! The foundation's end-to-end test: a known event set (with malformed records) on a real topic, the job
//! reading it, and the decision topic, the Redis table and a psql query all agreeing with the reference
//! computed from the same events.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use shardcast_dataflows::{access_of, parse_pipeline};
use shardcast_operators::reference::{self, Access};
use shardcast_sources::{encode_json, ensure_topic, Event, KafkaEventProducer};

use crate::fixtures::{
    eventually, free_port, psql, read_topic, shardcast, unique, Broker, Process, Redis,
};

const BASE_MS: u64 = 1_700_000_000_000;
const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Ten customers over 25 one-second epochs. Customers 0-3 move: from epoch 5 on, all their accesses
/// come from the next region, so the policy must move them off their home partition mid-stream.
fn known_events() -> Vec<Event> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut events = Vec::new();
    for epoch in 0..25u64 {
        for c in 0..10usize {
            for _ in 0..rng.random_range(0..4) {
                let home = REGIONS[c % 3];
                let drifted = c < 4 && epoch >= 5;
                let region = if drifted {
                    REGIONS[(c + 1) % 3]
                } else if rng.random_bool(0.1) {
                    REGIONS[rng.random_range(0..3)]
                } else {
                    home
                };
                events.push(Event {
                    ts: BASE_MS + epoch * 1000 + rng.random_range(0..1000),
                    key: format!("k{}", rng.random_range(0..30)),
                    client: format!("c{c}"),
                    region: region.into(),
                    op: "read".into(),
                    bytes: 100,
                    attrs: [("home".to_string(), home.to_string())].into(),
                });
            }
        }
    }
    events.sort_by_key(|e| e.ts);
    events
}

fn config(
    topic: &str,
    group: &str,
    decisions: &str,
    broker: &str,
    redis: &str,
    prefix: &str,
    sql_port: u16,
) -> String {
    format!(
        r#"[pipeline.e2e]
source = "kafka://{broker}/{topic}"
tick = "1s"
window = "1h"
allowed_lateness = "2s"
workers = 2

[pipeline.e2e.kafka]
group = "{group}"
idle_timeout = "3s"

[pipeline.e2e.partition]
partitions = ["us-east", "eu-west", "ap-south"]
static_weight = 0.3
affinity_weight = 0.7
load_weight = 0.2
hysteresis = 0.05
min_dwell = "3s"

[pipeline.e2e.sinks]
kafka = "kafka://{broker}/{decisions}"
redis = "{redis}"
redis_prefix = "{prefix}"
redis_tables = ["assignments", "key_load", "shards", "routing"]

[pipeline.e2e.sql]
listen = "127.0.0.1:{sql_port}"

# This test checks the affinity family against its reference through every sink. The prediction and
# forecast families have their own end-to-end tests; with them the changelog holds some 15,000 records,
# which the test broker (tansu 0.6) serves too slowly to read back.
[pipeline.e2e.prefetch]
enabled = false

[pipeline.e2e.forecast]
enabled = false
"#
    )
}

/// Reads the whole changelog topic and folds it into current tables: table -> key -> row.
fn read_changelog(
    broker: &str,
    topic: &str,
) -> (BTreeMap<String, BTreeMap<String, serde_json::Value>>, usize) {
    let messages = read_topic(broker, topic);
    let mut tables: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    let mut last_version: BTreeMap<i32, u64> = BTreeMap::new();
    for (partition, payload) in &messages {
        let change: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let version = change["version"].as_u64().unwrap();
        let previous = last_version.insert(*partition, version).unwrap_or(0);
        assert!(
            version >= previous,
            "versions go backwards on partition {partition}"
        );
        let table = tables
            .entry(change["table"].as_str().unwrap().to_string())
            .or_default();
        let key = change["key"].as_str().unwrap().to_string();
        if change["diff"].as_i64().unwrap() > 0 {
            table.insert(key, change["row"].clone());
        } else if table.get(&key) == Some(&change["row"]) {
            table.remove(&key);
        }
    }
    (tables, messages.len())
}

#[test]
fn kafka_to_changelog_redis_and_psql_agree_with_reference() {
    let broker = Broker::start();
    let redis = Redis::start();
    let (topic, decisions, group, prefix) = (
        unique("events"),
        unique("decisions"),
        unique("group"),
        unique("sc"),
    );
    ensure_topic(&broker.addr, &topic, 2).unwrap();

    // Known events, four malformed records, then one marker per customer far ahead in event time so the
    // watermark passes every real epoch (the marker's own epoch never closes).
    let events = known_events();
    let producer = KafkaEventProducer::new(&broker.addr, &topic).unwrap();
    for (i, event) in events.iter().enumerate() {
        producer.send(&event.client, &encode_json(event)).unwrap();
        if i == 40 {
            producer.send("c1", b"{not json").unwrap();
            producer.send("c2", br#"{"ts": 1700000000500}"#).unwrap();
            producer
                .send("c3", br#"{"ts": "yesterday", "key": "k1"}"#)
                .unwrap();
            producer.send("c4", b"").unwrap();
        }
    }
    for c in 0..10 {
        let mut marker = events[0].clone();
        marker.client = format!("c{c}");
        marker.ts = BASE_MS + 2_000_000;
        producer
            .send(&marker.client, &encode_json(&marker))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let sql_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config_text = config(
        &topic,
        &group,
        &decisions,
        &broker.addr,
        &redis.url,
        &prefix,
        sql_port,
    );
    let config_path = dir.path().join("pipelines.toml");
    std::fs::write(&config_path, &config_text).unwrap();
    let _job = Process {
        child: shardcast()
            .args([
                "run",
                "--config",
                config_path.to_str().unwrap(),
                "--pipeline",
                "e2e",
                "--quiet",
            ])
            .spawn()
            .unwrap(),
    };

    // The reference, from the same events.
    let pipeline = parse_pipeline("pipelines.toml", &config_text, "e2e").unwrap();
    let policy = pipeline.policy();
    let accesses: Vec<Access> = events
        .iter()
        .map(|e| {
            let (key, customer, home, region) = access_of(e, &policy);
            Access {
                epoch: e.epoch(1000),
                key,
                customer,
                home,
                region,
            }
        })
        .collect();
    let last_epoch = accesses.iter().map(|a| a.epoch).max().unwrap();
    let states =
        reference::affinity_family(&accesses, pipeline.window_epochs(), &policy, last_epoch);
    let expected = reference::state_at(&states, last_epoch);
    assert!(
        expected
            .assignments
            .values()
            .any(|a| a.partition != a.home && a.since > BASE_MS / 1000 + 5),
        "the workload should move at least one customer off its home partition mid-stream: {:?}",
        expected.assignments
    );

    // Redis: the assignments table, at a version past the last real epoch.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let (version, table) = eventually(
        Duration::from_secs(120),
        "the Redis assignments table",
        || {
            let mut conn = client.get_connection().ok()?;
            let (version, table) =
                shardcast_sinks::read_table(&mut conn, &prefix, "assignments").ok()?;
            (version >= last_epoch && table.len() == expected.assignments.len())
                .then_some((version, table))
        },
    );
    assert!(
        version < BASE_MS / 1000 + 2_000,
        "the marker's epoch must not be final"
    );
    for (customer, assignment) in &expected.assignments {
        let row = &table[customer];
        assert_eq!(
            row["partition"],
            assignment.partition.as_str(),
            "Redis partition of {customer}"
        );
        assert_eq!(
            row["home"],
            assignment.home.as_str(),
            "Redis home of {customer}"
        );
        assert_eq!(
            row["since_epoch"], assignment.since,
            "Redis since_epoch of {customer}"
        );
    }

    // psql: the same assignments, and the key loads.
    let want: String = expected
        .assignments
        .iter()
        .map(|(c, a)| format!("{c}|{}\n", a.partition))
        .collect();
    let got = eventually(Duration::from_secs(30), "psql assignments", || {
        psql(
            sql_port,
            "SELECT customer, partition FROM assignments ORDER BY 1",
        )
        .ok()
        .filter(|out| *out == want)
    });
    assert_eq!(got, want);
    let want_load: String = expected
        .key_load
        .iter()
        .map(|(k, n)| format!("{k}|{n}\n"))
        .collect();
    // The assignments can be final an epoch before the last key loads are: wait for both.
    let key_load = eventually(Duration::from_secs(30), "psql key_load", || {
        psql(sql_port, "SELECT key, accesses FROM key_load ORDER BY key")
            .ok()
            .filter(|out| *out == want_load)
    });
    assert_eq!(key_load, want_load);
    let shares = psql(
        sql_port,
        "SELECT customer, round(sum(share), 6) FROM affinity GROUP BY customer ORDER BY 1",
    )
    .unwrap();
    assert_eq!(shares.lines().count(), expected.affinity.len());
    assert!(
        shares
            .lines()
            .all(|l| l.rsplit("|").next().unwrap().parse::<f64>().unwrap() == 1.0),
        "affinity shares must sum to 1 per customer:\n{shares}"
    );

    // Dead letters: the four malformed records, with reasons, in SQL.
    let dead = psql(sql_port, "SELECT reason FROM dead_letters ORDER BY seq").unwrap();
    assert_eq!(dead.lines().count(), 4, "dead letters:\n{dead}");
    assert!(dead.to_lowercase().contains("json"), "{dead}");
    assert!(dead.contains("key"), "{dead}");

    // The changelog topic folds into the same tables.
    let (changelog, messages) = read_changelog(&broker.addr, &decisions);
    assert!(
        messages > expected.assignments.len(),
        "{messages} changelog messages for {} assignments",
        expected.assignments.len()
    );
    let assignments = &changelog["assignments"];
    assert_eq!(assignments.len(), expected.assignments.len());
    for (customer, assignment) in &expected.assignments {
        assert_eq!(
            assignments[customer]["partition"],
            assignment.partition.as_str(),
            "changelog partition of {customer}"
        );
    }
    let loads: BTreeMap<String, u64> = changelog["key_load"]
        .iter()
        .map(|(k, row)| (k.clone(), row["accesses"].as_u64().unwrap()))
        .collect();
    assert_eq!(loads, expected.key_load);
    assert_eq!(changelog.get("dead_letters").map_or(0, |t| t.len()), 4);

    // The shard map: the changelog folds into shards covering the ring, and Redis and psql hold the
    // same shards (they can be a version ahead of the changelog read above while quiet epochs close).
    let ranges = |rows: Vec<(u64, u64, u64, String)>| -> Vec<(u64, u64, u64, String)> {
        let mut rows = rows;
        rows.sort_by_key(|r| r.1);
        let mut lo = 0;
        for (shard, start, end, _) in &rows {
            assert_eq!(
                *start, lo,
                "shard {shard} does not start where the previous ends"
            );
            lo = *end;
        }
        assert_eq!(
            lo,
            shardcast_shardmap::RING,
            "the shards must cover the ring"
        );
        rows
    };
    let from_json = |rows: &BTreeMap<String, serde_json::Value>| -> Vec<(u64, u64, u64, String)> {
        rows.values()
            .map(|r| {
                (
                    r["shard"].as_u64().unwrap(),
                    r["range_lo"].as_u64().unwrap(),
                    r["range_hi"].as_u64().unwrap(),
                    r["node"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    ranges(from_json(&changelog["shards"]));
    eventually(
        Duration::from_secs(30),
        "the same shards in Redis and psql",
        || {
            let mut conn = client.get_connection().ok()?;
            let (_, table) = shardcast_sinks::read_table(&mut conn, &prefix, "shards").ok()?;
            let in_redis = ranges(from_json(&table));
            let in_sql: Vec<(u64, u64, u64, String)> = psql(
                sql_port,
                "SELECT shard, range_lo, range_hi, node FROM shards ORDER BY range_lo",
            )
            .ok()?
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].to_string(),
                )
            })
            .collect();
            (in_redis == ranges(in_sql)).then_some(())
        },
    );

    // A late event (epoch 1, long closed) goes to dead letters once the watermark moves on. Only one
    // marker follows it, on one client's partition: the other partition stays silent, goes idle after
    // `idle_timeout`, and its worker must then follow the other instead of holding event time back.
    let mut late = events[0].clone();
    late.ts = BASE_MS + 1_500;
    producer.send(&late.client, &encode_json(&late)).unwrap();
    let mut marker = events[0].clone();
    marker.ts = BASE_MS + 3_000_000;
    producer
        .send(&marker.client, &encode_json(&marker))
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let reasons = eventually(
        Duration::from_secs(60),
        "the late event in dead_letters",
        || {
            psql(
                sql_port,
                "SELECT reason FROM dead_letters WHERE reason LIKE 'late%'",
            )
            .ok()
            .filter(|o| !o.is_empty())
        },
    );
    assert!(reasons.contains("allowed lateness"), "{reasons}");
}
