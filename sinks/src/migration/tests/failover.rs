//! Replica failover: a dead node's shards move to their replicas with every acknowledged write,
//! through the health monitor and the executor.

use std::sync::Arc;
use std::time::Duration;

use super::{assert_round, write_keys, Cluster};
use crate::migration::{Done, Executor, ExecutorConfig, HealthMonitor, Plan};
use shardcast_shardmap::MapChange;

#[test]
fn a_dead_node_is_noticed_and_its_shards_fail_over_with_every_acknowledged_write() {
    let mut cluster = Cluster::start(3, 6, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 300, 1);
    let mut monitor = HealthMonitor::new(&cluster.nodes, 3);
    assert!(monitor.probe().went_down.is_empty());

    cluster.kill(1);
    let mut down = Vec::new();
    for round in 1..=3 {
        let change = monitor.probe();
        if round < 3 {
            assert!(change.went_down.is_empty(), "down after {round} probes");
        }
        down.extend(change.went_down);
    }
    assert_eq!(down, ["n1"]);
    assert!(monitor.is_down("n1"));

    let executor = Executor::start(
        Arc::clone(&cluster.store),
        cluster.nodes.clone(),
        ExecutorConfig::default(),
    )
    .expect("executor");
    executor
        .submit(Plan::NodeDown { node: "n1".into() })
        .expect("submit");
    let outcome = executor
        .next_outcome(Duration::from_secs(30))
        .expect("an outcome");
    let report = match outcome.result {
        Ok(Done::FailedOver(report)) => report,
        other => panic!("expected a failover, got {other:?}"),
    };
    assert_eq!(
        report.promoted.len(),
        2,
        "n1 owned 2 of 6 shards: {report:?}"
    );
    assert!(report.unavailable.is_empty());
    assert_eq!(report.replica_removed.len(), 2, "{report:?}");
    let map = cluster.store.load().expect("map");
    assert!(map
        .shards()
        .all(|s| s.node != "n1" && !s.replicas.iter().any(|r| r == "n1")));
    let log = cluster.store.changes_since(0).expect("changelog");
    assert_eq!(
        log.iter()
            .filter(|c| matches!(c.change, MapChange::Failover { .. }))
            .count(),
        2
    );
    // Every acknowledged write is there, and writing goes on (the client learns the new map).
    assert_round(&cluster, &keys, 1);
    let keys = write_keys(&mut client, 300, 2);
    assert_round(&cluster, &keys, 2);
}

#[test]
fn the_executor_runs_a_shadow_copy_and_its_switchover() {
    let cluster = Cluster::start(3, 3, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 200, 1);
    let map = cluster.store.load().expect("map");
    let shard = map.lookup(&keys[0]).clone();
    let to = cluster
        .nodes
        .names()
        .find(|n| *n != shard.node && !shard.replicas.iter().any(|r| r == n))
        .unwrap()
        .to_string();
    let executor = Executor::start(
        Arc::clone(&cluster.store),
        cluster.nodes.clone(),
        ExecutorConfig::default(),
    )
    .expect("executor");
    executor
        .submit(Plan::Shadow {
            shard: shard.id,
            range: shard.range,
            from: shard.node.clone(),
            to: to.clone(),
            priorities: vec![(keys[0].clone(), 1.0)],
        })
        .expect("submit");
    let mut caught_up = false;
    while !caught_up {
        let outcome = executor
            .next_outcome(Duration::from_secs(10))
            .expect("an outcome");
        match outcome.result {
            Ok(Done::ShadowStarted { .. }) => {}
            Ok(Done::ShadowCaughtUp { progress, .. }) => {
                assert!(progress.keys_copied > 0);
                caught_up = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let keys = write_keys(&mut client, 200, 2);
    executor
        .submit(Plan::Change(MapChange::Move {
            shard: shard.id,
            from: shard.node.clone(),
            to: to.clone(),
        }))
        .expect("submit");
    let outcome = executor
        .next_outcome(Duration::from_secs(30))
        .expect("an outcome");
    match outcome.result {
        Ok(Done::Switched(report)) => {
            assert_eq!(report.to, to);
            assert!(report.checksum.keys > 0);
        }
        other => panic!("expected a switchover, got {other:?}"),
    }
    assert_eq!(
        cluster
            .store
            .load()
            .expect("map")
            .get(shard.id)
            .unwrap()
            .node,
        to
    );
    assert_round(&cluster, &keys, 2);
    // A plan made against an old map is refused, not carried out.
    executor
        .submit(Plan::Change(MapChange::Move {
            shard: shard.id,
            from: shard.node.clone(),
            to: to.clone(),
        }))
        .expect("submit");
    let outcome = executor
        .next_outcome(Duration::from_secs(30))
        .expect("an outcome");
    assert!(outcome.result.is_err(), "a stale move was carried out");
}
