//! Switchovers: data moves with concurrent writers and nothing is lost; a checksum mismatch or a
//! dead destination rolls back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Commands;

use super::{assert_round, write_keys, Cluster};
use crate::migration::{
    MigrationError, Mode, ShadowConfig, ShadowCopy, ShadowPlan, Switchover, SwitchoverConfig,
    Throttle,
};

/// A node that neither owns nor replicates `shard`.
fn outsider(cluster: &Cluster, shard: &shardcast_shardmap::Shard) -> String {
    cluster
        .nodes
        .names()
        .find(|n| *n != shard.node && !shard.replicas.iter().any(|r| r == n))
        .expect("a node outside the shard")
        .to_string()
}

fn plan_for(shard: &shardcast_shardmap::Shard, to: &str) -> ShadowPlan {
    ShadowPlan {
        shard: shard.id,
        range: shard.range,
        from: shard.node.clone(),
        to: to.to_string(),
        priorities: Vec::new(),
        destination_is_replica: shard.replicas.iter().any(|r| r == to),
    }
}

#[test]
fn a_switchover_under_concurrent_writes_loses_nothing() {
    let cluster = Cluster::start(3, 2, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 200, 1);
    let map = cluster.store.load().expect("map");
    let shard = map.lookup(&keys[0]).clone();
    let to = outsider(&cluster, &shard);

    // A writer keeps writing every key while the copy and the switchover run.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut client, keys) = (Arc::clone(&stop), cluster.client(), keys.clone());
        std::thread::spawn(move || {
            let mut acked: BTreeMap<String, u64> = BTreeMap::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for key in &keys {
                    n += 1;
                    client
                        .put(key, n.to_string().as_bytes())
                        .unwrap_or_else(|e| panic!("writing {key}: {e}"));
                    acked.insert(key.clone(), n);
                }
            }
            (acked, client.stats())
        })
    };
    let copy = ShadowCopy::start(
        plan_for(&shard, &to),
        &cluster.nodes,
        Throttle::new(0),
        ShadowConfig::default(),
    )
    .expect("shadow");
    copy.wait_caught_up(Duration::from_secs(10))
        .expect("caught up");
    std::thread::sleep(Duration::from_millis(50));
    let report = Switchover::new(&cluster.store, &cluster.nodes, SwitchoverConfig::default())
        .run(shard.id, &to, Some(copy))
        .expect("switchover");
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let (acked, stats) = writer.join().expect("writer");

    assert_eq!(
        (report.from.as_str(), report.to.as_str()),
        (shard.node.as_str(), to.as_str())
    );
    assert!(report.checksum.keys > 0);
    assert!(report.pause < report.total);
    let map = cluster.store.load().expect("map");
    assert_eq!(map.get(shard.id).unwrap().node, to);
    assert_eq!(map.version(), report.version);
    assert!(
        stats.retries > 0,
        "the writer never met the switchover: {stats:?}"
    );
    let mut reader = cluster.client();
    for (key, n) in &acked {
        let value = reader.get(key).expect("read").expect("present");
        assert_eq!(String::from_utf8_lossy(&value.data), n.to_string(), "{key}");
    }
    let mut old = cluster.nodes.node(&shard.node).expect("node");
    assert_eq!(old.owner(&shard.id.to_string()).expect("read"), None);
    assert!(!old.shadowing(&shard.id.to_string()).expect("read"));
    let mut new = cluster.nodes.node(&to).expect("node");
    assert_eq!(
        new.owner(&shard.id.to_string())
            .expect("read")
            .map(|s| s.mode),
        Some(Mode::ReadWrite)
    );
}

#[test]
fn a_checksum_mismatch_rolls_back_and_says_why() {
    let cluster = Cluster::start(3, 2, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 100, 1);
    let before = cluster.store.load().expect("map");
    let shard = before.lookup(&keys[0]).clone();
    let to = outsider(&cluster, &shard);
    let copy = ShadowCopy::start(
        plan_for(&shard, &to),
        &cluster.nodes,
        Throttle::new(0),
        ShadowConfig::default(),
    )
    .expect("shadow");
    let copy_stats = copy
        .wait_caught_up(Duration::from_secs(10))
        .expect("caught up");
    assert!(copy_stats.keys_copied > 0);

    // Corrupt the destination's copy of one key behind the versions' back.
    let dest_index = cluster.nodes.names().position(|n| n == to).unwrap();
    let victim = keys
        .iter()
        .find(|k| shard.range.contains(shardcast_shardmap::ring_position(k)))
        .unwrap();
    let mut conn = cluster.raw(dest_index);
    let _: () = conn
        .hset(format!("t:d:{victim}"), "value", "corrupt")
        .expect("corrupt");

    // (A switchover starting its own copy would clear the destination first; this one uses
    // the copy that was corrupted.)
    let err = Switchover::new(&cluster.store, &cluster.nodes, SwitchoverConfig::default())
        .run(shard.id, &to, Some(copy))
        .expect_err("a corrupt copy must not be switched to");
    match &err {
        MigrationError::RolledBack {
            cause, rollback, ..
        } => {
            assert!(
                matches!(**cause, MigrationError::ChecksumMismatch { .. }),
                "{err}"
            );
            assert!(rollback.is_none(), "{err}");
        }
        other => panic!("expected a rollback, got {other}"),
    }
    assert!(err.to_string().contains("checksum"), "{err}");
    assert_eq!(
        cluster.store.load().expect("map"),
        before,
        "routing unchanged"
    );
    let mut source = cluster.nodes.node(&shard.node).expect("node");
    assert_eq!(
        source
            .owner(&shard.id.to_string())
            .expect("read")
            .map(|s| s.mode),
        Some(Mode::ReadWrite)
    );
    let mut dest = cluster.nodes.node(&to).expect("node");
    assert_eq!(dest.owner(&shard.id.to_string()).expect("read"), None);
    assert!(
        dest.all_keys(shard.range).expect("keys").is_empty(),
        "copy dropped"
    );
    // The source serves writes again.
    let keys2 = write_keys(&mut client, 100, 2);
    assert_round(&cluster, &keys2, 2);
}

#[test]
fn a_destination_killed_mid_copy_rolls_back_to_the_source() {
    let mut cluster = Cluster::start(3, 2, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 300, 1);
    let before = cluster.store.load().expect("map");
    let shard = before.lookup(&keys[0]).clone();
    let to = outsider(&cluster, &shard);
    let copy = ShadowCopy::start(
        plan_for(&shard, &to),
        &cluster.nodes,
        Throttle::new(2_000),
        ShadowConfig {
            segment_keys: 4,
            ..ShadowConfig::default()
        },
    )
    .expect("shadow");
    while copy.progress().keys_copied == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let dest_index = cluster.nodes.names().position(|n| n == to).unwrap();
    cluster.kill(dest_index);
    let err = Switchover::new(&cluster.store, &cluster.nodes, SwitchoverConfig::default())
        .run(shard.id, &to, Some(copy))
        .expect_err("the destination is gone");
    assert!(
        matches!(&err, MigrationError::RolledBack { .. }),
        "expected a rollback, got {err}"
    );
    assert_eq!(
        cluster.store.load().expect("map"),
        before,
        "routing unchanged"
    );
    let mut source = cluster.nodes.node(&shard.node).expect("node");
    assert_eq!(
        source
            .owner(&shard.id.to_string())
            .expect("read")
            .map(|s| s.mode),
        Some(Mode::ReadWrite)
    );
    assert!(!source.shadowing(&shard.id.to_string()).expect("read"));
}
