//! The PostgreSQL wire-protocol endpoint over the live snapshots, so `psql`,
//! drivers and BI tools can query a running job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::TableReference;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::PgWireError;
use datafusion_postgres::pgwire::tokio::process_socket;
use datafusion_postgres::{DfSessionService, QueryHook};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::epoch_table::{EpochTable, EPOCH_TABLE};
use crate::pg_session::PinnedSessionService;
use crate::read_only::ReadOnlyHook;
use crate::sql::{CATALOG, SCHEMA};
use crate::{QueryError, SnapshotStore, SnapshotTable};

/// A running SQL endpoint. Dropping the handle stops the server, like
/// [`stop`](Self::stop) without waiting.
#[derive(Debug)]
#[must_use = "dropping the handle stops the SQL server"]
pub struct PgServerHandle {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PgServerHandle {
    /// The address actually bound (with the real port when asked for 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and closes every open connection
    /// (queries in flight are cancelled).
    ///
    /// For [`spawn_pg_server_thread`] this returns once the server thread
    /// and its runtime have shut down, so the port is free again. For
    /// [`serve_pg`] it returns at once; the runtime closes the listener and
    /// connections the next time it runs the server task.
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the SQL server thread panicked");
            }
        }
    }

    fn signal_stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the server already stopped.
            let _ = shutdown.send(());
        }
    }
}

impl Drop for PgServerHandle {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Serves the PostgreSQL wire protocol for `store` on `addr`, on the current
/// tokio runtime, and returns once the address is bound.
///
/// Every table declared in `store` is a table of schema `public` (database
/// `shardcast`), plus `shardcast_epoch`; `pg_catalog` is provided by
/// datafusion-postgres so `\d` and drivers work. Any user name and database
/// name is accepted without a password, which is why only loopback
/// addresses are allowed ([`QueryError::NotLoopback`] otherwise). Use port 0
/// to pick a free port and read it from [`PgServerHandle::local_addr`].
///
/// Consistency: each `Query` message (simple protocol) or portal (extended
/// protocol) reads exactly one published snapshot, pinned before planning,
/// for every table it touches; an explicit transaction block reads the
/// snapshot pinned by the statement that opened it until it ends. Different
/// messages outside a transaction may read different epochs; join
/// `shardcast_epoch` to see which one. The endpoint is read-only: DDL, DML,
/// `COPY` and `SET datafusion.*` are refused with SQLSTATE 25006.
pub async fn serve_pg(
    store: SnapshotStore,
    addr: SocketAddr,
) -> Result<PgServerHandle, QueryError> {
    check_loopback(addr)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| QueryError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| QueryError::Bind { addr, source })?;
    let handlers = Arc::new(Handlers::new(store)?);
    let (shutdown, stop) = oneshot::channel();
    tokio::spawn(accept_loop(listener, handlers, stop));
    tracing::info!(%local_addr, "serving SQL over the PostgreSQL protocol");
    Ok(PgServerHandle {
        local_addr,
        shutdown: Some(shutdown),
        thread: None,
    })
}

/// Like [`serve_pg`], but on a tokio runtime of its own (two worker
/// threads) driven by a background thread, for callers without a runtime
/// such as the job's synchronous timely loop. Returns once the address is
/// bound and the server is ready, so bind and startup errors are reported
/// here. May be called from inside another runtime: the server's runtime
/// is created and dropped on its own thread.
pub fn spawn_pg_server_thread(
    store: SnapshotStore,
    addr: SocketAddr,
) -> Result<PgServerHandle, QueryError> {
    check_loopback(addr)?;
    let std_listener =
        std::net::TcpListener::bind(addr).map_err(|source| QueryError::Bind { addr, source })?;
    let local_addr = std_listener
        .local_addr()
        .map_err(|source| QueryError::Bind { addr, source })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|source| QueryError::Bind { addr, source })?;
    let (ready, started) = std::sync::mpsc::channel();
    let (shutdown, stop) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("shardcast-sql".to_owned())
        .spawn(move || match start_runtime(std_listener, store, addr) {
            Err(error) => {
                let _ = ready.send(Err(error));
            }
            Ok((runtime, listener, handlers)) => {
                let _ = ready.send(Ok(()));
                runtime.block_on(accept_loop(listener, handlers, stop));
                // Dropping the runtime here cancels the remaining connection
                // tasks before the thread (and `stop`) finishes.
                drop(runtime);
            }
        })
        .map_err(QueryError::Runtime)?;
    let startup = started.recv().unwrap_or_else(|_| {
        Err(QueryError::Runtime(std::io::Error::other(
            "the SQL server thread exited during startup",
        )))
    });
    if let Err(error) = startup {
        let _ = thread.join();
        return Err(error);
    }
    tracing::info!(%local_addr, "serving SQL over the PostgreSQL protocol on a background thread");
    Ok(PgServerHandle {
        local_addr,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

/// Builds the server thread's runtime and, inside it, the listener and
/// handlers.
fn start_runtime(
    std_listener: std::net::TcpListener,
    store: SnapshotStore,
    addr: SocketAddr,
) -> Result<(tokio::runtime::Runtime, TcpListener, Arc<Handlers>), QueryError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shardcast-sql-worker")
        .enable_all()
        .build()
        .map_err(QueryError::Runtime)?;
    let (listener, handlers) = {
        // Registering the socket needs the runtime's reactor.
        let _entered = runtime.enter();
        let listener = TcpListener::from_std(std_listener)
            .map_err(|source| QueryError::Bind { addr, source })?;
        (listener, Arc::new(Handlers::new(store)?))
    };
    Ok((runtime, listener, handlers))
}

fn check_loopback(addr: SocketAddr) -> Result<(), QueryError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(QueryError::NotLoopback { addr })
    }
}

/// Accepts connections until `stop` fires (or its sender is dropped), then
/// drops every connection task with the `JoinSet`.
async fn accept_loop(
    listener: TcpListener,
    handlers: Arc<Handlers>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let handlers = handlers.clone();
                    connections.spawn(async move {
                        if let Err(error) = process_socket(socket, None, handlers).await {
                            tracing::debug!(%peer, %error, "SQL connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning on the error.
                    tracing::warn!(%error, "cannot accept SQL connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!("SQL server stopped");
}

/// The pgwire handlers: datafusion-postgres' session service behind the
/// snapshot pin, no authentication, cancel requests honoured.
struct Handlers {
    session: Arc<PinnedSessionService>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Handlers {
    fn new(store: SnapshotStore) -> Result<Self, QueryError> {
        let context = Arc::new(live_context(&store)?);
        // The read-only guard goes first so no other hook acts on a
        // refused statement.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnlyHook),
            Arc::new(datafusion_postgres::hooks::cursor::CursorStatementHook),
            Arc::new(datafusion_postgres::hooks::set_show::SetShowHook),
            Arc::new(datafusion_postgres::hooks::transactions::TransactionStatementHook),
        ];
        let service = DfSessionService::new_with_hooks(context, hooks);
        let connections = Arc::new(ConnectionManager::new());
        Ok(Handlers {
            session: Arc::new(PinnedSessionService::new(service, store)),
            startup: Arc::new(Startup {
                connections: connections.clone(),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        })
    }
}

/// The one DataFusion context shared by all connections: the live tables
/// (registered once; their contents come from the pinned snapshot at scan
/// time), `shardcast_epoch`, and datafusion-postgres' `pg_catalog`.
fn live_context(store: &SnapshotStore) -> Result<SessionContext, QueryError> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG, SCHEMA)
        .with_information_schema(true);
    let context = SessionContext::new_with_config(config);
    for name in store.schemas().keys() {
        if let Some(table) = SnapshotTable::new(store, name) {
            // `bare` keeps the name as declared (no lower-casing or
            // splitting at dots).
            context.register_table(TableReference::bare(name.as_str()), Arc::new(table))?;
        }
    }
    if !store.schemas().contains_key(EPOCH_TABLE) {
        context.register_table(
            TableReference::bare(EPOCH_TABLE),
            Arc::new(EpochTable {
                store: store.clone(),
            }),
        )?;
    }
    setup_pg_catalog(&context, CATALOG, EmptyContextProvider).map_err(QueryError::Sql)?;
    Ok(context)
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts every connection without a password and registers it so cancel
/// requests (Ctrl-C in psql) can find it.
struct Startup {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for Startup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

/// Logs errors sent to clients; they are the client's problem, not the
/// job's, hence debug level.
struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(peer = %client.socket_addr(), %error, "SQL error sent to client");
    }
}
