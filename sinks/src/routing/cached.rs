//! A routing client that keeps the shard map locally and only asks the server what changed.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use shardcast_shardmap::ShardMap;

use super::{RouteAnswer, RoutingError, RoutingHttpClient};

/// How often a [`CachedRouter`] checks for changes and how stale its map may get during an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// A lookup this long after the last check asks the server for changes first.
    pub refresh_every: Duration,
    /// While the server cannot be reached, lookups keep using the cached map until it was last
    /// confirmed current this long ago; after that they fail with [`RoutingError::Stale`].
    pub max_staleness: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            refresh_every: Duration::from_secs(1),
            max_staleness: Duration::from_secs(30),
        }
    }
}

/// What a [`CachedRouter`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups asked for (`route` and `map`).
    pub lookups: u64,
    /// Refreshes that reached the server.
    pub checks: u64,
    /// Map changes applied locally from `GET /v1/changes`.
    pub changes_applied: u64,
    /// Whole maps fetched (the first one, and whenever the change log could not bridge the gap).
    pub full_fetches: u64,
    /// Refreshes that failed.
    pub failed_refreshes: u64,
}

/// What one refresh did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The cached map was current.
    Current,
    /// The cached map caught up by applying this many changes.
    Applied(usize),
    /// The whole map was fetched.
    Fetched,
}

/// A local, cached routing client: `route` is a lookup in a cached [`ShardMap`], refreshed from the
/// server at most every [`CacheOptions::refresh_every`] through `GET /v1/changes?since=V` (the
/// changes since the cached version, applied locally), falling back to `GET /v1/map` when the
/// server's change log no longer reaches back that far.
///
/// A stale client is one whose map lacks the newest changes; a node that gets a request for a
/// shard it no longer serves can tell it by the version, and the client then calls
/// [`CachedRouter::refresh`].
///
/// ```
/// use shardcast_shardmap::ShardMap;
/// use shardcast_sinks::routing::{CachedRouter, RoutingHttpClient, RoutingServer, RoutingState};
///
/// let map = ShardMap::uniform(4, &["eu".to_string(), "us".to_string()], 1).unwrap();
/// let state = RoutingState::new(map.clone());
/// let server = RoutingServer::start("127.0.0.1:0", state.clone()).unwrap();
/// let router = CachedRouter::new(RoutingHttpClient::new(&server.url()).unwrap());
/// for i in 0..100 {
///     let key = format!("k{i}");
///     assert_eq!(router.route(&key).unwrap().node, map.lookup(&key).node);
/// }
/// assert_eq!(router.stats().full_fetches, 1, "one fetch, then local lookups");
/// ```
#[derive(Debug)]
pub struct CachedRouter {
    client: RoutingHttpClient,
    options: CacheOptions,
    cache: Mutex<Cache>,
    // Held while refreshing, so that concurrent lookups due for a refresh make one request.
    refreshing: Mutex<()>,
}

#[derive(Debug, Default)]
struct Cache {
    map: Option<Arc<ShardMap>>,
    attempted: Option<Instant>,
    confirmed: Option<Instant>,
    stats: CacheStats,
}

impl Cache {
    fn due(&self, every: Duration) -> bool {
        self.map.is_none() || self.attempted.is_none_or(|t| t.elapsed() >= every)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing inside the critical sections panics, so a poisoned cache is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CachedRouter {
    /// A router with the default [`CacheOptions`]; the map is fetched on the first lookup.
    pub fn new(client: RoutingHttpClient) -> Self {
        Self::with_options(client, CacheOptions::default())
    }

    /// A router with `options`.
    pub fn with_options(client: RoutingHttpClient, options: CacheOptions) -> Self {
        CachedRouter {
            client,
            options,
            cache: Mutex::new(Cache::default()),
            refreshing: Mutex::new(()),
        }
    }

    /// Where `key` lives, from the cached map (refreshed first if due).
    pub fn route(&self, key: &str) -> Result<RouteAnswer, RoutingError> {
        let map = self.current()?;
        Ok(RouteAnswer::from_map(&map, key))
    }

    /// A copy of the cached map (refreshed first if due).
    pub fn map(&self) -> Result<ShardMap, RoutingError> {
        Ok(self.current()?.as_ref().clone())
    }

    /// The version of the cached map, if one was fetched.
    pub fn version(&self) -> Option<u64> {
        lock(&self.cache).map.as_ref().map(|m| m.version())
    }

    /// Counters of lookups and refreshes.
    pub fn stats(&self) -> CacheStats {
        lock(&self.cache).stats
    }

    /// The client used for refreshes.
    pub fn client(&self) -> &RoutingHttpClient {
        &self.client
    }

    /// Brings the cached map up to date now, whatever the refresh interval.
    pub fn refresh(&self) -> Result<Refresh, RoutingError> {
        let _refreshing = lock(&self.refreshing);
        self.refresh_now().map(|(outcome, _)| outcome)
    }

    /// The cached map, refreshed if due; during an outage the cached one within `max_staleness`.
    fn current(&self) -> Result<Arc<ShardMap>, RoutingError> {
        {
            let mut cache = lock(&self.cache);
            cache.stats.lookups += 1;
            if let (false, Some(map)) = (cache.due(self.options.refresh_every), &cache.map) {
                return Ok(map.clone());
            }
        }
        let _refreshing = lock(&self.refreshing);
        {
            // Another lookup may have refreshed while this one waited for the lock.
            let cache = lock(&self.cache);
            if let (false, Some(map)) = (cache.due(self.options.refresh_every), &cache.map) {
                return Ok(map.clone());
            }
        }
        let e = match self.refresh_now() {
            Ok((_, map)) => return Ok(map),
            Err(e) => e,
        };
        let cache = lock(&self.cache);
        match (&cache.map, cache.confirmed) {
            (Some(map), Some(confirmed)) if confirmed.elapsed() <= self.options.max_staleness => {
                tracing::warn!(error = %e, age = ?confirmed.elapsed(), "routing API unreachable; routing with the cached map");
                Ok(map.clone())
            }
            (Some(_), Some(confirmed)) => Err(RoutingError::Stale {
                age: confirmed.elapsed(),
                limit: self.options.max_staleness,
                last: Box::new(e),
            }),
            _ => Err(e),
        }
    }

    /// One refresh, returning the map it leaves; the caller holds `refreshing`.
    fn refresh_now(&self) -> Result<(Refresh, Arc<ShardMap>), RoutingError> {
        let cached = {
            let mut cache = lock(&self.cache);
            // Set before asking, so that a failing server is asked once per interval, not per lookup.
            cache.attempted = Some(Instant::now());
            cache.map.clone()
        };
        let result = self.fetch(cached);
        let mut cache = lock(&self.cache);
        match result {
            Ok((outcome, map)) => {
                cache.stats.checks += 1;
                match outcome {
                    Refresh::Current => {}
                    Refresh::Applied(n) => cache.stats.changes_applied += n as u64,
                    Refresh::Fetched => cache.stats.full_fetches += 1,
                }
                cache.map = Some(map.clone());
                cache.confirmed = Some(Instant::now());
                Ok((outcome, map))
            }
            Err(e) => {
                cache.stats.failed_refreshes += 1;
                Err(e)
            }
        }
    }

    /// Asks the server what changed since `cached`; returns the outcome and the current map.
    fn fetch(
        &self,
        cached: Option<Arc<ShardMap>>,
    ) -> Result<(Refresh, Arc<ShardMap>), RoutingError> {
        let Some(cached) = cached else {
            return Ok((Refresh::Fetched, Arc::new(self.client.map()?)));
        };
        let answer = self.client.changes_since(cached.version())?;
        if answer.complete {
            if answer.changes.is_empty() && answer.version == cached.version() {
                return Ok((Refresh::Current, cached));
            }
            let mut next = ShardMap::clone(&cached);
            let mut bridged = true;
            for change in &answer.changes {
                if change.version != next.version() + 1 {
                    bridged = false;
                    break;
                }
                if let Err(e) = next.apply(&change.change) {
                    tracing::warn!(version = change.version, error = %e, "routing change does not apply to the cached map; fetching the whole map");
                    bridged = false;
                    break;
                }
            }
            if bridged && next.version() == answer.version {
                return Ok((Refresh::Applied(answer.changes.len()), Arc::new(next)));
            }
        }
        Ok((Refresh::Fetched, Arc::new(self.client.map()?)))
    }
}
