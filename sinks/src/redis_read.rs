//! Reading a table written by [`crate::RedisTableSink`] back, consistently.

use std::collections::BTreeMap;

use crate::redis_table::{table_key, version_key};
use crate::SinkError;

/// Reads the rows of `table` under `prefix` together with the version they belong to, in one
/// MULTI/EXEC transaction, so the rows are exactly the state after that version (the sink applies
/// each version atomically). The version is 0 if the table was never written.
///
/// Fails if the connection fails or the stored data is not what the sink writes (a version that
/// is not a decimal number, a row that is not JSON).
pub fn read_table<C>(
    conn: &mut C,
    prefix: &str,
    table: &str,
) -> Result<(u64, BTreeMap<String, serde_json::Value>), SinkError>
where
    C: redis::ConnectionLike,
{
    let vkey = version_key(prefix, table);
    let hkey = table_key(prefix, table);
    let (version, rows): (Option<String>, BTreeMap<String, String>) = redis::pipe()
        .atomic()
        .get(&vkey)
        .hgetall(&hkey)
        .query(conn)
        .map_err(|e| SinkError::redis(format!("reading {hkey}"), e))?;
    let version = match version {
        None => 0,
        Some(text) => text
            .parse()
            .map_err(|_| SinkError::Invalid(format!("{vkey} holds {text:?}, not a version")))?,
    };
    let rows = rows
        .into_iter()
        .map(|(key, json)| Ok((key, serde_json::from_str(&json)?)))
        .collect::<Result<_, SinkError>>()?;
    Ok((version, rows))
}
