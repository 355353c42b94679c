//! The prefetch simulator's bookkeeping: invariants on random runs, exact LRU without orders, an oracle
//! that knows the next request, and the late / wasted / not-issued cases one by one.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardcast_replay::{
    simulate_lru, simulate_with_prefetch, CacheView, Capacities, Capacity, NoPrefetch,
    PrefetchEntry, PrefetchOptions, PrefetchOrder, Prefetcher, ReplayError, Request,
};

fn req(ts_ms: u64, key: u32) -> Request {
    Request {
        ts_ms,
        key,
        size: 10,
        client: 0,
        region: 0,
    }
}

fn random_trace(rng: &mut StdRng, len: usize, keys: u32, regions: u16) -> Vec<Request> {
    let mut ts = 0;
    (0..len)
        .map(|_| {
            ts += rng.random_range(0..3);
            let u: f64 = rng.random();
            Request {
                ts_ms: ts,
                key: ((u * u) * f64::from(keys)) as u32,
                size: rng.random_range(1..=100),
                client: 0,
                region: rng.random_range(0..regions),
            }
        })
        .collect()
}

/// Orders random keys (some cached, some not) into random regions.
struct RandomPrefetcher {
    rng: StdRng,
    keys: u32,
    regions: u16,
}

impl Prefetcher for RandomPrefetcher {
    fn on_request(&mut self, _: &Request, _: &dyn CacheView, orders: &mut Vec<PrefetchOrder>) {
        for _ in 0..self.rng.random_range(0..4) {
            orders.push(PrefetchOrder {
                key: self.rng.random_range(0..self.keys),
                region: self.rng.random_range(0..self.regions),
                size: self.rng.random_range(1..=100),
                confidence: 0.5,
            });
        }
    }
}

/// Orders, after request i, the key of request i + 1 in that request's region.
struct Oracle {
    requests: Vec<Request>,
    next: usize,
}

impl Prefetcher for Oracle {
    fn on_request(&mut self, _: &Request, _: &dyn CacheView, orders: &mut Vec<PrefetchOrder>) {
        self.next += 1;
        if let Some(r) = self.requests.get(self.next) {
            orders.push(PrefetchOrder {
                key: r.key,
                region: r.region,
                size: r.size,
                confidence: 1.0,
            });
        }
    }
}

/// Orders `script[i]` after the i-th request.
struct Scripted {
    script: Vec<Vec<u32>>,
    seen: usize,
}

impl Prefetcher for Scripted {
    fn on_request(&mut self, _: &Request, _: &dyn CacheView, orders: &mut Vec<PrefetchOrder>) {
        for &key in self.script.get(self.seen).map(Vec::as_slice).unwrap_or(&[]) {
            orders.push(PrefetchOrder {
                key,
                region: 0,
                size: 10,
                confidence: 1.0,
            });
        }
        self.seen += 1;
    }
}

fn objects(n: usize) -> Capacities {
    Capacities::uniform(Capacity::Objects(n), 1)
}

fn random_caps(rng: &mut StdRng, regions: u16, bytes: bool) -> Capacities {
    Capacities::from_regions(
        (0..regions)
            .map(|_| {
                if bytes {
                    Capacity::Bytes(rng.random_range(50..=600))
                } else {
                    Capacity::Objects(rng.random_range(1..=12))
                }
            })
            .collect(),
    )
}

#[test]
fn without_orders_it_is_exactly_lru() {
    let mut rng = StdRng::seed_from_u64(3);
    for round in 0..100 {
        let regions = rng.random_range(1..=3);
        let requests = random_trace(&mut rng, 300, 40, regions);
        let caps = random_caps(&mut rng, regions, round % 2 == 0);
        for entry in [PrefetchEntry::Mru, PrefetchEntry::Depth(0.5)] {
            let options = PrefetchOptions {
                latency_ms: 5,
                entry,
            };
            let stats = simulate_with_prefetch(&requests, &caps, &mut NoPrefetch, options).unwrap();
            assert_eq!(stats.cache, simulate_lru(&requests, &caps).unwrap());
            assert_eq!(stats.cache, stats.baseline);
            assert_eq!(stats.total.issued, 0);
            assert_eq!(stats.coverage(), 0.0);
        }
    }
}

#[test]
fn counts_add_up_on_random_runs() {
    let mut rng = StdRng::seed_from_u64(5);
    for round in 0..100 {
        let regions = rng.random_range(1..=3);
        let requests = random_trace(&mut rng, 400, 40, regions);
        let caps = random_caps(&mut rng, regions, round % 2 == 0);
        let mut prefetcher = RandomPrefetcher {
            rng: StdRng::seed_from_u64(round),
            keys: 40,
            regions,
        };
        let options = PrefetchOptions {
            latency_ms: rng.random_range(0..4),
            entry: if round % 3 == 0 {
                PrefetchEntry::Depth(0.7)
            } else {
                PrefetchEntry::Mru
            },
        };
        let stats = simulate_with_prefetch(&requests, &caps, &mut prefetcher, options).unwrap();
        let t = stats.total;
        assert!(t.issued > 0, "round {round}");
        assert!(t.used + t.wasted <= t.issued, "round {round}: {t:?}");
        assert_eq!(
            t.issued,
            t.used + t.late + t.wasted + t.unused_at_end,
            "every issued prefetch ends one way, round {round}: {t:?}"
        );
        assert_eq!(stats.cache.total.requests(), requests.len() as u64);
        assert!((0.0..=1.0).contains(&stats.accuracy()));
        assert!((0.0..=1.0).contains(&stats.timeliness()));
        let per_region: u64 = stats.regions.iter().map(|c| c.issued).sum();
        assert_eq!(per_region, t.issued);
    }
}

#[test]
fn an_oracle_raises_hits() {
    let mut rng = StdRng::seed_from_u64(9);
    let requests = random_trace(&mut rng, 2000, 500, 1);
    let caps = objects(20);
    let mut oracle = Oracle {
        requests: requests.clone(),
        next: 0,
    };
    let stats =
        simulate_with_prefetch(&requests, &caps, &mut oracle, PrefetchOptions::default()).unwrap();
    // Each request after the first was prefetched (or cached) just before it came.
    assert_eq!(stats.cache.hits(), requests.len() as u64 - 1);
    assert!(stats.cache.hits() > stats.baseline.hits() + 500);
    assert_eq!(stats.accuracy(), 1.0);
    assert_eq!(stats.timeliness(), 1.0);
    assert!(stats.coverage() > 0.99);
}

#[test]
fn an_oracle_too_slow_for_the_trace_is_late() {
    let requests: Vec<Request> = (0..100).map(|i| req(i * 10, i as u32)).collect();
    let mut oracle = Oracle {
        requests: requests.clone(),
        next: 0,
    };
    let options = PrefetchOptions {
        latency_ms: 15,
        entry: PrefetchEntry::Mru,
    };
    let stats = simulate_with_prefetch(&requests, &objects(10), &mut oracle, options).unwrap();
    assert_eq!(stats.cache.hits(), 0);
    assert_eq!(stats.total.late, 99);
    assert_eq!(stats.total.used, 0);
    assert_eq!(stats.timeliness(), 0.0);
}

#[test]
fn a_late_prefetch_is_cancelled_and_a_landed_one_is_used_once() {
    // t=0 A orders B (lands at 10); t=5 B misses: late. t=20 A orders C (lands at 30); t=30 C hits: used;
    // t=40 C hits again: not a second use.
    let requests = vec![req(0, 1), req(5, 2), req(20, 1), req(30, 3), req(40, 3)];
    let mut prefetcher = Scripted {
        script: vec![vec![2], vec![], vec![3]],
        seen: 0,
    };
    let options = PrefetchOptions {
        latency_ms: 10,
        entry: PrefetchEntry::Mru,
    };
    let stats = simulate_with_prefetch(&requests, &objects(4), &mut prefetcher, options).unwrap();
    assert_eq!(stats.total.issued, 2);
    assert_eq!(stats.total.late, 1);
    assert_eq!(stats.total.used, 1);
    assert_eq!(stats.cache.hits(), 3);
    assert_eq!(stats.baseline.hits(), 2);
}

#[test]
fn orders_for_held_objects_are_free_and_unused_ones_are_wasted() {
    let requests = vec![req(0, 1), req(1, 2), req(2, 3), req(3, 4)];
    let mut prefetcher = Scripted {
        // After 1: 1 is cached (free), 9 is issued; after 2: 9 is in the cache (free).
        script: vec![vec![1, 9], vec![9]],
        seen: 0,
    };
    let stats = simulate_with_prefetch(
        &requests,
        &objects(2),
        &mut prefetcher,
        PrefetchOptions::default(),
    )
    .unwrap();
    assert_eq!(stats.total.issued, 1);
    assert_eq!(stats.total.wasted, 1, "9 is evicted unused");
    assert_eq!(stats.total.bytes, 10);
}

#[test]
fn deep_entry_evicts_unused_prefetches_first() {
    // Cache of 2: after A, B is prefetched; then C misses. Entered at the MRU end, B sits above A, so C
    // evicts A and A misses again; entered at the LRU end (depth 1), B is what C evicts and A hits.
    let requests = vec![req(0, 1), req(1, 3), req(2, 1)];
    let run = |entry| {
        let mut prefetcher = Scripted {
            script: vec![vec![2]],
            seen: 0,
        };
        let options = PrefetchOptions {
            latency_ms: 0,
            entry,
        };
        simulate_with_prefetch(&requests, &objects(2), &mut prefetcher, options).unwrap()
    };
    let mru = run(PrefetchEntry::Mru);
    let deep = run(PrefetchEntry::Depth(1.0));
    assert_eq!(mru.cache.hits(), 0);
    assert_eq!(deep.cache.hits(), 1);
    assert_eq!(deep.total.wasted, 1);
}

#[test]
fn bad_input_is_an_error() {
    let requests = vec![req(5, 1), req(4, 2)];
    let err = simulate_with_prefetch(
        &requests,
        &objects(2),
        &mut NoPrefetch,
        PrefetchOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ReplayError::OutOfOrder { index: 1, .. }),
        "{err}"
    );
    let options = PrefetchOptions {
        latency_ms: 0,
        entry: PrefetchEntry::Depth(1.5),
    };
    assert!(simulate_with_prefetch(&requests[..1], &objects(2), &mut NoPrefetch, options).is_err());
}
