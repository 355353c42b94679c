//! Migration end to end against real Redis servers: four data nodes and a coordination server. A
//! writer and a reader go through the routing client while a driver moves shards between nodes
//! (over a hundred switchovers), splits and merges them, and kills a node in the middle of a copy;
//! a checker then verifies that no acknowledged write was lost and that no read went back to an
//! older value than one the reader had already seen.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardcast_shardmap::{MapChange, ShardMap};
use shardcast_sinks::migration::{
    bootstrap, ClientRetry, Done, Executor, ExecutorConfig, HealthMonitor, MigrationError, NodeSet,
    Outcome, Plan, RoutingClient, RoutingStore, ShadowConfig, ShadowPhase,
};
use shardcast_sinks::testing::RedisServer;

const NODES: usize = 4;
const KEYS: usize = 2000;
const SHARDS: u64 = 16;
const MIN_SWITCHOVERS: usize = 100;
/// The driver keeps going at least this long (more switchovers under the writer and reader)...
const DRIVE_FOR_AT_LEAST: Duration = Duration::from_secs(10);
/// ...and stops after this long even if the targets are not reached (the asserts then fail).
const DRIVE_FOR_AT_MOST: Duration = Duration::from_secs(60);
const PREFIX: &str = "sc:";

fn key(i: usize) -> String {
    format!("key-{i:04}")
}

/// What the driver saw: reports of every completed plan and counts of the failed ones.
#[derive(Default)]
struct Tally {
    pauses: Vec<Duration>,
    switchovers: usize,
    splits: usize,
    merges: usize,
    rolled_back: usize,
    failovers: usize,
    shadow_failures: usize,
    copied_keys: u64,
    copied_bytes: u64,
    copy_time: Duration,
    failed: Vec<String>,
}

impl Tally {
    fn record(&mut self, outcome: &Outcome) {
        match &outcome.result {
            Ok(Done::Switched(report)) => {
                self.switchovers += 1;
                self.pauses.push(report.pause);
            }
            Ok(Done::Reshaped(report)) => match report.change {
                MapChange::Split { .. } => self.splits += 1,
                MapChange::Merge { .. } => self.merges += 1,
                _ => {}
            },
            Ok(Done::ShadowCaughtUp { progress, .. }) => {
                self.copied_keys += progress.keys_copied;
                self.copied_bytes += progress.bytes_copied;
                self.copy_time += progress.copy_time.unwrap_or_default();
            }
            Ok(Done::FailedOver(_)) => self.failovers += 1,
            Ok(_) => {}
            Err(MigrationError::RolledBack { .. }) => self.rolled_back += 1,
            Err(MigrationError::ShadowFailed { .. }) => self.shadow_failures += 1,
            Err(err) => self.failed.push(format!("{:?}: {err}", outcome.plan)),
        }
    }
}

/// Submits `plan` and records outcomes until one for `plan` itself arrives (for a shadow copy:
/// until it caught up or failed); returns that one.
fn run(executor: &Executor, tally: &mut Tally, plan: Plan) -> Outcome {
    executor.submit(plan.clone()).expect("the executor runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Some(outcome) = executor.next_outcome(Duration::from_millis(200)) else {
            assert!(Instant::now() < deadline, "no outcome for {plan:?}");
            continue;
        };
        tally.record(&outcome);
        let started_copy = matches!(plan, Plan::Shadow { .. })
            && matches!(outcome.result, Ok(Done::ShadowStarted { .. }));
        if outcome.plan == plan && !started_copy {
            return outcome;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn no_write_is_lost_and_no_read_goes_back_across_switchovers_splits_merges_and_a_killed_node() {
    let started = Instant::now();
    let coordination = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut servers: Vec<Option<RedisServer>> = (0..NODES)
        .map(|_| Some(RedisServer::start().unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    let names: Vec<String> = (0..NODES).map(|i| format!("n{i}")).collect();
    let nodes = NodeSet::new(
        PREFIX,
        names
            .iter()
            .cloned()
            .zip(servers.iter().map(|s| s.as_ref().unwrap().url())),
    )
    .with_timeout(Duration::from_millis(500));
    let open_store = || Arc::new(RoutingStore::open(&coordination.url(), PREFIX).unwrap());
    let store = open_store();
    let initial = ShardMap::uniform(SHARDS, &names, 1).unwrap();
    bootstrap(&store, &nodes, &initial).expect("bootstrap");

    // Every key written once, so that readers find them all.
    let retry = ClientRetry {
        give_up_after: Duration::from_secs(5),
        ..ClientRetry::default()
    };
    let mut preload = RoutingClient::new(open_store(), nodes.clone()).unwrap();
    for i in 0..KEYS {
        preload.put(&key(i), b"0").expect("preload");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut client) = (
            Arc::clone(&stop),
            RoutingClient::new(open_store(), nodes.clone())
                .unwrap()
                .with_retry(retry),
        );
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(1);
            let mut next = vec![0u64; KEYS];
            let mut acked = vec![0u64; KEYS];
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = rng.random_range(0..KEYS);
                next[i] += 1;
                match client.put(&key(i), next[i].to_string().as_bytes()) {
                    Ok(_) => acked[i] = next[i],
                    Err(err) => errors.push(err.to_string()),
                }
            }
            (acked, next, errors, client.stats())
        })
    };
    let reader = {
        let (stop, mut client) = (
            Arc::clone(&stop),
            RoutingClient::new(open_store(), nodes.clone())
                .unwrap()
                .with_retry(retry),
        );
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(2);
            let mut seen = vec![0u64; KEYS];
            let (mut reads, mut stale, mut errors) = (0u64, Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let i = rng.random_range(0..KEYS);
                match client.get(&key(i)) {
                    Ok(Some(value)) => {
                        reads += 1;
                        let n: u64 = String::from_utf8_lossy(&value.data)
                            .parse()
                            .expect("values are numbers");
                        if n < seen[i] {
                            stale.push((key(i), seen[i], n));
                        }
                        seen[i] = seen[i].max(n);
                    }
                    Ok(None) => stale.push((key(i), seen[i], 0)),
                    Err(err) => errors.push(err.to_string()),
                }
            }
            (reads, stale, errors, client.stats())
        })
    };

    // The driver.
    // Small segments: the copy killed midway must take several (throttled) segments.
    let config = ExecutorConfig {
        shadow: ShadowConfig {
            segment_keys: 16,
            ..ShadowConfig::default()
        },
        ..ExecutorConfig::default()
    };
    let executor = Executor::start(Arc::clone(&store), nodes.clone(), config).unwrap();
    let throttle = executor.throttle();
    let mut monitor = HealthMonitor::new(&nodes, 3);
    let mut alive: BTreeSet<String> = names.iter().cloned().collect();
    let mut rng = StdRng::seed_from_u64(3);
    let mut tally = Tally::default();
    let mut killed: Option<String> = None;
    let mut iteration = 0usize;
    let drive_start = Instant::now();
    while (tally.switchovers < MIN_SWITCHOVERS
        || drive_start.elapsed() < DRIVE_FOR_AT_LEAST
        || killed.is_none()
        || tally.splits < 3
        || tally.merges < 3)
        && drive_start.elapsed() < DRIVE_FOR_AT_MOST
    {
        iteration += 1;
        let map = store.load().unwrap();
        let shards: Vec<_> = map.shards().cloned().collect();
        if iteration.is_multiple_of(8) {
            // A split of a random shard at its middle, or a merge with its right neighbour.
            let shard = &shards[rng.random_range(0..shards.len())];
            let change = if (iteration / 8) % 2 == 1 && shards.len() < 24 {
                map.split_change(shard.id, shard.range.lo + shard.range.width() / 2)
                    .unwrap()
            } else {
                match map.merge_change(shard.id) {
                    Ok(change) => change,
                    Err(_) => continue,
                }
            };
            run(&executor, &mut tally, Plan::Change(change));
            continue;
        }
        let kill_now = killed.is_none() && tally.switchovers >= MIN_SWITCHOVERS / 2;
        let shard = if kill_now {
            // The widest shard (the most keys, so its copy has many segments).
            shards
                .iter()
                .max_by_key(|s| s.range.width())
                .unwrap()
                .clone()
        } else {
            shards[rng.random_range(0..shards.len())].clone()
        };
        let targets: Vec<&String> = alive.iter().filter(|n| **n != shard.node).collect();
        let to = if kill_now {
            // The victim: a node that neither owns nor replicates the shard, so its copy
            // starts from nothing and is still running when it dies.
            match targets
                .iter()
                .find(|n| !shard.replicas.contains(n))
                .map(|n| (*n).clone())
            {
                Some(victim) => victim,
                None => continue,
            }
        } else {
            targets[rng.random_range(0..targets.len())].clone()
        };
        let shadow = Plan::Shadow {
            shard: shard.id,
            range: shard.range,
            from: shard.node.clone(),
            to: to.clone(),
            priorities: Vec::new(),
        };
        if kill_now {
            // Slow the copy down, let it start, then kill its destination in the middle.
            throttle.set(200);
            executor.submit(shadow.clone()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let progress = executor.shadows().get(&shard.id).cloned();
                if let Some(p) = progress {
                    if p.keys_copied > 0 && p.phase == ShadowPhase::Copying {
                        break;
                    }
                }
                assert!(Instant::now() < deadline, "the slow copy never started");
                std::thread::sleep(Duration::from_millis(5));
            }
            let victim = names.iter().position(|n| *n == to).unwrap();
            servers[victim].take().unwrap().stop();
            throttle.set(0);
            let before = store.load().unwrap();
            let moved = run(
                &executor,
                &mut tally,
                Plan::Change(MapChange::Move {
                    shard: shard.id,
                    from: shard.node.clone(),
                    to: to.clone(),
                }),
            );
            assert!(
                moved.result.is_err(),
                "a move to a dead node succeeded: {:?}",
                moved.result
            );
            let after = store.load().unwrap();
            assert_eq!(
                after.get(shard.id).map(|s| &s.node),
                before.get(shard.id).map(|s| &s.node),
                "a failed switchover changed the routing"
            );
            // The monitor notices, the executor fails the node over.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if monitor.probe().went_down.contains(&to) {
                    break;
                }
                assert!(Instant::now() < deadline, "{to} was never noticed down");
                std::thread::sleep(Duration::from_millis(20));
            }
            let outcome = run(&executor, &mut tally, Plan::NodeDown { node: to.clone() });
            match &outcome.result {
                Ok(Done::FailedOver(report)) => {
                    assert!(report.unavailable.is_empty(), "{report:?}");
                }
                other => panic!("failover failed: {other:?}"),
            }
            alive.remove(&to);
            killed = Some(to);
            continue;
        }
        if matches!(
            run(&executor, &mut tally, shadow).result,
            Ok(Done::ShadowCaughtUp { .. })
        ) {
            run(
                &executor,
                &mut tally,
                Plan::Change(MapChange::Move {
                    shard: shard.id,
                    from: shard.node.clone(),
                    to,
                }),
            );
        }
    }
    let drive_time = drive_start.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (acked, attempted, write_errors, writer_stats) = writer.join().expect("writer");
    let (reads, stale, read_errors, reader_stats) = reader.join().expect("reader");
    drop(executor);

    // The checker: every key holds at least its last acknowledged value (a later write that was
    // not acknowledged may have landed too), and never a value nobody wrote.
    let mut checker = RoutingClient::new(open_store(), nodes.clone()).unwrap();
    let mut lost = Vec::new();
    for i in 0..KEYS {
        let value = checker.get(&key(i)).expect("final read");
        let n: u64 = value
            .map(|v| String::from_utf8_lossy(&v.data).parse().unwrap())
            .unwrap_or(0);
        if n < acked[i] || n > attempted[i] {
            lost.push((key(i), acked[i], n));
        }
    }
    let acked_writes: u64 = acked.iter().sum();
    let mut pauses = tally.pauses.clone();
    pauses.sort();
    let copy_secs = tally.copy_time.as_secs_f64().max(1e-9);
    println!(
        "migration e2e: {} switchovers ({} rolled back), {} splits, {} merges, {} failover(s) of {:?} in {:.1} s; \
         {} writes acknowledged ({} failed), {} reads ({} failed); \
         switchover pause p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         copy throughput {:.0} keys/s, {:.0} bytes/s ({} keys, {} bytes); \
         writer {:?}, reader {:?}",
        tally.switchovers,
        tally.rolled_back,
        tally.splits,
        tally.merges,
        tally.failovers,
        killed,
        drive_time.as_secs_f64(),
        acked_writes,
        write_errors.len(),
        reads,
        read_errors.len(),
        percentile(&pauses, 0.5).as_secs_f64() * 1e3,
        percentile(&pauses, 0.99).as_secs_f64() * 1e3,
        pauses.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        tally.copied_keys as f64 / copy_secs,
        tally.copied_bytes as f64 / copy_secs,
        tally.copied_keys,
        tally.copied_bytes,
        writer_stats,
        reader_stats,
    );
    if !write_errors.is_empty() || !read_errors.is_empty() {
        println!(
            "first failed write: {:?}; first failed read: {:?}",
            write_errors.first(),
            read_errors.first()
        );
    }
    let per_node: BTreeMap<String, usize> =
        store
            .load()
            .unwrap()
            .shards()
            .fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s.node.clone()).or_default() += 1;
                m
            });
    println!("final shards per node: {per_node:?}");

    assert!(tally.failed.is_empty(), "plans failed: {:#?}", tally.failed);
    assert!(
        tally.switchovers >= MIN_SWITCHOVERS,
        "only {} switchovers in {drive_time:?}",
        tally.switchovers
    );
    assert!(
        tally.splits >= 3 && tally.merges >= 3,
        "splits {} merges {}",
        tally.splits,
        tally.merges
    );
    let killed = killed.expect("a node was killed mid-copy");
    assert!(
        tally.rolled_back >= 1,
        "the copy to the killed node never rolled back"
    );
    assert_eq!(tally.failovers, 1);
    assert!(
        !per_node.contains_key(&killed),
        "{killed} still owns shards"
    );
    assert!(acked_writes > 0 && reads > 0);
    assert!(
        lost.is_empty(),
        "{} lost writes, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        stale.is_empty(),
        "{} stale reads, e.g. {:?}",
        stale.len(),
        &stale[..stale.len().min(5)]
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}
