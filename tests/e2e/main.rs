//! End-to-end tests of shardcast against real parts: the tansu Kafka-protocol broker, Redis servers,
//! psql, and the `shardcast` binary itself. One harness, so one test binary to build.

mod cli;
mod fixtures;
mod kafka_pipeline;
mod migration;
mod prefetch;
mod replay;
mod routing;
