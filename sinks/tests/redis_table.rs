//! RedisTableSink and read_table against a real `redis-server` child process.
//!
//! These tests fail (never skip) when `redis-server` is missing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shardcast_sinks::testing::RedisServer;
use shardcast_sinks::{
    read_table, Change, RedisSinkOptions, RedisTableSink, RetryPolicy, Sink, SinkError,
};

fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

fn change(table: &str, key: &str, diff: i64, row: Value, version: u64) -> Change {
    Change::new(table, key, row, diff, version)
}

fn sink(server: &RedisServer, budget: Duration) -> RedisTableSink {
    sink_with_url(server.port(), budget)
}

fn read(server: &RedisServer) -> (u64, BTreeMap<String, Value>) {
    let mut conn = server.connection().unwrap();
    read_table(&mut conn, "sc", "assignments").unwrap()
}

#[test]
fn applies_inserts_updates_and_retract_only_deletes() {
    let server = server();
    let mut sink = sink(&server, Duration::from_secs(5));
    sink.write_version(
        1,
        &[
            change("assignments", "c1", 1, json!({"region": "us-east"}), 1),
            change("assignments", "c2", 1, json!({"region": "eu-west"}), 1),
            change("key_load", "c1", 1, json!({"load": 3}), 1),
        ],
    )
    .unwrap();
    assert_eq!(
        read(&server),
        (
            1,
            BTreeMap::from([
                ("c1".to_string(), json!({"region": "us-east"})),
                ("c2".to_string(), json!({"region": "eu-west"})),
            ])
        )
    );

    // Version 2: c1 moves (retract + insert), c2 is only retracted -> HDEL.
    sink.write_version(
        2,
        &[
            change("assignments", "c1", -1, json!({"region": "us-east"}), 2),
            change("assignments", "c1", 1, json!({"region": "ap-south"}), 2),
            change("assignments", "c2", -1, json!({"region": "eu-west"}), 2),
        ],
    )
    .unwrap();
    assert_eq!(
        read(&server),
        (
            2,
            BTreeMap::from([("c1".to_string(), json!({"region": "ap-south"}))])
        )
    );
    let mut conn = server.connection().unwrap();
    let c2_exists: bool = redis::cmd("HEXISTS")
        .arg("sc:assignments")
        .arg("c2")
        .query(&mut conn)
        .unwrap();
    assert!(
        !c2_exists,
        "a retract-only key must be deleted from the hash"
    );

    // An empty version still advances the version.
    sink.write_version(3, &[]).unwrap();
    assert_eq!(read(&server).0, 3);

    // Tables not configured are never written.
    let other: bool = redis::cmd("EXISTS")
        .arg("sc:key_load")
        .query(&mut conn)
        .unwrap();
    assert!(!other);
}

#[test]
fn rewriting_an_old_version_changes_nothing_even_after_restart() {
    let server = server();
    let v1 = [change("assignments", "c1", 1, json!("a"), 1)];
    let v2 = [
        change("assignments", "c1", -1, json!("a"), 2),
        change("assignments", "c1", 1, json!("b"), 2),
        change("assignments", "c2", 1, json!("x"), 2),
    ];
    let mut first = sink(&server, Duration::from_secs(5));
    first.write_version(1, &v1).unwrap();
    first.write_version(2, &v2).unwrap();
    let after_v2 = read(&server);

    // Same process, stale version with different content: ignored.
    first
        .write_version(1, &[change("assignments", "c9", 1, json!("stale"), 1)])
        .unwrap();
    assert_eq!(read(&server), after_v2);

    // A new sink instance (a restarted process) replays from the beginning.
    let mut restarted = sink(&server, Duration::from_secs(5));
    restarted.write_version(1, &v1).unwrap();
    assert_eq!(read(&server), after_v2, "replaying v1 must not roll back");
    restarted.write_version(2, &v2).unwrap();
    assert_eq!(read(&server), after_v2);
    restarted
        .write_version(3, &[change("assignments", "c2", -1, json!("x"), 3)])
        .unwrap();
    assert_eq!(
        read(&server),
        (3, BTreeMap::from([("c1".to_string(), json!("b"))]))
    );
}

/// Deterministic workload: version `v` touches 50 distinct keys out of 120, inserting absent
/// rows and updating or deleting present ones. Returns the changes and the resulting state.
fn workload(versions: u64) -> Vec<(Vec<Change>, BTreeMap<String, Value>)> {
    let mut state: BTreeMap<String, Value> = BTreeMap::new();
    let mut out = Vec::new();
    for v in 1..=versions {
        let mut changes = Vec::new();
        let offset = (v * 13) % 120;
        for i in 0..50u64 {
            let key = format!("c{:03}", (offset + i) % 120);
            let new_row = json!({"version": v, "slot": i});
            match state.get(&key).cloned() {
                Some(old) if (v + i) % 3 == 0 => {
                    changes.push(change("assignments", &key, -1, old, v));
                    state.remove(&key);
                }
                Some(old) => {
                    changes.push(change("assignments", &key, -1, old, v));
                    changes.push(change("assignments", &key, 1, new_row.clone(), v));
                    state.insert(key, new_row);
                }
                None => {
                    changes.push(change("assignments", &key, 1, new_row.clone(), v));
                    state.insert(key, new_row);
                }
            }
        }
        out.push((changes, state.clone()));
    }
    out
}

#[test]
fn concurrent_reader_only_ever_sees_whole_versions() {
    let server = server();
    let versions = workload(200);
    let mut sink = sink(&server, Duration::from_secs(5));

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let mut conn = server.connection().unwrap();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(read_table(&mut conn, "sc", "assignments").unwrap());
            }
            seen
        })
    };
    for (i, (changes, _)) in versions.iter().enumerate() {
        sink.write_version(i as u64 + 1, changes).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();

    let mut distinct = std::collections::BTreeSet::new();
    for (version, rows) in &seen {
        if *version == 0 {
            assert!(rows.is_empty(), "rows visible before the first version");
            continue;
        }
        let expected = &versions[*version as usize - 1].1;
        assert_eq!(
            rows, expected,
            "state observed at version {version} is partial"
        );
        distinct.insert(*version);
    }
    assert!(
        seen.len() > 10 && distinct.len() > 1,
        "reader did not overlap the writer: {} reads, {} versions",
        seen.len(),
        distinct.len()
    );
    assert_eq!(read(&server), (200, versions[199].1.clone()));
}

#[test]
fn outage_returns_error_and_recovers_after_restart() {
    let server = server();
    let port = server.port();
    let mut sink = sink(&server, Duration::from_millis(600));
    sink.write_version(1, &[change("assignments", "c1", 1, json!(1), 1)])
        .unwrap();
    server.stop();

    let start = Instant::now();
    let err = sink
        .write_version(2, &[change("assignments", "c2", 1, json!(2), 2)])
        .expect_err("writing with the server down must fail");
    assert!(
        matches!(err, SinkError::GaveUp { attempts, .. } if attempts > 1),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));

    // The server comes back (empty: no persistence) while the sink is retrying.
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        RedisServer::start_on(port)
    });
    let mut patient = sink_with_url(port, Duration::from_secs(20));
    patient
        .write_version(2, &[change("assignments", "c2", 1, json!(2), 2)])
        .unwrap();
    let server = restarter.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read(&server),
        (2, BTreeMap::from([("c2".to_string(), json!(2))]))
    );
    // The first sink reconnects too.
    sink.write_version(3, &[change("assignments", "c3", 1, json!(3), 3)])
        .unwrap();
    assert_eq!(read(&server).1.len(), 2);
}

fn sink_with_url(port: u16, budget: Duration) -> RedisTableSink {
    let options = RedisSinkOptions {
        retry: RetryPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            give_up_after: budget,
        },
        io_timeout: Duration::from_secs(2),
    };
    RedisTableSink::with_options(
        &format!("redis://127.0.0.1:{port}/"),
        "sc",
        ["assignments"],
        options,
    )
    .unwrap()
}
