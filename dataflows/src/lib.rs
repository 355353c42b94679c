//! shardcast's decision dataflows, assembled from `pipelines.toml`, and the worker runtime that feeds
//! them from a source and reports their changes epoch by epoch.

mod affinity_family;
mod config;
mod duration;
mod finish_line;
mod in_memory;
mod job;
mod source_spec;

pub use affinity_family::{access_of, affinity_family, home_of, AccessTuple, Decision};
pub use config::{
    load_pipeline, parse_pipeline, ConfigError, FileConfig, KafkaConfig, PartitionConfig,
    PipelineConfig, PipelinesFile, SinksConfig, SqlConfig, DEFAULT_PIPELINES,
};
pub use duration::Millis;
pub use finish_line::FinishLine;
pub use in_memory::{run_in_memory, InMemoryDataflow};
pub use job::{run_job, JobOptions, WorkerReport};
pub use source_spec::SourceSpec;
