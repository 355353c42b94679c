//! shardcast's decision dataflows, assembled from `pipelines.toml`, and the worker runtime that feeds
//! them from a source and reports their changes epoch by epoch.

mod access;
mod affinity_family;
mod config;
mod decision;
mod duration;
mod finish_line;
mod forecast_family;
mod in_memory;
mod job;
mod prediction_family;
mod shard_family;
mod shards_config;
mod source_spec;

pub use access::Access;
pub use affinity_family::{access_of, affinity_family, home_of, AccessTuple};
pub use config::{
    load_pipeline, parse_pipeline, ConfigError, FileConfig, ForecastSection, KafkaConfig,
    PartitionConfig, PipelineConfig, PipelinesFile, PrefetchConfig, SinksConfig, SqlConfig,
    DEFAULT_PIPELINES, TABLE_NAMES,
};
pub use decision::{Decision, KeyIndexEntry, PrefetchOrder};
pub use duration::Millis;
pub use finish_line::FinishLine;
pub use forecast_family::{forecast_family, ForecastConfig, ForecastLevel};
pub use in_memory::{run_in_memory, InMemoryDataflow};
pub use job::{run_job, JobOptions, WorkerReport};
pub use prediction_family::{prediction_family, PredictionConfig};
pub use shard_family::{shard_family, ShardsConfig};
pub use shardcast_operators::Score;
pub use shards_config::{ShardsSection, SHARD_MODES};
pub use source_spec::SourceSpec;
