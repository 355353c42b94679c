//! The next-access predictor: what its tables learn, when they forget, and that the same requests give
//! the same orders.

mod common;

use shardcast_replay::{
    simulate_with_prefetch, Budget, CacheSpec, CacheUnit, CacheView, KeyKind, NextAccessPredictor,
    PredictorConfig, PrefetchOptions, PrefetchOrder, Prefetcher, Request,
};

/// A cache view that holds nothing, so every candidate that passes the gate becomes an order.
struct Empty;

impl CacheView for Empty {
    fn holds(&self, _: u16, _: u32) -> bool {
        false
    }
}

/// A cache view that holds exactly `keys`.
struct Holds(Vec<u32>);

impl CacheView for Holds {
    fn holds(&self, _: u16, key: u32) -> bool {
        self.0.contains(&key)
    }
}

fn req(ts_ms: u64, key: u32, client: u32) -> Request {
    Request {
        ts_ms,
        key,
        size: 100,
        client,
        region: 0,
    }
}

/// Settings that isolate the successor table: one-second epochs, nothing else on.
fn successor_only(window_epochs: u64) -> PredictorConfig {
    PredictorConfig {
        tick_ms: 1_000,
        window_epochs,
        max_gap_ms: 100,
        co_access_window: 0,
        max_stride: 0,
        min_confidence: 0.0,
        ..PredictorConfig::default()
    }
}

fn feed(predictor: &mut NextAccessPredictor, requests: &[Request]) -> Vec<PrefetchOrder> {
    let mut orders = Vec::new();
    for r in requests {
        predictor.on_request(r, &Empty, &mut orders);
    }
    orders
}

fn candidate_keys(predictor: &mut NextAccessPredictor, probe: &Request) -> Vec<u32> {
    predictor
        .candidates(probe)
        .into_iter()
        .map(|c| c.0)
        .collect()
}

#[test]
fn a_transition_is_used_from_the_next_epoch_until_it_leaves_the_window() {
    let mut p =
        NextAccessPredictor::new(successor_only(2), KeyKind::Text, CacheUnit::Objects).unwrap();
    // Epoch 0: client 1 requests 10 then 20.
    feed(&mut p, &[req(0, 10, 1), req(10, 20, 1)]);
    assert!(
        candidate_keys(&mut p, &req(500, 10, 2)).is_empty(),
        "a pair is staged until its epoch ends"
    );
    // Probes (which do not learn) in epochs 1 and 2 see it; in epoch 3, with W = 2, it is forgotten.
    assert_eq!(candidate_keys(&mut p, &req(1_000, 10, 2)), vec![20]);
    assert_eq!(candidate_keys(&mut p, &req(2_999, 10, 2)), vec![20]);
    assert!(candidate_keys(&mut p, &req(3_000, 10, 2)).is_empty());
}

#[test]
fn transitions_need_the_same_client_within_the_gap() {
    let mut p =
        NextAccessPredictor::new(successor_only(10), KeyKind::Text, CacheUnit::Objects).unwrap();
    // 10 -> 20 by different clients, and 10 -> 30 by one client but 500 ms apart (gap 100 ms).
    feed(&mut p, &[req(0, 10, 1), req(1, 20, 2), req(500, 30, 1)]);
    assert!(candidate_keys(&mut p, &req(1_000, 10, 3)).is_empty());
    // Within the gap it is one.
    feed(&mut p, &[req(1_100, 10, 1), req(1_150, 30, 1)]);
    assert_eq!(candidate_keys(&mut p, &req(2_000, 10, 3)), vec![30]);
}

#[test]
fn probability_and_support_order_the_candidates() {
    let mut p =
        NextAccessPredictor::new(successor_only(10), KeyKind::Text, CacheUnit::Objects).unwrap();
    // After 1: 2 three times, 3 once (each pair from its own client).
    let mut requests = Vec::new();
    for (client, next) in [(1, 2), (2, 2), (3, 3), (4, 2)] {
        requests.push(req(client as u64 * 10, 1, client));
        requests.push(req(client as u64 * 10 + 1, next, client));
    }
    feed(&mut p, &requests);
    let candidates = p.candidates(&req(1_000, 1, 9));
    assert_eq!(candidates.len(), 2);
    // occurrences(1) = 4: confidence = count / 4 * 4 / (4 + prior 1).
    assert!((candidates[0].1 - 0.6).abs() < 1e-9, "{candidates:?}");
    assert!((candidates[1].1 - 0.2).abs() < 1e-9, "{candidates:?}");
    // The gate drops the weak one; held keys are not ordered.
    let gated = PredictorConfig {
        min_confidence: 0.3,
        ..successor_only(10)
    };
    let mut p = NextAccessPredictor::new(gated, KeyKind::Text, CacheUnit::Objects).unwrap();
    feed(&mut p, &requests);
    let mut orders = Vec::new();
    p.on_request(&req(1_000, 1, 9), &Empty, &mut orders);
    assert_eq!(orders.iter().map(|o| o.key).collect::<Vec<_>>(), vec![2]);
    assert!((orders[0].confidence - 0.6).abs() < 1e-9);
    orders.clear();
    p.on_request(&req(1_001, 1, 9), &Holds(vec![2]), &mut orders);
    assert!(orders.is_empty());
}

#[test]
fn strides_generalise_to_keys_never_seen() {
    let config = PredictorConfig {
        max_stride: 64,
        ..successor_only(10)
    };
    let mut p = NextAccessPredictor::new(config, KeyKind::Integer, CacheUnit::Objects).unwrap();
    let run: Vec<Request> = (0..50).map(|i| req(i, 1_000 + 8 * i as u32, 1)).collect();
    feed(&mut p, &run);
    let mut orders = Vec::new();
    p.on_request(&req(1_000, 777_000, 5), &Empty, &mut orders);
    assert_eq!(orders.first().map(|o| o.key), Some(777_008), "{orders:?}");
    // Text keys have no neighbours.
    let mut text =
        NextAccessPredictor::new(successor_only(10), KeyKind::Text, CacheUnit::Objects).unwrap();
    feed(&mut text, &run);
    assert!(candidate_keys(&mut text, &req(1_000, 777_000, 5)).is_empty());
}

#[test]
fn co_access_links_different_clients() {
    let config = PredictorConfig {
        co_access_window: 4,
        ..successor_only(10)
    };
    let mut p =
        NextAccessPredictor::new(config.clone(), KeyKind::Text, CacheUnit::Objects).unwrap();
    // Client 1 requests 10, then client 2 requests 20: "if A requests X, B is likely to request Y".
    let requests = [req(0, 10, 1), req(1, 20, 2), req(50, 10, 3), req(51, 20, 4)];
    feed(&mut p, &requests);
    assert_eq!(candidate_keys(&mut p, &req(1_000, 10, 7)), vec![20]);
    let off = PredictorConfig {
        co_access_window: 0,
        ..config
    };
    let mut p = NextAccessPredictor::new(off, KeyKind::Text, CacheUnit::Objects).unwrap();
    feed(&mut p, &requests);
    assert!(candidate_keys(&mut p, &req(1_000, 10, 7)).is_empty());
}

#[test]
fn the_budget_limits_orders_per_region_and_epoch() {
    let config = PredictorConfig {
        budget: Budget::PerEpoch(1),
        ..successor_only(10)
    };
    let mut p = NextAccessPredictor::new(config, KeyKind::Text, CacheUnit::Objects).unwrap();
    let mut requests = Vec::new();
    for client in 0..5 {
        requests.push(req(client * 10, 1, client as u32));
        requests.push(req(client * 10 + 1, 2, client as u32));
        requests.push(req(client * 10 + 2, 3, client as u32));
    }
    feed(&mut p, &requests);
    // Epoch 1: requests for 1 and 2 would each order a successor, but one object per epoch is all.
    let orders = feed(&mut p, &[req(1_900, 1, 9), req(1_901, 2, 9)]);
    assert_eq!(orders.len(), 1);
    let orders = feed(&mut p, &[req(2_900, 1, 9), req(2_901, 2, 9)]);
    assert_eq!(orders.len(), 1, "the budget renews each epoch");
}

#[test]
fn the_same_requests_give_the_same_orders() {
    let trace = common::load_single_region(common::NASA);
    let requests = &trace.requests[..8_000];
    let run = || {
        let mut p = NextAccessPredictor::new(
            PredictorConfig::default(),
            trace.keys.kind(),
            CacheUnit::Objects,
        )
        .unwrap();
        let caps = CacheSpec::objects_share(0.01).resolve(requests).unwrap();
        let mut recorder = Recorder {
            inner: &mut p,
            orders: Vec::new(),
        };
        let stats =
            simulate_with_prefetch(requests, &caps, &mut recorder, PrefetchOptions::default())
                .unwrap();
        (recorder.orders, stats)
    };
    let (orders, stats) = run();
    assert!(orders.len() > 1_000, "NASA has plenty to predict");
    assert_eq!(run(), (orders, stats));
}

/// Passes requests to a prefetcher and keeps a copy of its orders.
struct Recorder<'a> {
    inner: &'a mut NextAccessPredictor,
    orders: Vec<(u32, u16, u32, u64)>,
}

impl Prefetcher for Recorder<'_> {
    fn on_request(&mut self, r: &Request, cache: &dyn CacheView, orders: &mut Vec<PrefetchOrder>) {
        let before = orders.len();
        self.inner.on_request(r, cache, orders);
        self.orders.extend(
            orders[before..]
                .iter()
                .map(|o| (o.key, o.region, o.size, o.confidence.to_bits())),
        );
    }
}

#[test]
fn settings_are_checked_and_read_from_json() {
    for bad in [
        PredictorConfig {
            tick_ms: 0,
            ..PredictorConfig::default()
        },
        PredictorConfig {
            lookahead: 0,
            ..PredictorConfig::default()
        },
        PredictorConfig {
            min_confidence: 1.5,
            ..PredictorConfig::default()
        },
        PredictorConfig {
            budget: Budget::DemandShare(-1.0),
            ..PredictorConfig::default()
        },
    ] {
        assert!(NextAccessPredictor::new(bad, KeyKind::Text, CacheUnit::Objects).is_err());
    }
    let config: PredictorConfig =
        serde_json::from_str(r#"{"window_epochs": 30, "budget": {"demand_share": 1.5}}"#).unwrap();
    assert_eq!(config.window_epochs, 30);
    assert_eq!(config.budget, Budget::DemandShare(1.5));
    assert_eq!(config.tick_ms, PredictorConfig::default().tick_ms);
    let err = serde_json::from_str::<PredictorConfig>(r#"{"windw_epochs": 30}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
