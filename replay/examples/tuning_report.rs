//! The tuning table: every reference trace at 1% and 10% caches, LRU next to LRU + the predictor and
//! Belady, with accuracy, coverage, timeliness and the share of the LRU-to-Belady gap closed. It takes
//! minutes in a debug build (cache2k has 5 million requests), so it runs on request:
//! `cargo run --release -p shardcast-replay --example tuning_report`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use shardcast_replay::{
    compare, CacheSize, CacheSpec, CacheUnit, NextAccessPredictor, PredictorConfig,
    PrefetchOptions, Trace,
};

/// One row per cache size; asserts the project's goal (half the gap closed) on each.
fn rows(name: &str, trace: &Trace, timed: bool, unit: CacheUnit, latency_ms: u64) {
    for share in [0.01, 0.10] {
        let started = Instant::now();
        let config = if timed {
            PredictorConfig::default()
        } else {
            PredictorConfig::order_only()
        };
        let spec = CacheSpec {
            size: CacheSize::Share(share),
            unit,
        };
        let caps = spec.resolve(&trace.requests).unwrap();
        let mut predictor = NextAccessPredictor::new(config, trace.keys.kind(), unit).unwrap();
        let options = PrefetchOptions {
            latency_ms,
            ..PrefetchOptions::default()
        };
        let c = compare(&trace.requests, &caps, &mut predictor, options).unwrap();
        let p = &c.prefetch;
        println!(
            "| {name} | {:.0}% | {:.4} | {:.4} | {:.4} | {:.2} | {:.3} | {:.3} | {:.3} | {} | {:.1} s |",
            share * 100.0,
            c.lru.hit_ratio(),
            p.hit_ratio(),
            c.belady.hit_ratio(),
            c.gap_closed(),
            p.accuracy(),
            p.coverage(),
            p.timeliness(),
            p.total.bytes,
            started.elapsed().as_secs_f64()
        );
        assert!(
            c.gap_closed() >= 0.5,
            "{name} at {share}: {}",
            c.gap_closed()
        );
    }
}

fn every_trace_at_one_and_ten_percent() {
    println!(
        "| trace | cache | LRU | LRU+prefetch | Belady | gap closed | accuracy | coverage | timely | bytes prefetched | time |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let nasa = common::load(common::NASA);
    rows(
        "nasa",
        &nasa.trace.clone().single_region(),
        true,
        CacheUnit::Objects,
        0,
    );
    rows(
        "nasa, 1 s latency",
        &nasa.trace.clone().single_region(),
        true,
        CacheUnit::Objects,
        1_000,
    );
    rows(
        "nasa, cache per TLD",
        &nasa.trace,
        true,
        CacheUnit::Objects,
        0,
    );
    let cloud = common::load_single_region(common::CLOUDPHYSICS);
    rows("cloudphysics", &cloud, true, CacheUnit::Objects, 0);
    let oracle = common::load_single_region(common::CLOUDPHYSICS_ORACLE);
    rows("cloudphysics, bytes", &oracle, true, CacheUnit::Bytes, 0);
    for (name, path) in [
        ("arc_OLTP", common::ARC_OLTP),
        ("cache2k_orm_busy", common::CACHE2K),
    ] {
        let trace = common::load_single_region(path);
        rows(name, &trace, false, CacheUnit::Objects, 0);
    }
    for (name, path) in common::LIRS {
        let trace = common::load_single_region(path);
        rows(
            &format!("lirs {name}"),
            &trace,
            false,
            CacheUnit::Objects,
            0,
        );
    }
}

fn where_prefetched_objects_enter_the_list() {
    use shardcast_replay::PrefetchEntry;
    let traces = [
        ("nasa", common::load_single_region(common::NASA)),
        (
            "cloudphysics",
            common::load_single_region(common::CLOUDPHYSICS),
        ),
    ];
    println!("| trace | cache | latency | MRU | depth 0.25 | depth 0.5 | depth 0.75 | LRU end |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, trace) in &traces {
        for share in [0.01, 0.10] {
            for latency_ms in [0, 1_000] {
                let caps = CacheSpec::objects_share(share)
                    .resolve(&trace.requests)
                    .unwrap();
                let mut line = format!("| {name} | {:.0}% | {latency_ms} ms |", share * 100.0);
                let entries = [
                    PrefetchEntry::Mru,
                    PrefetchEntry::Depth(0.25),
                    PrefetchEntry::Depth(0.5),
                    PrefetchEntry::Depth(0.75),
                    PrefetchEntry::Depth(1.0),
                ];
                for entry in entries {
                    let mut predictor = NextAccessPredictor::new(
                        PredictorConfig::default(),
                        trace.keys.kind(),
                        CacheUnit::Objects,
                    )
                    .unwrap();
                    let options = PrefetchOptions { latency_ms, entry };
                    let c = compare(&trace.requests, &caps, &mut predictor, options).unwrap();
                    line += &format!(" {:.4} |", c.prefetch.hit_ratio());
                }
                println!("{line}");
            }
        }
    }
}

/// Prints the tuning tables: `cargo run --release -p shardcast-replay --example tuning_report`.
fn main() {
    every_trace_at_one_and_ten_percent();
    where_prefetched_objects_enter_the_list();
}
