//! Prediction and prefetch end to end: the generator's sessions drive next-access predictions, the
//! prefetch executor copies predicted keys from a primary Redis into one real Redis per region, the budget
//! changes on SIGHUP while the job runs, and psql reads the key index and the consumer queues.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Commands;

use crate::fixtures::{eventually, free_port, psql, shardcast, Process, Redis};

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];
const KEYS: usize = 2000;

fn config(port: u16, primary: &str, caches: &BTreeMap<&str, Redis>, budget: u64) -> String {
    let caches: Vec<String> = caches
        .iter()
        .map(|(region, redis)| format!("\"{region}\" = \"{}\"", redis.url))
        .collect();
    format!(
        r#"[pipeline.p]
tick = "1s"
window = "1m"
workers = 2

[pipeline.p.generator]
customers = 60
keys = {KEYS}
events_per_second = 400

[pipeline.p.sinks]
jsonl = "decisions.jsonl"

[pipeline.p.sql]
listen = "127.0.0.1:{port}"

[pipeline.p.prefetch]
threshold = 0.2
budget_bytes = {budget}
primary = "{primary}"
caches = {{ {} }}
ttl = "10m"

[pipeline.p.forecast]
levels = ["key", "partition", "shard"]
model = "onnx"
onnx_model = "{}/models/forecaster.onnx"
"#,
        caches.join(", "),
        env!("CARGO_MANIFEST_DIR")
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn predicted_keys_land_in_regional_caches_and_budget_reloads() {
    crate::fixtures::require_onnx_runtime();
    let primary = Redis::start();
    let caches: BTreeMap<&str, Redis> = REGIONS.iter().map(|r| (*r, Redis::start())).collect();
    let mut conn = redis::Client::open(primary.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for k in 0..KEYS {
        let _: () = conn
            .set(format!("data:k{k:06}"), format!("value of k{k:06}"))
            .unwrap();
    }

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipelines.toml");
    // Budget 0: predictions are made but nothing may move.
    std::fs::write(&path, config(port, &primary.url, &caches, 0)).unwrap();
    let started = now_ms();
    let mut job = Process {
        child: shardcast()
            .args([
                "run",
                "--quiet",
                "--config",
                path.to_str().unwrap(),
                "--pipeline",
                "p",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let transitions = eventually(Duration::from_secs(90), "transitions over psql", || {
        psql(
            port,
            "SELECT count(*) FROM transitions WHERE confidence >= 0.2",
        )
        .ok()
        .and_then(|o| o.trim().parse::<u64>().ok())
        .filter(|n| *n > 20)
    });
    assert!(transitions > 20);
    // Correlated access across clients of a region (seed 004).
    let co_access = eventually(Duration::from_secs(60), "co_access over psql", || {
        psql(port, "SELECT count(*) FROM co_access")
            .ok()
            .and_then(|o| o.trim().parse::<u64>().ok())
            .filter(|n| *n > 0)
    });
    assert!(co_access > 0);
    let orders = psql(port, "SELECT count(*) FROM prefetch").unwrap();
    assert_eq!(orders.trim(), "0", "budget 0 must allow no order");
    for (region, cache) in &caches {
        let mut c = redis::Client::open(cache.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let n: u64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(n, 0, "{region} received copies with a zero budget");
    }

    // Raise the budget and reload: orders appear and copies land.
    std::fs::write(&path, config(port, &primary.url, &caches, 1 << 20)).unwrap();
    job.signal("HUP");
    let landed: BTreeMap<&str, BTreeMap<String, u64>> = eventually(
        Duration::from_secs(90),
        "prefetched copies in every region",
        || {
            let mut all = BTreeMap::new();
            for (region, cache) in &caches {
                let mut c = redis::Client::open(cache.url.as_str())
                    .ok()?
                    .get_connection()
                    .ok()?;
                let landed = shardcast_sinks::read_landed(&mut c, "data:").ok()?;
                if landed.len() < 3 {
                    return None;
                }
                all.insert(*region, landed);
            }
            Some(all)
        },
    );
    for (region, keys) in &landed {
        let mut c = redis::Client::open(caches[region].url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        for (key, at) in keys {
            let value: Option<String> = c.get(format!("data:{key}")).unwrap();
            assert_eq!(
                value.as_deref(),
                Some(format!("value of {key}").as_str()),
                "{region} holds a wrong copy of {key}"
            );
            let ttl: i64 = redis::cmd("PTTL")
                .arg(format!("data:{key}"))
                .query(&mut c)
                .unwrap();
            assert!(ttl > 0 && ttl <= 600_000, "{region} {key}: PTTL {ttl}");
            assert!(
                *at >= started && *at <= now_ms(),
                "{region} {key}: landed at {at}"
            );
        }
    }

    // Forecasts by the learned model on the real ONNX Runtime, for keys, partitions and shards.
    let kinds = eventually(Duration::from_secs(60), "forecasts of every level", || {
        psql(
            port,
            "SELECT split_part(series, ':', 1) AS level, min(model), count(*) FROM forecasts GROUP BY 1 ORDER BY 1",
        )
        .ok()
        .filter(|o| o.lines().count() == 3)
    });
    for (line, level) in kinds.lines().zip(["key", "partition", "shard"]) {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[0], level, "{kinds}");
        assert_eq!(fields[1], "onnx:forecaster", "{kinds}");
    }
    let bad = psql(
        port,
        "SELECT count(*) FROM forecasts WHERE value < 0 OR confidence < 0 OR confidence > 1 OR horizon < 1 OR horizon > 4",
    )
    .unwrap();
    assert_eq!(bad.trim(), "0", "forecast rows out of range");

    // SQL: the key index carries version, session, event keys and confidence; queues are ordered by
    // confidence and counted.
    let index = psql(
        port,
        "SELECT key, version, session, event_keys, confidence FROM key_index WHERE event_keys <> '' ORDER BY confidence DESC LIMIT 5",
    )
    .unwrap();
    assert_eq!(index.lines().count(), 5, "{index}");
    for line in index.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        assert!(fields[0].starts_with('k'), "{line}");
        assert!(fields[1].parse::<u64>().unwrap() > 0, "{line}");
        assert!(fields[2].contains('/'), "{line}");
        assert!(fields[3].split(',').all(|k| k.starts_with('k')), "{line}");
    }
    let queues = eventually(Duration::from_secs(60), "consumed queue entries", || {
        psql(
            port,
            "SELECT sum(consumed), sum(invalidated) FROM queue_stats",
        )
        .ok()
        .filter(|o| {
            o.split('|')
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
                > Some(0)
        })
    });
    assert!(queues.contains('|'), "{queues}");
    let queued = psql(
        port,
        "SELECT consumer, confidence FROM prefetch_queue ORDER BY consumer, confidence DESC",
    )
    .unwrap();
    assert!(queued.lines().count() > 0, "no queued predictions");

    // Every key that landed was ordered for that region in the changelog.
    let stderr = job.interrupt();
    assert!(
        stderr.contains("reloaded: prefetch.budget_bytes 0 -> 1048576"),
        "{stderr}"
    );
    assert!(stderr.contains("prefetch us-east:"), "{stderr}");
    assert!(stderr.contains("forecasts by onnx:forecaster"), "{stderr}");
    let changelog = std::fs::read_to_string(dir.path().join("decisions.jsonl")).unwrap();
    let mut ordered: BTreeSet<(String, String)> = BTreeSet::new();
    for line in changelog.lines() {
        let change: serde_json::Value = serde_json::from_str(line).unwrap();
        if change["table"] == "prefetch" && change["diff"].as_i64() > Some(0) {
            let row = &change["row"];
            ordered.insert((
                row["region"].as_str().unwrap().to_string(),
                row["key"].as_str().unwrap().to_string(),
            ));
        }
    }
    for (region, keys) in &landed {
        for key in keys.keys() {
            assert!(
                ordered.contains(&(region.to_string(), key.clone())),
                "{region} received {key}, which no prefetch order named"
            );
        }
    }
}

/// Seed 003 end to end: messages read from a file, consumers offered the unread messages most like the
/// one they just took, in the changelog.
#[test]
fn consumers_are_offered_similar_messages() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("messages.jsonl");
    let topics = [
        "order shipped to paris by rail",
        "invoice overdue for customer",
        "weather alert storm warning coast",
    ];
    let payload = |i: u64| {
        let topic = topics[(i % 3) as usize];
        format!(
            "{topic} {}",
            ["today", "tomorrow", "now"][(i / 3 % 3) as usize]
        )
    };
    let event = |ts: u64, key: u64, client: &str| {
        serde_json::json!({
            "ts": 1_700_000_000_000u64 + ts,
            "key": format!("msg-{key}"),
            "client": client,
            "region": "eu-west",
            "attrs": {"payload": payload(key)},
        })
        .to_string()
    };
    // A producer publishes 60 messages, then each consumer reads the messages of one topic. Accesses are
    // further apart than `pair_gap`, so the queues hold only what content similarity offers.
    let mut lines: Vec<String> = (0..60u64).map(|i| event(i * 100, i, "producer")).collect();
    for i in 0..60u64 {
        lines.push(event(10_000 + i * 500, i, &format!("consumer-{}", i % 3)));
    }
    std::fs::write(&events, lines.join("\n")).unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        "[pipeline.q]\ntick = \"1s\"\nwindow = \"1m\"\nworkers = 2\n[pipeline.q.sinks]\njsonl = \"changes.jsonl\"\n[pipeline.q.sql]\nlisten = \"off\"\n[pipeline.q.forecast]\nenabled = false\n[pipeline.q.prefetch]\npair_gap = \"50ms\"\n",
    )
    .unwrap();
    let out = crate::fixtures::output_ok(
        shardcast()
            .args(["run", "--quiet", "--exit-at-end", "--pipeline", "q"])
            .args(["--config", config.to_str().unwrap()])
            .args(["--source", &format!("file:{}", events.display())])
            .current_dir(dir.path()),
    );
    assert!(out.status.success());
    let changes = std::fs::read_to_string(dir.path().join("changes.jsonl")).unwrap();
    let (mut similar, mut offered) = (0, BTreeSet::new());
    let topic_of = |key: &str| key.trim_start_matches("msg-").parse::<u64>().unwrap() % 3;
    for line in changes.lines() {
        let change: serde_json::Value = serde_json::from_str(line).unwrap();
        let row = &change["row"];
        if change["diff"].as_i64() <= Some(0) {
            continue;
        }
        match change["table"].as_str() {
            Some("similar_messages") => {
                let (a, b) = (row["key"].as_str().unwrap(), row["other"].as_str().unwrap());
                assert_eq!(topic_of(a), topic_of(b), "{a} and {b} are not alike: {row}");
                similar += 1;
            }
            Some("prefetch_queue") => {
                let consumer = row["consumer"].as_str().unwrap().to_string();
                let key = row["key"].as_str().unwrap().to_string();
                offered.insert((consumer, key));
            }
            _ => {}
        }
    }
    assert!(similar > 20, "only {similar} similar pairs");
    // Every consumer reads one topic; what it is offered is of its topic.
    assert!(
        offered.iter().filter(|(c, _)| c != "producer").count() > 5,
        "{offered:?}"
    );
    for (consumer, key) in offered.iter().filter(|(c, _)| c != "producer") {
        let c: u64 = consumer.trim_start_matches("consumer-").parse().unwrap();
        assert_eq!(c, topic_of(key), "{consumer} offered {key}");
    }
}
