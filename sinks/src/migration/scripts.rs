//! The node side of the protocol, as Lua scripts: each runs atomically on its Redis, so an
//! ownership check and the write it guards can never be separated by another client's command.
//!
//! Refusals are error replies whose first word is a code the client maps to a
//! [`MigrationError`](super::MigrationError): `NOT_OWNER slot`, `READ_ONLY slot`,
//! `STALE_MAP version`, `NOT_REPLICA slot`, `CONFLICT stored_ts`, `STALE_FENCE seen`.
//! Keys the scripts build from a prefix (data hashes found through the index) are not declared,
//! which is fine on a standalone Redis (these nodes are not a Redis Cluster).

use std::sync::LazyLock;

/// A write by the data path.
///
/// KEYS: data, index, owners, shadows, delta, counter.
/// ARGV: slot, the client's version of the shard, key, ring position, value, ts, policy
/// (`lww` or `reject`).
///
/// Checks that the node owns the shard read-write and that the client's map is not older than
/// the shard's configuration; resolves the conflict with the stored write (a retry of the same
/// write, same ts and value, is recognised and not applied twice; ties on ts go to the larger
/// value, so every node picks the same winner); bumps the node's version counter; indexes the
/// key; appends it to the delta log while a shadow copy is being fed.
///
/// Returns `{status, ver, ts}`: status 1 applied, 2 already applied, 0 kept a newer write
/// (`ver`, `ts` are then the stored ones).
pub(crate) static WRITE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local own = redis.call('HGET', KEYS[3], ARGV[1])
if not own then return redis.error_reply('NOT_OWNER ' .. ARGV[1]) end
local mode, version = string.match(own, '^(%a+):%d+:(%d+)$')
if mode ~= 'rw' then return redis.error_reply('READ_ONLY ' .. ARGV[1]) end
if tonumber(ARGV[2]) < tonumber(version) then
  return redis.error_reply('STALE_MAP ' .. version)
end
local ts = tonumber(ARGV[6])
local cur = redis.call('HMGET', KEYS[1], 'value', 'ts', 'ver')
if cur[2] then
  local cts = tonumber(cur[2])
  if cts == ts and cur[1] == ARGV[5] then return {2, tonumber(cur[3]), cts} end
  if ts < cts or (ts == cts and ARGV[5] < cur[1]) then
    if ARGV[7] == 'reject' then return redis.error_reply('CONFLICT ' .. cur[2]) end
    return {0, tonumber(cur[3]), cts}
  end
end
local ver = redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[1], 'value', ARGV[5], 'ts', ARGV[6], 'ver', ver)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[5], ARGV[3])
end
return {1, ver, ts}
"#,
    )
});

/// A read by the data path: the stored `{value, ts, ver}` (nils if absent), if the node owns
/// the shard (read-write or read-only: reads continue during a switchover).
///
/// KEYS: data, owners. ARGV: slot.
pub(crate) static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return redis.error_reply('NOT_OWNER ' .. ARGV[1])
end
return redis.call('HMGET', KEYS[1], 'value', 'ts', 'ver')
"#,
    )
});

/// Copies of writes made elsewhere, applied only if newer than what the node holds (by
/// version), so replication and copies only ever move a key forward and may be repeated or
/// reordered safely. Raises the node's counter to the highest version applied, so the node's
/// own later writes of these keys get higher versions (versions act as a Lamport clock along
/// the chain of owners).
///
/// Refuses (`NOT_REPLICA`) if the node owns `slot`: a client whose map still lists the new owner
/// as a replica must refresh, or it would write around the owner's ordering.
///
/// KEYS: index, owners, counter, then one data key per entry.
/// ARGV: slot (`''` skips the check), then per entry: key, position, value, ts, ver.
/// Returns the number of entries applied.
pub(crate) static APPLY: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return redis.error_reply('NOT_REPLICA ' .. ARGV[1])
end
local applied = 0
local top = tonumber(redis.call('GET', KEYS[3]) or '0')
local raised = false
for i = 1, (#ARGV - 1) / 5 do
  local b = 1 + (i - 1) * 5
  local ver = tonumber(ARGV[b + 5])
  local cur = tonumber(redis.call('HGET', KEYS[3 + i], 'ver') or '0')
  if ver > cur then
    redis.call('HSET', KEYS[3 + i], 'value', ARGV[b + 3], 'ts', ARGV[b + 4], 'ver', ARGV[b + 5])
    redis.call('ZADD', KEYS[1], ARGV[b + 2], ARGV[b + 1])
    applied = applied + 1
  end
  if ver > top then top = ver; raised = true end
end
if raised then redis.call('SET', KEYS[3], string.format('%d', top)) end
return applied
"#,
    )
});

/// Sets (or, with an empty state, removes) the node's ownership of a shard, if the fencing
/// token is not lower than the highest the node has seen for it.
///
/// KEYS: owners, fences. ARGV: slot, token, state (`rw:F:V`, `ro:F:V` or `''`).
pub(crate) static SET_OWNER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen and tonumber(ARGV[2]) < tonumber(seen) then
  return redis.error_reply('STALE_FENCE ' .. seen)
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
"#,
    )
});

/// Keys of a range with their versions, one page: `{key, ver, key, ver, ...}`.
///
/// KEYS: index. ARGV: lo, hi (inclusive), offset, count, data prefix.
pub(crate) static RANGE_VERSIONS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', ARGV[3], ARGV[4])
local out = {}
for _, k in ipairs(keys) do
  out[#out + 1] = k
  out[#out + 1] = redis.call('HGET', ARGV[5] .. k, 'ver') or '0'
end
return out
"#,
    )
});

/// The checksum of one page of a range: `{count, sum1, sum2}`, where each key contributes the
/// first and second 24 bits of SHA-1(key NUL value NUL ts). Sums, not XOR, so that two equal
/// differences cannot cancel; 24-bit parts keep every sum exact in Lua's doubles.
///
/// KEYS: index. ARGV: lo, hi (inclusive), offset, count, data prefix.
pub(crate) static CHECKSUM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', ARGV[3], ARGV[4])
local s1, s2 = 0, 0
for _, k in ipairs(keys) do
  local h = redis.call('HMGET', ARGV[5] .. k, 'value', 'ts')
  local d = redis.sha1hex(k .. '\0' .. (h[1] or '') .. '\0' .. (h[2] or ''))
  s1 = s1 + tonumber(string.sub(d, 1, 6), 16)
  s2 = s2 + tonumber(string.sub(d, 7, 12), 16)
end
return {#keys, s1, s2}
"#,
    )
});

/// Deletes up to `count` keys of a range (data and index), unless the node owns `slot`.
/// Returns how many went.
///
/// KEYS: index, owners. ARGV: slot, lo, hi (inclusive), count, data prefix.
pub(crate) static DROP_RANGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return redis.error_reply('NOT_REPLICA ' .. ARGV[1])
end
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, ARGV[4])
for _, k in ipairs(keys) do
  redis.call('DEL', ARGV[5] .. k)
  redis.call('ZREM', KEYS[1], k)
end
return #keys
"#,
    )
});

/// A split on the owner's node, in one step: both children owned, the parent given up, and the
/// parent's delta-log feed (if a shadow copy of it runs) handed to the children that overlap
/// the copied range, so no write between "parent retired" and "child logged" can be missed.
///
/// KEYS: owners, fences, shadows, delta of the left child, delta of the right child.
/// ARGV: parent slot, token, parent lo, parent hi, then per child (left, right): slot, state,
/// lo, hi (ranges half-open).
///
/// Refused (`STALE_FENCE`) if the node has seen a higher token for any of the three shards. A
/// child's feed gets the part of the parent's copied range inside the child (`lo:hi`; a flag
/// without a range stands for the whole parent) and a fresh, empty log. The parent's flag and
/// log stay: the copy drains what was logged before the split, then ends them.
///
/// Returns the slots of the children now feeding a delta log.
pub(crate) static SPLIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local token = tonumber(ARGV[2])
for _, s in ipairs({ARGV[1], ARGV[5], ARGV[9]}) do
  local seen = redis.call('HGET', KEYS[2], s)
  if seen and token < tonumber(seen) then
    return redis.error_reply('STALE_FENCE ' .. seen)
  end
end
local flag = redis.call('HGET', KEYS[3], ARGV[1])
local flo, fhi
if flag then
  flo, fhi = string.match(flag, '^(%d+):(%d+)$')
  if flo then
    flo, fhi = tonumber(flo), tonumber(fhi)
  else
    flo, fhi = tonumber(ARGV[3]), tonumber(ARGV[4])
  end
end
local fed = {}
for i = 0, 1 do
  local b = 5 + i * 4
  local child = ARGV[b]
  redis.call('HSET', KEYS[2], child, ARGV[2])
  if flag then
    local lo = math.max(flo, tonumber(ARGV[b + 2]))
    local hi = math.min(fhi, tonumber(ARGV[b + 3]))
    if lo < hi then
      redis.call('DEL', KEYS[4 + i])
      redis.call('HSET', KEYS[3], child, string.format('%d:%d', lo, hi))
      fed[#fed + 1] = child
    end
  end
  redis.call('HSET', KEYS[1], child, ARGV[b + 1])
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[1])
return fed
"#,
    )
});

/// Re-aims a running delta-log feed at another range (a shadow copy handed over, widened or
/// narrowed), only if the feed is on: a copy must not take over a shard whose writes nobody
/// logs.
///
/// KEYS: shadows. ARGV: slot, `lo:hi`. Returns 1 if the feed was on (and now names the range),
/// 0 if not.
pub(crate) static SHADOW_FOLLOW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#,
    )
});
