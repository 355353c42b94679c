//! One data node (a Redis server): the data-path calls of clients and the administrative calls
//! of the executor, each a single command, pipeline or script (see [`super::scripts`]).

use std::fmt;
use std::time::Duration;

use shardcast_shardmap::HashRange;

use super::conn::Endpoint;
use super::scripts;
use super::{ConflictPolicy, Layout, MigrationError};

/// A stored write: the value, its writer's timestamp and the node's version of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value {
    /// The bytes written.
    pub data: Vec<u8>,
    /// The writer's timestamp (microseconds since the Unix epoch for [`super::RoutingClient`]).
    pub ts: u64,
    /// The version the owning node gave the write; copies keep it.
    pub ver: u64,
}

/// A key with its ring position and stored write, as copies and replication move it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Its ring position.
    pub position: u32,
    /// The write.
    pub value: Value,
}

impl Entry {
    /// Bytes this entry moves (key and value), for throttling and throughput.
    pub fn bytes(&self) -> u64 {
        (self.key.len() + self.value.data.len()) as u64
    }
}

/// How a write script ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write is now the stored one.
    Applied,
    /// The same write (same timestamp and value) was already stored: a retry.
    AlreadyApplied,
    /// Last-writer-wins kept a newer write; this one is acknowledged but not stored.
    Superseded,
}

/// What a write script returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// How it ended.
    pub outcome: WriteOutcome,
    /// The stored write's version.
    pub ver: u64,
    /// The stored write's timestamp.
    pub ts: u64,
}

/// Read-write or read-only ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads and writes.
    ReadWrite,
    /// Reads only: the shard is being switched over.
    ReadOnly,
}

/// A node's ownership of a shard: mode, the fencing token that set it, and the shard's map
/// version (clients whose map is older are refused with `STALE_MAP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerState {
    /// Read-write or read-only.
    pub mode: Mode,
    /// The token of the change that set it.
    pub fence: u64,
    /// The shard's version in the map.
    pub version: u64,
}

impl OwnerState {
    /// Read-write at `version`, set with `fence`.
    pub fn rw(fence: u64, version: u64) -> Self {
        OwnerState {
            mode: Mode::ReadWrite,
            fence,
            version,
        }
    }

    /// Read-only at `version`, set with `fence`.
    pub fn ro(fence: u64, version: u64) -> Self {
        OwnerState {
            mode: Mode::ReadOnly,
            fence,
            version,
        }
    }

    /// Parses `rw:F:V` / `ro:F:V`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let mode = match parts.next()? {
            "rw" => Mode::ReadWrite,
            "ro" => Mode::ReadOnly,
            _ => return None,
        };
        let fence = parts.next()?.parse().ok()?;
        let version = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(OwnerState {
            mode,
            fence,
            version,
        })
    }
}

impl fmt::Display for OwnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            Mode::ReadWrite => "rw",
            Mode::ReadOnly => "ro",
        };
        write!(f, "{mode}:{}:{}", self.fence, self.version)
    }
}

/// A checksum of a range: the number of keys and two sums of per-key hashes of
/// (key, value, ts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Keys in the range.
    pub keys: u64,
    /// Sum of the first 24 hash bits.
    pub sum1: u64,
    /// Sum of the next 24 hash bits.
    pub sum2: u64,
}

/// A stored write as `HMGET value ts ver` returns it.
type RawValue = (Option<Vec<u8>>, Option<u64>, Option<u64>);

/// Page size of range scans: bounds how long one script blocks its Redis.
const PAGE: usize = 1000;

/// One data node and its connection.
pub struct Node {
    endpoint: Endpoint,
    layout: Layout,
}

impl Node {
    /// The node `name` at `url` with the data layout under `prefix`; connects on first use and
    /// gives up on a call after `timeout`.
    pub fn open(
        name: &str,
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, MigrationError> {
        Ok(Node {
            endpoint: Endpoint::open(name, url, timeout)?,
            layout: Layout::new(prefix),
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// The node's key layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// PING.
    pub fn ping(&mut self) -> Result<(), MigrationError> {
        self.endpoint
            .run("ping", "", |c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    /// Writes `key` (in shard `slot`, at the client's shard version `map_version`) under
    /// `policy`, in one script: refused unless the node owns the shard read-write and the
    /// client's map is not older than the shard's ownership; the conflict with the stored write
    /// is resolved by `policy` (a repeat of the stored write is recognised); the node's version
    /// counter gives the write its version; the key is indexed and, while a shadow copy of the
    /// shard is fed, appended to its delta log.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        slot: &str,
        map_version: u64,
        key: &str,
        position: u32,
        data: &[u8],
        ts: u64,
        policy: ConflictPolicy,
    ) -> Result<Written, MigrationError> {
        let l = &self.layout;
        let (data_key, index, owners, shadows, delta, counter) = (
            l.data(key),
            l.index(),
            l.owners(),
            l.shadows(),
            l.delta(slot),
            l.counter(),
        );
        let reply: Result<(i64, u64, u64), _> = self.endpoint.run("write", slot, |c| {
            scripts::WRITE
                .key(data_key)
                .key(index)
                .key(owners)
                .key(shadows)
                .key(delta)
                .key(counter)
                .arg(slot)
                .arg(map_version)
                .arg(key)
                .arg(position)
                .arg(data)
                .arg(ts)
                .arg(policy.as_arg())
                .invoke(c)
        });
        let (status, ver, stored_ts) = reply.map_err(|err| match err {
            MigrationError::Conflict {
                node, stored_ts, ..
            } => MigrationError::Conflict {
                node,
                key: key.to_string(),
                ts,
                stored_ts,
            },
            other => other,
        })?;
        let outcome = match status {
            1 => WriteOutcome::Applied,
            2 => WriteOutcome::AlreadyApplied,
            _ => WriteOutcome::Superseded,
        };
        Ok(Written {
            outcome,
            ver,
            ts: stored_ts,
        })
    }

    /// Reads `key` through shard `slot`, refused unless this node owns the shard.
    pub fn read(&mut self, slot: &str, key: &str) -> Result<Option<Value>, MigrationError> {
        let (data_key, owners) = (self.layout.data(key), self.layout.owners());
        let reply: RawValue = self.endpoint.run("read", slot, |c| {
            scripts::READ.key(data_key).key(owners).arg(slot).invoke(c)
        })?;
        Ok(to_value(reply))
    }

    /// Reads `keys` whatever the ownership (for copies, replicas and the cache-miss path), in
    /// one pipeline.
    pub fn read_many(&mut self, keys: &[String]) -> Result<Vec<Option<Value>>, MigrationError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HMGET")
                .arg(self.layout.data(key))
                .arg("value")
                .arg("ts")
                .arg("ver");
        }
        let replies: Vec<RawValue> = self.endpoint.run("reading keys", "", |c| pipe.query(c))?;
        Ok(replies.into_iter().map(to_value).collect())
    }

    /// The stored versions of `keys` (`None` where absent), in one pipeline: the validation
    /// token of a copied segment.
    pub fn versions(&mut self, keys: &[String]) -> Result<Vec<Option<u64>>, MigrationError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("HGET").arg(self.layout.data(key)).arg("ver");
        }
        self.endpoint.run("reading versions", "", |c| pipe.query(c))
    }

    /// Applies copies of writes made elsewhere, each only if newer by version; refused if this
    /// node owns `slot` (pass `""` to skip that check). Returns how many were applied.
    pub fn apply(&mut self, slot: &str, entries: &[Entry]) -> Result<u64, MigrationError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let mut invocation = scripts::APPLY.prepare_invoke();
        invocation
            .key(self.layout.index())
            .key(self.layout.owners())
            .key(self.layout.counter())
            .arg(slot);
        for entry in entries {
            invocation
                .key(self.layout.data(&entry.key))
                .arg(&entry.key)
                .arg(entry.position)
                .arg(&entry.value.data)
                .arg(entry.value.ts)
                .arg(entry.value.ver);
        }
        self.endpoint
            .run("applying copies", slot, |c| invocation.invoke(c))
    }

    /// Up to `count` keys of `range` from `offset`, in ring order.
    pub fn range_keys(
        &mut self,
        range: HashRange,
        offset: usize,
        count: usize,
    ) -> Result<Vec<String>, MigrationError> {
        let Some(hi) = last_position(range) else {
            return Ok(Vec::new());
        };
        let index = self.layout.index();
        self.endpoint.run("listing a range", "", |c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(index)
                .arg(range.lo)
                .arg(hi)
                .arg("LIMIT")
                .arg(offset)
                .arg(count)
                .query(c)
        })
    }

    /// Every key of `range` in ring order.
    pub fn all_keys(&mut self, range: HashRange) -> Result<Vec<String>, MigrationError> {
        let mut keys = Vec::new();
        loop {
            let page = self.range_keys(range, keys.len(), PAGE)?;
            let done = page.len() < PAGE;
            keys.extend(page);
            if done {
                return Ok(keys);
            }
        }
    }

    /// Every key of `range` with its version, in ring order.
    pub fn range_versions(
        &mut self,
        range: HashRange,
    ) -> Result<Vec<(String, u64)>, MigrationError> {
        let Some(hi) = last_position(range) else {
            return Ok(Vec::new());
        };
        let (index, prefix) = (self.layout.index(), self.layout.data_prefix());
        let mut out = Vec::new();
        loop {
            let offset = out.len();
            let page: Vec<(String, u64)> = self.endpoint.run("listing versions", "", |c| {
                scripts::RANGE_VERSIONS
                    .key(&index)
                    .arg(range.lo)
                    .arg(hi)
                    .arg(offset)
                    .arg(PAGE)
                    .arg(&prefix)
                    .invoke(c)
            })?;
            let done = page.len() < PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// The checksum of `range`: its key count and two sums of 24-bit parts of
    /// SHA-1(key, value, ts) over its keys, computed on the node page by page.
    pub fn checksum(&mut self, range: HashRange) -> Result<Checksum, MigrationError> {
        let Some(hi) = last_position(range) else {
            return Ok(Checksum::default());
        };
        let (index, prefix) = (self.layout.index(), self.layout.data_prefix());
        let mut sum = Checksum::default();
        loop {
            let offset = sum.keys;
            let (keys, s1, s2): (u64, u64, u64) = self.endpoint.run("checksum", "", |c| {
                scripts::CHECKSUM
                    .key(&index)
                    .arg(range.lo)
                    .arg(hi)
                    .arg(offset)
                    .arg(PAGE)
                    .arg(&prefix)
                    .invoke(c)
            })?;
            sum.keys += keys;
            sum.sum1 += s1;
            sum.sum2 += s2;
            if keys < PAGE as u64 {
                return Ok(sum);
            }
        }
    }

    /// Deletes every key of `range`, refused if this node owns `slot`. Returns how many went.
    pub fn drop_range(&mut self, slot: &str, range: HashRange) -> Result<u64, MigrationError> {
        let Some(hi) = last_position(range) else {
            return Ok(0);
        };
        let (index, owners, prefix) = (
            self.layout.index(),
            self.layout.owners(),
            self.layout.data_prefix(),
        );
        let mut dropped = 0;
        loop {
            let n: u64 = self.endpoint.run("dropping a range", slot, |c| {
                scripts::DROP_RANGE
                    .key(&index)
                    .key(&owners)
                    .arg(slot)
                    .arg(range.lo)
                    .arg(hi)
                    .arg(PAGE)
                    .arg(&prefix)
                    .invoke(c)
            })?;
            dropped += n;
            if n < PAGE as u64 {
                return Ok(dropped);
            }
        }
    }

    /// This node's ownership of `slot`, if any.
    pub fn owner(&mut self, slot: &str) -> Result<Option<OwnerState>, MigrationError> {
        let owners = self.layout.owners();
        let text: Option<String> = self.endpoint.run("reading ownership", slot, |c| {
            redis::cmd("HGET").arg(owners).arg(slot).query(c)
        })?;
        text.map(|t| {
            OwnerState::parse(&t).ok_or_else(|| {
                MigrationError::Invalid(format!("{}: bad ownership {t:?} of {slot}", self.name()))
            })
        })
        .transpose()
    }

    /// Sets (`Some`) or removes (`None`) this node's ownership of `slot` with fencing token
    /// `token`; refused with [`MigrationError::StaleFence`] if the node has seen a higher one.
    pub fn set_owner(
        &mut self,
        slot: &str,
        token: u64,
        state: Option<OwnerState>,
    ) -> Result<(), MigrationError> {
        let (owners, fences) = (self.layout.owners(), self.layout.fences());
        let state = state.map(|s| s.to_string()).unwrap_or_default();
        self.endpoint
            .run("changing ownership", slot, |c| {
                scripts::SET_OWNER
                    .key(owners)
                    .key(fences)
                    .arg(slot)
                    .arg(token)
                    .arg(state)
                    .invoke::<i64>(c)
            })
            .map(drop)
            .map_err(|err| with_token(err, token))
    }

    /// Starts feeding `slot`'s delta log for a copy of `range` (the whole shard or a part of it):
    /// every later write of the shard appends its key. An old log is discarded (a new shadow
    /// copies its whole range anyway). The range is kept with the flag so that a split can hand
    /// the feed to the child holding it ([`Node::split_ownership`]).
    pub fn shadow_begin(&mut self, slot: &str, range: HashRange) -> Result<(), MigrationError> {
        let (shadows, delta) = (self.layout.shadows(), self.layout.delta(slot));
        self.endpoint.run("starting the delta log", slot, |c| {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(delta)
                .ignore()
                .cmd("HSET")
                .arg(shadows)
                .arg(slot)
                .arg(format!("{}:{}", range.lo, range.hi))
                .ignore()
                .query::<()>(c)
        })
    }

    /// Re-aims `slot`'s delta-log feed at a copy of `range`, if it is fed; returns whether it
    /// was (a copy handed over to a shard must find that shard's writes logged already).
    pub fn shadow_follow(&mut self, slot: &str, range: HashRange) -> Result<bool, MigrationError> {
        let shadows = self.layout.shadows();
        let fed: i64 = self.endpoint.run("re-aiming the delta log", slot, |c| {
            scripts::SHADOW_FOLLOW
                .key(shadows)
                .arg(slot)
                .arg(format!("{}:{}", range.lo, range.hi))
                .invoke(c)
        })?;
        Ok(fed == 1)
    }

    /// Splits `parent` (`parent_range`) into `children` (slot, ownership, range; left then
    /// right) in one script with fencing token `token`: both children owned, the parent given
    /// up, and, if the parent's delta log was fed, each child overlapping the copied range fed
    /// from here on (see [`scripts::SPLIT`]). Returns the slots of the children now fed.
    pub fn split_ownership(
        &mut self,
        parent: &str,
        parent_range: HashRange,
        token: u64,
        children: [(&str, OwnerState, HashRange); 2],
    ) -> Result<Vec<String>, MigrationError> {
        let l = &self.layout;
        let mut invocation = scripts::SPLIT.prepare_invoke();
        invocation
            .key(l.owners())
            .key(l.fences())
            .key(l.shadows())
            .key(l.delta(children[0].0))
            .key(l.delta(children[1].0))
            .arg(parent)
            .arg(token)
            .arg(parent_range.lo)
            .arg(parent_range.hi);
        for (slot, state, range) in &children {
            invocation
                .arg(*slot)
                .arg(state.to_string())
                .arg(range.lo)
                .arg(range.hi);
        }
        self.endpoint
            .run("splitting ownership", parent, |c| invocation.invoke(c))
            .map_err(|err| with_token(err, token))
    }

    /// Stops feeding `slot`'s delta log and deletes it.
    pub fn shadow_end(&mut self, slot: &str) -> Result<(), MigrationError> {
        let (shadows, delta) = (self.layout.shadows(), self.layout.delta(slot));
        self.endpoint.run("ending the delta log", slot, |c| {
            redis::pipe()
                .atomic()
                .cmd("HDEL")
                .arg(shadows)
                .arg(slot)
                .ignore()
                .cmd("DEL")
                .arg(delta)
                .ignore()
                .query::<()>(c)
        })
    }

    /// Whether `slot`'s delta log is being fed.
    pub fn shadowing(&mut self, slot: &str) -> Result<bool, MigrationError> {
        let shadows = self.layout.shadows();
        self.endpoint.run("reading the shadow flag", slot, |c| {
            redis::cmd("HEXISTS").arg(shadows).arg(slot).query(c)
        })
    }

    /// The first `count` keys of `slot`'s delta log, oldest first.
    pub fn delta_peek(&mut self, slot: &str, count: usize) -> Result<Vec<String>, MigrationError> {
        let delta = self.layout.delta(slot);
        self.endpoint.run("reading the delta log", slot, |c| {
            redis::cmd("LRANGE")
                .arg(delta)
                .arg(0)
                .arg(count.saturating_sub(1))
                .query(c)
        })
    }

    /// Removes the first `count` keys of `slot`'s delta log (after they were applied).
    pub fn delta_trim(&mut self, slot: &str, count: usize) -> Result<(), MigrationError> {
        let delta = self.layout.delta(slot);
        self.endpoint.run("trimming the delta log", slot, |c| {
            redis::cmd("LTRIM").arg(delta).arg(count).arg(-1).query(c)
        })
    }
}

/// The last ring position of `range` (the index is queried with inclusive bounds), `None` for
/// an empty range.
fn last_position(range: HashRange) -> Option<u64> {
    (range.hi > range.lo).then(|| range.hi - 1)
}

fn to_value(reply: RawValue) -> Option<Value> {
    match reply {
        (Some(data), Some(ts), Some(ver)) => Some(Value { data, ts, ver }),
        _ => None,
    }
}

/// A stale-fence refusal names the token that was refused: the node's reply only knows the one it
/// had seen.
fn with_token(err: MigrationError, token: u64) -> MigrationError {
    match err {
        MigrationError::StaleFence {
            node, slot, seen, ..
        } => MigrationError::StaleFence {
            node,
            slot,
            token,
            seen,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_round_trips_through_its_text_form() {
        for state in [OwnerState::rw(12, 3), OwnerState::ro(1, 0)] {
            assert_eq!(OwnerState::parse(&state.to_string()), Some(state));
        }
        assert_eq!(OwnerState::parse("rw:1"), None);
        assert_eq!(OwnerState::parse("xx:1:2"), None);
        assert_eq!(OwnerState::parse("rw:1:2:3"), None);
    }
}
