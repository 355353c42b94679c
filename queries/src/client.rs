//! The client side of `shardcast sql "..."`: run SQL against a running job's
//! PostgreSQL endpoint and print the answer.

use std::error::Error as _;
use std::time::Duration;

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::text_table;
use crate::QueryError;

/// How long to wait for the job to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `sql` (one or more `;`-separated statements) on the job listening at
/// `addr` (`HOST:PORT`, e.g. `127.0.0.1:6875`) as user `shardcast`, and
/// returns each result set as a psql-style aligned table with a header and
/// a row count, separated by blank lines. Statements without a result set
/// (e.g. `SET`) add nothing.
///
/// A refused connection gives [`QueryError::ConnectionRefused`], whose
/// message says the job is not running or listens on another
/// `--sql-listen` address; SQL errors give [`QueryError::Remote`] with the
/// server's message.
pub async fn run_remote_query(addr: &str, sql: &str) -> Result<String, QueryError> {
    let (host, port) = split_addr(addr)?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port)
        .user("shardcast")
        .dbname("shardcast")
        .application_name("shardcast sql")
        .connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|error| connect_error(addr, &error))?;
    // The connection object does the actual I/O and must be polled while
    // the client is used; it ends when the client is dropped.
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "SQL connection closed with an error");
        }
    });

    let result = client.simple_query(sql).await;
    drop(client);
    // Dropping the client ends the connection task; wait for it so it does
    // not outlive this call.
    let _ = driver.await;
    let messages = result.map_err(|error| QueryError::Remote {
        addr: addr.to_owned(),
        message: describe(&error),
    })?;
    Ok(render_messages(&messages))
}

/// Splits `HOST:PORT`, accepting `[v6]:PORT` as well.
fn split_addr(addr: &str) -> Result<(String, u16), QueryError> {
    let invalid = || QueryError::InvalidAddress {
        addr: addr.to_owned(),
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid());
    }
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    Ok((host.to_owned(), port))
}

fn render_messages(messages: &[SimpleQueryMessage]) -> String {
    let mut tables = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(description) => {
                columns = Some(description.iter().map(|c| c.name().to_owned()).collect());
                rows.clear();
            }
            SimpleQueryMessage::Row(row) => {
                if columns.is_none() {
                    columns = Some(row.columns().iter().map(|c| c.name().to_owned()).collect());
                }
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(_) => {
                if let Some(columns) = columns.take() {
                    tables.push(text_table::render(&columns, &rows));
                }
                rows.clear();
            }
            // The enum is non-exhaustive.
            _ => {}
        }
    }
    tables.join("\n")
}

fn connect_error(addr: &str, error: &tokio_postgres::Error) -> QueryError {
    let refused = std::iter::successors(error.source(), |e| (*e).source()).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    if refused {
        QueryError::ConnectionRefused {
            addr: addr.to_owned(),
        }
    } else {
        QueryError::Connect {
            addr: addr.to_owned(),
            message: describe(error),
        }
    }
}

/// The error with its causes; for server errors, just the server's
/// `ERROR: message` (tokio-postgres' own text would be only "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.to_string();
    }
    let mut text = error.to_string();
    for cause in std::iter::successors(error.source(), |e| (*e).source()) {
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::split_addr;

    #[test]
    fn splits_addresses() {
        assert_eq!(
            split_addr("127.0.0.1:6875").unwrap(),
            ("127.0.0.1".to_owned(), 6875)
        );
        assert_eq!(split_addr("[::1]:5432").unwrap(), ("::1".to_owned(), 5432));
        assert_eq!(
            split_addr("localhost:1").unwrap(),
            ("localhost".to_owned(), 1)
        );
        assert!(split_addr("127.0.0.1").is_err());
        assert!(split_addr(":5432").is_err());
        assert!(split_addr("host:notaport").is_err());
    }
}
