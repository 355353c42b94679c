//! The shard map of a running job: the `shards` and `routing` tables over psql, and the routing API
//! (`/v1/route/{key}`, `/v1/partition/{customer}`, `/v1/map`) through the Rust client, agreeing with
//! each other.

use std::process::Stdio;
use std::time::Duration;

use shardcast_shardmap::{ring_position, RING};
use shardcast_sinks::routing::RoutingHttpClient;

use crate::fixtures::{eventually, free_port, psql, shardcast, Process};

#[test]
fn running_job_serves_the_shard_map_over_sql_and_http() {
    let (sql, http) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut job = Process {
        child: shardcast()
            .args([
                "run",
                "--sql-listen",
                &format!("127.0.0.1:{sql}"),
                "--routing-listen",
                &format!("127.0.0.1:{http}"),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    // The shards table covers the ring without gaps or overlaps.
    let shards = eventually(Duration::from_secs(60), "shards over psql", || {
        psql(
            sql,
            "SELECT shard, range_lo, range_hi, node FROM shards ORDER BY range_lo",
        )
        .ok()
        .filter(|o| o.lines().count() >= 16)
    });
    let mut expected_lo = 0u64;
    for line in shards.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        let (lo, hi): (u64, u64) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        assert_eq!(lo, expected_lo, "gap or overlap before {line}");
        assert!(hi > lo, "{line}");
        assert!(fields[3].starts_with("node-"), "{line}");
        expected_lo = hi;
    }
    assert_eq!(expected_lo, RING, "the shards end at the ring's end");
    // The routing table is queryable (decisions may or may not have been made yet).
    psql(
        sql,
        "SELECT version, action, shard, load_moved, imbalance_before FROM routing",
    )
    .expect("routing table over psql");

    let client = RoutingHttpClient::new(&format!("http://127.0.0.1:{http}")).unwrap();
    // Every route answer agrees with the map served at the same version.
    let checked = eventually(
        Duration::from_secs(30),
        "route answers at one map version",
        || {
            let map = client.map().ok()?;
            let mut agreed = 0;
            for i in 0..50 {
                let key = format!("k{i}/with space");
                let answer = client.route(&key).ok()?;
                if answer.version != map.version() {
                    return None;
                }
                let shard = map.lookup(&key);
                assert_eq!(answer.position, ring_position(&key));
                assert_eq!(
                    (answer.shard, &answer.node),
                    (shard.id, &shard.node),
                    "{key}"
                );
                assert!(shard.range.contains(answer.position));
                agreed += 1;
            }
            Some(agreed)
        },
    );
    assert_eq!(checked, 50);

    // A customer's partition over HTTP matches the assignments table, with a consistent breakdown.
    eventually(
        Duration::from_secs(30),
        "a partition view matching SQL",
        || {
            let row = psql(
                sql,
                "SELECT customer, partition, home FROM assignments ORDER BY customer LIMIT 1",
            )
            .ok()?;
            let fields: Vec<&str> = row.trim().split('|').collect();
            if fields.len() != 3 {
                return None;
            }
            let view = client.partition(fields[0]).ok()?;
            if view.partition != fields[1] {
                return None;
            }
            assert_eq!(view.home, fields[2]);
            assert!(!view.scores.is_empty());
            for score in &view.scores {
                assert!(score.is_consistent(), "{score:?}");
                assert!(score.load_part <= 0.0, "{score:?}");
            }
            assert!(view.score_of(&view.partition).is_some(), "{view:?}");
            Some(())
        },
    );
    let unknown = client.partition("no-such-customer").unwrap_err();
    assert!(unknown.is_not_found(), "{unknown}");

    let stderr = job.interrupt();
    assert!(stderr.contains("routing API on"), "{stderr}");
}
