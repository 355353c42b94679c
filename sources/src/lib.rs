//! Sources of access events for shardcast: the [`Event`] model, decoders, and the generator, file and
//! Kafka sources. Every source yields `Result<Event, DeadLetter>` so a malformed record is reported, never
//! dropped.

mod block_on;
mod csv_line;
mod csv_trace;
mod dead_letter;
mod event;
mod file_source;
mod generator;
mod json;
mod kafka_admin;
mod kafka_source;
mod source;
mod traces;

pub use csv_trace::{FileFormat, TraceReader, TsUnit, TRACE_CSV_HEADER};
pub use dead_letter::DeadLetter;
pub use event::Event;
pub use file_source::{FileOptions, FileSource};
pub use generator::{Generator, GeneratorConfig};
pub use json::{decode_json, encode_json};
pub use kafka_admin::{ensure_topic, KafkaEventProducer};
pub use kafka_source::{parse_kafka_url, KafkaSource, KafkaSourceConfig};
pub use source::{Batch, Source};
pub use traces::{TraceFile, TraceFormat};

/// Why a source could not go on (as opposed to one bad record, which becomes a [`DeadLetter`]).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Kafka client reported an error that retrying will not fix.
    #[error("kafka: {0}")]
    Kafka(String),
    /// A source URL or setting is invalid.
    #[error("invalid source: {0}")]
    Invalid(String),
}
