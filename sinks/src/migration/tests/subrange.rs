//! Shadow copies of part of a shard, planned before the split that cuts that part off: the split
//! hands the copy to the child holding it, and the child's move draws on it, under a live writer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shardcast_shardmap::{ring_position, HashRange, MapChange, Shard, ShardId};

use super::{write_keys, Cluster};
use crate::migration::{
    ClientStats, Done, Executor, ExecutorConfig, Mode, Plan, ShadowConfig, ShadowPhase,
    SwitchoverReport,
};

/// A node that neither owns nor replicates `shard`.
fn outsider(cluster: &Cluster, shard: &Shard) -> String {
    cluster
        .nodes
        .names()
        .find(|n| *n != shard.node && !shard.replicas.iter().any(|r| r == n))
        .expect("a node outside the shard")
        .to_string()
}

/// A writer rewriting `keys` over and over through its own client until stopped; it returns
/// the last acknowledged value of every key.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(BTreeMap<String, u64>, ClientStats)>,
}

impl Writer {
    fn start(cluster: &Cluster, keys: &[String]) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, mut client, keys) = (Arc::clone(&stop), cluster.client(), keys.to_vec());
        let thread = std::thread::spawn(move || {
            let mut acked = BTreeMap::new();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for key in &keys {
                    n += 1;
                    client
                        .put(key, n.to_string().as_bytes())
                        .unwrap_or_else(|e| panic!("writing {key}: {e}"));
                    acked.insert(key.clone(), n);
                }
            }
            (acked, client.stats())
        });
        Writer { stop, thread }
    }

    /// Stops the writer and checks that every acknowledged write reads back through a fresh
    /// client.
    fn finish(self, cluster: &Cluster) -> ClientStats {
        self.stop.store(true, Ordering::Relaxed);
        let (acked, stats) = self.thread.join().expect("the writer ran");
        assert!(!acked.is_empty());
        let mut reader = cluster.client();
        for (key, n) in &acked {
            let value = reader
                .get(key)
                .unwrap_or_else(|e| panic!("reading {key}: {e}"))
                .unwrap_or_else(|| panic!("{key} is missing"));
            assert_eq!(
                String::from_utf8_lossy(&value.data),
                n.to_string(),
                "{key}: an acknowledged write was lost"
            );
        }
        stats
    }
}

/// Waits up to 30 s for an outcome `wanted` picks; any failed plan fails the test.
fn expect<T>(
    executor: &Executor,
    what: &str,
    mut wanted: impl FnMut(&Plan, &Done) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(outcome) = executor.next_outcome(Duration::from_millis(100)) else {
            continue;
        };
        match &outcome.result {
            Ok(done) => {
                if let Some(found) = wanted(&outcome.plan, done) {
                    return found;
                }
            }
            Err(err) => panic!("{:?} failed while waiting for {what}: {err}", outcome.plan),
        }
    }
    panic!("no {what} within 30 s");
}

/// Polls `check` for up to 5 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn range(lo: u64, hi: u64) -> HashRange {
    HashRange { lo, hi }
}

/// How many of `keys` fall in `range`.
fn count_in(keys: &[String], range: HashRange) -> u64 {
    keys.iter()
        .filter(|k| range.contains(ring_position(k)))
        .count() as u64
}

/// Submits the split of `shard` at `at`; returns its children.
fn split(cluster: &Cluster, executor: &Executor, shard: ShardId, at: u64) -> (ShardId, ShardId) {
    let change = cluster
        .store
        .load()
        .expect("map")
        .split_change(shard, at)
        .expect("a valid split");
    let MapChange::Split { left, right, .. } = change else {
        panic!("not a split: {change:?}")
    };
    executor.submit(Plan::Change(change)).expect("submitted");
    (left, right)
}

/// Submits the move of `shard` from `from` to `to` and waits for its report.
fn move_shard(executor: &Executor, shard: ShardId, from: &str, to: &str) -> SwitchoverReport {
    executor
        .submit(Plan::Change(MapChange::Move {
            shard,
            from: from.to_string(),
            to: to.to_string(),
        }))
        .expect("submitted");
    expect(executor, "the switchover", |_, done| match done {
        Done::Switched(report) if report.shard == shard => Some(report.clone()),
        _ => None,
    })
}

#[test]
fn a_copy_of_the_upper_half_follows_it_through_the_split_and_serves_its_move() {
    let cluster = Cluster::start(3, 2, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 400, 1);
    let shard = cluster.store.load().expect("map").lookup(&keys[0]).clone();
    let to = outsider(&cluster, &shard);
    let at = shard.range.lo + shard.range.width() / 2;
    let upper = range(at, shard.range.hi);
    let executor = Executor::start(
        Arc::clone(&cluster.store),
        cluster.nodes.clone(),
        ExecutorConfig::default(),
    )
    .expect("executor");
    let writer = Writer::start(&cluster, &keys);

    // 1. The copy of the upper half only, planned before the split.
    executor
        .submit(Plan::Shadow {
            shard: shard.id,
            range: upper,
            from: shard.node.clone(),
            to: to.clone(),
            priorities: Vec::new(),
        })
        .expect("submitted");
    let caught_up = expect(&executor, "the copy to catch up", |_, done| match done {
        Done::ShadowCaughtUp { shard: s, progress } if *s == shard.id => Some(progress.clone()),
        _ => None,
    });
    let in_upper = count_in(&keys, upper);
    assert!(in_upper > 0 && in_upper < count_in(&keys, shard.range));
    assert_eq!(
        caught_up.keys_total, in_upper,
        "the copy listed keys outside its range"
    );
    let mut dest = cluster.nodes.node(&to).expect("node");
    let copied = dest.all_keys(shard.range).expect("keys");
    assert!(!copied.is_empty());
    // The writer touches the lower half too; its deltas must not reach the destination.
    assert!(
        copied.iter().all(|k| upper.contains(ring_position(k))),
        "the destination holds keys of the lower half"
    );
    std::thread::sleep(Duration::from_millis(50));

    // 2. The split hands the copy to the upper child, whose writes feed its own log from the
    //    split on; the parent's log is drained and ended.
    let (left, right) = split(&cluster, &executor, shard.id, at);
    let handed = expect(&executor, "the hand-over", |plan, done| match done {
        Done::ShadowHandedOver { from, shard, range } => {
            Some((*from, *shard, *range, plan.clone()))
        }
        _ => None,
    });
    assert_eq!((handed.0, handed.1, handed.2), (shard.id, right, upper));
    assert!(
        matches!(handed.3, Plan::Shadow { shard, range, .. } if shard == right && range == upper),
        "the copy's plan was not re-keyed: {:?}",
        handed.3
    );
    let shadowed = expect(&executor, "the split", |_, done| match done {
        Done::Reshaped(report) => Some(report.shadowed.clone()),
        _ => None,
    });
    assert_eq!(shadowed, vec![right], "the split fed the wrong children");
    let mut source = cluster.nodes.node(&shard.node).expect("node");
    assert!(source.shadowing(&right.to_string()).expect("read"));
    assert!(!source.shadowing(&left.to_string()).expect("read"));
    eventually("the parent's log was never drained and ended", || {
        !source.shadowing(&shard.id.to_string()).expect("read")
    });
    eventually("the copy is not listed under the child", || {
        let shadows = executor.shadows();
        shadows.contains_key(&right) && !shadows.contains_key(&shard.id)
    });
    std::thread::sleep(Duration::from_millis(100));
    let before_move = executor.shadows()[&right].clone();
    assert_eq!(before_move.phase, ShadowPhase::CaughtUp);
    assert!(
        before_move.deltas_applied > caught_up.deltas_applied,
        "no delta reached the copy after the split: {before_move:?}"
    );

    // 3. The move of the upper child draws on the copy: the pause only drains the log.
    let report = move_shard(&executor, right, &shard.node, &to);
    assert!(report.copied_ahead, "the move started its own copy");
    assert!(report.copy.keys_copied >= in_upper, "{:?}", report.copy);
    assert_eq!(
        report.keys_recopied, 0,
        "keys the delta logs missed were recopied in the pause: {report:?}"
    );
    assert!(report.pause > Duration::ZERO && report.pause < report.total);
    std::thread::sleep(Duration::from_millis(50));
    writer.finish(&cluster);

    let map = cluster.store.load().expect("map");
    assert_eq!(map.get(right).expect("the child").node, to);
    assert_eq!(map.get(left).expect("the child").node, shard.node);
    assert_eq!(
        dest.owner(&right.to_string())
            .expect("read")
            .map(|s| s.mode),
        Some(Mode::ReadWrite)
    );
    for slot in [shard.id, left, right] {
        assert!(
            !source.shadowing(&slot.to_string()).expect("read"),
            "the log of {slot} is still fed"
        );
    }
    assert!(
        dest.all_keys(range(shard.range.lo, at))
            .expect("keys")
            .is_empty(),
        "the destination kept keys of the half that stayed"
    );
}

#[test]
fn a_copy_straddling_the_cut_keeps_its_larger_part_and_the_move_widens_it() {
    let cluster = Cluster::start(3, 2, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 400, 1);
    let shard = cluster.store.load().expect("map").lookup(&keys[0]).clone();
    let to = outsider(&cluster, &shard);
    let (lo, w) = (shard.range.lo, shard.range.width());
    // The copy covers the middle half; the cut falls at 5/8, so 3/8 of the shard's width of the
    // copy lies in the left child and 1/8 in the right one.
    let copied_range = range(lo + w / 4, lo + 3 * w / 4);
    let at = lo + 5 * w / 8;
    let kept = range(copied_range.lo, at);
    let executor = Executor::start(
        Arc::clone(&cluster.store),
        cluster.nodes.clone(),
        ExecutorConfig {
            shadow: ShadowConfig {
                segment_keys: 4,
                ..ShadowConfig::default()
            },
            rate: 300,
            ..ExecutorConfig::default()
        },
    )
    .expect("executor");
    let writer = Writer::start(&cluster, &keys);

    executor
        .submit(Plan::Shadow {
            shard: shard.id,
            range: copied_range,
            from: shard.node.clone(),
            to: to.clone(),
            priorities: Vec::new(),
        })
        .expect("submitted");
    // Split while the slow copy is still copying.
    eventually("the slow copy never started", || {
        executor
            .shadows()
            .get(&shard.id)
            .is_some_and(|p| p.keys_copied > 0 && p.phase == ShadowPhase::Copying)
    });
    let (left, right) = split(&cluster, &executor, shard.id, at);
    let handed = expect(&executor, "the hand-over", |_, done| match done {
        Done::ShadowHandedOver { shard, range, .. } => Some((*shard, *range)),
        _ => None,
    });
    assert_eq!(handed, (left, kept), "the larger part was not kept");
    executor.throttle().set(0);
    let caught_up = expect(&executor, "the copy to catch up", |plan, done| match done {
        Done::ShadowCaughtUp { shard, progress } if *shard == left => {
            assert!(matches!(plan, Plan::Shadow { range, .. } if *range == kept));
            Some(progress.clone())
        }
        _ => None,
    });
    assert!(caught_up.keys_copied > 0);
    let mut source = cluster.nodes.node(&shard.node).expect("node");
    assert!(source.shadowing(&left.to_string()).expect("read"));
    assert!(
        !source.shadowing(&right.to_string()).expect("read"),
        "the right child's writes still feed a log nobody follows"
    );
    let mut dest = cluster.nodes.node(&to).expect("node");
    let held = dest.all_keys(shard.range).expect("keys");
    assert!(!held.is_empty());
    assert!(
        held.iter().all(|k| kept.contains(ring_position(k))),
        "the destination holds keys outside the kept part"
    );

    // The move of the left child widens the copy to the whole child before its pause.
    let left_range = range(lo, at);
    let report = move_shard(&executor, left, &shard.node, &to);
    assert!(report.copied_ahead, "the move started its own copy");
    // Listed: the copied range at the start, then the part of the child below it.
    assert_eq!(
        report.copy.keys_total,
        count_in(&keys, copied_range) + count_in(&keys, range(lo, copied_range.lo)),
        "the copy was not widened to the child: {:?}",
        report.copy
    );
    assert_eq!(report.keys_recopied, 0, "{report:?}");
    assert!(report.pause > Duration::ZERO && report.pause < report.total);
    std::thread::sleep(Duration::from_millis(50));
    writer.finish(&cluster);
    assert_eq!(
        report.checksum.keys,
        count_in(&keys, left_range),
        "the moved child's checksum does not cover its keys"
    );
    assert!(
        dest.all_keys(range(at, shard.range.hi))
            .expect("keys")
            .is_empty(),
        "the destination kept keys of the right child"
    );
    for slot in [shard.id, left, right] {
        assert!(!source.shadowing(&slot.to_string()).expect("read"));
    }
}

#[test]
fn a_cancel_naming_the_split_parent_reaches_the_copy_handed_to_its_child() {
    let cluster = Cluster::start(3, 2, 1);
    let mut client = cluster.client();
    let keys = write_keys(&mut client, 200, 1);
    let shard = cluster.store.load().expect("map").lookup(&keys[0]).clone();
    let to = outsider(&cluster, &shard);
    let at = shard.range.lo + shard.range.width() / 2;
    let lower = range(shard.range.lo, at);
    let executor = Executor::start(
        Arc::clone(&cluster.store),
        cluster.nodes.clone(),
        ExecutorConfig::default(),
    )
    .expect("executor");
    executor
        .submit(Plan::Shadow {
            shard: shard.id,
            range: lower,
            from: shard.node.clone(),
            to: to.clone(),
            priorities: Vec::new(),
        })
        .expect("submitted");
    expect(&executor, "the copy to catch up", |_, done| {
        matches!(done, Done::ShadowCaughtUp { .. }).then_some(())
    });
    let (left, right) = split(&cluster, &executor, shard.id, at);
    let handed = expect(&executor, "the hand-over", |_, done| match done {
        Done::ShadowHandedOver { shard, .. } => Some(*shard),
        _ => None,
    });
    assert_eq!(handed, left);
    let mut dest = cluster.nodes.node(&to).expect("node");
    assert!(!dest.all_keys(lower).expect("keys").is_empty());

    executor
        .submit(Plan::CancelShadow { shard: shard.id })
        .expect("submitted");
    let cancelled = expect(&executor, "the cancel", |_, done| match done {
        Done::ShadowCancelled { shard, .. } => Some(*shard),
        _ => None,
    });
    assert_eq!(cancelled, shard.id);
    assert!(executor_shadows_empty(&executor));
    let mut source = cluster.nodes.node(&shard.node).expect("node");
    for slot in [shard.id, left, right] {
        assert!(!source.shadowing(&slot.to_string()).expect("read"));
    }
    assert!(
        dest.all_keys(shard.range).expect("keys").is_empty(),
        "the cancelled copy was left on the destination"
    );
    // A second cancel finds nothing.
    executor
        .submit(Plan::CancelShadow { shard: left })
        .expect("submitted");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = executor
            .next_outcome(Duration::from_millis(100))
            .filter(|o| o.plan == Plan::CancelShadow { shard: left });
        if let Some(outcome) = outcome {
            assert!(outcome.result.is_err(), "{:?}", outcome.result);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome for the second cancel"
        );
    }
}

/// Whether the executor lists no running copy (after its next look).
fn executor_shadows_empty(executor: &Executor) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if executor.shadows().is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
