//! The copy throttle: a lower rate copies fewer bytes in the same time, a rate change takes
//! effect while the copy runs, and the hottest keys go first.

use std::time::{Duration, Instant};

use super::Cluster;
use crate::migration::{ShadowConfig, ShadowCopy, ShadowPlan, Throttle};

#[test]
fn a_lower_rate_copies_slower_and_a_change_applies_while_running() {
    let cluster = Cluster::start(2, 1, 0);
    let mut client = cluster.client();
    // 200 keys of 1,000 bytes: 200 kB.
    let value = vec![b'x'; 1_000];
    let keys: Vec<String> = (0..200).map(|i| format!("big{i:03}")).collect();
    for key in &keys {
        client.put(key, &value).expect("write");
    }
    let map = cluster.store.load().expect("map");
    let shard = map.shards().next().unwrap().clone();
    let ring_order = cluster
        .nodes
        .node(&shard.node)
        .expect("node")
        .all_keys(shard.range)
        .expect("keys");
    // The last keys in ring order are the hottest: they must be copied first.
    let hot: Vec<(String, f64)> = ring_order
        .iter()
        .rev()
        .take(4)
        .enumerate()
        .map(|(i, k)| (k.clone(), 1.0 - i as f64 * 0.1))
        .collect();
    let throttle = Throttle::new(40_000);
    let copy = ShadowCopy::start(
        ShadowPlan {
            shard: shard.id,
            range: shard.range,
            from: shard.node.clone(),
            to: "n1".into(),
            priorities: hot.clone(),
            destination_is_replica: false,
        },
        &cluster.nodes,
        throttle.clone(),
        ShadowConfig {
            segment_keys: 4,
            ..ShadowConfig::default()
        },
    )
    .expect("shadow");

    // Slow phase: 40 kB/s for 0.5 s.
    let start = Instant::now();
    while copy.progress().segments == 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut dest = cluster.nodes.node("n1").expect("node");
    let first: Vec<String> = hot.iter().map(|(k, _)| k.clone()).collect();
    assert!(
        dest.read_many(&first)
            .expect("read")
            .iter()
            .all(Option::is_some),
        "the hottest keys were not copied first"
    );
    assert!(
        dest.read_many(&ring_order[..1]).expect("read")[0].is_none(),
        "a cold key went before the hot ones"
    );
    std::thread::sleep(Duration::from_millis(500).saturating_sub(start.elapsed()));
    let slow_bytes = copy.progress().bytes_copied;
    let slow_rate = slow_bytes as f64 / start.elapsed().as_secs_f64();

    // Fast phase: 400 kB/s for 0.3 s.
    throttle.set(400_000);
    let fast_start = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let fast_rate =
        (copy.progress().bytes_copied - slow_bytes) as f64 / fast_start.elapsed().as_secs_f64();
    assert!(slow_rate < 80_000.0, "40 kB/s copied at {slow_rate:.0} B/s");
    assert!(
        fast_rate > 2.0 * slow_rate,
        "raising the rate 10x sped the copy from {slow_rate:.0} to only {fast_rate:.0} B/s"
    );

    throttle.set(0);
    let progress = copy
        .wait_caught_up(Duration::from_secs(10))
        .expect("caught up");
    assert_eq!(progress.keys_copied, 200);
    assert!(progress.bytes_copied >= 200_000);
    copy.stop().expect("stopped");
    let mut source = cluster.nodes.node(&shard.node).expect("node");
    assert_eq!(
        dest.checksum(shard.range).expect("checksum"),
        source.checksum(shard.range).expect("checksum")
    );
}
