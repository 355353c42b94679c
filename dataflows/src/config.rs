//! `pipelines.toml`: the pipelines an operator runs and an analyst tunes.
//!
//! Every key is checked: an unknown key, a value of the wrong type, or a value out of range is rejected
//! at start with the file, the line and the reason (`pipelines.toml:14: unknown field "windw", ...`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use shardcast_operators::PartitionPolicy;
use shardcast_sources::GeneratorConfig;
use toml::Spanned;

use crate::Millis;

/// The decision tables a job publishes (sinks and SQL).
pub const TABLE_NAMES: [&str; 14] = [
    "key_load",
    "affinity",
    "assignments",
    "dead_letters",
    "transitions",
    "co_access",
    "similar_messages",
    "prefetch",
    "prefetch_queue",
    "queue_stats",
    "key_index",
    "forecasts",
    "shards",
    "routing",
];

/// The embedded default configuration: what `shardcast run` uses with no `--config`.
pub const DEFAULT_PIPELINES: &str = include_str!("../../pipelines.toml");

/// A config file that could not be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key or value is wrong.
    #[error("{file}:{line}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the offending key or value (0 when unknown).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The whole file: named pipelines.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelinesFile {
    /// Pipelines by name; `default` is run when none is named.
    pub pipeline: BTreeMap<String, Spanned<PipelineConfig>>,
}

/// One pipeline: a source, the event-time settings, the decision policy and the sinks.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// `generator:`, `file:PATH` or `kafka://HOST:PORT/TOPIC`.
    #[serde(default = "default_source")]
    pub source: String,
    /// Length of one event-time epoch.
    pub tick: Spanned<Millis>,
    /// Length of the sliding window over which loads and affinities are computed; a multiple of `tick`.
    pub window: Spanned<Millis>,
    /// How far behind the source's progress an event may arrive and still be counted.
    #[serde(default)]
    pub allowed_lateness: Millis,
    /// Timely worker threads.
    #[serde(default = "default_workers")]
    pub workers: Spanned<usize>,
    /// Generator settings (for `generator:`).
    #[serde(default = "default_generator")]
    pub generator: Spanned<GeneratorConfig>,
    /// File replay settings (for `file:`).
    #[serde(default = "default_file")]
    pub file: Spanned<FileConfig>,
    /// Kafka consumer settings (for `kafka://`).
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// The optimal-partition policy.
    #[serde(default = "default_partition")]
    pub partition: Spanned<PartitionConfig>,
    /// Where decisions go.
    #[serde(default = "default_sinks")]
    pub sinks: Spanned<SinksConfig>,
    /// The SQL endpoint.
    #[serde(default = "default_sql")]
    pub sql: Spanned<SqlConfig>,
    /// Next-access prediction, prefetch priorities and the prefetch executor.
    #[serde(default = "default_prefetch")]
    pub prefetch: Spanned<PrefetchConfig>,
    /// Load forecasts.
    #[serde(default = "default_forecast")]
    pub forecast: Spanned<ForecastSection>,
    /// The shard map, its balancer, the routing API and the migration executor.
    #[serde(default = "default_shards")]
    pub shards: Spanned<crate::ShardsSection>,
}

fn default_source() -> String {
    "generator:".into()
}
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}
fn default_generator() -> Spanned<GeneratorConfig> {
    unspanned(GeneratorConfig::default())
}
fn default_file() -> Spanned<FileConfig> {
    unspanned(FileConfig::default())
}
fn default_sinks() -> Spanned<SinksConfig> {
    unspanned(SinksConfig::default())
}
fn default_sql() -> Spanned<SqlConfig> {
    unspanned(SqlConfig::default())
}
fn default_partition() -> Spanned<PartitionConfig> {
    Spanned::new(0..0, PartitionConfig::default())
}
fn default_prefetch() -> Spanned<PrefetchConfig> {
    unspanned(PrefetchConfig::default())
}
fn default_forecast() -> Spanned<ForecastSection> {
    unspanned(ForecastSection::default())
}
fn default_shards() -> Spanned<crate::ShardsSection> {
    unspanned(crate::ShardsSection::default())
}
fn default_workers() -> Spanned<usize> {
    Spanned::new(0..0, 2)
}

/// File replay settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Unit of `ts` in the file: `s`, `ms` or `us` (normalized traces use seconds).
    pub ts_unit: String,
    /// 0 replays as fast as possible; otherwise this many times real time.
    pub speed: f64,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            ts_unit: "s".into(),
            speed: 0.0,
        }
    }
}

/// Kafka consumer settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Consumer group; the topic's partitions are spread over the workers of the group.
    pub group: String,
    /// A partition silent this long stops holding back event-time progress.
    pub idle_timeout: Millis,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            group: "shardcast".into(),
            idle_timeout: Millis(5_000),
        }
    }
}

/// The optimal-partition policy as written in config (durations instead of epochs).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionConfig {
    /// Partitions to choose from; empty = the customer's home plus the regions it accesses from.
    pub partitions: Vec<String>,
    /// Bonus of the customer's static (home) partition (default 0.4; seed 001: 0.5).
    pub static_weight: f64,
    /// Weight of the affinity share (default 0.6; seed 001: 0.5).
    pub affinity_weight: f64,
    /// Weight of the penalty for a partition's share of the load.
    pub load_weight: f64,
    /// Score margin a move must win by.
    pub hysteresis: f64,
    /// Minimum time on a partition before moving again.
    pub min_dwell: Millis,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        let p = PartitionPolicy::default();
        PartitionConfig {
            partitions: p.partitions,
            static_weight: p.static_weight,
            affinity_weight: p.affinity_weight,
            load_weight: p.load_weight,
            hysteresis: p.hysteresis,
            min_dwell: Millis(0),
        }
    }
}

/// Where decision changelogs go. Every sink is optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// Write JSON lines of every change to stdout.
    pub stdout: bool,
    /// Append JSON lines of every change to this file.
    pub jsonl: Option<String>,
    /// Produce the changelog to `kafka://HOST:PORT/TOPIC`.
    pub kafka: Option<String>,
    /// Keep current tables in Redis at this URL (`redis://HOST:PORT`).
    pub redis: Option<String>,
    /// Key prefix in Redis.
    pub redis_prefix: Option<String>,
    /// Tables kept in Redis (default: `assignments`).
    pub redis_tables: Option<Vec<String>>,
}

/// Next-access prediction and prefetch, as written in config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrefetchConfig {
    /// Run the prediction family (tables transitions, prefetch, prefetch_queue, key_index).
    pub enabled: bool,
    /// Two accesses of a client at most this far apart form a transition "after X comes Y".
    pub pair_gap: Millis,
    /// A client silent this long starts a new session.
    pub session_gap: Millis,
    /// Successors kept per key.
    pub top_k: usize,
    /// Pseudo-count shrinking the confidence of rarely seen keys.
    pub prior: f64,
    /// Transitions seen fewer times in the window are not predictions.
    pub min_count: u64,
    /// Predictions less confident than this are not prefetched.
    pub threshold: f64,
    /// Bytes each region's cache may receive per epoch. `kill -HUP` re-reads it while the job runs.
    pub budget_bytes: u64,
    /// A queued prediction not consumed within this time is invalidated.
    pub queue_timeout: Millis,
    /// Entries per consumer queue.
    pub queue_capacity: usize,
    /// Messages (events with `attrs.payload`) this similar by MinHash-estimated Jaccard similarity of
    /// their words are offered to the consumers of one another (seed 003); 0 turns it off.
    pub similarity_threshold: f64,
    /// The primary store the executor copies from (`redis://HOST:PORT`); no executor when absent.
    pub primary: Option<String>,
    /// Region name -> regional cache (`redis://HOST:PORT`) the executor copies into.
    pub caches: BTreeMap<String, String>,
    /// Time to live of a prefetched copy.
    pub ttl: Millis,
    /// Data keys live under this prefix in every store.
    pub key_prefix: String,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        let p = crate::PredictionConfig::default();
        PrefetchConfig {
            enabled: true,
            pair_gap: Millis(p.sequence.pair_gap_ms),
            session_gap: Millis(p.sequence.session_gap_ms),
            top_k: p.transitions.top_k,
            prior: p.transitions.prior,
            min_count: p.transitions.min_count,
            threshold: p.threshold,
            budget_bytes: 1 << 20,
            queue_timeout: Millis(10_000),
            queue_capacity: p.queue.capacity,
            similarity_threshold: p.similarity.map_or(0.0, |s| s.threshold),
            primary: None,
            caches: BTreeMap::new(),
            ttl: Millis(600_000),
            key_prefix: "data:".into(),
        }
    }
}

/// Load forecasts, as written in config.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForecastSection {
    /// Run the forecast family (table `forecasts`).
    pub enabled: bool,
    /// Series to forecast: any of `key`, `partition`, `shard`.
    pub levels: Vec<crate::ForecastLevel>,
    /// Shards (hash ranges of keys) for the `shard` level.
    pub shards: u32,
    /// Keys forecast by the `key` level: the most accessed over the window.
    pub top_keys: usize,
    /// `last`, `ewma`, `holt`, `seasonal-naive` or `onnx`.
    pub model: String,
    /// The ONNX model file for `model = "onnx"` (see models/README.md for its signature).
    pub onnx_model: Option<String>,
    /// Epochs per season of `seasonal-naive`.
    pub season: usize,
    /// Epochs of history kept per series.
    pub history: usize,
    /// Epochs forecast ahead.
    pub horizon: usize,
}

impl Default for ForecastSection {
    fn default() -> Self {
        let c = crate::ForecastConfig::default();
        ForecastSection {
            enabled: true,
            levels: c.levels,
            shards: c.shards,
            top_keys: c.top_keys,
            model: "holt".into(),
            onnx_model: None,
            season: 1,
            history: c.settings.history,
            horizon: c.settings.horizon,
        }
    }
}

/// The SQL endpoint (PostgreSQL wire protocol).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqlConfig {
    /// Loopback address to listen on, or `off`.
    pub listen: String,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            listen: "127.0.0.1:5433".into(),
        }
    }
}

impl PipelineConfig {
    /// The partition policy in epochs of this pipeline's tick.
    pub fn policy(&self) -> PartitionPolicy {
        let p = self.partition.get_ref();
        PartitionPolicy {
            partitions: p.partitions.clone(),
            static_weight: p.static_weight,
            affinity_weight: p.affinity_weight,
            load_weight: p.load_weight,
            hysteresis: p.hysteresis,
            min_dwell: p.min_dwell.0.div_ceil(self.tick_ms()),
        }
    }

    /// Tick in milliseconds.
    pub fn tick_ms(&self) -> u64 {
        self.tick.get_ref().0
    }

    /// Window length in epochs.
    pub fn window_epochs(&self) -> u64 {
        self.window.get_ref().0 / self.tick_ms()
    }

    /// The forecast family's settings, or `None` when disabled.
    pub fn forecast(&self) -> Option<crate::ForecastConfig> {
        let f = self.forecast.get_ref();
        f.enabled.then(|| crate::ForecastConfig {
            levels: f.levels.clone(),
            shards: f.shards,
            top_keys: f.top_keys,
            settings: shardcast_operators::forecast::ForecastSettings {
                history: f.history,
                horizon: f.horizon,
                tick_ms: self.tick_ms(),
                ..Default::default()
            },
        })
    }

    /// The shard family's settings, or `None` when disabled.
    pub fn shards(&self) -> Option<crate::ShardsConfig> {
        let s = self.shards.get_ref();
        s.enabled
            .then(|| s.family_config(self.tick_ms(), self.forecast.get_ref().history))
    }

    /// The prediction family's settings in epochs of this pipeline's tick, or `None` when disabled.
    pub fn prediction(&self) -> Option<crate::PredictionConfig> {
        let p = self.prefetch.get_ref();
        p.enabled.then(|| crate::PredictionConfig {
            sequence: shardcast_operators::SequenceConfig {
                pair_gap_ms: p.pair_gap.0,
                session_gap_ms: p.session_gap.0,
            },
            transitions: shardcast_operators::TransitionConfig {
                top_k: p.top_k,
                prior: p.prior,
                min_count: p.min_count,
            },
            threshold: p.threshold,
            queue: shardcast_operators::QueueConfig {
                timeout_epochs: p.queue_timeout.0.div_ceil(self.tick_ms()).max(1),
                capacity: p.queue_capacity,
            },
            similarity: (p.similarity_threshold > 0.0).then(|| {
                shardcast_operators::SimilarityConfig {
                    threshold: p.similarity_threshold,
                    ..Default::default()
                }
            }),
        })
    }
}

/// Loads pipeline `name` from `path`, or from the embedded default when `path` is `None`.
pub fn load_pipeline(path: Option<&Path>, name: &str) -> Result<PipelineConfig, ConfigError> {
    let (file, text) = match path {
        Some(p) => {
            let file = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                file: file.clone(),
                source,
            })?;
            (file, text)
        }
        None => (
            "pipelines.toml (embedded default)".to_string(),
            DEFAULT_PIPELINES.to_string(),
        ),
    };
    parse_pipeline(&file, &text, name)
}

/// Parses and validates pipeline `name` from `text` (the contents of `file`).
pub fn parse_pipeline(file: &str, text: &str, name: &str) -> Result<PipelineConfig, ConfigError> {
    let invalid = |span: Option<std::ops::Range<usize>>, reason: String| ConfigError::Invalid {
        file: file.to_string(),
        line: span.map(|s| line_of(text, s.start)).unwrap_or(0),
        reason,
    };
    let parsed: PipelinesFile =
        toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_string()))?;
    let Some(spanned) = parsed.pipeline.get(name) else {
        let names: Vec<&str> = parsed.pipeline.keys().map(String::as_str).collect();
        return Err(invalid(
            None,
            format!("no pipeline named {name:?} (defined: {})", names.join(", ")),
        ));
    };
    let pipeline = spanned.get_ref().clone();
    let tick = pipeline.tick.get_ref().0;
    if tick == 0 {
        return Err(invalid(
            Some(pipeline.tick.span()),
            "tick must be greater than 0".into(),
        ));
    }
    let window = pipeline.window.get_ref().0;
    if window < tick || window % tick != 0 {
        return Err(invalid(
            Some(pipeline.window.span()),
            format!(
                "window ({}) must be a positive multiple of tick ({})",
                pipeline.window.get_ref(),
                pipeline.tick.get_ref()
            ),
        ));
    }
    if *pipeline.workers.get_ref() == 0 || *pipeline.workers.get_ref() > 256 {
        return Err(invalid(
            Some(pipeline.workers.span()),
            "workers must be between 1 and 256".into(),
        ));
    }
    let p = pipeline.partition.get_ref();
    for (field, value) in [
        ("static_weight", p.static_weight),
        ("affinity_weight", p.affinity_weight),
        ("load_weight", p.load_weight),
        ("hysteresis", p.hysteresis),
    ] {
        if !value.is_finite() || value < 0.0 {
            return Err(invalid(
                Some(pipeline.partition.span()),
                format!("partition.{field} must be a finite number >= 0 (got {value})"),
            ));
        }
    }
    pipeline
        .generator
        .get_ref()
        .validate()
        .map_err(|e| invalid(Some(pipeline.generator.span()), format!("generator: {e}")))?;
    let speed = pipeline.file.get_ref().speed;
    if !speed.is_finite() || speed < 0.0 || (speed > 0.0 && speed < 1e-3) {
        return Err(invalid(
            Some(pipeline.file.span()),
            format!("file.speed must be 0 (as fast as possible) or at least 0.001 (got {speed})"),
        ));
    }
    let sinks = pipeline.sinks.get_ref();
    let sinks_error = |reason: String| invalid(Some(pipeline.sinks.span()), reason);
    if let Some(url) = &sinks.kafka {
        shardcast_sources::parse_kafka_url(url)
            .map_err(|e| sinks_error(format!("sinks.kafka: {e}")))?;
    }
    if let Some(url) = &sinks.redis {
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err(sinks_error(format!(
                "sinks.redis {url:?}: use redis://HOST:PORT"
            )));
        }
    }
    for table in sinks.redis_tables.iter().flatten() {
        if !TABLE_NAMES.contains(&table.as_str()) {
            return Err(sinks_error(format!(
                "sinks.redis_tables: unknown table {table:?} (tables: {})",
                TABLE_NAMES.join(", ")
            )));
        }
    }
    let f = pipeline.forecast.get_ref();
    let forecast_error = |reason: String| invalid(Some(pipeline.forecast.span()), reason);
    if !shardcast_operators::forecast::FORECASTER_KINDS.contains(&f.model.as_str()) {
        return Err(forecast_error(format!(
            "forecast.model {:?}: use one of {}",
            f.model,
            shardcast_operators::forecast::FORECASTER_KINDS.join(", ")
        )));
    }
    if f.model == "onnx" && f.onnx_model.is_none() {
        return Err(forecast_error(
            "forecast.model = \"onnx\" needs forecast.onnx_model, the model file".into(),
        ));
    }
    if f.history == 0 || f.horizon == 0 || f.shards == 0 {
        return Err(forecast_error(
            "forecast.history, forecast.horizon and forecast.shards must be at least 1".into(),
        ));
    }
    pipeline
        .shards
        .get_ref()
        .validate()
        .map_err(|e| invalid(Some(pipeline.shards.span()), e))?;
    validate_prefetch(&pipeline.prefetch)
        .map_err(|e| invalid(Some(pipeline.prefetch.span()), e))?;
    let listen = &pipeline.sql.get_ref().listen;
    if listen != "off" && listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(invalid(
            Some(pipeline.sql.span()),
            format!(
                "sql.listen {listen:?}: use a loopback address such as 127.0.0.1:5433, or \"off\""
            ),
        ));
    }
    crate::SourceSpec::parse(&pipeline.source, &pipeline)
        .map_err(|e| invalid(Some(spanned.span()), format!("source: {e}")))?;
    Ok(pipeline)
}

fn validate_prefetch(prefetch: &Spanned<PrefetchConfig>) -> Result<(), String> {
    let p = prefetch.get_ref();
    if !(0.0..=1.0).contains(&p.similarity_threshold) {
        return Err(format!(
            "prefetch.similarity_threshold must be between 0 and 1 (got {})",
            p.similarity_threshold
        ));
    }
    if !(0.0..=1.0).contains(&p.threshold) {
        return Err(format!(
            "prefetch.threshold must be between 0 and 1 (got {})",
            p.threshold
        ));
    }
    if !p.prior.is_finite() || p.prior < 0.0 {
        return Err(format!(
            "prefetch.prior must be a finite number >= 0 (got {})",
            p.prior
        ));
    }
    if p.top_k == 0 || p.queue_capacity == 0 {
        return Err("prefetch.top_k and prefetch.queue_capacity must be at least 1".into());
    }
    let redis_url = |what: &str, url: &str| {
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            Ok(())
        } else {
            Err(format!("prefetch.{what} {url:?}: use redis://HOST:PORT"))
        }
    };
    if let Some(primary) = &p.primary {
        redis_url("primary", primary)?;
        if p.caches.is_empty() {
            return Err("prefetch.primary is set but prefetch.caches names no region".into());
        }
    } else if !p.caches.is_empty() {
        return Err("prefetch.caches needs prefetch.primary, the store to copy from".into());
    }
    for (region, url) in &p.caches {
        redis_url(&format!("caches.{region}"), url)?;
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[pipeline.p]\ntick = \"1s\"\nwindow = \"10s\"\n";

    #[test]
    fn embedded_default_is_valid() {
        let p = load_pipeline(None, "default").unwrap();
        assert!(p.window_epochs() >= 1);
    }

    #[test]
    fn accepts_minimal_pipeline() {
        let p = parse_pipeline("t.toml", GOOD, "p").unwrap();
        assert_eq!(
            (p.tick_ms(), p.window_epochs(), *p.workers.get_ref()),
            (1000, 10, 2)
        );
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"10s\"\n\n[pipeline.p.partition]\nhysterisis = 0.2\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(err.starts_with("t.toml:6:"), "{err}");
        assert!(err.contains("hysterisis"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected_with_line() {
        let err = parse_pipeline(
            "t.toml",
            "[pipeline.p]\ntick = \"1s\"\nwindow = \"1500ms\"\n",
            "p",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("t.toml:3:")
                && err.to_string().contains("multiple of tick"),
            "{err}"
        );
        let err = parse_pipeline(
            "t.toml",
            "[pipeline.p]\ntick = \"1q\"\nwindow = \"1s\"\n",
            "p",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("t.toml:2:") && err.to_string().contains("unknown unit"),
            "{err}"
        );
        let err = parse_pipeline(
            "t.toml",
            "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\nworkers = 0\n",
            "p",
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("t.toml:4:"), "{err}");
        let err = parse_pipeline("t.toml", GOOD, "q").unwrap_err();
        assert!(err.to_string().contains("no pipeline named \"q\""), "{err}");
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.sinks]\nredis_tables = [\"assignment\"]\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:5:") && err.contains("unknown table"),
            "{err}"
        );
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.generator]\ncustomers = 0\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:5:") && err.contains("generator"),
            "{err}"
        );
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n[pipeline.p.sql]\nlisten = \"localhost\"\n";
        assert!(parse_pipeline("t.toml", text, "p")
            .unwrap_err()
            .to_string()
            .starts_with("t.toml:4:"));
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.prefetch]\nthreshold = 1.5\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:5:") && err.contains("threshold"),
            "{err}"
        );
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.prefetch]\ncaches = { eu = \"redis://x:1\" }\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(err.contains("needs prefetch.primary"), "{err}");
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.forecast]\nmodel = \"prophet\"\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:5:") && err.contains("prophet"),
            "{err}"
        );
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.shards]\nmode = \"eager\"\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:5:") && err.contains("eager"),
            "{err}"
        );
        let text =
            "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.shards]\nsplit_at = 0.4\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(err.contains("split_at"), "{err}");
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.shards]\nstores = { node-a = \"redis://x:1\" }\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(
            err.contains("no store for node") || err.contains("coordinator"),
            "{err}"
        );
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.shards]\nmode = \"reactive\"\nsustain = \"3s\"\ncooldown = \"5s\"\n";
        let p = parse_pipeline("t.toml", text, "p").unwrap();
        let config = p.shards().unwrap();
        assert_eq!(
            config.balance.mode,
            shardcast_shardmap::BalanceMode::Reactive { sustain_windows: 3 }
        );
        assert_eq!(config.balance.cooldown_windows, 5);
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.forecast]\nmodel = \"onnx\"\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(err.contains("onnx_model"), "{err}");
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\n\n[pipeline.p.forecast]\nlevels = [\"region\"]\n";
        let err = parse_pipeline("t.toml", text, "p").unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml:6:") && err.contains("region"),
            "{err}"
        );
        let text = "[pipeline.p]\ntick = \"1s\"\nwindow = \"1s\"\nsource = \"ftp://x\"\n";
        assert!(parse_pipeline("t.toml", text, "p")
            .unwrap_err()
            .to_string()
            .contains("source"));
    }
}
