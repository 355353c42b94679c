//! LRU and Belady against the reference hit ratios the traces' README gives (one region, object-count
//! caches holding 1% and 10% of the unique keys, rounded to the nearest object).

mod common;

use shardcast_replay::{simulate_belady, simulate_lru, CacheSpec, Capacity};

/// Checks one trace at both sizes; `figures` = (share, objects, LRU hit ratio, Belady hit ratio).
fn check(path: &str, figures: &[(f64, usize, f64, f64)]) {
    let trace = common::load_normalized(path).single_region();
    for &(share, objects, lru_ref, belady_ref) in figures {
        let caps = CacheSpec::objects_share(share)
            .resolve(&trace.requests)
            .unwrap();
        assert_eq!(
            caps.get(0).unwrap(),
            Capacity::Objects(objects),
            "{path} at {share}"
        );
        let lru = simulate_lru(&trace.requests, &caps).unwrap();
        let belady = simulate_belady(&trace.requests, &caps).unwrap();
        println!(
            "{path} {share}: LRU {:.4} Belady {:.4}",
            lru.hit_ratio(),
            belady.hit_ratio()
        );
        assert!(
            (lru.hit_ratio() - lru_ref).abs() < 5e-4,
            "{path} at {share}: LRU {} vs {lru_ref}",
            lru.hit_ratio()
        );
        assert!(
            (belady.hit_ratio() - belady_ref).abs() < 5e-4,
            "{path} at {share}: Belady {} vs {belady_ref}",
            belady.hit_ratio()
        );
        assert_eq!(lru.total.requests(), trace.requests.len() as u64);
        assert_eq!(belady.total.requests(), trace.requests.len() as u64);
    }
}

#[test]
fn nasa_matches_the_reference_figures() {
    check(
        common::NASA,
        &[(0.01, 21, 0.3696, 0.5988), (0.10, 209, 0.7532, 0.8580)],
    );
}

#[test]
fn cloudphysics_matches_the_reference_figures() {
    check(
        common::CLOUDPHYSICS,
        &[(0.01, 490, 0.1621, 0.2075), (0.10, 4897, 0.1951, 0.3711)],
    );
}
