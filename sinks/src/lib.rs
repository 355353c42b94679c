//! Decision changelog sinks for shardcast.
//!
//! The dataflow hands each completed epoch (a *version*) to a [`Sink`] as a slice of
//! [`Change`]s. Sinks: [`JsonLinesSink`] (file or stdout), [`KafkaChangelogSink`] (a changelog
//! topic), [`RedisTableSink`] (current table state, read back with [`read_table`]), and
//! [`Fanout`] to write to several. Networked sinks retry outages via [`retry`].
//!
//! [`PrefetchExecutor`] carries out prefetch orders: it copies predicted data from the primary
//! store into regional Redis caches.
//!
//! The [`migration`] module moves shards between Redis nodes without losing a write: shadow
//! copies, switchovers under fenced locks, splits and merges, replica failover, and the
//! [`RoutingClient`] services read and write through.
//!
//! The [`routing`] API serves the shard map and each customer's partition over HTTP
//! ([`RoutingServer`]), with a blocking client ([`RoutingHttpClient`]) and a cached one
//! ([`CachedRouter`]).

mod backoff;
mod change;
mod error;
mod fanout;
mod json_lines;
mod kafka_changelog;
mod kafka_reader;
pub mod migration;
pub mod prefetch;
mod record;
mod redis_read;
mod redis_table;
pub mod routing;
pub mod testing;

pub use backoff::{retry, RetryPolicy};
pub use change::{Change, Sink};
pub use error::SinkError;
pub use fanout::{Fanout, SinkStats};
pub use json_lines::JsonLinesSink;
pub use kafka_changelog::{KafkaChangelogSink, KafkaSinkOptions};
pub use kafka_reader::{
    read_changelog, read_last_record, ChangelogRecord, CHANGELOG_PARTITION, COUNT_HEADER,
    INDEX_HEADER, VERSION_HEADER,
};
pub use migration::{
    Executor, MapSource, MigrationError, NodeSet, RoutingClient, RoutingStore, ShadowCopy,
    Switchover,
};
pub use prefetch::{
    read_landed, PrefetchExecutor, PrefetchExecutorConfig, PrefetchOrder, PrefetchStats,
    RegionStats, SubmitError, SubmitOutcome,
};
pub use record::{canonical_order, encode_record};
pub use redis_read::read_table;
pub use redis_table::{table_key, version_key, RedisSinkOptions, RedisTableSink};
pub use routing::{
    CachedRouter, PartitionView, RoutingError, RoutingHttpClient, RoutingServer, RoutingState,
};
