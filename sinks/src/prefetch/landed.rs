//! Where the executor puts data and landing records in a store, and reading the records back.

use std::collections::BTreeMap;

/// The key of order key `key` in every store: `key_prefix` + `key`.
pub fn data_key(key_prefix: &str, key: &str) -> String {
    format!("{key_prefix}{key}")
}

/// The hash in a regional cache recording when each prefetched key landed:
/// `key_prefix` + `prefetch:landed`, field = order key (without prefix), value = unix ms.
pub fn landed_key(key_prefix: &str) -> String {
    format!("{key_prefix}prefetch:landed")
}

/// Reads the landing record of a regional cache: order key -> unix ms at which the executor
/// wrote its copy. Fails if the connection fails or a value is not a number of milliseconds.
pub fn read_landed(
    conn: &mut redis::Connection,
    key_prefix: &str,
) -> redis::RedisResult<BTreeMap<String, u64>> {
    redis::cmd("HGETALL")
        .arg(landed_key(key_prefix))
        .query(conn)
}
