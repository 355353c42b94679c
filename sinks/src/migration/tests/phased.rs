//! Phased migration of a partition: dual writes, reads shifted in steps, release; monotonic
//! reads per session throughout.

use std::collections::BTreeMap;

use std::time::Duration;

use shardcast_shardmap::ring_position;

use crate::migration::{ConflictPolicy, PartitionClient, PartitionDirectory, PhasedMove};

use super::Cluster;

#[test]
fn a_partition_moves_in_phases_without_a_stale_read() {
    let cluster = Cluster::start(2, 1, 0);
    let directory = PartitionDirectory::open(&cluster.coordination.url(), "t:").expect("directory");
    directory
        .place(&cluster.nodes, "cust-7", "n0")
        .expect("place");
    let mut writer = PartitionClient::new(&directory, cluster.nodes.clone());
    let mut reader =
        PartitionClient::new(&directory, cluster.nodes.clone()).with_refresh_every(Duration::ZERO);
    let keys: Vec<String> = (0..40).map(|i| format!("order{i}")).collect();
    let mut last: BTreeMap<String, u32> = BTreeMap::new();
    let mut round = 0u32;
    let mut write_all = |writer: &mut PartitionClient<'_>, last: &mut BTreeMap<String, u32>| {
        round += 1;
        for key in &keys {
            writer
                .put("cust-7", key, round.to_string().as_bytes())
                .expect("write");
            last.insert(key.clone(), round);
        }
    };
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut stale = 0;
    let mut read_all = |reader: &mut PartitionClient<'_>, last: &BTreeMap<String, u32>| {
        for (key, expected) in last {
            let value = reader.get("cust-7", key).expect("read").expect("present");
            let got: u32 = String::from_utf8_lossy(&value.data)
                .parse()
                .expect("a number");
            assert_eq!(got, *expected, "{key} lost its last write");
            let before = seen.insert(key.clone(), got).unwrap_or(0);
            if got < before {
                stale += 1;
            }
        }
    };
    write_all(&mut writer, &mut last);
    read_all(&mut reader, &last);

    let moving = PhasedMove::new(&directory, &cluster.nodes, "cust-7");
    let copied = moving.begin("n1").expect("begin");
    assert_eq!(copied, 40, "the partition's data was not copied");

    // A key whose destination copy lags: the reader sees the newer write on the source first
    // (all reads go there at share 0), and later, with reads on the destination, must not get
    // the older one back.
    let ts = writer.put("cust-7", "lagging", b"1").expect("write");
    let version = directory
        .get("cust-7")
        .expect("read")
        .expect("placed")
        .version;
    cluster
        .nodes
        .node_in("n0", &directory.namespace("cust-7"))
        .expect("node")
        .write(
            "p",
            version,
            "lagging",
            ring_position("lagging"),
            b"2",
            ts + 1,
            ConflictPolicy::LastWriterWins,
        )
        .expect("write the source only");
    let first = reader
        .get("cust-7", "lagging")
        .expect("read")
        .expect("present");
    assert_eq!(first.data, b"2");
    for share in [0.25, 0.5, 1.0] {
        moving.shift_reads(share).expect("shift");
        write_all(&mut writer, &mut last);
        read_all(&mut reader, &last);
        let placement = directory.get("cust-7").expect("read").expect("placed");
        assert_eq!(placement.read_share, share);
    }
    let again = reader
        .get("cust-7", "lagging")
        .expect("read")
        .expect("present");
    assert_eq!(again.data, b"2", "a read went back to an older write");
    assert!(reader.fallbacks >= 1, "the lagging side was never detected");

    // Both sides got the dual writes.
    for node in ["n0", "n1"] {
        let mut n = cluster
            .nodes
            .node_in(node, &directory.namespace("cust-7"))
            .expect("node");
        let values = n.read_many(&keys).expect("read");
        assert!(values
            .iter()
            .all(|v| v.as_ref().map(|v| v.data.as_slice()) == Some(b"4")));
    }
    let released = moving.release().expect("release");
    assert_eq!((released.node.as_str(), released.moving_to), ("n1", None));
    write_all(&mut writer, &mut last);
    read_all(&mut reader, &last);
    let mut old = cluster
        .nodes
        .node_in("n0", &directory.namespace("cust-7"))
        .expect("node");
    assert!(old
        .all_keys(shardcast_shardmap::HashRange {
            lo: 0,
            hi: shardcast_shardmap::RING
        })
        .expect("keys")
        .is_empty());
    assert_eq!(stale, 0);
}
