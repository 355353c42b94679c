//! Which source a pipeline reads, parsed from its URL, and how each worker opens its share of it.

use std::path::PathBuf;

use shardcast_sources::{
    parse_kafka_url, FileOptions, FileSource, Generator, GeneratorConfig, KafkaSource,
    KafkaSourceConfig, Source, SourceError, TsUnit,
};

use crate::PipelineConfig;

/// A source named by URL: `generator:`, `file:PATH` or `kafka://HOST:PORT/TOPIC`.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    /// The embedded workload generator.
    Generator(GeneratorConfig),
    /// A trace or JSON-lines file.
    File {
        /// The file.
        path: PathBuf,
        /// Unit of its timestamps.
        ts_unit: TsUnit,
        /// `None`: as fast as possible; `Some(x)`: x times real time.
        speed: Option<f64>,
    },
    /// A Kafka topic read by a consumer group spread over the workers.
    Kafka(KafkaSourceConfig),
}

impl SourceSpec {
    /// Parses `url` with the settings of `pipeline`.
    pub fn parse(url: &str, pipeline: &PipelineConfig) -> Result<Self, SourceError> {
        if url == "generator:" || url == "generator" {
            return Ok(SourceSpec::Generator(pipeline.generator.get_ref().clone()));
        }
        if let Some(path) = url.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SourceError::Invalid(
                    "file: needs a path, e.g. file:trace.csv.gz".into(),
                ));
            }
            let ts_unit: TsUnit = pipeline.file.get_ref().ts_unit.parse().map_err(|_| {
                SourceError::Invalid(format!(
                    "file.ts_unit {:?}: use s, ms or us",
                    pipeline.file.get_ref().ts_unit
                ))
            })?;
            let speed = pipeline.file.get_ref().speed;
            let speed = (speed > 0.0).then_some(speed);
            return Ok(SourceSpec::File {
                path: PathBuf::from(path),
                ts_unit,
                speed,
            });
        }
        if url.starts_with("kafka://") {
            let (brokers, topic) = parse_kafka_url(url)?;
            return Ok(SourceSpec::Kafka(KafkaSourceConfig {
                brokers,
                topic,
                group_id: pipeline.kafka.group.clone(),
                idle_timeout_ms: pipeline.kafka.idle_timeout.0,
            }));
        }
        Err(SourceError::Invalid(format!(
            "unknown source {url:?}: use generator:, file:PATH or kafka://HOST:PORT/TOPIC"
        )))
    }

    /// Opens worker `index`'s share of the source (of `peers` workers).
    pub fn open(&self, index: usize, peers: usize) -> Result<Box<dyn Source>, SourceError> {
        Ok(match self {
            SourceSpec::Generator(config) => {
                Box::new(Generator::new(config.clone(), index, peers)?)
            }
            SourceSpec::File {
                path,
                ts_unit,
                speed,
            } => Box::new(FileSource::open(
                path,
                FileOptions {
                    ts_unit: *ts_unit,
                    speed: *speed,
                    worker_index: index,
                    workers: peers,
                },
            )?),
            SourceSpec::Kafka(config) => {
                Box::new(KafkaSource::for_worker(config.clone(), index, peers)?)
            }
        })
    }

    /// A short description for logs and status lines.
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Generator(c) => format!("generator (seed {})", c.seed),
            SourceSpec::File { path, .. } => format!("file {}", path.display()),
            SourceSpec::Kafka(c) => {
                format!("kafka://{}/{} (group {})", c.brokers, c.topic, c.group_id)
            }
        }
    }
}
