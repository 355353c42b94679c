//! Integration tests of shardcast-queries, in one binary so DataFusion is
//! linked once.

mod common;
mod pg;
mod psql;
mod rows;
mod sql;
