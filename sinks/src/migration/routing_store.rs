//! The routing store: the current shard map, its version and its changelog in a coordination
//! Redis, changed only by compare-and-set; plus the fencing counter and range locks.

use std::hash::{BuildHasher, Hasher};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use shardcast_shardmap::{MapChange, ShardId, ShardMap};

use super::conn::Endpoint;
use super::retry::retry_transient;
use super::{LockGuard, MapSource, MigrationError};
use crate::RetryPolicy;

/// Stores the map only if none is stored yet.
///
/// KEYS: map, version. ARGV: map JSON, version. Returns 1 if stored.
static INIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
"#,
    )
});

/// Compare-and-set of the map: applies only if the stored version is the expected one and every
/// named lock is still held with the caller's token; appends the changes to the changelog. The
/// operation id makes a retry after a lost reply recognise its own earlier success.
///
/// KEYS: map, version, log, op marker, lock keys... ARGV: expected version, new map JSON, new
/// version, number of log entries n, the n entries, then one token per lock key.
static CAS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local done = redis.call('GET', KEYS[4])
if done then return tonumber(done) end
local v = redis.call('GET', KEYS[2])
if v ~= ARGV[1] then return redis.error_reply('VERSION_CONFLICT ' .. (v or 'none')) end
local n = tonumber(ARGV[4])
for i = 5, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[4 + n + i - 4] then
    return redis.error_reply('LOCK_LOST ' .. (i - 4))
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
for i = 1, n do redis.call('RPUSH', KEYS[3], ARGV[4 + i]) end
redis.call('SET', KEYS[4], ARGV[3], 'PX', 600000)
return tonumber(ARGV[3])
"#,
    )
});

/// Extends a lock if still held with the token. KEYS: lock. ARGV: token, ttl ms. Returns 1/0.
static EXTEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#,
    )
});

/// Releases a lock if still held with the token. KEYS: lock. ARGV: token. Returns 1/0.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// One entry of the routing changelog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedChange {
    /// The map version the change produced.
    pub version: u64,
    /// The change.
    pub change: MapChange,
    /// When it was stored (Unix milliseconds, by the writer's clock).
    pub at_ms: u64,
}

/// The routing store in a coordination Redis, under a prefix `P`:
/// `P routing:map` (the map as JSON), `P routing:version`, `P routing:log` (a list of
/// [`LoggedChange`] JSON, oldest first), `P routing:fence` (the fencing counter) and
/// `P routing:lock:SHARD` (range locks).
///
/// Shareable between threads (one connection behind a mutex). Calls are retried with back-off
/// while the coordination Redis is unreachable, up to the [`RetryPolicy`] budget.
pub struct RoutingStore {
    endpoint: Mutex<Endpoint>,
    prefix: String,
    retry: RetryPolicy,
}

impl RoutingStore {
    /// The store at `url` under `prefix`; connects on first use.
    pub fn open(url: &str, prefix: &str) -> Result<Self, MigrationError> {
        Ok(RoutingStore {
            endpoint: Mutex::new(Endpoint::open("coordination", url, Duration::from_secs(2))?),
            prefix: prefix.to_string(),
            retry: RetryPolicy {
                initial_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(500),
                give_up_after: Duration::from_secs(10),
            },
        })
    }

    /// The same store with another retry budget for outages of the coordination Redis.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn key(&self, name: &str) -> String {
        format!("{}routing:{name}", self.prefix)
    }

    pub(crate) fn lock_key(&self, shard: ShardId) -> String {
        self.key(&format!("lock:{shard}"))
    }

    /// Runs one call against the coordination Redis, retrying outages.
    fn run<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, MigrationError> {
        retry_transient(&self.retry, what, |_| {
            let mut endpoint = self.endpoint.lock().unwrap_or_else(PoisonError::into_inner);
            endpoint.run(what, "", &mut op)
        })
    }

    /// Stores `map` if no map is stored yet; returns whether it did.
    pub fn init(&self, map: &ShardMap) -> Result<bool, MigrationError> {
        let json = serde_json::to_string(map)?;
        let (map_key, version_key) = (self.key("map"), self.key("version"));
        let stored: i64 = self.run("storing the initial map", |c| {
            INIT.key(&map_key)
                .key(&version_key)
                .arg(&json)
                .arg(map.version())
                .invoke(c)
        })?;
        Ok(stored == 1)
    }

    /// The stored map.
    pub fn load(&self) -> Result<ShardMap, MigrationError> {
        let map_key = self.key("map");
        let json: Option<String> = self.run("loading the map", |c| {
            redis::cmd("GET").arg(&map_key).query(c)
        })?;
        let json = json
            .ok_or_else(|| MigrationError::Invalid(format!("no shard map stored at {map_key}")))?;
        Ok(serde_json::from_str(&json)?)
    }

    /// The stored map's version.
    pub fn version(&self) -> Result<u64, MigrationError> {
        let key = self.key("version");
        let version: Option<u64> = self.run("reading the version", |c| {
            redis::cmd("GET").arg(&key).query(c)
        })?;
        version.ok_or_else(|| MigrationError::Invalid(format!("no map version stored at {key}")))
    }

    /// Applies `changes` in order to the stored map if it is still at version `expected` and
    /// every lock in `locks` is still held; returns the new map. Every change is appended to the
    /// changelog.
    pub fn apply(
        &self,
        expected: u64,
        changes: &[MapChange],
        locks: &[&LockGuard<'_>],
    ) -> Result<ShardMap, MigrationError> {
        let mut map = self.load()?;
        if map.version() != expected {
            return Err(MigrationError::VersionConflict {
                expected,
                actual: Some(map.version()),
            });
        }
        let at_ms = unix_ms();
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            let version = map.apply(change)?;
            entries.push(serde_json::to_string(&LoggedChange {
                version,
                change: change.clone(),
                at_ms,
            })?);
        }
        let json = serde_json::to_string(&map)?;
        let op = self.key(&format!("op:{:016x}", random_u64()));
        let keys = [
            self.key("map"),
            self.key("version"),
            self.key("log"),
            op.clone(),
        ];
        let stored = self.run("changing the map", |c| {
            let mut invocation = CAS.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            for lock in locks {
                invocation.key(self.lock_key(lock.shard()));
            }
            invocation
                .arg(expected)
                .arg(&json)
                .arg(map.version())
                .arg(entries.len());
            for entry in &entries {
                invocation.arg(entry);
            }
            for lock in locks {
                invocation.arg(lock.token());
            }
            invocation.invoke::<u64>(c)
        });
        match stored {
            Ok(_) => Ok(map),
            Err(MigrationError::Redis { source, .. })
                if source.code() == Some("VERSION_CONFLICT") =>
            {
                Err(MigrationError::VersionConflict {
                    expected,
                    actual: source.detail().and_then(|d| d.trim().parse().ok()),
                })
            }
            Err(MigrationError::Redis { source, .. }) if source.code() == Some("LOCK_LOST") => {
                let index: usize = source
                    .detail()
                    .and_then(|d| d.trim().parse().ok())
                    .unwrap_or(1);
                let lock = locks[index.clamp(1, locks.len()) - 1];
                Err(MigrationError::LockLost {
                    shard: lock.shard(),
                    token: lock.token(),
                })
            }
            Err(other) => Err(other),
        }
    }

    /// Applies the changes that `make` derives from the current map, retrying when another
    /// change lands first (`make` sees the newer map and may refuse by returning an error).
    pub fn apply_latest(
        &self,
        locks: &[&LockGuard<'_>],
        mut make: impl FnMut(&ShardMap) -> Result<Vec<MapChange>, MigrationError>,
    ) -> Result<ShardMap, MigrationError> {
        let mut attempts = 0;
        loop {
            let map = self.load()?;
            let changes = make(&map)?;
            match self.apply(map.version(), &changes, locks) {
                Err(MigrationError::VersionConflict { .. }) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(attempts.min(10)));
                }
                other => return other,
            }
        }
    }

    /// The changelog entries after version `after`, oldest first.
    pub fn changes_since(&self, after: u64) -> Result<Vec<LoggedChange>, MigrationError> {
        let log = self.key("log");
        let entries: Vec<String> = self.run("reading the changelog", |c| {
            redis::cmd("LRANGE").arg(&log).arg(0).arg(-1).query(c)
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let change: LoggedChange = serde_json::from_str(&entry)?;
            if change.version > after {
                out.push(change);
            }
        }
        Ok(out)
    }

    /// Waits (polling every 10 ms) until the version is above `after`; returns it, or `None` at
    /// the timeout.
    pub fn wait_for_version(
        &self,
        after: u64,
        timeout: Duration,
    ) -> Result<Option<u64>, MigrationError> {
        let deadline = Instant::now() + timeout;
        loop {
            let version = self.version()?;
            if version > after {
                return Ok(Some(version));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A fresh fencing token: higher than every token handed out before.
    pub fn next_fence(&self) -> Result<u64, MigrationError> {
        let key = self.key("fence");
        self.run("drawing a fencing token", |c| {
            redis::cmd("INCR").arg(&key).query(c)
        })
    }

    /// `SET lock token NX PX ttl`: whether the lock was taken.
    pub(crate) fn try_lock(
        &self,
        shard: ShardId,
        token: u64,
        ttl: Duration,
    ) -> Result<bool, MigrationError> {
        let key = self.lock_key(shard);
        let reply: Option<String> = self.run("taking a lock", |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query(c)
        })?;
        if reply.is_some() {
            return Ok(true);
        }
        // A retry after a lost reply finds the lock already set, by itself.
        let holder: Option<u64> =
            self.run("reading a lock", |c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(holder == Some(token))
    }

    /// Extends the lock if still held with `token`.
    pub(crate) fn extend_lock(
        &self,
        shard: ShardId,
        token: u64,
        ttl: Duration,
    ) -> Result<bool, MigrationError> {
        let key = self.lock_key(shard);
        let held: i64 = self.run("extending a lock", |c| {
            EXTEND
                .key(&key)
                .arg(token)
                .arg(ttl.as_millis().max(1) as u64)
                .invoke(c)
        })?;
        Ok(held == 1)
    }

    /// Releases the lock if still held with `token`.
    pub(crate) fn release_lock(&self, shard: ShardId, token: u64) -> Result<bool, MigrationError> {
        let key = self.lock_key(shard);
        let released: i64 = self.run("releasing a lock", |c| {
            RELEASE.key(&key).arg(token).invoke(c)
        })?;
        Ok(released == 1)
    }
}

impl MapSource for RoutingStore {
    fn current(&self) -> Result<ShardMap, MigrationError> {
        self.load()
    }

    fn version(&self) -> Result<u64, MigrationError> {
        RoutingStore::version(self)
    }
}

/// Milliseconds since the Unix epoch by this machine's clock.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A random operation id (the standard library's per-process random hash keys, mixed with the
/// clock so that ids differ between calls).
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}
