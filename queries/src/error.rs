//! The one error type of this crate.

use std::net::SocketAddr;

use datafusion::error::DataFusionError;

/// Everything that can go wrong while publishing snapshots, running SQL over
/// them, serving them over the PostgreSQL wire protocol or querying a remote
/// job. Messages are meant to be shown to an operator as they are.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Rows could not be converted to or described as Arrow data.
    #[error("cannot convert rows to Arrow: {0}")]
    Rows(#[from] serde_arrow::Error),

    /// Arrow rejected a batch (for example a column of the wrong type).
    #[error("invalid Arrow data: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// DataFusion could not plan or run the SQL (syntax error, unknown
    /// column, read-only violation, ...). Boxed because the DataFusion error
    /// is large and this type travels through every `Result`.
    #[error("SQL error: {0}")]
    Sql(Box<DataFusionError>),

    /// A publish named a table that was not declared in
    /// [`SnapshotStore::new`](crate::SnapshotStore::new).
    #[error(
        "cannot publish table `{table}`: it was not declared when the snapshot store was created"
    )]
    UnknownTable {
        /// The undeclared table name.
        table: String,
    },

    /// A publish named the same table twice.
    #[error("cannot publish table `{table}` twice in one snapshot")]
    DuplicateTable {
        /// The repeated table name.
        table: String,
    },

    /// A published batch does not have the declared schema of its table.
    #[error("cannot publish table `{table}`: {reason}")]
    SchemaMismatch {
        /// The table whose batch was rejected.
        table: String,
        /// What differs from the declared schema.
        reason: String,
    },

    /// A publish carried an epoch older than the snapshot already visible;
    /// accepting it would move readers backwards in time.
    #[error("cannot publish epoch {published}: epoch {current} is already published")]
    StaleEpoch {
        /// The rejected epoch.
        published: u64,
        /// The epoch that stays visible.
        current: u64,
    },

    /// The SQL endpoint has no authentication, so it refuses to listen on a
    /// non-loopback address.
    #[error(
        "refusing to serve SQL on {addr}: the endpoint has no authentication, \
         so it only listens on loopback addresses (127.0.0.1 or ::1)"
    )]
    NotLoopback {
        /// The rejected address.
        addr: SocketAddr,
    },

    /// The listening socket could not be bound (address in use, permission
    /// denied, ...).
    #[error("cannot serve SQL on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },

    /// The background runtime or thread for the SQL server could not start.
    #[error("cannot start the SQL server thread: {0}")]
    Runtime(#[source] std::io::Error),

    /// `run_remote_query` was given an address it cannot parse.
    #[error("invalid SQL endpoint address `{addr}`: expected HOST:PORT")]
    InvalidAddress {
        /// The address as given.
        addr: String,
    },

    /// Nothing accepts connections at the address: the job is down or
    /// listens elsewhere.
    #[error(
        "no shardcast SQL endpoint at {addr} (connection refused): the job is not running, \
         or it was started with a different --sql-listen address"
    )]
    ConnectionRefused {
        /// The address that refused the connection.
        addr: String,
    },

    /// Connecting to a remote job failed for another reason (timeout,
    /// protocol error, ...).
    #[error("cannot connect to the shardcast SQL endpoint at {addr}: {message}")]
    Connect {
        /// The address that was tried.
        addr: String,
        /// The client's description of the failure, with its causes.
        message: String,
    },

    /// The remote job rejected or failed the query.
    #[error("query failed on {addr}: {message}")]
    Remote {
        /// The address that was queried.
        addr: String,
        /// The server's error message.
        message: String,
    },
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        QueryError::Sql(Box::new(error))
    }
}
