//! Runs the routing API on its own thread and runtime, so synchronous programs can serve it.

use std::fmt::Display;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::{router, RoutingState, ServerError};

/// How the routing API server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Threads answering requests. Answers are short reads of the shared state, so a couple suffice.
    pub worker_threads: usize,
    /// After a shutdown is asked for, how long open requests may take to finish before their
    /// connections are dropped.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            worker_threads: 2,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// A running routing API server. Dropping it shuts it down too (waiting as
/// [`RoutingServer::shutdown`] does, without reporting errors).
///
/// ```
/// use shardcast_shardmap::ShardMap;
/// use shardcast_sinks::routing::{RoutingHttpClient, RoutingServer, RoutingState};
///
/// let map = ShardMap::uniform(8, &["eu".to_string(), "us".to_string()], 1).unwrap();
/// let server = RoutingServer::start("127.0.0.1:0", RoutingState::new(map.clone())).unwrap();
/// let client = RoutingHttpClient::new(&server.url()).unwrap();
/// assert_eq!(client.route("user/42").unwrap().node, map.lookup("user/42").node);
/// server.shutdown().unwrap();
/// ```
#[derive(Debug)]
pub struct RoutingServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl RoutingServer {
    /// Binds `addr` (port 0 picks a free port) and serves `state` with the default
    /// [`ServerOptions`].
    pub fn start(
        addr: impl ToSocketAddrs + Display,
        state: RoutingState,
    ) -> Result<Self, ServerError> {
        Self::start_with(addr, state, ServerOptions::default())
    }

    /// Binds `addr` and serves `state`. Binding happens before this returns, so a busy port is
    /// reported here and [`RoutingServer::local_addr`] is the real port.
    pub fn start_with(
        addr: impl ToSocketAddrs + Display,
        state: RoutingState,
        options: ServerOptions,
    ) -> Result<Self, ServerError> {
        let bind_error = |source| ServerError::Bind {
            addr: addr.to_string(),
            source,
        };
        let listener = std::net::TcpListener::bind(&addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.worker_threads.max(1))
            .thread_name("routing-api")
            .enable_all()
            .build()
            .map_err(ServerError::Runtime)?;
        let listener = {
            // Registering the socket with the reactor needs the runtime's context.
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(bind_error)?
        };

        let (stop, stopped) = watch::channel(false);
        let drain_timeout = options.drain_timeout;
        let thread = std::thread::Builder::new()
            .name("routing-api".into())
            .spawn(move || {
                runtime.block_on(serve(listener, state, stopped, drain_timeout))
                // Dropping the runtime here cancels connections still open after the drain.
            })
            .map_err(ServerError::Runtime)?;
        tracing::info!(%local, "routing API listening");
        Ok(RoutingServer {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the server, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets open requests finish (up to the drain timeout) and waits
    /// for the server thread to end.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServerError> {
        // The receiver is gone only if the server already ended, which the join reports.
        let _ = self.stop.send(true);
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => match thread.join() {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(ServerError::Serve(e)),
                Err(_) => Err(ServerError::Panicked),
            },
        }
    }
}

impl Drop for RoutingServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            tracing::warn!(error = %e, "routing API server ended with an error");
        }
    }
}

/// Serves until `stopped` turns true, then drains for at most `drain_timeout`.
async fn serve(
    listener: tokio::net::TcpListener,
    state: RoutingState,
    stopped: watch::Receiver<bool>,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let signal = {
        let mut stopped = stopped.clone();
        async move {
            // An error means the handle is gone, which also means stop.
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(signal);
    let deadline = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
        tokio::time::sleep(drain_timeout).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(?drain_timeout, "routing API: requests still open after the drain timeout; dropping them");
            Ok(())
        }
    }
}
