//! One connection to one Redis server, opened on demand and dropped after a connection-level
//! failure, so the next call reconnects (a restarted or failed-over server is picked up without
//! any caller bookkeeping).

use std::time::Duration;

use super::MigrationError;

/// A named Redis endpoint and its connection, if open.
pub(crate) struct Endpoint {
    pub(crate) name: String,
    client: redis::Client,
    conn: Option<redis::Connection>,
    timeout: Duration,
}

impl Endpoint {
    /// An endpoint for `url`; nothing is connected yet.
    pub(crate) fn open(name: &str, url: &str, timeout: Duration) -> Result<Self, MigrationError> {
        let client = redis::Client::open(url).map_err(|source| MigrationError::Redis {
            node: name.to_string(),
            context: format!("parsing the URL {url:?}"),
            source,
        })?;
        Ok(Endpoint {
            name: name.to_string(),
            client,
            conn: None,
            timeout,
        })
    }

    /// Runs `op` on the connection (connecting first if needed). Protocol refusals from the
    /// node scripts become their [`MigrationError`] variants (naming `slot`); a connection-level
    /// error also drops the connection, which may hold half a reply.
    pub(crate) fn run<T>(
        &mut self,
        what: &str,
        slot: &str,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, MigrationError> {
        if self.conn.is_none() {
            let conn = self
                .client
                .get_connection_with_timeout(self.timeout)
                .and_then(|conn| {
                    conn.set_read_timeout(Some(self.timeout))?;
                    conn.set_write_timeout(Some(self.timeout))?;
                    Ok(conn)
                })
                .map_err(|source| MigrationError::Redis {
                    node: self.name.clone(),
                    context: "connecting".into(),
                    source,
                })?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("connected above");
        op(conn).map_err(|err| {
            if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() {
                self.conn = None;
            }
            MigrationError::from_redis(&self.name, what, slot, err)
        })
    }
}
