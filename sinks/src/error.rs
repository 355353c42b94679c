//! The one error type every sink returns.

use std::time::Duration;

/// Why a sink could not write or flush.
///
/// Connection-level failures are [transient](SinkError::is_transient) and are retried by
/// [`crate::retry`] until its time budget runs out, after which they surface as
/// [`SinkError::GaveUp`].
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing a local file or stdout failed.
    #[error("{sink}: I/O error: {source}")]
    Io {
        /// The sink that failed.
        sink: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A change or a record read back could not be (de)serialized as JSON.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// A Kafka client, admin or delivery operation failed.
    #[error("kafka: {context}: {source}")]
    Kafka {
        /// What the sink was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A Redis command or connection failed.
    #[error("redis: {context}: {source}")]
    Redis {
        /// What the sink was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: redis::RedisError,
    },
    /// Data read back from a store did not have the expected shape, or a setting was invalid.
    #[error("{0}")]
    Invalid(String),
    /// A transient failure persisted for longer than the retry budget allowed.
    #[error("gave up on {what} after {attempts} attempts over {elapsed:?}: {last}")]
    GaveUp {
        /// The operation that was retried.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long was spent retrying.
        elapsed: Duration,
        /// The error of the last attempt.
        #[source]
        last: Box<SinkError>,
    },
    /// One or more sinks of a [`crate::Fanout`] failed; the others were still written.
    #[error("fanout: {failed} sink(s) failed, first {sink}: {first}")]
    Fanout {
        /// How many sinks failed.
        failed: usize,
        /// The name of the first sink that failed.
        sink: String,
        /// That sink's error.
        #[source]
        first: Box<SinkError>,
    },
}

impl SinkError {
    /// True if the error is likely to go away by waiting and retrying (broker or server down,
    /// connection dropped, timeouts); false for errors that retrying cannot fix (bad data,
    /// bad configuration, script errors).
    pub fn is_transient(&self) -> bool {
        use rdkafka::error::KafkaError;
        match self {
            SinkError::Io { .. } | SinkError::Json(_) | SinkError::Invalid(_) => false,
            SinkError::GaveUp { .. } | SinkError::Fanout { .. } => false,
            // Outages show up under many codes (transport, timeout, unknown partition while a
            // new topic propagates); only a client that cannot even be configured is hopeless.
            SinkError::Kafka { source, .. } => !matches!(
                source,
                KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)
            ),
            SinkError::Redis { source, .. } => {
                use redis::ErrorKind as K;
                source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || matches!(
                        source.kind(),
                        K::BusyLoadingError
                            | K::TryAgain
                            | K::ClusterDown
                            | K::MasterDown
                            | K::ReadOnly
                    )
            }
        }
    }

    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        SinkError::Kafka {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn redis(context: impl Into<String>, source: redis::RedisError) -> Self {
        SinkError::Redis {
            context: context.into(),
            source,
        }
    }
}
