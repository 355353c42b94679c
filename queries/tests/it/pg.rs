//! The PostgreSQL endpoint through tokio-postgres and `run_remote_query`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use shardcast_queries::{
    run_remote_query, serve_pg, spawn_pg_server_thread, PgServerHandle, QueryError, SnapshotStore,
};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::common::{check_consistent, publish, store, CONSISTENCY_SQL};

fn loopback_any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn connect(server: &PgServerHandle) -> Client {
    let addr = server.local_addr();
    let (client, connection) = tokio_postgres::Config::new()
        .host(addr.ip().to_string())
        .port(addr.port())
        .user("shardcast")
        .connect(NoTls)
        .await
        .expect("connects to the endpoint");
    tokio::spawn(connection);
    client
}

/// The text cells of every row a simple query returns.
async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<String>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

async fn served_store() -> (SnapshotStore, PgServerHandle) {
    let store = store();
    publish(&store, 1);
    let server = serve_pg(store.clone(), loopback_any_port())
        .await
        .expect("server starts");
    (store, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_read_the_store() {
    let (_store, server) = served_store().await;
    let client = connect(&server).await;

    assert_eq!(
        simple_rows(
            &client,
            "SELECT customer, partition FROM assignments ORDER BY 1 LIMIT 3"
        )
        .await,
        vec![vec!["acme", "3"], vec!["globex", "7"], vec!["hooli", "2"]]
    );

    // Extended protocol with a bound parameter.
    let rows = client
        .query(
            "SELECT customer, CAST(partition AS BIGINT) AS p, shift, score, note \
             FROM assignments WHERE customer = $1",
            &[&"acme"],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.get::<_, String>(0), "acme");
    assert_eq!(row.get::<_, i64>(1), 3);
    assert_eq!(row.get::<_, i64>(2), 1);
    assert_eq!(row.get::<_, f64>(3), 1.5);
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("hot"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_never_mix_epochs() {
    let (store, server) = served_store().await;
    let client = connect(&server).await;
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut epoch = 1;
            while !stop.load(Ordering::SeqCst) {
                epoch += 1;
                publish(&store, epoch);
            }
        })
    };

    let mut epochs = std::collections::BTreeSet::new();
    for _ in 0..100 {
        // Simple protocol.
        let rows = simple_rows(&client, CONSISTENCY_SQL).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        epochs.insert(check_consistent(&rows[0]));
        // Extended protocol.
        let rows = client.query(CONSISTENCY_SQL, &[]).await.unwrap();
        let cells: Vec<String> = (0..6)
            .map(|i| rows[0].get::<_, i64>(i).to_string())
            .collect();
        epochs.insert(check_consistent(&cells));
    }
    stop.store(true, Ordering::SeqCst);
    publisher.join().unwrap();
    assert!(
        epochs.len() > 1,
        "queries overlapped with publishing (saw {epochs:?})"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_reads_one_epoch() {
    let (store, server) = served_store().await;
    let client = connect(&server).await;
    let epoch_sql = "SELECT epoch FROM shardcast_epoch";

    client.batch_execute("BEGIN").await.unwrap();
    assert_eq!(simple_rows(&client, epoch_sql).await, vec![vec!["1"]]);
    publish(&store, 2);
    assert_eq!(simple_rows(&client, epoch_sql).await, vec![vec!["1"]]);
    assert_eq!(
        simple_rows(&client, "SELECT max(epoch) FROM b").await,
        vec![vec!["1"]]
    );
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(simple_rows(&client, epoch_sql).await, vec![vec!["2"]]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_is_read_only() {
    let (_store, server) = served_store().await;
    let client = connect(&server).await;
    for sql in [
        "DROP TABLE a",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO a VALUES (1, 1)",
    ] {
        let error = client.simple_query(sql).await.unwrap_err();
        let db = error
            .as_db_error()
            .unwrap_or_else(|| panic!("{sql}: {error:?}"));
        assert_eq!(db.code().code(), "25006", "{sql}: {db}");
        assert!(db.message().contains("read-only"), "{sql}: {db}");
        // Extended protocol too.
        assert!(client.query(sql, &[]).await.is_err(), "{sql}");
    }
    assert_eq!(
        simple_rows(&client, "SELECT count(*) FROM a").await,
        vec![vec!["40"]]
    );
    // Bad SQL is an error for the client, and the connection stays usable.
    assert!(client.simple_query("SELEC 1").await.is_err());
    assert_eq!(simple_rows(&client, "SELECT 1").await, vec![vec!["1"]]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_remote_query_prints_an_aligned_table() {
    let (_store, server) = served_store().await;
    let addr = server.local_addr().to_string();

    let text = run_remote_query(
        &addr,
        "SELECT customer, partition, note FROM assignments ORDER BY 1 LIMIT 3",
    )
    .await
    .unwrap();
    assert_eq!(
        text,
        " customer | partition | note\n\
         ----------+-----------+------\n \
         acme     | 3         | hot\n \
         globex   | 7         |\n \
         hooli    | 2         |\n\
         (3 rows)\n"
    );

    let text = run_remote_query(
        &addr,
        "SELECT count(*) AS n FROM assignments; SELECT 'x' AS y WHERE false",
    )
    .await
    .unwrap();
    assert_eq!(text, " n\n---\n 7\n(1 row)\n\n y\n---\n(0 rows)\n");

    let error = run_remote_query(&addr, "SELECT nope FROM assignments")
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::Remote { .. }), "{error:?}");
    assert!(error.to_string().contains("nope"), "{error}");
    server.stop();
}

#[tokio::test]
async fn refused_connections_name_the_address() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let error = run_remote_query(&addr, "SELECT 1").await.unwrap_err();
    assert!(
        matches!(error, QueryError::ConnectionRefused { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&addr), "{message}");
    assert!(message.contains("not running"), "{message}");
    assert!(message.contains("--sql-listen"), "{message}");

    let error = run_remote_query("no-port", "SELECT 1").await.unwrap_err();
    assert!(
        matches!(error, QueryError::InvalidAddress { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn bind_errors_are_clear() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = serve_pg(store(), addr).await.unwrap_err();
    assert!(matches!(error, QueryError::Bind { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&addr.to_string()) && message.contains("in use"),
        "{message}"
    );

    let error = spawn_pg_server_thread(store(), addr).unwrap_err();
    assert!(matches!(error, QueryError::Bind { .. }), "{error:?}");

    let public: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let error = serve_pg(store(), public).await.unwrap_err();
    assert!(matches!(error, QueryError::NotLoopback { .. }), "{error:?}");
}

#[test]
fn stopping_the_server_thread_frees_the_port() {
    let store = store();
    publish(&store, 1);
    let server = spawn_pg_server_thread(store.clone(), loopback_any_port()).unwrap();
    let addr = server.local_addr();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = runtime
        .block_on(run_remote_query(
            &addr.to_string(),
            "SELECT count(*) AS n FROM b",
        ))
        .unwrap();
    assert_eq!(text, " n\n----\n 40\n(1 row)\n");

    server.stop();
    // The listener is closed once `stop` returns.
    let error = runtime
        .block_on(run_remote_query(&addr.to_string(), "SELECT 1"))
        .unwrap_err();
    assert!(
        matches!(error, QueryError::ConnectionRefused { .. }),
        "{error:?}"
    );
    let again = spawn_pg_server_thread(store, addr).expect("port is free again");
    again.stop();
}

#[tokio::test]
async fn the_server_thread_can_start_inside_a_runtime() {
    let store = store();
    publish(&store, 9);
    let server = spawn_pg_server_thread(store, loopback_any_port()).unwrap();
    let text = run_remote_query(
        &server.local_addr().to_string(),
        "SELECT epoch FROM shardcast_epoch",
    )
    .await
    .unwrap();
    assert_eq!(text, " epoch\n-------\n 9\n(1 row)\n");
    server.stop();
}
