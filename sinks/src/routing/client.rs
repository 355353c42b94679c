//! A small blocking client of the routing API, for services that ask where a key or customer lives.

use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use shardcast_shardmap::ShardMap;

use super::{ChangesSince, ErrorBody, Health, PartitionView, RouteAnswer, RoutingError};
use crate::RetryPolicy;

/// Characters escaped in a path segment: all but RFC 3986's unreserved `A-Z a-z 0-9 - _ ~`. The dot
/// is escaped too, so that keys `.` and `..` are not taken for dot-segments on the way.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// Largest answer read (a map of about 200k shards); a bigger one is an error, not an allocation.
const MAX_BODY: u64 = 64 << 20;

/// A blocking client of the routing API ([`router`](super::router)).
///
/// Each request has a total timeout ([`Self::DEFAULT_TIMEOUT`]) and transient failures (server
/// unreachable or slow, 502/503/504) are retried with exponential back-off under a time budget
/// ([`RoutingHttpClient::with_retry`]); a 404 is [`RoutingError::NotFound`] at once. Connections are
/// kept alive and reused. Cloning is cheap and clones share the connection pool.
///
/// ```
/// use shardcast_shardmap::ShardMap;
/// use shardcast_sinks::routing::{RoutingHttpClient, RoutingServer, RoutingState};
///
/// let map = ShardMap::uniform(4, &["eu".to_string()], 0).unwrap();
/// let server = RoutingServer::start("127.0.0.1:0", RoutingState::new(map.clone())).unwrap();
/// let client = RoutingHttpClient::new(&server.url()).unwrap();
/// assert_eq!(client.map().unwrap(), map);
/// assert!(client.partition("nobody").unwrap_err().is_not_found());
/// ```
#[derive(Clone)]
pub struct RoutingHttpClient {
    agent: ureq::Agent,
    base: String,
    timeout: Duration,
    retry: RetryPolicy,
}

impl RoutingHttpClient {
    /// Total time allowed for one request, connection included.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// The default retry budget: short, since callers are usually serving a request themselves,
    /// but long enough to ride out a server restart.
    pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        give_up_after: Duration::from_secs(3),
    };

    /// A client of the API at `base_url` (`http://host:port`, optionally with a path prefix).
    pub fn new(base_url: &str) -> Result<Self, RoutingError> {
        let invalid = |reason: &str| RoutingError::InvalidBaseUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let rest = base_url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("expected http://HOST:PORT (TLS is not supported)"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(invalid("no host"));
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("a base URL has no query or fragment"));
        }
        let base = base_url.trim_end_matches('/').to_string();
        Ok(RoutingHttpClient {
            agent: agent(Self::DEFAULT_TIMEOUT),
            base,
            timeout: Self::DEFAULT_TIMEOUT,
            retry: Self::DEFAULT_RETRY,
        })
    }

    /// The same client with a total timeout of `timeout` per request attempt.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(timeout);
        self.timeout = timeout;
        self
    }

    /// The same client retrying transient failures under `policy`; a `give_up_after` of zero makes
    /// one attempt only.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The timeout of one request attempt.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where `key` lives (`GET /v1/route/{key}`); any key works, it is percent-encoded here.
    pub fn route(&self, key: &str) -> Result<RouteAnswer, RoutingError> {
        self.get(&format!("/v1/route/{}", utf8_percent_encode(key, SEGMENT)))
    }

    /// The partition of `customer` and its score breakdown (`GET /v1/partition/{customer}`);
    /// [`RoutingError::NotFound`] if the server has no view for it.
    pub fn partition(&self, customer: &str) -> Result<PartitionView, RoutingError> {
        self.get(&format!(
            "/v1/partition/{}",
            utf8_percent_encode(customer, SEGMENT)
        ))
    }

    /// The whole shard map (`GET /v1/map`).
    pub fn map(&self) -> Result<ShardMap, RoutingError> {
        self.get("/v1/map")
    }

    /// The map changes after `version` (`GET /v1/changes?since=V`).
    pub fn changes_since(&self, version: u64) -> Result<ChangesSince, RoutingError> {
        self.get(&format!("/v1/changes?since={version}"))
    }

    /// The server's health (`GET /healthz`).
    pub fn health(&self) -> Result<Health, RoutingError> {
        self.get("/healthz")
    }

    /// GETs `path` and decodes the JSON answer, retrying transient failures.
    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RoutingError> {
        let url = format!("{}{}", self.base, path);
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let err = match self.get_once(&url) {
                Ok(value) => return Ok(value),
                Err(err) if !err.is_transient() => return Err(err),
                Err(err) => err,
            };
            let elapsed = start.elapsed();
            if elapsed >= self.retry.give_up_after {
                return Err(if attempt == 1 {
                    err
                } else {
                    RoutingError::GaveUp {
                        url,
                        attempts: attempt,
                        elapsed,
                        last: Box::new(err),
                    }
                });
            }
            let delay = self
                .retry
                .delay_after(attempt)
                .min(self.retry.give_up_after - elapsed);
            tracing::debug!(%url, attempt, error = %err, ?delay, "routing API request failed; retrying");
            std::thread::sleep(delay);
        }
    }

    fn get_once<T: DeserializeOwned>(&self, url: &str) -> Result<T, RoutingError> {
        let transport = |source| RoutingError::Transport {
            url: url.to_string(),
            source,
        };
        let mut response = self.agent.get(url).call().map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(transport)?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&body).map_err(|source| RoutingError::Decode {
                url: url.to_string(),
                source,
            });
        }
        // Errors from the routing API carry a reason; anything else (a proxy's page) is quoted.
        let reason = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(error) => error.reason,
            Err(_) => body.chars().take(200).collect(),
        };
        Err(if status == 404 {
            RoutingError::NotFound {
                url: url.to_string(),
                reason,
            }
        } else {
            RoutingError::Status {
                url: url.to_string(),
                status,
                reason,
            }
        })
    }
}

impl std::fmt::Debug for RoutingHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The agent (a connection pool) has nothing worth showing.
        f.debug_struct("RoutingHttpClient")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// An agent that returns 4xx/5xx answers as responses (their JSON bodies carry the reason) and
/// bounds each request by `timeout`.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}
