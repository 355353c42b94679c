//! `shardcast replay` on real traces: the simulator reproduces the reference LRU and Belady figures of
//! the traces README, prefetching beats LRU, and the learned forecaster runs on the real ONNX Runtime.

use crate::fixtures::{output_ok, shardcast};

const TRACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/traces");

fn trace(path: &str) -> String {
    let full = format!("{TRACES}/{path}");
    assert!(
        std::path::Path::new(&full).exists(),
        "trace {full} is missing: the shared traces folder must sit beside the project checkout"
    );
    full
}

fn replay(args: &[&str]) -> serde_json::Value {
    let out = output_ok(shardcast().arg("replay").args(args).arg("--json"));
    serde_json::from_slice(&out.stdout).expect("replay --json prints one JSON object")
}

fn ratio(report: &serde_json::Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {report}"))
}

#[test]
fn replay_matches_reference_figures_and_prefetch_beats_lru() {
    let nasa = trace("nasa_http_19950801/nasa_19950801.normalized.csv.gz");
    // (cache, LRU, Belady) from the traces README: one cache, object count.
    for (cache, lru, belady) in [("1%", 0.370, 0.599), ("10%", 0.753, 0.858)] {
        let r = replay(&[
            "--trace",
            &nasa,
            "--cache",
            cache,
            "--regions",
            "one",
            "--forecaster",
            "holt",
        ]);
        assert_eq!(r["requests"], 30_969, "{r}");
        assert!((ratio(&r, "lru_hit_ratio") - lru).abs() < 0.0015, "{r}");
        assert!(
            (ratio(&r, "belady_hit_ratio") - belady).abs() < 0.0015,
            "{r}"
        );
        assert!(ratio(&r, "prefetch_hit_ratio") > lru + 0.03, "{r}");
        for field in [
            "prefetch_accuracy",
            "prefetch_coverage",
            "prefetch_timely",
            "forecast_wape",
            "forecast_mase",
        ] {
            let v = ratio(&r, field);
            assert!(v.is_finite() && v >= 0.0, "{field} = {v}");
        }
        assert!(r["prefetch_bytes"].as_u64().unwrap() > 0, "{r}");
    }
    // Per-region caches (the TLD of the host is the region) and a block trace with no regions.
    let per_region = replay(&["--trace", &nasa, "--cache", "1%", "--forecaster", "holt"]);
    assert!(per_region["regions"].as_u64().unwrap() > 10, "{per_region}");
    let block = replay(&[
        "--trace",
        &trace("cloudphysics_libcachesim/cloudPhysicsIO.oracleGeneral.bin"),
        "--cache",
        "1%",
        "--forecaster",
        "holt",
    ]);
    assert_eq!(block["regions"], 1, "{block}");
    assert!(
        (ratio(&block, "lru_hit_ratio") - 0.162).abs() < 0.0015,
        "{block}"
    );
    assert!(
        ratio(&block, "prefetch_hit_ratio") > ratio(&block, "lru_hit_ratio"),
        "{block}"
    );
}

#[test]
fn replay_scores_the_learned_forecaster_on_onnx_runtime() {
    crate::fixtures::require_onnx_runtime();
    let r = replay(&[
        "--trace",
        &trace("nasa_http_19950801/nasa_19950801.normalized.csv.gz"),
        "--cache",
        "1%",
        "--forecaster",
        "onnx",
    ]);
    // The shipped model, not the fallback.
    assert_eq!(r["forecast_model"], "onnx:forecaster", "{r}");
    let forecasters = r["forecasters"].as_object().unwrap();
    for name in ["last", "ewma", "holt", "seasonal-naive", "onnx:forecaster"] {
        assert!(forecasters.contains_key(name), "{name} missing in {r}");
    }
    // MASE is against the seasonal-naive forecast, which therefore scores exactly 1.
    let naive = forecasters["seasonal-naive"]["mase"].as_f64().unwrap();
    assert!((naive - 1.0).abs() < 1e-9, "{r}");
}

/// A number field of the report, which must be there and finite.
fn finite(report: &serde_json::Value, field: &str) -> f64 {
    let v = ratio(report, field);
    assert!(v.is_finite(), "{field} = {v} in {report}");
    v
}

#[test]
fn replay_reports_the_balance_of_predictive_reactive_and_static_shards() {
    crate::fixtures::require_onnx_runtime();
    // NASA's seven busiest URLs carry 4% to 7% of the requests each, so the shards that hold two
    // of them run at twice the mean; the balance windows are the forecast's minute.
    let r = replay(&[
        "--trace",
        &trace("nasa_http_19950801/nasa_19950801.normalized.csv.gz"),
        "--regions",
        "one",
    ]);
    assert_eq!(r["balance_window_ms"], 60_000, "{r}");
    assert_eq!(r["balance_forecaster"], "onnx:forecaster", "{r}");
    for prefix in ["", "static_", "reactive_"] {
        let p50 = finite(&r, &format!("{prefix}balance_p50"));
        let p95 = finite(&r, &format!("{prefix}balance_p95"));
        let max = finite(&r, &format!("{prefix}balance_max"));
        assert!(1.0 <= p50 && p50 <= p95 && p95 <= max, "{prefix}: {r}");
        // No shard can carry more than all the load: max/mean is at most the shard count.
        let shards = if prefix == "static_" { 16.0 } else { 256.0 };
        assert!(max <= shards, "{prefix}: {r}");
    }
    for field in [
        "load_moved_per_hour",
        "keys_moved_per_hour",
        "reactive_load_moved_per_hour",
        "reactive_keys_moved_per_hour",
    ] {
        assert!(finite(&r, field) >= 0.0, "{field}: {r}");
    }
    let move_backs = r["move_backs"].as_u64().expect("move_backs");
    let changes = r["moves"].as_u64().unwrap() + r["merges"].as_u64().unwrap();
    assert!(move_backs <= changes, "{r}");
    // Static hashing never moves anything.
    let fixed = &r["balance"]["static"];
    assert_eq!(fixed["splits"], 0, "{r}");
    assert_eq!(fixed["moves"], 0, "{r}");
    assert_eq!(fixed["load_moved_per_hour"], 0.0, "{r}");
    assert_eq!(fixed["final_shards"], 16, "{r}");
    // The balancers act, and pay for it in moved keys.
    assert!(r["splits"].as_u64().unwrap() > 0, "{r}");
    assert!(finite(&r, "keys_moved_per_hour") > 0.0, "{r}");
    // Predicting the hot ranges evens the shards out better than static hashing.
    assert!(
        finite(&r, "balance_p95") < finite(&r, "static_balance_p95"),
        "{r}"
    );
    assert!(
        finite(&r, "balance_p50") < finite(&r, "static_balance_p50"),
        "{r}"
    );
}
