//! `shardcast replay`: a trace through the next-access predictor and the forecasters, with the cache
//! it would feed simulated next to LRU alone and the offline Belady bound, and through the shard
//! balancer (predictive, reactive and static hashing on the same initial layout).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use shardcast_operators::forecast::{
    forecaster_from_config, shard_series, Evaluation, Forecaster, Score, ShardLoadForecaster,
    FORECASTER_KINDS,
};
use shardcast_replay::{
    compare, compare_balance, BalanceComparison, BalanceConfig, BalanceOptions, BalanceReport,
    CacheSize, CacheSpec, CacheUnit, Comparison, NextAccessPredictor, PredictorConfig,
    PrefetchOptions, Threshold, Trace, TraceBuilder,
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
    /// Window of the shard balance replay, ms (default: the forecast epoch).
    #[arg(long)]
    balance_window_ms: Option<u64>,
    /// Nodes the shards are placed on (the initial shards are `--shards`, round-robin).
    #[arg(long, default_value_t = 8)]
    nodes: usize,
    /// Split a shard whose load (predictive: forecast) exceeds this multiple of the mean shard load
    /// of the initial layout.
    #[arg(long, default_value_t = DEFAULT_SPLIT_AT)]
    split_at: f64,
    /// Merge neighbours whose combined load stays under this multiple of that mean.
    #[arg(long, default_value_t = DEFAULT_MERGE_AT)]
    merge_at: f64,
    /// Reactive balancer: windows above the split level before a split.
    #[arg(long, default_value_t = 3)]
    sustain_windows: u32,
    /// Windows a shard is left alone after a change.
    #[arg(long, default_value_t = BalanceConfig::default().cooldown_windows)]
    cooldown_windows: u64,
    /// Windows within which the halves of a split are never merged.
    #[arg(long, default_value_t = BalanceConfig::default().merge_delay_windows)]
    merge_delay_windows: u64,
    /// Share of a window's load that may change node per balancing round.
    #[arg(long, default_value_t = BalanceConfig::default().churn_budget)]
    churn_budget: f64,
    /// Predictive balancer: windows ahead the forecast is checked against the split level.
    #[arg(long, default_value_t = BalanceConfig::default().horizon)]
    balance_horizon: usize,
    /// Predictive balancer: windows beyond the horizon at which shadow copies start.
    #[arg(long, default_value_t = BalanceConfig::default().shadow_lead)]
    shadow_lead: usize,
    /// Predictive balancer: a forecast must clear the split level by this many typical forecast
    /// errors of its shard.
    #[arg(long, default_value_t = BalanceConfig::default().confidence)]
    confidence: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Default `--split-at`: a shard with twice its fair share of the initial layout is hot (the
/// default of `pipelines.toml` too).
const DEFAULT_SPLIT_AT: f64 = 2.0;
/// Default `--merge-at`: neighbours that together carry less than one fair share merge, so the
/// shard count drifts back to the initial layout when a hot spot cools (with 0.5 it only grew: on
/// NASA at 60 s windows the predictive balancer ended with 25 shards instead of 14, and max/mean
/// shard load grew with the count); the halves of a fresh split, about 1x each, stay apart.
const DEFAULT_MERGE_AT: f64 = 1.0;

/// The balance replay's settings from the command line.
fn balance_options(args: &ReplayArgs, window_ms: u64) -> anyhow::Result<BalanceOptions> {
    let config = BalanceConfig {
        split_load: Threshold::MeanMultiple(args.split_at),
        merge_load: Threshold::MeanMultiple(args.merge_at),
        cooldown_windows: args.cooldown_windows,
        merge_delay_windows: args.merge_delay_windows,
        churn_budget: args.churn_budget,
        horizon: args.balance_horizon,
        shadow_lead: args.shadow_lead,
        confidence: args.confidence,
        max_shards: BalanceConfig::default()
            .max_shards
            .max(args.shards as usize),
        ..BalanceConfig::default()
    };
    config.validate().context("balance settings")?;
    if args.sustain_windows == 0 {
        bail!("--sustain-windows must be at least 1");
    }
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    Ok(BalanceOptions {
        window_ms: window_ms.max(1),
        initial_shards: u64::from(args.shards.max(1)),
        nodes: args.nodes,
        replicas: usize::from(args.nodes > 1),
        config,
    })
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

    // Shard balance: the same forecaster drives the predictive balancer.
    let balance_window = args.balance_window_ms.unwrap_or(tick).max(1);
    let options = balance_options(&args, balance_window)?;
    let wanted = chosen.as_ref().map_or("holt", |s| s.model.as_str());
    let index = models
        .iter()
        .position(|m| m.name() == wanted)
        .or_else(|| models.iter().position(|m| m.name() == "holt"))
        .context("the holt baseline is always built")?;
    let mut load_forecaster = ShardLoadForecaster::new(models.swap_remove(index), balance_window);
    let balanced = Instant::now();
    let balance = compare_balance(
        &trace.requests,
        &trace.keys,
        &options,
        args.sustain_windows,
        &mut load_forecaster,
    )?;
    let balance_secs = balanced.elapsed().as_secs_f64();

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
        balance: &balance,
        balance_options: &options,
        balance_forecaster: load_forecaster.name(),
        seconds: (read_secs, simulate_secs, balance_secs),
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
    balance: &'a BalanceComparison,
    balance_options: &'a BalanceOptions,
    balance_forecaster: &'a str,
    seconds: (f64, f64, f64),
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
        let mut report = json!({
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
        });
        if let (Some(fields), serde_json::Value::Object(balance)) =
            (report.as_object_mut(), self.balance_json())
        {
            fields.extend(balance);
        }
        report
    }

    /// The balance fields of `--json`: the predictive balancer's figures unprefixed, the reactive
    /// and static ones prefixed, and every report whole under `balance`.
    fn balance_json(&self) -> serde_json::Value {
        let b = self.balance;
        let (p, r, s) = (&b.predictive, &b.reactive, &b.static_hashing);
        let o = self.balance_options;
        let spread = |prefix: &str, r: &BalanceReport| {
            [
                (format!("{prefix}balance_p50"), json!(r.shard_balance.p50)),
                (format!("{prefix}balance_p95"), json!(r.shard_balance.p95)),
                (format!("{prefix}balance_max"), json!(r.shard_balance.max)),
                (
                    format!("{prefix}node_balance_p50"),
                    json!(r.node_balance.p50),
                ),
                (
                    format!("{prefix}node_balance_p95"),
                    json!(r.node_balance.p95),
                ),
                (
                    format!("{prefix}node_balance_max"),
                    json!(r.node_balance.max),
                ),
            ]
        };
        let churn = |prefix: &str, r: &BalanceReport| {
            [
                (
                    format!("{prefix}load_moved_per_hour"),
                    json!(r.load_moved_per_hour),
                ),
                (
                    format!("{prefix}keys_moved_per_hour"),
                    json!(r.keys_moved_per_hour),
                ),
                (format!("{prefix}move_backs"), json!(r.move_backs)),
                (format!("{prefix}splits"), json!(r.splits)),
                (format!("{prefix}merges"), json!(r.merges)),
                (format!("{prefix}moves"), json!(r.moves)),
                (format!("{prefix}final_shards"), json!(r.final_shards)),
            ]
        };
        let mut fields: serde_json::Map<String, serde_json::Value> = spread("", p)
            .into_iter()
            .chain(churn("", p))
            .chain(spread("static_", s))
            .chain(spread("reactive_", r))
            .chain(churn("reactive_", r))
            .collect();
        fields.extend([
            ("shadows".to_string(), json!(p.shadows)),
            ("shadowed_moves".to_string(), json!(p.shadowed_moves)),
            ("balance_window_ms".to_string(), json!(o.window_ms)),
            ("balance_nodes".to_string(), json!(o.nodes)),
            (
                "balance_initial_shards".to_string(),
                json!(o.initial_shards),
            ),
            (
                "balance_forecaster".to_string(),
                json!(self.balance_forecaster),
            ),
            ("balance_seconds".to_string(), json!(self.seconds.2)),
            (
                "balance".to_string(),
                json!({"config": o.config, "predictive": p, "reactive": r, "static": s}),
            ),
        ]);
        serde_json::Value::Object(fields)
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
        self.print_balance();
        println!(
            "  read {:.1} s, simulated {:.1} s, balanced {:.1} s",
            self.seconds.0, self.seconds.1, self.seconds.2
        );
    }

    fn print_balance(&self) {
        let o = self.balance_options;
        println!(
            "  balance        {} ms windows, {} shards at start on {} nodes; max/mean load p50 / p95 / max",
            o.window_ms, o.initial_shards, o.nodes
        );
        let b = self.balance;
        for (name, r) in [
            ("static", &b.static_hashing),
            ("reactive", &b.reactive),
            ("predictive", &b.predictive),
        ] {
            print_balance_row(name, r);
        }
        println!(
            "    predictive forecaster {}: {} shadow copies, {} promoted by their move ({:.1} windows ahead)",
            self.balance_forecaster,
            b.predictive.shadows,
            b.predictive.shadowed_moves,
            b.predictive.shadow_lead_windows
        );
    }
}

fn print_balance_row(name: &str, r: &BalanceReport) {
    println!(
        "    {name:<11}shards {:.2} / {:.2} / {:.2} | nodes {:.2} / {:.2} / {:.2} | {} splits, {} merges, \
         {} moves, {} move-backs, {} shards at end | moved per hour: {:.3} of a window's load, {:.3} of its keys",
        r.shard_balance.p50,
        r.shard_balance.p95,
        r.shard_balance.max,
        r.node_balance.p50,
        r.node_balance.p95,
        r.node_balance.max,
        r.splits,
        r.merges,
        r.moves,
        r.move_backs,
        r.final_shards,
        r.load_moved_per_hour,
        r.keys_moved_per_hour
    );
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
