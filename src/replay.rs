//! `shardcast replay`: a trace through the next-access predictor and the forecasters, with the cache
//! it would feed simulated next to LRU alone and the offline Belady bound.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use shardcast_operators::forecast::{
    forecaster_from_config, shard_series, Evaluation, Forecaster, Score, FORECASTER_KINDS,
};
use shardcast_replay::{
    compare, CacheSize, CacheSpec, CacheUnit, Comparison, NextAccessPredictor, PredictorConfig,
    PrefetchOptions, Trace, TraceBuilder,
};
use shardcast_sources::{TraceFile, TraceFormat};

/// The learned forecaster shipped with shardcast (see models/README.md).
const SHIPPED_MODEL: &[u8] = include_bytes!("../models/forecaster.onnx");

/// Arguments of `shardcast replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The trace file.
    #[arg(long)]
    trace: PathBuf,
    /// Its format (default: detected): normalized, jsonl, libcachesim-csv, oracle-general, arc-lis,
    /// cache2k-trc, lirs, nasa-tsv, cachelib-kv, cachelib-block.
    #[arg(long)]
    format: Option<String>,
    /// Cache size per region: a share of the keys (or bytes) the region touches, like `1%` or `0.1`, or
    /// an absolute count like `5000`.
    #[arg(long, default_value = "1%")]
    cache: String,
    /// What the cache counts: `objects` (every object is 1) or `bytes`.
    #[arg(long, default_value = "objects")]
    unit: String,
    /// `trace`: one cache per region of the trace; `one`: a single cache for all requests.
    #[arg(long, default_value = "trace")]
    regions: String,
    /// Event time (ms) from a prefetch order to its object being in the cache.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Predictor settings as JSON (fields of the predictor config; missing ones keep their defaults).
    #[arg(long)]
    predictor: Option<String>,
    /// The forecaster scored as `forecast_*`: last, ewma, holt, seasonal-naive or onnx.
    #[arg(long, default_value = "onnx")]
    forecaster: String,
    /// ONNX model for `--forecaster onnx` (default: the model shipped with shardcast).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Shards the keys are hashed over for the forecast series.
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// Epoch of the forecast series, ms (default: 60000 with real timestamps; for order-only traces, where
    /// a request is a millisecond, 1/256 of the trace, at most 1000 requests).
    #[arg(long)]
    forecast_tick_ms: Option<u64>,
    /// Epochs ahead the forecasts are scored on.
    #[arg(long, default_value_t = 4)]
    horizon: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Parses `1%`, `0.01` (a share) or `5000` (an absolute size).
fn parse_cache_size(text: &str) -> anyhow::Result<CacheSize> {
    let text = text.trim();
    if let Some(percent) = text.strip_suffix('%') {
        let p: f64 = percent
            .trim()
            .parse()
            .with_context(|| format!("--cache {text:?}"))?;
        if !(p > 0.0 && p.is_finite()) {
            bail!("--cache {text:?}: the share must be positive");
        }
        return Ok(CacheSize::Share(p / 100.0));
    }
    if let Ok(n) = text.parse::<u64>() {
        if n == 0 {
            bail!("--cache 0: a cache needs room for something");
        }
        return Ok(CacheSize::Absolute(n));
    }
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share < 1.0 => Ok(CacheSize::Share(share)),
        _ => bail!("--cache {text:?}: use a share like 1% or 0.01, or a count like 5000"),
    }
}

/// Reads the whole trace into simulator form; the key/timestamp pairs go to `pairs` for the forecasts.
fn read_trace(
    path: &Path,
    format: Option<TraceFormat>,
    pairs: &mut Vec<(u64, String)>,
) -> anyhow::Result<(Trace, TraceFormat, u64)> {
    let file =
        TraceFile::open(path, format).with_context(|| format!("opening {}", path.display()))?;
    let format = file.format();
    let mut builder = TraceBuilder::new();
    let mut dead = 0u64;
    for record in file {
        match record.with_context(|| format!("reading {}", path.display()))? {
            Ok(event) => {
                builder.push(
                    event.ts,
                    &event.key,
                    event.bytes,
                    &event.client,
                    &event.region,
                )?;
                pairs.push((event.ts, event.key));
            }
            Err(letter) => {
                dead += 1;
                if dead <= 5 {
                    eprintln!("shardcast: skipped {}: {}", letter.origin, letter.reason);
                }
            }
        }
    }
    Ok((builder.finish(), format, dead))
}

/// Forecasters to score, and a warning when the one asked for is not among them.
type Forecasters = (Vec<Box<dyn Forecaster>>, Option<String>);

/// The forecasters scored: every baseline and the configured one (the shipped model for `onnx`).
fn forecasters(args: &ReplayArgs) -> anyhow::Result<Forecasters> {
    if !FORECASTER_KINDS.contains(&args.forecaster.as_str()) {
        bail!(
            "--forecaster {:?}: use one of {}",
            args.forecaster,
            FORECASTER_KINDS.join(", ")
        );
    }
    let mut all: Vec<Box<dyn Forecaster>> = ["last", "ewma", "holt", "seasonal-naive"]
        .iter()
        .map(|kind| forecaster_from_config(kind, None, 1).0)
        .collect();
    let mut warning = None;
    if args.forecaster == "onnx" {
        let shipped: tempfile::TempDir;
        let model = match &args.model {
            Some(path) => path.clone(),
            None => {
                shipped = tempfile::tempdir()
                    .context("writing the shipped model to a temporary folder")?;
                let path = shipped.path().join("forecaster.onnx");
                std::fs::write(&path, SHIPPED_MODEL)?;
                path
            }
        };
        // The session has read the file once loaded, so the temporary copy may go afterwards.
        let (onnx, w) = forecaster_from_config("onnx", Some(&model), 1);
        warning = w;
        if warning.is_none() {
            all.push(onnx);
        }
    }
    Ok((all, warning))
}

/// Runs `shardcast replay`.
pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let format = args
        .format
        .as_deref()
        .map(str::parse::<TraceFormat>)
        .transpose()
        .context("--format")?;
    let unit = match args.unit.as_str() {
        "objects" => CacheUnit::Objects,
        "bytes" => CacheUnit::Bytes,
        other => bail!("--unit {other:?}: use objects or bytes"),
    };
    let spec = CacheSpec {
        size: parse_cache_size(&args.cache)?,
        unit,
    };
    let started = Instant::now();
    let mut pairs = Vec::new();
    let (trace, format, dead) = read_trace(&args.trace, format, &mut pairs)?;
    let trace = match args.regions.as_str() {
        "trace" => trace,
        "one" => trace.single_region(),
        other => bail!("--regions {other:?}: use trace or one"),
    };
    if trace.requests.is_empty() {
        bail!("{}: no requests", args.trace.display());
    }
    let read_secs = started.elapsed().as_secs_f64();

    let mut config = if format.has_timestamps() {
        PredictorConfig::default()
    } else {
        PredictorConfig::order_only()
    };
    if let Some(text) = &args.predictor {
        let mut value = serde_json::to_value(&config)?;
        let overrides: serde_json::Value =
            serde_json::from_str(text).context("--predictor is not JSON")?;
        let Some(fields) = overrides.as_object() else {
            bail!("--predictor: give a JSON object of predictor settings");
        };
        for (k, v) in fields {
            value[k] = v.clone();
        }
        config = serde_json::from_value(value).context("--predictor")?;
    }
    let capacities = spec.resolve(&trace.requests)?;
    let mut predictor = NextAccessPredictor::new(config.clone(), trace.keys.kind(), unit)?;
    let options = PrefetchOptions {
        latency_ms: args.latency_ms,
        ..PrefetchOptions::default()
    };
    let simulated = Instant::now();
    let comparison = compare(&trace.requests, &capacities, &mut predictor, options)?;
    let simulate_secs = simulated.elapsed().as_secs_f64();

    // Forecasts: per-shard load per epoch, scored one to `horizon` epochs ahead.
    let requests = trace.requests.len() as u64;
    let tick = args
        .forecast_tick_ms
        .unwrap_or(if format.has_timestamps() {
            60_000
        } else {
            (requests / 256).clamp(1, 1_000)
        })
        .max(1);
    let series = shard_series(pairs, args.shards, tick)?;
    let (mut models, warning) = forecasters(&args)?;
    if let Some(w) = &warning {
        eprintln!("shardcast: warning: {w}");
    }
    let evaluation = Evaluation {
        history: 32,
        horizon: args.horizon.max(1),
        warmup: 32,
        tick_ms: tick,
        season: 1,
    };
    let scores = evaluation.run(&series, &mut models)?;
    // A trace too short for the history and horizon has no forecast points: nothing to report.
    let chosen = scores
        .iter()
        .filter(|s| s.points > 0)
        .find(|s| s.model.split(':').next() == Some(args.forecaster.as_str()))
        .or_else(|| scores.iter().find(|s| s.points > 0 && s.model == "holt"))
        .cloned();

    let report = Report {
        trace: &args.trace,
        format,
        requests: trace.requests.len() as u64,
        dead,
        regions: trace.regions.len(),
        spec: &args.cache,
        unit: &args.unit,
        comparison: &comparison,
        config: &config,
        scores: &scores,
        chosen: chosen.as_ref(),
        seconds: (read_secs, simulate_secs),
    };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    Ok(())
}

/// Everything `replay` reports.
struct Report<'a> {
    trace: &'a Path,
    format: TraceFormat,
    requests: u64,
    dead: u64,
    regions: usize,
    spec: &'a str,
    unit: &'a str,
    comparison: &'a Comparison,
    config: &'a PredictorConfig,
    scores: &'a [Score],
    chosen: Option<&'a Score>,
    seconds: (f64, f64),
}

impl Report<'_> {
    fn json(&self) -> serde_json::Value {
        let c = self.comparison;
        let p = &c.prefetch;
        let forecasters: serde_json::Map<String, serde_json::Value> = self
            .scores
            .iter()
            .filter(|s| s.points > 0)
            .map(|s| {
                (
                    s.model.clone(),
                    json!({"wape": s.wape_all, "mase": s.mase_all, "wape_1": s.wape_one, "mase_1": s.mase_one, "points": s.points}),
                )
            })
            .collect();
        json!({
            "trace": self.trace.display().to_string(),
            "format": self.format.to_string(),
            "requests": self.requests,
            "dead_letters": self.dead,
            "regions": self.regions,
            "cache": self.spec,
            "unit": self.unit,
            "lru_hit_ratio": c.lru.hit_ratio(),
            "prefetch_hit_ratio": p.hit_ratio(),
            "belady_hit_ratio": c.belady.hit_ratio(),
            "gap_closed": c.gap_closed(),
            "prefetch_accuracy": p.accuracy(),
            "prefetch_coverage": p.coverage(),
            "prefetch_timely": p.timeliness(),
            "prefetch_issued": p.total.issued,
            "prefetch_used": p.total.used,
            "prefetch_bytes": p.total.bytes,
            "forecast_model": self.chosen.map(|s| s.model.clone()),
            "forecast_wape": self.chosen.map(|s| s.wape_all),
            "forecast_mase": self.chosen.map(|s| s.mase_all),
            "forecasters": forecasters,
            "predictor": self.config,
            "read_seconds": self.seconds.0,
            "simulate_seconds": self.seconds.1,
        })
    }

    fn print(&self) {
        let c = self.comparison;
        let p = &c.prefetch;
        println!(
            "{} ({}): {} requests, {} regions, cache {} {} per region",
            self.trace.display(),
            self.format,
            self.requests,
            self.regions,
            self.spec,
            self.unit
        );
        println!(
            "  hit ratio      LRU {:.3} | LRU + prefetch {:.3} | Belady {:.3} | gap closed {:.0}%",
            c.lru.hit_ratio(),
            p.hit_ratio(),
            c.belady.hit_ratio(),
            100.0 * c.gap_closed()
        );
        println!(
            "  prefetch       issued {} | accuracy {:.3} | coverage {:.3} | timely {:.3} | {} bytes",
            p.total.issued,
            p.accuracy(),
            p.coverage(),
            p.timeliness(),
            p.total.bytes
        );
        for s in self.scores.iter().filter(|s| s.points > 0) {
            println!(
                "  forecast {:<15} WAPE {:.3} | MASE {:.3} (1 step: WAPE {:.3}, MASE {:.3})",
                s.model, s.wape_all, s.mase_all, s.wape_one, s.mase_one
            );
        }
        println!(
            "  read {:.1} s, simulated {:.1} s",
            self.seconds.0, self.seconds.1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse() {
        assert_eq!(parse_cache_size("1%").unwrap(), CacheSize::Share(0.01));
        assert_eq!(parse_cache_size("0.1").unwrap(), CacheSize::Share(0.1));
        assert_eq!(parse_cache_size("5000").unwrap(), CacheSize::Absolute(5000));
        assert!(parse_cache_size("0").is_err());
        assert!(parse_cache_size("-1%").is_err());
        assert!(parse_cache_size("lots").is_err());
    }
}
