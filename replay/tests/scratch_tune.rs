mod common;
use shardcast_replay::*;
use std::time::Instant;

fn run(name: &str, trace: &Trace, config: &PredictorConfig, options: PrefetchOptions) {
    for share in [0.01, 0.1] {
        let caps = CacheSpec::objects_share(share)
            .resolve(&trace.requests)
            .unwrap();
        let t = Instant::now();
        let mut p = NextAccessPredictor::new(config.clone(), trace.keys.kind(), CacheUnit::Objects)
            .unwrap();
        let c = compare(&trace.requests, &caps, &mut p, options).unwrap();
        println!("{name:40} {share:5} LRU {:.4} PF {:.4} Belady {:.4} gap {:.2} acc {:.3} cov {:.3} time {:.2} issued {} late {} [{:.1}s]",
            c.lru.hit_ratio(), c.prefetch.hit_ratio(), c.belady.hit_ratio(), c.gap_closed(), c.prefetch.accuracy(), c.prefetch.coverage(), c.prefetch.timeliness(), c.prefetch.total.issued, c.prefetch.total.late, t.elapsed().as_secs_f64());
    }
}

fn load_txt(path: &str) -> Trace {
    let text = std::fs::read_to_string(path).unwrap();
    let mut b = TraceBuilder::new();
    for (i, line) in text.lines().enumerate() {
        b.push(i as u64, line.trim(), 0, "", "").unwrap();
    }
    b.finish().single_region()
}

fn variants(order_only: bool) -> Vec<(String, PredictorConfig)> {
    let base = if order_only {
        PredictorConfig::order_only()
    } else {
        PredictorConfig::default()
    };
    let mut v = vec![("base".to_string(), base.clone())];
    let spec = std::env::var("VARIANTS").unwrap_or_default();
    for item in spec.split(';').filter(|s| !s.is_empty()) {
        let mut c = base.clone();
        for kv in item.split(',') {
            let (k, val) = kv.split_once('=').unwrap();
            match k {
                "tick" => c.tick_ms = val.parse().unwrap(),
                "w" => c.window_epochs = val.parse().unwrap(),
                "gap" => c.max_gap_ms = val.parse().unwrap(),
                "la" => c.lookahead = val.parse().unwrap(),
                "co" => c.co_access_window = val.parse().unwrap(),
                "sbs" => c.stride_by_size = val == "1",
                "so" => c.second_order = val == "1",
                "stride" => c.max_stride = val.parse().unwrap(),
                "topk" => c.top_k = val.parse().unwrap(),
                "prior" => c.prior = val.parse().unwrap(),
                "minc" => c.min_count = val.parse().unwrap(),
                "conf" => c.min_confidence = val.parse().unwrap(),
                "orders" => c.max_orders = val.parse().unwrap(),
                "budget" => c.budget = Budget::DemandShare(val.parse().unwrap()),
                _ => panic!("{k}"),
            }
        }
        v.push((item.to_string(), c));
    }
    v
}

#[test]
fn scratch() {
    let traces = std::env::var("TRACES").unwrap_or("nasa,cp".into());
    let depth: f64 = std::env::var("DEPTH")
        .ok()
        .map(|d| d.parse().unwrap())
        .unwrap_or(-1.0);
    let latency: u64 = std::env::var("LAT")
        .ok()
        .map(|d| d.parse().unwrap())
        .unwrap_or(0);
    let opts = PrefetchOptions {
        latency_ms: latency,
        entry: if depth < 0.0 {
            PrefetchEntry::Mru
        } else {
            PrefetchEntry::Depth(depth)
        },
    };
    for t in traces.split(',') {
        let trace = match t {
            "nasa" => common::load_normalized(common::NASA).single_region(),
            "cp" => common::load_normalized(common::CLOUDPHYSICS).single_region(),
            other => load_txt(&format!("/tmp/rt/{other}.txt")),
        };
        let order_only = !matches!(t, "nasa" | "cp");
        for (name, c) in variants(order_only) {
            run(&format!("{t} {name}"), &trace, &c, opts);
        }
    }
}

#[test]
fn scratch_timing() {
    let trace = load_txt("/tmp/rt/cache2k.txt");
    let caps = CacheSpec::objects_share(0.01)
        .resolve(&trace.requests)
        .unwrap();
    let t = Instant::now();
    let lru = simulate_lru(&trace.requests, &caps).unwrap();
    println!(
        "lru {:.3} {:.2}s",
        lru.hit_ratio(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let b = simulate_belady(&trace.requests, &caps).unwrap();
    println!(
        "belady {:.3} {:.2}s",
        b.hit_ratio(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let p = simulate_with_prefetch(
        &trace.requests,
        &caps,
        &mut NoPrefetch,
        PrefetchOptions::default(),
    )
    .unwrap();
    println!(
        "noprefetch {:.3} {:.2}s",
        p.hit_ratio(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut pr = NextAccessPredictor::new(
        PredictorConfig::order_only(),
        trace.keys.kind(),
        CacheUnit::Objects,
    )
    .unwrap();
    let p = simulate_with_prefetch(&trace.requests, &caps, &mut pr, PrefetchOptions::default())
        .unwrap();
    println!(
        "predictor {:.3} {:.2}s",
        p.hit_ratio(),
        t.elapsed().as_secs_f64()
    );
}
