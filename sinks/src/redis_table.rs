//! A sink keeping the current state of decision tables in Redis hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::{retry, Change, RetryPolicy, Sink, SinkError};

/// The hash holding the rows of `table`: `PREFIX:TABLE` (field = row key, value = row JSON).
pub fn table_key(prefix: &str, table: &str) -> String {
    format!("{prefix}:{table}")
}

/// The string holding the last version applied to `table`: `PREFIX:TABLE:version`.
pub fn version_key(prefix: &str, table: &str) -> String {
    format!("{prefix}:{table}:version")
}

/// Applies one version to any number of tables in one atomic script.
///
/// KEYS: per table, its hash then its version key. ARGV[1]: the version (decimal). Then per
/// table: number of fields to delete, number of fields to set, the deleted fields, then
/// field/value pairs. A table whose stored version is >= the new one is left alone, which makes
/// rewriting an old version after a restart a no-op. Key types are checked before any write
/// because Redis does not roll back a script that fails halfway.
const APPLY_VERSION: &str = r#"
local function at_least(stored, v)
  -- exact comparison of decimal strings; Lua numbers lose precision above 2^53
  if #stored ~= #v then return #stored > #v end
  return stored >= v
end
local version = ARGV[1]
for t = 1, #KEYS / 2 do
  local htype = redis.call('TYPE', KEYS[2*t-1]).ok
  local vtype = redis.call('TYPE', KEYS[2*t]).ok
  if (htype ~= 'hash' and htype ~= 'none') or (vtype ~= 'string' and vtype ~= 'none') then
    return redis.error_reply('shardcast: wrong type at ' .. KEYS[2*t-1] .. ' or ' .. KEYS[2*t])
  end
end
local pos = 2
local applied = 0
for t = 1, #KEYS / 2 do
  local hash, vkey = KEYS[2*t-1], KEYS[2*t]
  local ndel, nset = tonumber(ARGV[pos]), tonumber(ARGV[pos+1])
  pos = pos + 2
  local stored = redis.call('GET', vkey)
  if not (stored and at_least(stored, version)) then
    for i = pos, pos + ndel - 1 do
      redis.call('HDEL', hash, ARGV[i])
    end
    local first_set = pos + ndel
    for i = first_set, first_set + 2 * nset - 1, 2 do
      redis.call('HSET', hash, ARGV[i], ARGV[i+1])
    end
    redis.call('SET', vkey, version)
    applied = applied + 1
  end
  pos = pos + ndel + 2 * nset
end
return applied
"#;

/// Settings of a [`RedisTableSink`] beyond URL, prefix and tables.
#[derive(Clone, Debug)]
pub struct RedisSinkOptions {
    /// Back-off and total time budget for connection failures.
    pub retry: RetryPolicy,
    /// Connect, read and write timeout of one attempt, so a hung server counts as a failure.
    pub io_timeout: Duration,
}

impl Default for RedisSinkOptions {
    /// Default retry policy, 5 s I/O timeout.
    fn default() -> Self {
        RedisSinkOptions {
            retry: RetryPolicy::default(),
            io_timeout: Duration::from_secs(5),
        }
    }
}

/// Keeps the current state of selected tables in Redis: one hash per table `PREFIX:TABLE`
/// (field = row key, value = row JSON) plus the string `PREFIX:TABLE:version`.
///
/// Guarantees:
/// - Each version is applied by one Lua script, so readers (e.g. [`crate::read_table`]) see the
///   hash and its version either wholly before or wholly after a version, never in between.
/// - Idempotent, also across restarts: a version at or below a table's stored version is skipped.
/// - Per key within one version: if any change has `diff > 0`, the row of the last such change is
///   stored; if there are only retractions, the field is deleted.
/// - Every version, even an empty one, advances the stored version of every configured table.
/// - Changes to tables not given to the constructor are ignored.
/// - Connection failures are retried (reconnecting) with exponential back-off, warning on each
///   attempt, and reported as [`SinkError::GaveUp`] after `retry.give_up_after`.
pub struct RedisTableSink {
    name: String,
    client: redis::Client,
    conn: Option<redis::Connection>,
    prefix: String,
    tables: BTreeSet<String>,
    options: RedisSinkOptions,
    script: redis::Script,
}

/// What one version does to one row.
#[derive(Debug, PartialEq)]
enum RowOp<'a> {
    Set(&'a serde_json::Value),
    Delete,
}

impl RedisTableSink {
    /// A sink writing `tables` under `prefix` to the server at `url` (e.g.
    /// `redis://127.0.0.1:6379/0`) with default options. Only parses the URL; connects on the
    /// first write.
    pub fn new<I, S>(url: &str, prefix: &str, tables: I) -> Result<Self, SinkError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_options(url, prefix, tables, RedisSinkOptions::default())
    }

    /// Like [`RedisTableSink::new`] with explicit options.
    pub fn with_options<I, S>(
        url: &str,
        prefix: &str,
        tables: I,
        options: RedisSinkOptions,
    ) -> Result<Self, SinkError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if options.io_timeout.is_zero() {
            return Err(SinkError::Invalid(
                "redis sink: io_timeout must be positive".into(),
            ));
        }
        let client = redis::Client::open(url)
            .map_err(|e| SinkError::redis(format!("parsing URL for prefix {prefix}"), e))?;
        Ok(RedisTableSink {
            name: format!("redis:{prefix}"),
            client,
            conn: None,
            prefix: prefix.to_string(),
            tables: tables.into_iter().map(Into::into).collect(),
            options,
            script: redis::Script::new(APPLY_VERSION),
        })
    }

    /// The net effect of one version on each configured table, keyed by table then row key.
    fn row_ops<'a>(
        &self,
        changes: &'a [Change],
    ) -> BTreeMap<&'a str, BTreeMap<&'a str, RowOp<'a>>> {
        let mut ops: BTreeMap<&str, BTreeMap<&str, RowOp>> = BTreeMap::new();
        for change in changes {
            if !self.tables.contains(&change.table) {
                continue;
            }
            let rows = ops.entry(change.table.as_str()).or_default();
            if change.diff > 0 {
                rows.insert(change.key.as_str(), RowOp::Set(&change.row));
            } else if change.diff < 0 {
                rows.entry(change.key.as_str()).or_insert(RowOp::Delete);
            }
        }
        ops
    }
}

impl Sink for RedisTableSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_version(&mut self, version: u64, changes: &[Change]) -> Result<(), SinkError> {
        if self.tables.is_empty() {
            return Ok(());
        }
        let ops = self.row_ops(changes);
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(version.to_string());
        for table in &self.tables {
            invocation
                .key(table_key(&self.prefix, table))
                .key(version_key(&self.prefix, table));
            let rows = ops.get(table.as_str());
            let deletes: Vec<&str> = rows
                .into_iter()
                .flatten()
                .filter(|(_, op)| **op == RowOp::Delete)
                .map(|(key, _)| *key)
                .collect();
            let mut sets = Vec::new();
            for (key, op) in rows.into_iter().flatten() {
                if let RowOp::Set(row) = op {
                    sets.push((*key, serde_json::to_string(row)?));
                }
            }
            invocation.arg(deletes.len()).arg(sets.len());
            for key in deletes {
                invocation.arg(key);
            }
            for (key, row) in sets {
                invocation.arg(key).arg(row);
            }
        }
        let policy = self.options.retry;
        let what = format!("{}: writing version {version}", self.name);
        retry(&policy, &what, |_| {
            apply(
                &self.client,
                &mut self.conn,
                self.options.io_timeout,
                &invocation,
            )
        })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Every version is applied synchronously; nothing is buffered.
        Ok(())
    }
}

/// One attempt: (re)connect if needed and run the script. After any error the connection is
/// dropped, since it may be broken or hold a half-read reply; the next attempt reconnects.
fn apply(
    client: &redis::Client,
    conn: &mut Option<redis::Connection>,
    io_timeout: Duration,
    invocation: &redis::ScriptInvocation<'_>,
) -> Result<(), SinkError> {
    let live = match conn.as_mut() {
        Some(live) => live,
        None => conn.insert(connect(client, io_timeout)?),
    };
    match invocation.invoke::<i64>(live) {
        Ok(_) => Ok(()),
        Err(e) => {
            *conn = None;
            Err(SinkError::redis("applying version", e))
        }
    }
}

/// Opens a connection whose reads and writes time out after `io_timeout`.
pub(crate) fn connect(
    client: &redis::Client,
    io_timeout: Duration,
) -> Result<redis::Connection, SinkError> {
    let conn = client
        .get_connection_with_timeout(io_timeout)
        .map_err(|e| SinkError::redis("connecting", e))?;
    conn.set_read_timeout(Some(io_timeout))
        .and_then(|()| conn.set_write_timeout(Some(io_timeout)))
        .map_err(|e| SinkError::redis("setting timeouts", e))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(table: &str, key: &str, diff: i64, row: serde_json::Value) -> Change {
        Change::new(table, key, row, diff, 1)
    }

    #[test]
    fn row_ops_follow_the_per_key_rule() {
        let sink = RedisTableSink::new("redis://127.0.0.1:1/", "p", ["assignments"]).unwrap();
        let changes = [
            // update: retract old, insert new -> set new
            change("assignments", "c1", -1, json!("old")),
            change("assignments", "c1", 1, json!("new")),
            // two insertions: the last positive wins
            change("assignments", "c2", 1, json!("a")),
            change("assignments", "c2", 1, json!("b")),
            // only a retraction -> delete
            change("assignments", "c3", -1, json!("gone")),
            // insertion then retraction of another row -> still set
            change("assignments", "c4", 1, json!("kept")),
            change("assignments", "c4", -1, json!("other")),
            // not a configured table -> ignored
            change("key_load", "k", 1, json!(1)),
        ];
        let ops = sink.row_ops(&changes);
        assert_eq!(ops.len(), 1);
        let rows = &ops["assignments"];
        assert_eq!(rows["c1"], RowOp::Set(&json!("new")));
        assert_eq!(rows["c2"], RowOp::Set(&json!("b")));
        assert_eq!(rows["c3"], RowOp::Delete);
        assert_eq!(rows["c4"], RowOp::Set(&json!("kept")));
    }
}
