//! The routing client: conflict policies, replication, stale maps, the cache-miss path.

use redis::Commands;
use shardcast_shardmap::MapChange;

use super::{assert_round, write_keys, Cluster};
use crate::migration::{
    ConflictPolicies, ConflictPolicy, MigrationError, Switchover, SwitchoverConfig, WriteOutcome,
};

#[test]
fn last_writer_wins_keeps_the_newer_write_and_reject_older_refuses_the_older() {
    let cluster = Cluster::start(2, 2, 1);
    let mut client = cluster.client().with_policies(
        ConflictPolicies::new(ConflictPolicy::LastWriterWins)
            .with_prefix("ledger/", ConflictPolicy::RejectOlder),
    );
    for key in ["cart/1", "ledger/1"] {
        let ack = client.put_at(key, b"new", 200).expect("write");
        assert_eq!(ack.outcome, WriteOutcome::Applied);
        assert_eq!(ack.replicas.len(), 1);
    }

    // An older write: kept out by both, acknowledged as superseded by one, refused by the other.
    let ack = client
        .put_at("cart/1", b"old", 100)
        .expect("lww acknowledges");
    assert_eq!(ack.outcome, WriteOutcome::Superseded);
    assert_eq!(ack.ts, 200, "the ack names the write that was kept");
    match client.put_at("ledger/1", b"old", 100) {
        Err(MigrationError::Conflict {
            ts, stored_ts, key, ..
        }) => {
            assert_eq!((ts, stored_ts, key.as_str()), (100, 200, "ledger/1"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    for key in ["cart/1", "ledger/1"] {
        let value = client.get(key).expect("read").expect("present");
        assert_eq!(
            (value.data.as_slice(), value.ts),
            (&b"new"[..], 200),
            "{key}"
        );
    }

    // A repeat of the stored write is recognised, a newer one applies under both policies.
    let ack = client.put_at("ledger/1", b"new", 200).expect("repeat");
    assert_eq!(ack.outcome, WriteOutcome::AlreadyApplied);
    for key in ["cart/1", "ledger/1"] {
        let ack = client.put_at(key, b"newer", 300).expect("newer write");
        assert_eq!(ack.outcome, WriteOutcome::Applied);
        assert_eq!(
            client.get(key).expect("read").expect("present").data,
            b"newer"
        );
    }
    // Equal timestamps: the larger value wins on every node, whatever the order.
    client.put_at("cart/2", b"b", 500).expect("write");
    let ack = client.put_at("cart/2", b"a", 500).expect("write");
    assert_eq!(ack.outcome, WriteOutcome::Superseded);
    assert_eq!(
        client.get("cart/2").expect("read").expect("present").data,
        b"b"
    );
}

#[test]
fn writes_reach_the_replica_with_the_owners_version() {
    let cluster = Cluster::start(2, 1, 1);
    let mut client = cluster.client();
    let ack = client.put("k", b"v").expect("write");
    let owner = cluster.nodes.names().position(|n| n == ack.node).unwrap();
    let replica = 1 - owner;
    let mut conn = cluster.raw(replica);
    let held: Vec<Option<String>> = conn
        .hget("t:d:k", &["value", "ver"])
        .expect("read the replica");
    assert_eq!(
        held,
        vec![Some("v".to_string()), Some(ack.ver.to_string())],
        "the replica must hold the acknowledged write"
    );
}

#[test]
fn a_client_with_a_stale_map_is_refused_refreshes_and_succeeds() {
    let cluster = Cluster::start(3, 3, 1);
    let mut writer = cluster.client();
    let keys = write_keys(&mut writer, 60, 1);
    let mut stale = cluster.client();
    let shard = stale.map().lookup(&keys[0]).clone();
    let to = cluster
        .nodes
        .names()
        .find(|n| *n != shard.node && !shard.replicas.iter().any(|r| r == n))
        .unwrap()
        .to_string();
    Switchover::new(&cluster.store, &cluster.nodes, SwitchoverConfig::default())
        .run(shard.id, &to, None)
        .expect("switchover");

    // `stale` still routes the key to the old owner, which refuses: it must refresh and retry.
    assert_eq!(stale.map().lookup(&keys[0]).node, shard.node);
    let ack = stale.put(&keys[0], b"v0-2").expect("write after refresh");
    assert_eq!(ack.node, to);
    assert!(ack.attempts > 1);
    assert!(stale.stats().refreshes >= 1);
    let value = cluster
        .client()
        .get(&keys[0])
        .expect("read")
        .expect("present");
    assert_eq!(value.data, b"v0-2");
    let log = cluster.store.changes_since(0).expect("changelog");
    assert!(
        matches!(log.last().map(|c| &c.change), Some(MapChange::Move { shard: s, .. }) if *s == shard.id),
        "the move is in the changelog: {log:?}"
    );
}

#[test]
fn a_miss_on_the_owner_is_answered_by_a_replica_and_repaired() {
    let cluster = Cluster::start(2, 1, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 5, 1);
    let owner = client.map().lookup(&keys[2]).node.clone();
    let owner_index = cluster.nodes.names().position(|n| n == owner).unwrap();
    // The owner loses a key (e.g. a cache eviction); the replica still has it.
    let mut conn = cluster.raw(owner_index);
    let _: () = conn.del(format!("t:d:{}", keys[2])).expect("delete");
    let value = client
        .get(&keys[2])
        .expect("read")
        .expect("the replica's copy");
    assert_eq!(value.data, b"v2-1");
    assert_eq!(client.stats().repaired_misses, 1);
    let back: Option<String> = conn
        .hget(format!("t:d:{}", keys[2]), "value")
        .expect("read the owner");
    assert_eq!(back.as_deref(), Some("v2-1"), "the owner was repaired");
    assert!(client.get("never-written").expect("read").is_none());
    assert_round(&cluster, &keys, 1);
}
