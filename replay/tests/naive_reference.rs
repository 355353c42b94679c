//! The fast simulators against plain, obviously-correct implementations on random small traces, and
//! Belady against an exhaustive search for the optimum on tiny ones.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardcast_replay::{simulate_belady, simulate_lru, CacheStats, Capacities, Capacity, Request};

/// A random trace over `keys` keys (skewed so that some repeat often) in `regions` regions.
fn random_trace(rng: &mut StdRng, len: usize, keys: u32, regions: u16) -> Vec<Request> {
    (0..len)
        .map(|i| {
            let u: f64 = rng.random();
            Request {
                ts_ms: i as u64,
                key: ((u * u) * f64::from(keys)) as u32,
                size: rng.random_range(1..=100),
                client: 0,
                region: rng.random_range(0..regions),
            }
        })
        .collect()
}

fn units(capacity: Capacity, request: &Request) -> u64 {
    match capacity {
        Capacity::Objects(_) => 1,
        Capacity::Bytes(_) => u64::from(request.size.max(1)),
    }
}

/// LRU as a list searched from the front, most recent first.
fn naive_lru(requests: &[Request], caps: &[Capacity]) -> CacheStats {
    let mut lists: Vec<Vec<(u32, u64)>> = vec![Vec::new(); caps.len()];
    let mut stats = Stats::new(caps.len());
    for r in requests {
        let cap = caps[usize::from(r.region)];
        let list = &mut lists[usize::from(r.region)];
        if let Some(pos) = list.iter().position(|&(k, _)| k == r.key) {
            let entry = list.remove(pos);
            list.insert(0, entry);
            stats.record(r, true);
            continue;
        }
        stats.record(r, false);
        let u = units(cap, r);
        if u > cap.units() {
            continue;
        }
        while list.iter().map(|e| e.1).sum::<u64>() + u > cap.units() {
            list.pop();
        }
        list.insert(0, (r.key, u));
    }
    stats.0
}

/// Belady with bypass, finding each next use by scanning the rest of the trace.
fn naive_belady(requests: &[Request], caps: &[Capacity]) -> CacheStats {
    let next_use = |from: usize, region: u16, key: u32| {
        requests[from + 1..]
            .iter()
            .position(|r| r.region == region && r.key == key)
            .map_or(usize::MAX, |p| from + 1 + p)
    };
    let mut cached: Vec<Vec<(u32, u64)>> = vec![Vec::new(); caps.len()];
    let mut stats = Stats::new(caps.len());
    for (i, r) in requests.iter().enumerate() {
        let cap = caps[usize::from(r.region)];
        let set = &mut cached[usize::from(r.region)];
        let mine = next_use(i, r.region, r.key);
        if let Some(pos) = set.iter().position(|&(k, _)| k == r.key) {
            stats.record(r, true);
            if mine == usize::MAX {
                set.remove(pos);
            }
            continue;
        }
        stats.record(r, false);
        let u = units(cap, r);
        if mine == usize::MAX || u > cap.units() {
            continue;
        }
        let mut by_distance: Vec<(usize, u32, u64)> = set
            .iter()
            .map(|&(k, size)| (next_use(i, r.region, k), k, size))
            .collect();
        by_distance.sort_by(|a, b| b.cmp(a));
        let used: u64 = set.iter().map(|e| e.1).sum();
        let (mut freed, mut victims) = (0, Vec::new());
        for &(next, k, size) in &by_distance {
            if used - freed + u <= cap.units() || next <= mine {
                break;
            }
            freed += size;
            victims.push(k);
        }
        if used - freed + u <= cap.units() {
            set.retain(|(k, _)| !victims.contains(k));
            set.push((r.key, u));
        }
    }
    stats.0
}

/// Counts built through the public fields only, so the reference shares no code with the simulators.
struct Stats(CacheStats);

impl Stats {
    fn new(regions: usize) -> Self {
        Stats(CacheStats {
            total: Default::default(),
            regions: vec![Default::default(); regions],
        })
    }

    fn record(&mut self, r: &Request, hit: bool) {
        for s in [
            &mut self.0.total,
            &mut self.0.regions[usize::from(r.region)],
        ] {
            if hit {
                s.hits += 1;
                s.hit_bytes += u64::from(r.size);
            } else {
                s.misses += 1;
                s.miss_bytes += u64::from(r.size);
            }
        }
    }
}

fn random_caps(rng: &mut StdRng, regions: u16, bytes: bool) -> Vec<Capacity> {
    (0..regions)
        .map(|_| {
            if bytes {
                Capacity::Bytes(rng.random_range(50..=600))
            } else {
                Capacity::Objects(rng.random_range(1..=12))
            }
        })
        .collect()
}

#[test]
fn lru_and_belady_match_the_naive_versions() {
    let mut rng = StdRng::seed_from_u64(7);
    for round in 0..300 {
        let regions = rng.random_range(1..=3);
        let keys = rng.random_range(2..=60);
        let len = rng.random_range(1..=400);
        let requests = random_trace(&mut rng, len, keys, regions);
        let caps = random_caps(&mut rng, regions, round % 2 == 1);
        let capacities = Capacities::from_regions(caps.clone());
        let lru = simulate_lru(&requests, &capacities).unwrap();
        let belady = simulate_belady(&requests, &capacities).unwrap();
        assert_eq!(lru, naive_lru(&requests, &caps), "LRU, round {round}");
        assert_eq!(
            belady,
            naive_belady(&requests, &caps),
            "Belady, round {round}"
        );
        if round % 2 == 0 {
            assert!(belady.hits() >= lru.hits(), "MIN is never worse than LRU");
        }
    }
}

/// The most hits any demand-fetching cache of `cap` objects can get: every choice (bypass, or cache
/// evicting any one object) tried, memoized on (position, cached set).
fn exhaustive_optimum(keys: &[u32], cap: usize) -> u64 {
    fn best(
        i: usize,
        set: u32,
        keys: &[u32],
        cap: usize,
        memo: &mut HashMap<(usize, u32), u64>,
    ) -> u64 {
        if i == keys.len() {
            return 0;
        }
        if let Some(&v) = memo.get(&(i, set)) {
            return v;
        }
        let bit = 1u32 << keys[i];
        let v = if set & bit != 0 {
            1 + best(i + 1, set, keys, cap, memo)
        } else {
            let mut v = best(i + 1, set, keys, cap, memo);
            if (set.count_ones() as usize) < cap {
                v = v.max(best(i + 1, set | bit, keys, cap, memo));
            } else {
                for victim in 0..32 {
                    if set & (1 << victim) != 0 {
                        v = v.max(best(i + 1, (set & !(1 << victim)) | bit, keys, cap, memo));
                    }
                }
            }
            v
        };
        memo.insert((i, set), v);
        v
    }
    best(0, 0, keys, cap, &mut HashMap::new())
}

#[test]
fn belady_reaches_the_exhaustive_optimum() {
    let mut rng = StdRng::seed_from_u64(11);
    for round in 0..200 {
        let len = rng.random_range(1..=16);
        let keys: Vec<u32> = (0..len).map(|_| rng.random_range(0..6)).collect();
        let cap = rng.random_range(1..=4);
        let requests: Vec<Request> = keys
            .iter()
            .enumerate()
            .map(|(i, &key)| Request {
                ts_ms: i as u64,
                key,
                size: 1,
                client: 0,
                region: 0,
            })
            .collect();
        let belady =
            simulate_belady(&requests, &Capacities::uniform(Capacity::Objects(cap), 1)).unwrap();
        assert_eq!(
            belady.hits(),
            exhaustive_optimum(&keys, cap),
            "round {round}: {keys:?} with {cap} objects"
        );
    }
}

#[test]
fn a_region_without_capacity_is_an_error() {
    let requests = random_trace(&mut StdRng::seed_from_u64(1), 10, 5, 3);
    let caps = Capacities::uniform(Capacity::Objects(2), 1);
    assert!(simulate_lru(&requests, &caps).is_err());
    assert!(simulate_belady(&requests, &caps).is_err());
}
