//! Splits and merges on one node, including a merge whose replica sets differ.

use shardcast_shardmap::{MapChange, RING};

use super::{assert_round, write_keys, Cluster};
use crate::migration::{Mode, Reshape};

#[test]
fn split_then_merge_keeps_every_write_and_fills_the_merged_replica() {
    let cluster = Cluster::start(3, 3, 1);
    let mut client = cluster.client();
    write_keys(&mut client, 150, 1);
    let map = cluster.store.load().expect("map");
    let shard = map.shards().next().unwrap().clone();
    let at = shard.range.lo + shard.range.width() / 2;
    let reshape = Reshape::new(&cluster.store, &cluster.nodes);

    let report = reshape.split(shard.id, at).expect("split");
    let MapChange::Split { left, right, .. } = report.change.clone() else {
        panic!("not a split: {:?}", report.change)
    };
    let map = cluster.store.load().expect("map");
    assert_eq!(map.shards().count(), 4);
    assert!(map.get(shard.id).is_none());
    let mut node = cluster.nodes.node(&shard.node).expect("node");
    assert_eq!(node.owner(&shard.id.to_string()).expect("read"), None);
    for child in [left, right] {
        assert_eq!(
            node.owner(&child.to_string())
                .expect("read")
                .map(|s| s.mode),
            Some(Mode::ReadWrite)
        );
    }
    // A client with the pre-split map still gets through (refused, refreshed).
    let keys = write_keys(&mut client, 150, 2);
    assert_round(&cluster, &keys, 2);

    // Give the right half another replica, then merge: the left half's replica must end up
    // holding the right half's data too.
    let r = map.get(right).unwrap().clone();
    let other = cluster
        .nodes
        .names()
        .find(|n| *n != r.node && !r.replicas.iter().any(|x| x == n))
        .unwrap()
        .to_string();
    crate::migration::set_replicas(&cluster.store, &cluster.nodes, right, vec![other.clone()])
        .expect("replicas");
    let keys = write_keys(&mut client, 150, 3);
    let report = reshape.merge(left).expect("merge");
    assert!(
        report.keys_copied > 0,
        "the left replica lacked the right half"
    );
    let map = cluster.store.load().expect("map");
    assert_eq!(map.shards().count(), 3);
    let merged = map.lookup_position(shard.range.lo as u32).clone();
    assert_eq!(merged.range, shard.range);
    let replica = merged.replicas[0].clone();
    let mut replica_node = cluster.nodes.node(&replica).expect("node");
    let mut owner = cluster.nodes.node(&merged.node).expect("node");
    assert_eq!(
        replica_node.checksum(merged.range).expect("checksum"),
        owner.checksum(merged.range).expect("checksum"),
        "the merged shard's replica differs from its owner"
    );
    assert_round(&cluster, &keys, 3);
    assert!(merged.range.hi <= RING);
}
