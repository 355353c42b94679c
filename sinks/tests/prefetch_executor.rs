//! PrefetchExecutor against real `redis-server` child processes: one primary, one per region.
//!
//! These tests fail (never skip) when `redis-server` is missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardcast_sinks::prefetch::{data_key, landed_key};
use shardcast_sinks::testing::{free_port, RedisServer};
use shardcast_sinks::{
    read_landed, PrefetchExecutor, PrefetchExecutorConfig, PrefetchOrder, RegionStats, RetryPolicy,
    SubmitError, SubmitOutcome,
};

const PREFIX: &str = "data:";
const TTL: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(20);

fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

fn restart(port: u16) -> RedisServer {
    RedisServer::start_on(port).unwrap_or_else(|e| panic!("{e}"))
}

fn conn(server: &RedisServer) -> redis::Connection {
    server.connection().unwrap_or_else(|e| panic!("{e}"))
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

fn retry_every(delay: Duration) -> RetryPolicy {
    RetryPolicy {
        initial_delay: delay,
        max_delay: delay * 4,
        give_up_after: Duration::from_secs(60),
    }
}

fn config(primary: u16, regions: &[(&str, u16)], capacity: usize) -> PrefetchExecutorConfig {
    PrefetchExecutorConfig {
        primary: url(primary),
        regions: regions
            .iter()
            .map(|(name, port)| (name.to_string(), url(*port)))
            .collect(),
        ttl: TTL,
        key_prefix: PREFIX.into(),
        queue_capacity: capacity,
        retry: retry_every(Duration::from_millis(50)),
    }
}

fn start(config: PrefetchExecutorConfig) -> PrefetchExecutor {
    PrefetchExecutor::start(config).unwrap_or_else(|e| panic!("cannot start executor: {e}"))
}

fn order(key: &str, region: &str, priority: f64) -> PrefetchOrder {
    PrefetchOrder {
        key: key.into(),
        region: region.into(),
        priority,
        confidence: 0.9,
        bytes: 16,
        epoch: 7,
    }
}

/// A value with non-UTF-8 bytes, so the copy must be binary-safe.
fn value_of(key: &str) -> Vec<u8> {
    let mut value = format!("value of {key}:").into_bytes();
    value.extend_from_slice(&[0, 0xff, 0xfe, key.len() as u8]);
    value
}

fn put(conn: &mut redis::Connection, key: &str, value: &[u8]) {
    redis::cmd("SET")
        .arg(data_key(PREFIX, key))
        .arg(value)
        .query::<()>(conn)
        .unwrap_or_else(|e| panic!("cannot write {key}: {e}"));
}

fn get(conn: &mut redis::Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(data_key(PREFIX, key))
        .query(conn)
        .unwrap_or_else(|e| panic!("cannot read {key}: {e}"))
}

fn pttl(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(data_key(PREFIX, key))
        .query(conn)
        .unwrap_or_else(|e| panic!("cannot read the TTL of {key}: {e}"))
}

fn landed(conn: &mut redis::Connection) -> BTreeMap<String, u64> {
    read_landed(conn, PREFIX).unwrap_or_else(|e| panic!("cannot read landing times: {e}"))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn region(executor: &PrefetchExecutor, name: &str) -> RegionStats {
    executor.stats().regions[name].clone()
}

/// Polls `done` until it holds, failing with `what` and the last stats after [`WAIT`].
fn wait_for(
    executor: &PrefetchExecutor,
    name: &str,
    what: &str,
    done: impl Fn(&RegionStats) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = region(executor, name);
        if done(&stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} in region {name}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Submits and checks that `submit` returned at once although a store may be down.
fn submit_quickly(executor: &PrefetchExecutor, order: PrefetchOrder) -> SubmitOutcome {
    let started = Instant::now();
    let outcome = executor.submit(order);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(50),
        "submit blocked for {took:?}"
    );
    outcome
}

#[test]
fn copies_land_with_ttl_primary_values_and_landing_times() {
    let primary = server();
    let (eu, us) = (server(), server());
    let mut p = conn(&primary);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    for key in &keys {
        put(&mut p, key, &value_of(key));
    }
    let executor = start(config(
        primary.port(),
        &[("eu", eu.port()), ("us", us.port())],
        64,
    ));

    let before = unix_ms();
    for (i, key) in keys.iter().enumerate() {
        let region = if i < 5 { "eu" } else { "us" };
        assert_eq!(
            executor.submit(order(key, region, i as f64)),
            SubmitOutcome::Queued
        );
    }
    for name in ["eu", "us"] {
        wait_for(&executor, name, "5 copies", |s| s.copied == 5);
    }
    let after = unix_ms();

    for (name, server, mine) in [("eu", &eu, &keys[..5]), ("us", &us, &keys[5..])] {
        let mut r = conn(server);
        for key in &keys {
            let copy = get(&mut r, key);
            if mine.contains(key) {
                assert_eq!(
                    copy,
                    get(&mut p, key),
                    "{name}: {key} differs from the primary"
                );
                let ttl = pttl(&mut r, key);
                assert!(
                    ttl > 0 && ttl <= TTL.as_millis() as i64,
                    "{name}: PTTL of {key} is {ttl}"
                );
            } else {
                assert_eq!(copy, None, "{name}: {key} was meant for the other region");
            }
        }
        let times = landed(&mut r);
        let landed_keys: Vec<&String> = times.keys().collect();
        assert_eq!(landed_keys, mine.iter().collect::<Vec<_>>(), "{name}");
        for (key, at) in &times {
            assert!(
                (before..=after).contains(at),
                "{name}: {key} landed at {at}, outside [{before}, {after}]"
            );
        }
    }

    let stats = executor.shutdown(Duration::from_secs(5));
    for (name, s) in &stats.regions {
        let bytes: usize = if name == "eu" { &keys[..5] } else { &keys[5..] }
            .iter()
            .map(|k| value_of(k).len())
            .sum();
        assert_eq!(s.bytes_copied, bytes as u64, "{name}");
        assert_eq!((s.submitted, s.settled(), s.pending), (5, 5, 0), "{name}");
        assert_eq!((s.failed_attempts, s.outages, s.retrying), (0, 0, false));
        assert_eq!(s.last_error, None);
    }
}

#[test]
fn present_keys_are_not_overwritten_and_missing_keys_are_counted() {
    let primary = server();
    let eu = server();
    let (mut p, mut r) = (conn(&primary), conn(&eu));
    put(&mut p, "a", b"from the primary");
    put(&mut p, "b", b"b from the primary");
    put(&mut r, "a", b"written by the region itself");
    let executor = start(config(primary.port(), &[("eu", eu.port())], 64));

    executor.submit(order("a", "eu", 3.0));
    executor.submit(order("b", "eu", 2.0));
    executor.submit(order("ghost", "eu", 1.0));
    wait_for(&executor, "eu", "3 settled orders", |s| s.settled() == 3);
    let first_landing = landed(&mut r);
    // Submitting a copied key again is a no-op thanks to SET NX.
    executor.submit(order("b", "eu", 5.0));
    wait_for(&executor, "eu", "4 settled orders", |s| s.settled() == 4);

    assert_eq!(
        get(&mut r, "a"),
        Some(b"written by the region itself".to_vec())
    );
    assert_eq!(pttl(&mut r, "a"), -1, "the region's own key got a TTL");
    assert_eq!(get(&mut r, "b"), Some(b"b from the primary".to_vec()));
    assert_eq!(get(&mut r, "ghost"), None);
    let times = landed(&mut r);
    assert_eq!(times.keys().collect::<Vec<_>>(), ["b"]);
    assert_eq!(
        times, first_landing,
        "re-submitting b changed its landing time"
    );

    let s = region(&executor, "eu");
    assert_eq!(
        (s.copied, s.already_present, s.missing_in_primary),
        (1, 2, 1)
    );
    assert_eq!((s.submitted, s.pending, s.failed_attempts), (4, 0, 0));
}

#[test]
fn bad_orders_and_bad_configs_are_rejected_not_panicked_on() {
    // Nothing listens on these ports: rejections must not need a store.
    let (primary, eu) = (
        free_port().unwrap_or_else(|e| panic!("{e}")),
        free_port().unwrap_or_else(|e| panic!("{e}")),
    );
    let executor = start(config(primary, &[("eu", eu)], 4));
    assert_eq!(
        executor.submit(order("k", "mars", 1.0)),
        SubmitOutcome::Rejected(SubmitError::UnknownRegion {
            key: "k".into(),
            region: "mars".into()
        })
    );
    assert_eq!(
        executor.submit(order("k", "eu", f64::NAN)),
        SubmitOutcome::Rejected(SubmitError::NanPriority { key: "k".into() })
    );
    let stats = executor.shutdown(Duration::ZERO);
    assert_eq!(
        (stats.rejected_unknown_region, stats.rejected_invalid),
        (1, 1)
    );
    assert_eq!(stats.regions["eu"].submitted, 0);

    let mut bad = config(primary, &[("eu", eu)], 4);
    bad.regions.insert("us".into(), "not a redis url".into());
    match PrefetchExecutor::start(bad) {
        Ok(_) => panic!("a bad region URL was accepted"),
        Err(e) => assert!(e.to_string().contains("\"us\""), "unclear error: {e}"),
    }
}

#[test]
fn full_queue_sheds_the_lowest_priority() {
    let primary = server();
    let mut p = conn(&primary);
    for key in ["p10", "p1", "p5", "p3", "p2", "p3-again"] {
        put(&mut p, key, &value_of(key));
    }
    // The region's server is not up yet, so the worker holds off between attempts.
    let port = free_port().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config(primary.port(), &[("eu", port)], 3);
    cfg.retry = retry_every(Duration::from_millis(800));
    let executor = start(cfg);

    assert!(submit_quickly(&executor, order("p10", "eu", 10.0)).is_queued());
    wait_for(&executor, "eu", "the worker to back off", |s| s.retrying);
    // The worker now sleeps 800 ms with p10 back in the queue; the queue is ours to fill.
    assert_eq!(
        submit_quickly(&executor, order("p1", "eu", 1.0)),
        SubmitOutcome::Queued
    );
    assert_eq!(
        submit_quickly(&executor, order("p5", "eu", 5.0)),
        SubmitOutcome::Queued
    );
    assert_eq!(
        submit_quickly(&executor, order("p3", "eu", 3.0)),
        SubmitOutcome::QueuedAndShed(order("p1", "eu", 1.0))
    );
    assert_eq!(
        submit_quickly(&executor, order("p2", "eu", 2.0)),
        SubmitOutcome::Shed
    );
    assert_eq!(
        submit_quickly(&executor, order("p3-again", "eu", 3.0)),
        SubmitOutcome::Shed,
        "a tie with the lowest queued order must go against the newcomer"
    );
    let s = region(&executor, "eu");
    assert_eq!((s.submitted, s.shed, s.pending), (6, 3, 3));

    let eu = restart(port);
    wait_for(&executor, "eu", "3 copies", |s| s.copied == 3);
    let mut r = conn(&eu);
    assert_eq!(
        landed(&mut r).keys().collect::<Vec<_>>(),
        ["p10", "p3", "p5"]
    );
    for shed in ["p1", "p2", "p3-again"] {
        assert_eq!(get(&mut r, shed), None, "{shed} was shed but landed");
    }
    let s = executor.shutdown(Duration::from_secs(5)).regions["eu"].clone();
    assert_eq!((s.submitted, s.settled(), s.pending), (6, 6, 0));
}

#[test]
fn backlog_lands_in_priority_order_after_the_region_returns() {
    let primary = server();
    let mut p = conn(&primary);
    let eu = server();
    let port = eu.port();
    eu.stop();
    let mut cfg = config(primary.port(), &[("eu", port)], 64);
    cfg.retry = retry_every(Duration::from_millis(100));
    let executor = start(cfg);

    // 30 orders in scrambled priority order, with pairs of equal priority to check FIFO ties.
    let orders: Vec<PrefetchOrder> = (0..30)
        .map(|i| order(&format!("k{i:02}"), "eu", ((i * 7) % 30 / 2) as f64))
        .collect();
    for o in &orders {
        put(&mut p, &o.key, &value_of(&o.key));
        assert!(submit_quickly(&executor, o.clone()).is_queued());
    }
    wait_for(&executor, "eu", "the worker to back off", |s| s.retrying);
    let mut expected: Vec<(usize, &PrefetchOrder)> = orders.iter().enumerate().collect();
    expected.sort_by(|(i, a), (j, b)| b.priority.total_cmp(&a.priority).then(i.cmp(j)));
    let expected: Vec<&str> = expected.iter().map(|(_, o)| o.key.as_str()).collect();

    let eu = restart(port);
    wait_for(&executor, "eu", "30 copies", |s| s.copied == 30);
    let mut r = conn(&eu);
    let times = landed(&mut r);
    let in_expected_order: Vec<u64> = expected.iter().map(|k| times[*k]).collect();
    assert!(
        in_expected_order.windows(2).all(|w| w[0] <= w[1]),
        "landing times out of priority order: {:?}",
        expected.iter().zip(&in_expected_order).collect::<Vec<_>>()
    );
    // Landing times have millisecond resolution, so check the exact order too: a small hash is
    // stored as a listpack, whose fields HGETALL returns in insertion order.
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(landed_key(PREFIX))
        .query(&mut r)
        .unwrap_or_else(|e| panic!("OBJECT ENCODING failed: {e}"));
    assert!(
        encoding == "listpack" || encoding == "ziplist",
        "landing hash is a {encoding}; this check needs the insertion-ordered encoding"
    );
    let inserted: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg(landed_key(PREFIX))
        .query(&mut r)
        .unwrap_or_else(|e| panic!("HGETALL failed: {e}"));
    let inserted: Vec<&str> = inserted.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(inserted, expected, "copies landed out of priority order");
}

#[test]
fn region_outage_mid_run_is_retried_and_the_backlog_lands() {
    let primary = server();
    let mut p = conn(&primary);
    let eu = server();
    let port = eu.port();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for key in &keys {
        put(&mut p, key, &value_of(key));
    }
    let executor = start(config(primary.port(), &[("eu", port)], 64));
    for key in &keys[..10] {
        executor.submit(order(key, "eu", 1.0));
    }
    wait_for(&executor, "eu", "10 copies", |s| s.copied == 10);

    eu.stop();
    for (i, key) in keys[10..].iter().enumerate() {
        assert!(submit_quickly(&executor, order(key, "eu", i as f64)).is_queued());
    }
    wait_for(&executor, "eu", "retrying", |s| s.retrying);
    std::thread::sleep(Duration::from_millis(400));
    let down = region(&executor, "eu");
    assert!(down.retrying, "{down:?}");
    assert!(down.failed_attempts >= 2, "no back-off retries: {down:?}");
    assert_eq!(
        down.outages, 1,
        "one outage must be reported once: {down:?}"
    );
    let error = down.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("region \"eu\""),
        "error does not name the region: {error}"
    );
    assert_eq!(down.copied, 10);
    assert_eq!(down.pending, 20);

    // The restarted server is empty (no persistence): every queued order must land in it.
    let eu = restart(port);
    wait_for(&executor, "eu", "30 copies", |s| s.copied == 30);
    let mut r = conn(&eu);
    let times = landed(&mut r);
    for key in &keys[10..] {
        assert_eq!(
            get(&mut r, key),
            Some(value_of(key)),
            "{key} lost in the outage"
        );
        assert!(times.contains_key(key), "landing of {key} not recorded");
    }
    let s = executor.shutdown(Duration::from_secs(5)).regions["eu"].clone();
    assert!(!s.retrying, "still retrying after recovery: {s:?}");
    assert_eq!(
        (s.outages, s.submitted, s.settled(), s.pending),
        (1, 30, 30, 0)
    );
}

#[test]
fn primary_outage_is_retried_and_recovered() {
    let primary = server();
    let primary_port = primary.port();
    let eu = server();
    let executor = start(config(primary_port, &[("eu", eu.port())], 64));
    primary.stop();
    for i in 0..5 {
        assert!(submit_quickly(&executor, order(&format!("k{i}"), "eu", 1.0)).is_queued());
    }
    wait_for(&executor, "eu", "retrying", |s| s.retrying);
    let error = region(&executor, "eu").last_error.unwrap_or_default();
    assert!(
        error.contains("primary"),
        "error does not name the primary: {error}"
    );

    // The primary comes back empty, so the backlog settles as missing in the primary (or as
    // copies if the test writes a key first); either way the worker must leave the outage.
    let primary = restart(primary_port);
    let mut p = conn(&primary);
    wait_for(&executor, "eu", "5 settled orders", |s| s.settled() == 5);
    put(&mut p, "fresh", b"fresh value");
    executor.submit(order("fresh", "eu", 1.0));
    wait_for(&executor, "eu", "6 settled orders", |s| s.settled() == 6);
    assert_eq!(get(&mut conn(&eu), "fresh"), Some(b"fresh value".to_vec()));
    let s = region(&executor, "eu");
    assert_eq!(s.copied + s.missing_in_primary, 6, "{s:?}");
    assert_eq!((s.retrying, s.outages, s.abandoned), (false, 1, 0), "{s:?}");
}

#[test]
fn orders_failing_past_the_budget_are_abandoned_and_shutdown_stops_at_its_deadline() {
    let primary = server();
    let dead = free_port().unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = config(primary.port(), &[("gone", dead)], 16);
    cfg.retry = RetryPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(40),
        give_up_after: Duration::from_millis(200),
    };
    let executor = start(cfg);
    for i in 0..3 {
        executor.submit(order(&format!("k{i}"), "gone", 1.0));
    }
    wait_for(&executor, "gone", "3 abandoned orders", |s| {
        s.abandoned == 3
    });
    let s = region(&executor, "gone");
    assert_eq!((s.settled(), s.pending, s.copied), (3, 0, 0));
    assert!(!s.retrying, "nothing is left to retry: {s:?}");

    // A drain cannot finish while the store is down: shutdown must stop at its deadline and
    // report what is left.
    let mut cfg = config(primary.port(), &[("stuck", dead)], 16);
    cfg.retry = retry_every(Duration::from_millis(20));
    let stuck = start(cfg);
    for i in 0..4 {
        stuck.submit(order(&format!("k{i}"), "stuck", 1.0));
    }
    let started = Instant::now();
    let stats = stuck.shutdown(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "shutdown took {took:?}"
    );
    let s = &stats.regions["stuck"];
    assert_eq!((s.submitted, s.pending, s.copied), (4, 4, 0), "{s:?}");
    assert!(s.failed_attempts >= 2, "{s:?}");
}
