//! Errors of the routing state, server and client.

use std::time::Duration;

use shardcast_shardmap::MapError;

/// Why an update of the [`RoutingState`](super::RoutingState) was refused; the state is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    /// A change whose version is not the next one: changes in between are missing, so applying it
    /// would serve a map that never existed.
    #[error("change for version {got} cannot follow map version {current}: changes in between are missing")]
    VersionGap {
        /// The version the served map is at.
        current: u64,
        /// The version the change would produce.
        got: u64,
    },
    /// A change for a version already applied that differs from the change applied then: two
    /// writers disagree about the map's history.
    #[error("a different change was already applied at version {version}")]
    Conflict {
        /// The version both changes claim.
        version: u64,
    },
    /// The shard map refused the change.
    #[error("shard map refused the change: {0}")]
    Map(#[from] MapError),
    /// A partition view that cannot be served as it is.
    #[error("partition view for customer {customer:?}: {reason}")]
    InvalidView {
        /// The view's customer.
        customer: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why the routing HTTP server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening address could not be bound.
    #[error("cannot bind the routing API to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime or the server thread could not be set up.
    #[error("cannot start the routing API runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The server stopped with an I/O error.
    #[error("routing API server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The server thread panicked.
    #[error("routing API server thread panicked")]
    Panicked,
}

/// Why a request of the [`RoutingHttpClient`](super::RoutingHttpClient) (or a refresh of the
/// [`CachedRouter`](super::CachedRouter)) failed.
///
/// Network failures and 5xx answers are [transient](RoutingError::is_transient): the client
/// retries them with back-off until its budget runs out, then returns [`RoutingError::GaveUp`].
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The base URL is not an `http://host:port` URL.
    #[error("invalid routing API URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request could not be sent or the answer not read (connection refused, reset, timeout).
    #[error("GET {url}: {source}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying error.
        #[source]
        source: ureq::Error,
    },
    /// The server has no such key, customer or path (HTTP 404).
    #[error("GET {url}: not found: {reason}")]
    NotFound {
        /// The URL requested.
        url: String,
        /// The server's reason.
        reason: String,
    },
    /// Any other non-success answer.
    #[error("GET {url}: HTTP {status}: {reason}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The server's reason (or the start of its body).
        reason: String,
    },
    /// The answer was not the JSON expected.
    #[error("GET {url}: unexpected answer: {source}")]
    Decode {
        /// The URL requested.
        url: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The cached map is older than allowed and could not be refreshed.
    #[error("cached shard map is {age:?} old (limit {limit:?}) and cannot be refreshed: {last}")]
    Stale {
        /// Time since the map was last confirmed current.
        age: Duration,
        /// The allowed staleness.
        limit: Duration,
        /// The error of the last refresh.
        #[source]
        last: Box<RoutingError>,
    },
    /// A transient failure persisted for longer than the retry budget.
    #[error("gave up on GET {url} after {attempts} attempts over {elapsed:?}: {last}")]
    GaveUp {
        /// The URL requested.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long was spent.
        elapsed: Duration,
        /// The error of the last attempt.
        #[source]
        last: Box<RoutingError>,
    },
}

impl RoutingError {
    /// True if waiting and asking again may succeed: the server is unreachable or slow, or
    /// answered 502, 503 or 504. A 4xx answer, a bad URL or a malformed answer is not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            RoutingError::Transport { source, .. } => matches!(
                source,
                ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
                    | ureq::Error::Protocol(_)
            ),
            RoutingError::Status { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// True for [`RoutingError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, RoutingError::NotFound { .. })
    }
}
