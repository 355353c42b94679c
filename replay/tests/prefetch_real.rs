//! The predictor on the real traces: prefetching must raise the hit ratio above LRU on correlated
//! traces, with its accuracy reported, and close at least half of the LRU-to-Belady gap.

mod common;

use shardcast_replay::{
    compare, CacheSpec, CacheUnit, Comparison, NextAccessPredictor, PredictorConfig,
    PrefetchOptions, Trace,
};

/// LRU, LRU + the predictor (default settings for the trace's kind of time) and Belady.
fn run(trace: &Trace, timed: bool, share: f64, latency_ms: u64) -> Comparison {
    let config = if timed {
        PredictorConfig::default()
    } else {
        PredictorConfig::order_only()
    };
    let caps = CacheSpec::objects_share(share)
        .resolve(&trace.requests)
        .unwrap();
    let mut predictor =
        NextAccessPredictor::new(config, trace.keys.kind(), CacheUnit::Objects).unwrap();
    let options = PrefetchOptions {
        latency_ms,
        ..PrefetchOptions::default()
    };
    compare(&trace.requests, &caps, &mut predictor, options).unwrap()
}

/// The goal on one trace and size: above LRU, at least `min_accuracy`, half the gap closed.
fn assert_goal(name: &str, c: &Comparison, min_accuracy: f64) {
    let p = &c.prefetch;
    println!(
        "{name}: LRU {:.4} prefetch {:.4} Belady {:.4} gap closed {:.2} accuracy {:.3} coverage {:.3}",
        c.lru.hit_ratio(),
        p.hit_ratio(),
        c.belady.hit_ratio(),
        c.gap_closed(),
        p.accuracy(),
        p.coverage()
    );
    assert!(
        p.hit_ratio() > c.lru.hit_ratio() + 0.02,
        "{name}: prefetch {} vs LRU {}",
        p.hit_ratio(),
        c.lru.hit_ratio()
    );
    assert!(
        p.accuracy() >= min_accuracy,
        "{name}: accuracy {}",
        p.accuracy()
    );
    assert!(
        c.gap_closed() >= 0.5,
        "{name}: gap closed {}",
        c.gap_closed()
    );
    assert!(p.coverage() > 0.0);
    let t = p.total;
    assert_eq!(t.issued, t.used + t.late + t.wasted + t.unused_at_end);
}

#[test]
fn prefetch_beats_lru_on_nasa() {
    let trace = common::load_single_region(common::NASA);
    for share in [0.01, 0.10] {
        let c = run(&trace, true, share, 0);
        assert_goal(&format!("nasa {share}"), &c, 0.25);
        assert_eq!(
            c.prefetch.timeliness(),
            1.0,
            "latency 0 lands before the next request"
        );
    }
}

#[test]
fn prefetch_beats_lru_on_cloudphysics() {
    let trace = common::load_single_region(common::CLOUDPHYSICS);
    for share in [0.01, 0.10] {
        let c = run(&trace, true, share, 0);
        assert_goal(&format!("cloudphysics {share}"), &c, 0.4);
        // Strides reach blocks never requested before: below even Belady's compulsory misses.
        assert!(c.prefetch.hit_ratio() > c.belady.hit_ratio());
    }
}

#[test]
fn a_second_of_latency_makes_some_prefetches_late_on_nasa() {
    let trace = common::load_single_region(common::NASA);
    let c = run(&trace, true, 0.01, 1_000);
    let p = &c.prefetch;
    assert!(p.total.late > 0);
    assert!(
        p.timeliness() < 1.0 && p.timeliness() > 0.5,
        "{}",
        p.timeliness()
    );
    assert!(p.hit_ratio() > c.lru.hit_ratio() + 0.02);
}

#[test]
fn per_region_caches_gain_on_nasa() {
    // One cache per client top-level domain, each 10% of the URLs its region requests.
    let loaded = common::load(common::NASA);
    assert!(loaded.trace.regions.len() > 40);
    let c = run(&loaded.trace, true, 0.10, 0);
    assert!(c.prefetch.hit_ratio() > c.lru.hit_ratio() + 0.02);
    let improved = c
        .prefetch
        .cache
        .regions
        .iter()
        .zip(&c.lru.regions)
        .filter(|(p, l)| p.hits > l.hits)
        .count();
    assert!(improved > 20, "{improved} regions improved");
}

#[test]
fn prefetch_closes_half_the_gap_on_the_lirs_traces() {
    for (name, path) in common::LIRS {
        let trace = common::load_single_region(path);
        for share in [0.01, 0.10] {
            assert_goal(
                &format!("lirs {name} {share}"),
                &run(&trace, false, share, 0),
                0.2,
            );
        }
    }
}
