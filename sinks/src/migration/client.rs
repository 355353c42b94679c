//! The data-path client services use: routes each key by a cached shard map, writes the owner
//! and the shard's replicas, reads the owner (asking replicas and the previous owner on a miss),
//! and refreshes the map and retries whenever a node says the map is stale or a node is down.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shardcast_shardmap::{ring_position, Shard, ShardId, ShardMap};

use super::{
    ConflictPolicies, ConflictPolicy, Entry, MapSource, MigrationError, NodePool, NodeSet, Value,
    WriteOutcome,
};

/// What an acknowledged write did. A write is acknowledged only when the shard's owner and
/// every replica in the (then current) map hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteAck {
    /// The shard written.
    pub shard: ShardId,
    /// Its owner.
    pub node: String,
    /// The replicas that hold the write too.
    pub replicas: Vec<String>,
    /// The write's timestamp.
    pub ts: u64,
    /// The version the owner gave it (of the stored write, if superseded).
    pub ver: u64,
    /// Applied, a repeat, or superseded by a newer write (last-writer-wins).
    pub outcome: WriteOutcome,
    /// The map version used.
    pub map_version: u64,
    /// Attempts it took (1 without refusals or outages).
    pub attempts: u32,
}

/// How long a client keeps retrying refusals and outages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRetry {
    /// Delay after the first failed attempt, doubled after each further one.
    pub initial_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
    /// Time after which the call fails with [`MigrationError::GaveUp`].
    pub give_up_after: Duration,
}

impl Default for ClientRetry {
    /// 1 ms doubling to 20 ms (a switchover pauses writes for milliseconds); 10 s in all (a
    /// failover needs the failed node to be noticed first).
    fn default() -> Self {
        ClientRetry {
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            give_up_after: Duration::from_secs(10),
        }
    }
}

/// Counters of a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Map refreshes.
    pub refreshes: u64,
    /// Attempts retried after a refusal or an outage.
    pub retries: u64,
    /// Reads the owner missed that a replica or the previous owner answered (copied into the
    /// owner).
    pub repaired_misses: u64,
}

/// The routing client. One per thread (it keeps one connection per node).
///
/// ```no_run
/// use shardcast_sinks::migration::{NodeSet, RoutingClient, RoutingStore};
/// let store = RoutingStore::open("redis://127.0.0.1:6379/", "s:")?;
/// let nodes = NodeSet::new("s:", [("a", "redis://127.0.0.1:7001/")]);
/// let mut client = RoutingClient::new(store, nodes)?;
/// client.put("user:42", b"hello")?;
/// assert_eq!(client.get("user:42")?.map(|v| v.data), Some(b"hello".to_vec()));
/// # Ok::<(), shardcast_sinks::migration::MigrationError>(())
/// ```
pub struct RoutingClient<S: MapSource> {
    source: S,
    nodes: NodePool,
    map: ShardMap,
    previous: Option<ShardMap>,
    policies: ConflictPolicies,
    retry: ClientRetry,
    last_ts: u64,
    stats: ClientStats,
}

/// Why an attempt failed: retry after refreshing, or stop.
enum Attempt<T> {
    Done(T),
    Retry(MigrationError),
}

impl<S: MapSource> RoutingClient<S> {
    /// A client that takes its map from `source` (loaded now) and reaches `nodes`.
    pub fn new(source: S, nodes: NodeSet) -> Result<Self, MigrationError> {
        let map = source.current()?;
        Ok(RoutingClient {
            source,
            nodes: NodePool::new(nodes),
            map,
            previous: None,
            policies: ConflictPolicies::default(),
            retry: ClientRetry::default(),
            last_ts: 0,
            stats: ClientStats::default(),
        })
    }

    /// The same client with per-partition conflict policies.
    pub fn with_policies(mut self, policies: ConflictPolicies) -> Self {
        self.policies = policies;
        self
    }

    /// The same client with another retry budget.
    pub fn with_retry(mut self, retry: ClientRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The cached map.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Reloads the map from the source (keeping the old one to find previous owners).
    pub fn refresh(&mut self) -> Result<(), MigrationError> {
        let map = self.source.current()?;
        self.stats.refreshes += 1;
        if map.version() != self.map.version() {
            self.previous = Some(std::mem::replace(&mut self.map, map));
        }
        Ok(())
    }

    /// A timestamp for a write by this client: microseconds since the Unix epoch, strictly
    /// increasing per client so that its own writes of a key are ordered.
    fn next_ts(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.last_ts = now.max(self.last_ts + 1);
        self.last_ts
    }

    /// Writes `value` at `key` with a fresh timestamp.
    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<WriteAck, MigrationError> {
        let ts = self.next_ts();
        self.put_at(key, value, ts)
    }

    /// Writes `value` at `key` with the writer timestamp `ts` (the conflict policy of the key's
    /// partition compares it with the stored write's).
    pub fn put_at(&mut self, key: &str, value: &[u8], ts: u64) -> Result<WriteAck, MigrationError> {
        let policy = self.policies.policy_for(key);
        self.with_retries("write", |client, attempts| {
            client.write_once(key, value, ts, policy, attempts)
        })
    }

    /// Reads `key`: the owner's value, or on a miss the newest copy held by a replica or the
    /// previous owner (copied into the owner, last-writer-wins), or `None`.
    pub fn get(&mut self, key: &str) -> Result<Option<Value>, MigrationError> {
        self.with_retries("read", |client, _| client.read_once(key))
    }

    /// Runs `attempt` until it is done, refreshing the map and backing off after each retryable
    /// failure, up to the retry budget.
    fn with_retries<T>(
        &mut self,
        what: &str,
        mut attempt: impl FnMut(&mut Self, u32) -> Result<Attempt<T>, MigrationError>,
    ) -> Result<T, MigrationError> {
        let start = Instant::now();
        let mut attempts = 0u32;
        let mut delay = self.retry.initial_delay;
        loop {
            attempts += 1;
            let err = match attempt(self, attempts)? {
                Attempt::Done(value) => return Ok(value),
                Attempt::Retry(err) => err,
            };
            if start.elapsed() >= self.retry.give_up_after {
                return Err(MigrationError::GaveUp {
                    what: what.to_string(),
                    attempts,
                    elapsed: start.elapsed(),
                    last: Box::new(err),
                });
            }
            self.stats.retries += 1;
            std::thread::sleep(delay);
            delay = (delay * 2).min(self.retry.max_delay);
            // A store that cannot be reached now is retried on the next round.
            if let Err(refresh) = self.refresh() {
                tracing::debug!(error = %refresh, "map refresh failed; retrying");
            }
        }
    }

    fn write_once(
        &mut self,
        key: &str,
        value: &[u8],
        ts: u64,
        policy: ConflictPolicy,
        attempts: u32,
    ) -> Result<Attempt<WriteAck>, MigrationError> {
        let shard = self.map.lookup(key).clone();
        let slot = shard.id.to_string();
        let position = ring_position(key);
        let written = match self.nodes.get(&shard.node)?.write(
            &slot,
            shard.version,
            key,
            position,
            value,
            ts,
            policy,
        ) {
            Ok(written) => written,
            Err(err) if retryable(&err) => return Ok(Attempt::Retry(err)),
            Err(err) => return Err(err),
        };
        if written.outcome != WriteOutcome::Superseded {
            let entry = Entry {
                key: key.to_string(),
                position,
                value: Value {
                    data: value.to_vec(),
                    ts,
                    ver: written.ver,
                },
            };
            for replica in &shard.replicas {
                match self
                    .nodes
                    .get(replica)?
                    .apply(&slot, std::slice::from_ref(&entry))
                {
                    Ok(_) => {}
                    // Not acknowledged: the retry finds the write at the owner (a repeat) and
                    // replicates it under the refreshed map.
                    Err(err) if retryable(&err) => return Ok(Attempt::Retry(err)),
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(Attempt::Done(WriteAck {
            shard: shard.id,
            node: shard.node.clone(),
            replicas: shard.replicas.clone(),
            ts: written.ts,
            ver: written.ver,
            outcome: written.outcome,
            map_version: self.map.version(),
            attempts,
        }))
    }

    fn read_once(&mut self, key: &str) -> Result<Attempt<Option<Value>>, MigrationError> {
        let shard = self.map.lookup(key).clone();
        let slot = shard.id.to_string();
        match self.nodes.get(&shard.node)?.read(&slot, key) {
            Ok(Some(value)) => Ok(Attempt::Done(Some(value))),
            Ok(None) => self.repair_miss(key, &shard),
            Err(err) if retryable(&err) => Ok(Attempt::Retry(err)),
            Err(err) => Err(err),
        }
    }

    /// The cache-miss path (seed 004): ask the replicas and the previous owner; if one holds
    /// the key, write the newest copy into the owner (last-writer-wins on its timestamp) and
    /// return what the owner then holds.
    fn repair_miss(
        &mut self,
        key: &str,
        shard: &Shard,
    ) -> Result<Attempt<Option<Value>>, MigrationError> {
        let mut holders: Vec<String> = shard.replicas.clone();
        if let Some(previous) = &self.previous {
            let before = previous.lookup(key).node.clone();
            if before != shard.node && !holders.contains(&before) {
                holders.push(before);
            }
        }
        let mut newest: Option<Value> = None;
        for holder in holders {
            // A holder that is down or lacks the key just does not help.
            let found = self
                .nodes
                .get(&holder)
                .and_then(|node| node.read_many(&[key.to_string()]));
            if let Ok(mut values) = found {
                if let Some(value) = values.pop().flatten() {
                    if newest
                        .as_ref()
                        .is_none_or(|n| (value.ts, &value.data) > (n.ts, &n.data))
                    {
                        newest = Some(value);
                    }
                }
            }
        }
        let Some(found) = newest else {
            return Ok(Attempt::Done(None));
        };
        let slot = shard.id.to_string();
        let written = self.nodes.get(&shard.node)?.write(
            &slot,
            shard.version,
            key,
            ring_position(key),
            &found.data,
            found.ts,
            ConflictPolicy::LastWriterWins,
        );
        match written {
            Ok(_) => {
                self.stats.repaired_misses += 1;
                // Read back through the owner: it holds the repaired value or a newer one.
                match self.nodes.get(&shard.node)?.read(&slot, key) {
                    Ok(value) => Ok(Attempt::Done(value)),
                    Err(err) if retryable(&err) => Ok(Attempt::Retry(err)),
                    Err(err) => Err(err),
                }
            }
            // The owner is being switched over: answer with the copy found; a later read
            // repairs the owner.
            Err(MigrationError::ReadOnly { .. }) => Ok(Attempt::Done(Some(found))),
            Err(err) if retryable(&err) => Ok(Attempt::Retry(err)),
            Err(err) => Err(err),
        }
    }
}

/// Errors a refreshed map or a little patience can cure.
fn retryable(err: &MigrationError) -> bool {
    err.is_routing_hint() || err.is_transient()
}
