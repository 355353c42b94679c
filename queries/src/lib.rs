//! Live SQL over shardcast's state.
//!
//! The job publishes the full contents of its tables after each completed
//! event-time epoch into a [`SnapshotStore`]; analysts query those
//! snapshots with SQL, in process ([`query`]) or over the PostgreSQL wire
//! protocol ([`serve_pg`], [`spawn_pg_server_thread`], and
//! [`run_remote_query`] on the client side). Every statement reads one
//! published snapshot, never a mix of epochs.

mod client;
mod epoch_table;
mod error;
mod pg_server;
mod pg_session;
mod pin;
mod read_only;
mod rows;
mod snapshot;
mod sql;
mod table;
mod text_table;

pub use client::run_remote_query;
pub use epoch_table::EPOCH_TABLE;
pub use error::QueryError;
pub use pg_server::{serve_pg, spawn_pg_server_thread, PgServerHandle};
pub use pin::{pinned_snapshot, with_snapshot};
pub use rows::{batch_from_rows, schema_of};
pub use snapshot::{Snapshot, SnapshotStore};
pub use sql::{format_batches, query};
pub use table::SnapshotTable;
