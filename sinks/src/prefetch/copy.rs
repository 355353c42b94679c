//! One attempt at copying one key from the primary into one regional cache.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::landed::{data_key, landed_key};
use crate::redis_table::connect;
use crate::SinkError;

/// Writes the copy only if the region does not hold the key yet, and records the landing time
/// in the same step, so a value someone else wrote after our EXISTS check is never overwritten
/// and a landing is recorded exactly when a copy was written.
///
/// KEYS[1]: data key, KEYS[2]: landing hash. ARGV: value, TTL in ms, order key, landed-at ms.
/// Returns 1 if written, 0 if the key was already there. The hash's type is checked first
/// because Redis does not roll back a script that fails halfway.
const SET_IF_ABSENT_AND_RECORD: &str = r#"
local t = redis.call('TYPE', KEYS[2]).ok
if t ~= 'hash' and t ~= 'none' then
  return redis.error_reply('shardcast: ' .. KEYS[2] .. ' is a ' .. t .. ', not a hash')
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"#;

/// Connect, read and write timeout of one attempt, so a hung server counts as a failure
/// instead of stalling its worker.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How one copy attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Copied {
    /// The value (of this many bytes) was written to the region and its landing recorded.
    Landed { bytes: u64 },
    /// The region already held the key; nothing was written.
    AlreadyPresent,
    /// The primary does not hold the key; nothing was written.
    MissingInPrimary,
}

/// One Redis server and the connection to it, opened on demand and dropped after any error
/// (it may be broken or hold half a reply); the next attempt reconnects.
struct Endpoint {
    name: String,
    client: redis::Client,
    conn: Option<redis::Connection>,
}

impl Endpoint {
    fn run<T>(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, SinkError> {
        let conn = match self.conn.as_mut() {
            Some(conn) => conn,
            None => self.conn.insert(
                connect(&self.client, IO_TIMEOUT).map_err(|e| with_context(e, &self.name))?,
            ),
        };
        op(conn).map_err(|e| {
            self.conn = None;
            SinkError::redis(format!("{}: {what}", self.name), e)
        })
    }
}

/// Prefixes the context of a Redis error with the store it came from.
fn with_context(err: SinkError, store: &str) -> SinkError {
    match err {
        SinkError::Redis { context, source } => {
            SinkError::redis(format!("{store}: {context}"), source)
        }
        other => other,
    }
}

/// Copies keys from the primary into one region.
pub(crate) struct Copier {
    primary: Endpoint,
    region: Endpoint,
    key_prefix: String,
    ttl_ms: u64,
    script: redis::Script,
}

impl Copier {
    /// A copier for `region`; connects on first use.
    pub(crate) fn new(
        primary: redis::Client,
        region_name: &str,
        region: redis::Client,
        key_prefix: &str,
        ttl_ms: u64,
    ) -> Self {
        Copier {
            primary: Endpoint {
                name: "primary".into(),
                client: primary,
                conn: None,
            },
            region: Endpoint {
                name: format!("region {region_name:?}"),
                client: region,
                conn: None,
            },
            key_prefix: key_prefix.to_string(),
            ttl_ms,
            script: redis::Script::new(SET_IF_ABSENT_AND_RECORD),
        }
    }

    /// One attempt: EXISTS in the region (to save the primary read), GET from the primary,
    /// then the conditional write with TTL and landing record.
    pub(crate) fn copy_once(&mut self, key: &str) -> Result<Copied, SinkError> {
        let data = data_key(&self.key_prefix, key);
        let present: bool = self.region.run("checking the key", |conn| {
            redis::cmd("EXISTS").arg(&data).query(conn)
        })?;
        if present {
            return Ok(Copied::AlreadyPresent);
        }
        let value: Option<Vec<u8>> = self.primary.run("reading the key", |conn| {
            redis::cmd("GET").arg(&data).query(conn)
        })?;
        let Some(value) = value else {
            return Ok(Copied::MissingInPrimary);
        };
        self.write_if_absent(key, &value)
    }

    /// The conditional write of one copy and its landing record (see
    /// [`SET_IF_ABSENT_AND_RECORD`]).
    fn write_if_absent(&mut self, key: &str, value: &[u8]) -> Result<Copied, SinkError> {
        let data = data_key(&self.key_prefix, key);
        let landed = landed_key(&self.key_prefix);
        let landed_at = unix_ms();
        let written: i64 = self.region.run("writing the copy", |conn| {
            self.script
                .key(&data)
                .key(&landed)
                .arg(value)
                .arg(self.ttl_ms)
                .arg(key)
                .arg(landed_at)
                .invoke(conn)
        })?;
        Ok(if written == 1 {
            Copied::Landed {
                bytes: value.len() as u64,
            }
        } else {
            Copied::AlreadyPresent
        })
    }
}

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before 1970).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisServer;

    fn client(server: &RedisServer) -> redis::Client {
        redis::Client::open(server.url()).expect("the test server's URL parses")
    }

    fn query<T: redis::FromRedisValue>(conn: &mut redis::Connection, cmd: &mut redis::Cmd) -> T {
        cmd.query(conn)
            .unwrap_or_else(|e| panic!("redis command failed: {e}"))
    }

    // The EXISTS check cannot be interleaved with another writer from a test, so the write
    // step is run on its own against a key that "someone else" wrote after the check.
    #[test]
    fn write_never_overwrites_a_value_written_after_the_check() {
        let region = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let mut conn = region.connection().unwrap_or_else(|e| panic!("{e}"));
        let mut copier = Copier::new(client(&region), "eu", client(&region), "d:", 5_000);

        let _: () = query(&mut conn, redis::cmd("SET").arg("d:raced").arg("theirs"));
        assert_eq!(
            copier
                .write_if_absent("raced", b"ours")
                .expect("write runs"),
            Copied::AlreadyPresent
        );
        let kept: String = query(&mut conn, redis::cmd("GET").arg("d:raced"));
        assert_eq!(kept, "theirs");
        let ttl: i64 = query(&mut conn, redis::cmd("PTTL").arg("d:raced"));
        assert_eq!(ttl, -1, "the other writer's key got our TTL");

        assert_eq!(
            copier
                .write_if_absent("fresh", b"ours")
                .expect("write runs"),
            Copied::Landed { bytes: 4 }
        );
        let landed: Vec<String> = query(&mut conn, redis::cmd("HKEYS").arg("d:prefetch:landed"));
        assert_eq!(landed, ["fresh"], "only the written copy may be recorded");
    }

    #[test]
    fn a_landing_record_of_the_wrong_type_fails_before_writing() {
        let region = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let mut conn = region.connection().unwrap_or_else(|e| panic!("{e}"));
        let mut copier = Copier::new(client(&region), "eu", client(&region), "d:", 5_000);
        let _: () = query(
            &mut conn,
            redis::cmd("SET").arg("d:prefetch:landed").arg("oops"),
        );

        let err = copier
            .write_if_absent("k", b"v")
            .expect_err("a string landing record must be an error");
        assert!(
            !err.is_transient(),
            "retrying cannot fix a wrong type: {err}"
        );
        assert!(err.to_string().contains("region \"eu\""), "{err}");
        let exists: bool = query(&mut conn, redis::cmd("EXISTS").arg("d:k"));
        assert!(!exists, "the copy was written although recording it failed");
    }
}
