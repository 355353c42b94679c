//! The routing API end to end on loopback: server on `127.0.0.1:0`, the real HTTP client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use shardcast_shardmap::{ring_position, MapChange, ShardMap};

use super::*;
use crate::RetryPolicy;

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node-{i}")).collect()
}

fn serve(state: &RoutingState) -> (RoutingServer, RoutingHttpClient) {
    let server = RoutingServer::start("127.0.0.1:0", state.clone()).expect("start server");
    let client = RoutingHttpClient::new(&server.url()).expect("client");
    (server, client)
}

fn one_attempt() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        give_up_after: Duration::ZERO,
    }
}

/// A GET written by hand, so that what is on the wire does not depend on the client under test.
fn raw_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

fn assert_views_match(served: &PartitionView, sent: &PartitionView) {
    assert_eq!(served.customer, sent.customer);
    assert_eq!(served.partition, sent.partition);
    assert_eq!(served.home, sent.home);
    assert_eq!(served.since, sent.since);
    assert_eq!(served.scores.len(), sent.scores.len());
    for (a, b) in served.scores.iter().zip(&sent.scores) {
        assert_eq!(a.partition, b.partition);
        for (x, y) in [
            (a.static_part, b.static_part),
            (a.affinity_part, b.affinity_part),
            (a.load_part, b.load_part),
            (a.total, b.total),
        ] {
            assert!(close(x, y), "{x} != {y} in {a:?}");
        }
    }
    assert_eq!(served.phase.is_some(), sent.phase.is_some());
    if let (Some(a), Some(b)) = (&served.phase, &sent.phase) {
        assert_eq!((&a.from, &a.to, a.step), (&b.from, &b.to, b.step));
        assert!(close(a.read_share, b.read_share));
    }
}

#[test]
fn routes_agree_with_the_map_lookup() {
    let map = ShardMap::uniform(8, &nodes(3), 2).unwrap();
    let (_server, client) = serve(&RoutingState::new(map.clone()));
    for i in 0..200 {
        let key = format!("user-{i}");
        let answer = client.route(&key).unwrap();
        let shard = map.lookup(&key);
        assert_eq!(answer.key, key);
        assert_eq!(answer.position, ring_position(&key));
        assert_eq!(answer.shard, shard.id);
        assert_eq!(answer.range, shard.range);
        assert_eq!(answer.node, shard.node);
        assert_eq!(answer.replicas, shard.replicas);
        assert_eq!(answer.version, 0);
    }
    let health = client.health().unwrap();
    assert_eq!((health.status.as_str(), health.shards), ("ok", 8));
}

#[test]
fn a_split_advances_the_version_and_moves_the_key_to_a_new_shard() {
    let map = ShardMap::uniform(4, &nodes(2), 1).unwrap();
    let state = RoutingState::new(map.clone());
    let (_server, client) = serve(&state);
    let key = "hot-key";
    let before = client.route(key).unwrap();
    // Split right at the key's position (or mid-range if it is the range start), so the key ends
    // up in the upper half.
    let at = if u64::from(before.position) > before.range.lo {
        u64::from(before.position)
    } else {
        before.range.lo + before.range.width() / 2
    };
    let split = map.split_change(before.shard, at).unwrap();
    let MapChange::Split { right, .. } = split else {
        panic!("not a split: {split:?}")
    };
    assert_eq!(state.apply(1, split), Ok(true));

    let after = client.route(key).unwrap();
    assert_eq!(after.version, 1);
    assert_eq!(after.shard_version, 1);
    assert_ne!(after.shard, before.shard);
    assert_eq!(after.shard, right);
    assert_eq!(after.range.lo, at);
    assert_eq!(after.range.hi, before.range.hi);
    assert_eq!(after.node, before.node, "a split keeps the node");
    assert_eq!(client.health().unwrap().shards, 5);
}

#[test]
fn redelivered_gapped_and_conflicting_changes() {
    let map = ShardMap::uniform(4, &nodes(2), 1).unwrap();
    let state = RoutingState::new(map.clone());
    let first = map.shards().next().unwrap().clone();
    let change = MapChange::Replicas {
        shard: first.id,
        replicas: vec!["node-1".into()],
    };
    assert_eq!(state.apply(1, change.clone()), Ok(true));
    assert_eq!(state.apply(1, change), Ok(false));
    let other = MapChange::Replicas {
        shard: first.id,
        replicas: vec![],
    };
    assert_eq!(
        state.apply(1, other.clone()),
        Err(StateError::Conflict { version: 1 })
    );
    assert_eq!(
        state.apply(3, other),
        Err(StateError::VersionGap { current: 1, got: 3 })
    );
    let bad = MapChange::Merge {
        left: 99,
        right: 1,
        into: 100,
    };
    assert!(matches!(state.apply(2, bad), Err(StateError::Map(_))));
    assert_eq!(state.version(), 1, "refused changes leave the state alone");
}

#[test]
fn partition_views_are_served_with_their_breakdown() {
    let state = RoutingState::new(ShardMap::uniform(2, &nodes(2), 0).unwrap());
    let (_server, client) = serve(&state);
    // Seed 001 with static 0.4, affinity 0.6, load 0.2: home eu-west, affinity 0.3 eu / 0.7 us,
    // load shares 0.5 / 0.25.
    let settled = PartitionView {
        customer: "c-17".into(),
        partition: "eu-west".into(),
        home: "eu-west".into(),
        since: 12,
        scores: vec![
            PartitionScore::from_parts("eu-west", 0.4, 0.18, -0.1),
            PartitionScore::from_parts("us-east", 0.0, 0.42, -0.05),
        ],
        phase: None,
    };
    // Hysteresis kept this customer home although us-east scores higher now; it is migrating.
    let migrating = PartitionView {
        customer: "c/42 ü".into(),
        partition: "eu-west".into(),
        home: "eu-west".into(),
        since: 3,
        scores: vec![
            PartitionScore::from_parts("eu-west", 0.4, 0.06, -0.1),
            PartitionScore::from_parts("us-east", 0.0, 0.54, -0.05),
        ],
        phase: Some(PartitionPhase {
            from: "eu-west".into(),
            to: "us-east".into(),
            step: PhaseStep::ShiftReads,
            read_share: 0.25,
        }),
    };
    state.set_partition(settled.clone()).unwrap();
    state.set_partition(migrating.clone()).unwrap();

    for sent in [&settled, &migrating] {
        let served = client.partition(&sent.customer).unwrap();
        assert_views_match(&served, sent);
        for s in &served.scores {
            assert!(
                close(s.total, s.static_part + s.affinity_part + s.load_part),
                "total is not the sum of its parts: {s:?}"
            );
        }
    }
    // The settled view's decision is its highest total: 0.48 against 0.37.
    let served = client.partition("c-17").unwrap();
    let chosen = served.score_of(&served.partition).unwrap().total;
    assert!(served.scores.iter().all(|s| s.total <= chosen));
    assert_eq!(served.best().unwrap().partition, "eu-west");
    // The migrating one's best (0.49) is not its partition (0.36).
    let served = client.partition("c/42 ü").unwrap();
    assert_eq!(served.best().unwrap().partition, "us-east");
    assert_eq!(served.phase.unwrap().step, PhaseStep::ShiftReads);

    assert!(state.remove_partition("c-17").is_some());
    assert!(client.partition("c-17").unwrap_err().is_not_found());
}

#[test]
fn views_that_cannot_be_served_are_refused() {
    let state = RoutingState::new(ShardMap::uniform(1, &nodes(1), 0).unwrap());
    let mut view = PartitionView {
        customer: "c1".into(),
        partition: "a".into(),
        home: "a".into(),
        since: 0,
        scores: vec![PartitionScore::from_parts("a", 0.4, f64::NAN, 0.0)],
        phase: None,
    };
    assert!(matches!(
        state.set_partition(view.clone()),
        Err(StateError::InvalidView { .. })
    ));
    view.scores = vec![PartitionScore {
        partition: "a".into(),
        static_part: 0.4,
        affinity_part: 0.2,
        load_part: -0.1,
        total: 0.9,
    }];
    assert!(state.set_partition(view.clone()).is_err());
    view.scores = vec![PartitionScore::from_parts("a", 0.4, 0.2, -0.1)];
    view.phase = Some(PartitionPhase {
        from: "a".into(),
        to: "b".into(),
        step: PhaseStep::DualWrite,
        read_share: 1.5,
    });
    assert!(state.set_partition(view.clone()).is_err());
    view.phase = None;
    assert_eq!(state.set_partition(view), Ok(()));
    assert_eq!(state.partition_count(), 1);
}

#[test]
fn errors_are_json_with_a_reason() {
    let state = RoutingState::new(ShardMap::uniform(2, &nodes(2), 0).unwrap());
    let (server, client) = serve(&state);
    let addr = server.local_addr();

    match client.partition("nobody") {
        Err(RoutingError::NotFound { reason, .. }) => {
            assert!(reason.contains("nobody"), "{reason}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    for (method, path, status, code) in [
        ("GET", "/v1/partition/nobody", 404, "not_found"),
        ("GET", "/v1/nothing-here", 404, "not_found"),
        ("GET", "/v1/changes", 400, "bad_request"),
        ("GET", "/v1/changes?since=-1", 400, "bad_request"),
        ("GET", "/v1/route/%FF%FE", 400, "bad_request"),
        ("POST", "/v1/map", 405, "method_not_allowed"),
    ] {
        let (got, body) = raw_request(addr, method, path);
        assert_eq!(got, status, "{method} {path}: {body}");
        let error: ErrorBody = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: body {body:?} is not an error: {e}"));
        assert_eq!(error.error, code);
        assert!(!error.reason.is_empty());
    }
}

#[test]
fn percent_encoded_keys_route_like_their_decoded_form() {
    let map = ShardMap::uniform(16, &nodes(4), 1).unwrap();
    let (server, client) = serve(&RoutingState::new(map.clone()));
    let keys = [
        "a/b",
        "with space",
        "ünïcødé-键",
        "50%",
        "q?x=1#frag",
        "+plus+",
        ".",
        "..",
        "",
        "%2F",
    ];
    for key in keys {
        let answer = client.route(key).unwrap();
        assert_eq!(answer.key, key);
        assert_eq!(answer.position, ring_position(key));
        assert_eq!(answer.shard, map.lookup(key).id, "key {key:?}");
    }
    // On the wire: an escaped slash and a raw one are the same key.
    for path in ["/v1/route/a%2Fb", "/v1/route/a/b"] {
        let (status, body) = raw_request(server.local_addr(), "GET", path);
        assert_eq!(status, 200, "{path}: {body}");
        let answer: RouteAnswer = serde_json::from_str(&body).unwrap();
        assert_eq!(answer.key, "a/b");
    }
}

#[test]
fn map_and_changes_let_a_client_catch_up() {
    let mut local = ShardMap::uniform(4, &nodes(3), 1).unwrap();
    let state = RoutingState::with_change_capacity(local.clone(), 2);
    let (_server, client) = serve(&state);
    assert_eq!(client.map().unwrap(), local);

    let mut server_side = local.clone();
    for _ in 0..3 {
        let widest = server_side
            .shards()
            .max_by_key(|s| s.range.width())
            .unwrap()
            .clone();
        let change = server_side
            .split_change(widest.id, widest.range.lo + widest.range.width() / 2)
            .unwrap();
        let version = server_side.apply(&change).unwrap();
        state.apply(version, change).unwrap();
        if version == 1 {
            local = server_side.clone();
        }
    }
    assert_eq!(client.map().unwrap(), server_side);
    // The log holds versions 2 and 3 only.
    let from_zero = client.changes_since(0).unwrap();
    assert!(!from_zero.complete);
    assert!(from_zero.changes.is_empty());
    let from_one = client.changes_since(1).unwrap();
    assert!(from_one.complete);
    assert_eq!(from_one.version, 3);
    for change in &from_one.changes {
        assert_eq!(local.apply(&change.change).unwrap(), change.version);
    }
    assert_eq!(local, server_side);
    assert!(client.changes_since(3).unwrap().changes.is_empty());
    assert!(!client.changes_since(9).unwrap().complete);
}

#[test]
fn cached_router_looks_up_locally_and_catches_up_by_changes() {
    let map = ShardMap::uniform(4, &nodes(2), 1).unwrap();
    let state = RoutingState::with_change_capacity(map.clone(), 1);
    let (_server, client) = serve(&state);
    let router = CachedRouter::with_options(
        client.clone(),
        CacheOptions {
            refresh_every: Duration::from_secs(3600),
            max_staleness: Duration::from_secs(3600),
        },
    );
    for i in 0..500 {
        let key = format!("k{i}");
        assert_eq!(router.route(&key).unwrap().shard, map.lookup(&key).id);
    }
    let stats = router.stats();
    assert_eq!(stats.lookups, 500);
    assert_eq!((stats.checks, stats.full_fetches), (1, 1));

    // One change: caught up from the log.
    let shard = map.lookup("k1").clone();
    let split = map.split_change(shard.id, shard.range.lo + 1).unwrap();
    state.apply(1, split).unwrap();
    assert_eq!(router.route("k1").unwrap().version, 0, "not due yet");
    assert_eq!(router.refresh().unwrap(), Refresh::Applied(1));
    assert_eq!(router.version(), Some(1));
    for i in 0..100 {
        let key = format!("k{i}");
        assert_eq!(router.route(&key).unwrap(), client.route(&key).unwrap());
    }
    assert_eq!(router.refresh().unwrap(), Refresh::Current);

    // Two changes with a log of one: the router must fetch the whole map.
    let mut server_map = state.map();
    for _ in 0..2 {
        let first = server_map.shards().next().unwrap().clone();
        let change = MapChange::Move {
            shard: first.id,
            from: first.node.clone(),
            to: format!("{}-next", first.node),
        };
        let version = server_map.apply(&change).unwrap();
        state.apply(version, change).unwrap();
    }
    assert_eq!(router.refresh().unwrap(), Refresh::Fetched);
    assert_eq!(router.map().unwrap(), state.map());
    let stats = router.stats();
    assert_eq!((stats.full_fetches, stats.changes_applied), (2, 1));
}

#[test]
fn cached_router_rides_out_an_outage_until_its_map_is_too_stale() {
    let map = ShardMap::uniform(4, &nodes(2), 1).unwrap();
    let (server, client) = serve(&RoutingState::new(map.clone()));
    let client = client.with_retry(one_attempt());
    let lenient = CachedRouter::with_options(
        client.clone(),
        CacheOptions {
            refresh_every: Duration::ZERO,
            max_staleness: Duration::from_secs(3600),
        },
    );
    let strict = CachedRouter::with_options(
        client,
        CacheOptions {
            refresh_every: Duration::ZERO,
            max_staleness: Duration::ZERO,
        },
    );
    assert_eq!(lenient.route("k").unwrap().node, map.lookup("k").node);
    assert_eq!(strict.route("k").unwrap().node, map.lookup("k").node);
    server.shutdown().unwrap();

    assert_eq!(lenient.route("k").unwrap().node, map.lookup("k").node);
    assert!(lenient.stats().failed_refreshes >= 1);
    match strict.route("k") {
        Err(RoutingError::Stale { last, .. }) => assert!(last.is_transient(), "{last}"),
        other => panic!("expected Stale, got {other:?}"),
    }
}

#[test]
fn unreachable_server_is_retried_then_reported() {
    // Bind and drop to find a port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = RoutingHttpClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_retry(RetryPolicy {
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            give_up_after: Duration::from_millis(200),
        });
    let start = Instant::now();
    match client.route("k") {
        Err(RoutingError::GaveUp { attempts, last, .. }) => {
            assert!(attempts > 1);
            assert!(last.is_transient(), "{last}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_silent_server_times_out() {
    // Connections complete in the kernel's backlog but nobody ever answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = RoutingHttpClient::new(&format!("http://{}", silent.local_addr().unwrap()))
        .unwrap()
        .with_timeout(Duration::from_millis(200))
        .with_retry(one_attempt());
    let start = Instant::now();
    let err = client.map().unwrap_err();
    assert!(
        matches!(
            &err,
            RoutingError::Transport {
                source: ureq::Error::Timeout(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn bad_base_urls_are_refused() {
    for url in [
        "https://example.com",
        "127.0.0.1:80",
        "http://",
        "http://h/?q=1",
    ] {
        assert!(
            matches!(
                RoutingHttpClient::new(url),
                Err(RoutingError::InvalidBaseUrl { .. })
            ),
            "{url}"
        );
    }
    let client = RoutingHttpClient::new("http://127.0.0.1:1/prefix/").unwrap();
    assert_eq!(client.base_url(), "http://127.0.0.1:1/prefix");
}

#[test]
fn shutdown_closes_the_port() {
    let state = RoutingState::new(ShardMap::uniform(1, &nodes(1), 0).unwrap());
    let (server, client) = serve(&state);
    let addr = server.local_addr();
    client.health().unwrap();
    server.shutdown().unwrap();
    let err = client.with_retry(one_attempt()).health().unwrap_err();
    assert!(err.is_transient(), "{err}");
    // The port is free again.
    let again = RoutingServer::start(addr, state).unwrap();
    assert_eq!(again.local_addr(), addr);
}

#[test]
fn a_busy_port_is_reported_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let state = RoutingState::new(ShardMap::uniform(1, &nodes(1), 0).unwrap());
    match RoutingServer::start(addr, state) {
        Err(ServerError::Bind { addr: a, .. }) => assert_eq!(a, addr.to_string()),
        other => panic!("expected a bind error, got {other:?}"),
    }
}
