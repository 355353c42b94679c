//! Fencing tokens and range locks: an executor whose lock expired cannot clobber.

use std::time::Duration;

use shardcast_shardmap::MapChange;

use super::Cluster;
use crate::migration::{LockGuard, MigrationError, Mode, OwnerState};

#[test]
fn a_node_refuses_an_ownership_change_with_a_stale_token() {
    let cluster = Cluster::start(1, 1, 0);
    let mut node = cluster.nodes.node("n0").expect("node");
    node.set_owner("9", 10, Some(OwnerState::rw(10, 0)))
        .expect("first change");
    match node.set_owner("9", 5, Some(OwnerState::ro(5, 0))) {
        Err(MigrationError::StaleFence {
            token, seen, slot, ..
        }) => assert_eq!((token, seen, slot.as_str()), (5, 10, "9")),
        other => panic!("expected a stale fence, got {other:?}"),
    }
    assert_eq!(
        node.owner("9").expect("read"),
        Some(OwnerState::rw(10, 0)),
        "a refused change must leave the ownership alone"
    );
    // Removal is fenced too, and the highest token outlives the ownership it set.
    node.set_owner("9", 11, None).expect("removal");
    assert!(matches!(
        node.set_owner("9", 10, Some(OwnerState::rw(10, 0))),
        Err(MigrationError::StaleFence { seen: 11, .. })
    ));
    assert_eq!(node.owner("9").expect("read"), None);
    node.set_owner("9", 12, Some(OwnerState::ro(12, 3)))
        .expect("a newer token");
    assert_eq!(
        node.owner("9").expect("read").map(|s| s.mode),
        Some(Mode::ReadOnly)
    );
}

#[test]
fn an_expired_lock_loses_the_range_to_a_newer_holder() {
    let cluster = Cluster::start(2, 2, 0);
    let store = &cluster.store;
    let map = store.load().expect("map");
    let shard = map.shards().next().unwrap().clone();
    let stale = LockGuard::acquire(store, shard.id, Duration::from_millis(50), Duration::ZERO)
        .expect("first lock");
    // Held: a second executor cannot take it.
    assert!(matches!(
        LockGuard::acquire(
            store,
            shard.id,
            Duration::from_secs(5),
            Duration::from_millis(20)
        ),
        Err(MigrationError::LockBusy { .. })
    ));
    std::thread::sleep(Duration::from_millis(120));
    let fresh = LockGuard::acquire(store, shard.id, Duration::from_secs(5), Duration::ZERO)
        .expect("the expired lock can be taken");
    assert!(fresh.token() > stale.token(), "tokens only grow");

    // The newer holder fences the node; the stale one is refused there and at the store.
    let mut node = cluster.nodes.node(&shard.node).expect("node");
    node.set_owner(
        &shard.id.to_string(),
        fresh.token(),
        Some(OwnerState::ro(fresh.token(), shard.version)),
    )
    .expect("newer holder");
    assert!(matches!(
        node.set_owner(
            &shard.id.to_string(),
            stale.token(),
            Some(OwnerState::rw(stale.token(), shard.version))
        ),
        Err(MigrationError::StaleFence { .. })
    ));
    assert!(matches!(
        stale.renew(),
        Err(MigrationError::LockLost { .. })
    ));
    let change = MapChange::Move {
        shard: shard.id,
        from: shard.node.clone(),
        to: "n1".into(),
    };
    assert!(matches!(
        store.apply(map.version(), std::slice::from_ref(&change), &[&stale]),
        Err(MigrationError::LockLost { .. })
    ));
    assert_eq!(
        store.version().expect("version"),
        map.version(),
        "map unchanged"
    );
    // The holder's change goes through (and a retry of the same compare-and-set is refused as
    // out of date, not applied twice).
    store
        .apply(map.version(), std::slice::from_ref(&change), &[&fresh])
        .expect("holder's change");
    assert!(matches!(
        store.apply(map.version(), &[change], &[&fresh]),
        Err(MigrationError::VersionConflict { actual: Some(v), .. }) if v == map.version() + 1
    ));
    // Dropping the stale guard must not release the newer holder's lock.
    drop(stale);
    fresh.renew().expect("still held");
}
