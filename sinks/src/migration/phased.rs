//! Phased migration of a customer partition (seed 001): "newly generated data ... is written to
//! both the existing and shadow partitions. Over time, read requests are increasingly routed to
//! the shadow partition."
//!
//! A partition (e.g. one customer's keys) lives on one node in a namespace of its own
//! (`P p:NAME:` on that node, so it never mixes with the shard data of the node). Its
//! [`PartitionPlacement`] in the coordination Redis says where, and during a move, where to and
//! what share of reads goes there. A [`PhasedMove`]:
//!
//! 1. [`begin`](PhasedMove::begin): records the destination and a new placement version; both
//!    sides take ownership at that version, so a client that has not seen the move is refused
//!    (`STALE_MAP`) and learns it; from then on clients write both sides. The partition's older
//!    data is then copied over (last-writer-wins by writer timestamp, so a dual write is never
//!    overwritten by the older copy of the same key);
//! 2. [`shift_reads`](PhasedMove::shift_reads)`(0.25)`, `(0.5)`, `(1.0)`: that share of reads go
//!    to the destination;
//! 3. [`release`](PhasedMove::release): the destination alone owns the partition (a new version),
//!    the source gives it up and its copy is deleted.
//!
//! Both sides get every write but assign their own versions, so a [`PartitionClient`] keeps, per
//! session, the newest writer timestamp it has returned for each key and never returns an older
//! one: if the side it read is behind, it reads the other side and returns the newer.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use shardcast_shardmap::ring_position;

use super::conn::Endpoint;
use super::{ConflictPolicy, MigrationError, Node, NodeSet, OwnerState, Value, WriteOutcome};

/// The ownership slot of a partition in its namespace.
const SLOT: &str = "p";

/// Replaces a placement only if its stored version is the expected one (or it is absent and
/// the expected version is 0). KEYS: placements. ARGV: partition, expected version, JSON.
static PLACE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local v = 0
if cur then v = cjson.decode(cur).version end
if v ~= tonumber(ARGV[2]) then return redis.error_reply('VERSION_CONFLICT ' .. v) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"#,
    )
});

/// Where a partition lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// The partition.
    pub partition: String,
    /// The node that holds it (the source during a move).
    pub node: String,
    /// The node it is moving to, if a phased move is under way.
    pub moving_to: Option<String>,
    /// The share of reads sent to `moving_to` (0 to 1).
    pub read_share: f64,
    /// Bumped whenever the set of nodes that take writes changes.
    pub version: u64,
}

/// The placements of partitions in a coordination Redis (`P routing:partitions`, a hash of
/// JSON), changed by compare-and-set on their version.
pub struct PartitionDirectory {
    endpoint: Mutex<Endpoint>,
    prefix: String,
}

impl PartitionDirectory {
    /// The directory at `url` under `prefix` (the routing store's prefix).
    pub fn open(url: &str, prefix: &str) -> Result<Self, MigrationError> {
        Ok(PartitionDirectory {
            endpoint: Mutex::new(Endpoint::open("coordination", url, Duration::from_secs(2))?),
            prefix: prefix.to_string(),
        })
    }

    fn run<T>(
        &self,
        what: &str,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, MigrationError> {
        self.endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .run(what, "", op)
    }

    fn key(&self) -> String {
        format!("{}routing:partitions", self.prefix)
    }

    /// The namespace (key prefix on its nodes) of `partition`'s data.
    pub fn namespace(&self, partition: &str) -> String {
        format!("{}p:{partition}:", self.prefix)
    }

    /// The placement of `partition`, if placed.
    pub fn get(&self, partition: &str) -> Result<Option<PartitionPlacement>, MigrationError> {
        let key = self.key();
        let json: Option<String> = self.run("reading a placement", |c| {
            redis::cmd("HGET").arg(key).arg(partition).query(c)
        })?;
        json.map(|j| serde_json::from_str(&j).map_err(MigrationError::from))
            .transpose()
    }

    /// Stores `placement` if the stored one is at `expected` (0: none stored).
    pub fn put(&self, expected: u64, placement: &PartitionPlacement) -> Result<(), MigrationError> {
        let (key, json) = (self.key(), serde_json::to_string(placement)?);
        let stored = self.run("storing a placement", |c| {
            PLACE
                .key(key)
                .arg(&placement.partition)
                .arg(expected)
                .arg(json)
                .invoke::<i64>(c)
        });
        match stored {
            Ok(_) => Ok(()),
            Err(MigrationError::Redis { source, .. })
                if source.code() == Some("VERSION_CONFLICT") =>
            {
                Err(MigrationError::VersionConflict {
                    expected,
                    actual: source.detail().and_then(|d| d.trim().parse().ok()),
                })
            }
            Err(other) => Err(other),
        }
    }

    /// A fresh fencing token (the routing store's counter).
    pub fn next_fence(&self) -> Result<u64, MigrationError> {
        let key = format!("{}routing:fence", self.prefix);
        self.run("drawing a fencing token", |c| {
            redis::cmd("INCR").arg(key).query(c)
        })
    }

    /// Places a new `partition` on `node` (version 1) and gives the node its ownership.
    pub fn place(
        &self,
        nodes: &NodeSet,
        partition: &str,
        node: &str,
    ) -> Result<PartitionPlacement, MigrationError> {
        let placement = PartitionPlacement {
            partition: partition.to_string(),
            node: node.to_string(),
            moving_to: None,
            read_share: 0.0,
            version: 1,
        };
        let token = self.next_fence()?;
        nodes.node_in(node, &self.namespace(partition))?.set_owner(
            SLOT,
            token,
            Some(OwnerState::rw(token, 1)),
        )?;
        self.put(0, &placement)?;
        Ok(placement)
    }
}

/// One phased move of a partition; see the module documentation.
pub struct PhasedMove<'a> {
    directory: &'a PartitionDirectory,
    nodes: &'a NodeSet,
    partition: String,
}

impl<'a> PhasedMove<'a> {
    /// A move of `partition`.
    pub fn new(directory: &'a PartitionDirectory, nodes: &'a NodeSet, partition: &str) -> Self {
        PhasedMove {
            directory,
            nodes,
            partition: partition.to_string(),
        }
    }

    fn current(&self) -> Result<PartitionPlacement, MigrationError> {
        self.directory.get(&self.partition)?.ok_or_else(|| {
            MigrationError::Invalid(format!("partition {:?} is not placed", self.partition))
        })
    }

    fn node(&self, name: &str) -> Result<Node, MigrationError> {
        self.nodes
            .node_in(name, &self.directory.namespace(&self.partition))
    }

    /// Starts dual writes to `to` and copies the partition's data there; returns the number of
    /// keys copied.
    pub fn begin(&self, to: &str) -> Result<u64, MigrationError> {
        let before = self.current()?;
        if before.moving_to.is_some() || before.node == to {
            return Err(MigrationError::Invalid(format!(
                "partition {:?} is on {} moving to {:?}: cannot begin a move to {to}",
                self.partition, before.node, before.moving_to
            )));
        }
        let version = before.version + 1;
        let token = self.directory.next_fence()?;
        let mut dest = self.node(to)?;
        let mut source = self.node(&before.node)?;
        dest.set_owner(SLOT, token, Some(OwnerState::rw(token, version)))?;
        self.directory.put(
            before.version,
            &PartitionPlacement {
                moving_to: Some(to.to_string()),
                read_share: 0.0,
                version,
                ..before.clone()
            },
        )?;
        // From here a client that has not seen the move is refused at the source.
        source.set_owner(SLOT, token, Some(OwnerState::rw(token, version)))?;
        let keys = source.all_keys(shardcast_shardmap::HashRange {
            lo: 0,
            hi: shardcast_shardmap::RING,
        })?;
        let mut copied = 0;
        for chunk in keys.chunks(256) {
            for (key, value) in chunk.iter().zip(source.read_many(chunk)?) {
                let Some(value) = value else { continue };
                let written = dest.write(
                    SLOT,
                    version,
                    key,
                    ring_position(key),
                    &value.data,
                    value.ts,
                    ConflictPolicy::LastWriterWins,
                )?;
                copied += u64::from(written.outcome == WriteOutcome::Applied);
            }
        }
        Ok(copied)
    }

    /// Sends `share` (0 to 1) of the reads to the destination.
    pub fn shift_reads(&self, share: f64) -> Result<(), MigrationError> {
        let current = self.current()?;
        if current.moving_to.is_none() {
            return Err(MigrationError::Invalid(format!(
                "partition {:?} is not moving",
                self.partition
            )));
        }
        // Reads do not change who takes writes: same version, so no client is refused.
        let mut next = current.clone();
        next.read_share = share.clamp(0.0, 1.0);
        self.directory.put(current.version, &next)
    }

    /// Ends the move: the destination alone owns the partition, the source's copy is deleted.
    pub fn release(&self) -> Result<PartitionPlacement, MigrationError> {
        let current = self.current()?;
        let Some(to) = current.moving_to.clone() else {
            return Err(MigrationError::Invalid(format!(
                "partition {:?} is not moving",
                self.partition
            )));
        };
        let version = current.version + 1;
        let token = self.directory.next_fence()?;
        let mut dest = self.node(&to)?;
        let mut source = self.node(&current.node)?;
        dest.set_owner(SLOT, token, Some(OwnerState::rw(token, version)))?;
        let released = PartitionPlacement {
            partition: current.partition.clone(),
            node: to,
            moving_to: None,
            read_share: 0.0,
            version,
        };
        self.directory.put(current.version, &released)?;
        source.set_owner(SLOT, token, None)?;
        source.drop_range(
            SLOT,
            shardcast_shardmap::HashRange {
                lo: 0,
                hi: shardcast_shardmap::RING,
            },
        )?;
        Ok(released)
    }
}

/// A client of partitions under phased moves: dual writes while a move is under way, reads
/// split by the read share, monotonic reads per session. One per session (and thread).
pub struct PartitionClient<'a> {
    directory: &'a PartitionDirectory,
    nodes: NodeSet,
    open: HashMap<(String, String), Node>,
    placements: HashMap<String, (PartitionPlacement, Instant)>,
    refresh_every: Duration,
    /// The session token: per (partition, key), the newest writer timestamp returned.
    seen: HashMap<(String, String), u64>,
    salt: u64,
    reads: u64,
    last_ts: u64,
    /// Reads answered from the other side because the chosen side was behind the session.
    pub fallbacks: u64,
}

impl<'a> PartitionClient<'a> {
    /// A client over `directory` and `nodes`; placements are re-read every 100 ms (and on
    /// refusals).
    pub fn new(directory: &'a PartitionDirectory, nodes: NodeSet) -> Self {
        PartitionClient {
            directory,
            nodes,
            open: HashMap::new(),
            placements: HashMap::new(),
            refresh_every: Duration::from_millis(100),
            seen: HashMap::new(),
            salt: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            reads: 0,
            last_ts: 0,
            fallbacks: 0,
        }
    }

    /// The same client re-reading placements every `every` (zero: on every call).
    pub fn with_refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    fn placement(
        &mut self,
        partition: &str,
        force: bool,
    ) -> Result<PartitionPlacement, MigrationError> {
        if !force {
            if let Some((p, at)) = self.placements.get(partition) {
                if at.elapsed() < self.refresh_every {
                    return Ok(p.clone());
                }
            }
        }
        let placement = self.directory.get(partition)?.ok_or_else(|| {
            MigrationError::Invalid(format!("partition {partition:?} is not placed"))
        })?;
        self.placements
            .insert(partition.to_string(), (placement.clone(), Instant::now()));
        Ok(placement)
    }

    fn node(&mut self, partition: &str, name: &str) -> Result<&mut Node, MigrationError> {
        let id = (partition.to_string(), name.to_string());
        if !self.open.contains_key(&id) {
            let node = self
                .nodes
                .node_in(name, &self.directory.namespace(partition))?;
            self.open.insert(id.clone(), node);
        }
        Ok(self.open.get_mut(&id).expect("inserted above"))
    }

    /// Writes `key` of `partition` to every node that takes its writes; returns the writer
    /// timestamp.
    pub fn put(&mut self, partition: &str, key: &str, value: &[u8]) -> Result<u64, MigrationError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.last_ts = now.max(self.last_ts + 1);
        let ts = self.last_ts;
        let mut force = false;
        for _ in 0..50 {
            let placement = self.placement(partition, force)?;
            let sides: Vec<String> = std::iter::once(placement.node.clone())
                .chain(placement.moving_to.clone())
                .collect();
            let mut refused = None;
            for side in sides {
                let written = self.node(partition, &side)?.write(
                    SLOT,
                    placement.version,
                    key,
                    ring_position(key),
                    value,
                    ts,
                    ConflictPolicy::LastWriterWins,
                );
                match written {
                    Ok(_) => {}
                    Err(err) if err.is_routing_hint() || err.is_transient() => {
                        refused = Some(err);
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
            match refused {
                None => return Ok(ts),
                Some(err) => {
                    tracing::debug!(error = %err, "partition write refused; re-reading placement");
                    force = true;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        Err(MigrationError::Invalid(format!(
            "partition {partition:?}: writes kept being refused"
        )))
    }

    /// Reads `key` of `partition` from the side the read share picks; never returns a write
    /// older than one this session already returned for the key.
    pub fn get(&mut self, partition: &str, key: &str) -> Result<Option<Value>, MigrationError> {
        let mut force = false;
        for _ in 0..50 {
            let placement = self.placement(partition, force)?;
            self.reads += 1;
            let (first, other) = match &placement.moving_to {
                Some(to) if self.pick_new(key, placement.read_share) => {
                    (to.clone(), Some(placement.node.clone()))
                }
                Some(to) => (placement.node.clone(), Some(to.clone())),
                None => (placement.node.clone(), None),
            };
            let token = self
                .seen
                .get(&(partition.to_string(), key.to_string()))
                .copied();
            let read = self.node(partition, &first)?.read(SLOT, key);
            let mut value = match read {
                Ok(value) => value,
                Err(err) if err.is_routing_hint() || err.is_transient() => {
                    force = true;
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                Err(err) => return Err(err),
            };
            let behind = |v: &Option<Value>| match (token, v) {
                (Some(t), Some(v)) => v.ts < t,
                (Some(_), None) => true,
                _ => false,
            };
            if behind(&value) {
                if let Some(other) = other {
                    self.fallbacks += 1;
                    if let Ok(theirs) = self.node(partition, &other)?.read(SLOT, key) {
                        if theirs.as_ref().map(|v| v.ts) > value.as_ref().map(|v| v.ts) {
                            value = theirs;
                        }
                    }
                }
            }
            if let Some(v) = &value {
                let entry = self
                    .seen
                    .entry((partition.to_string(), key.to_string()))
                    .or_insert(0);
                *entry = (*entry).max(v.ts);
            }
            return Ok(value);
        }
        Err(MigrationError::Invalid(format!(
            "partition {partition:?}: reads kept being refused"
        )))
    }

    /// Whether this read goes to the destination: a hash of (session, key, read count) below
    /// the share, so the split is even over reads and independent between sessions.
    fn pick_new(&self, key: &str, share: f64) -> bool {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hasher.write_u64(self.salt);
        hasher.write(key.as_bytes());
        hasher.write_u64(self.reads);
        (hasher.finish() as f64 / u64::MAX as f64) < share
    }
}
