//! The endpoint through the real `psql` binary, as analysts use it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardcast_queries::spawn_pg_server_thread;

use crate::common::{publish, store};

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `psql -At -c command` against `port` and waits at most 30 s.
/// Fails (never skips) when psql is not installed.
fn psql(port: u16, command: &str) -> Output {
    let mut child = Command::new("psql")
        .args(["-X", "-w", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "shardcast", "-d", "shardcast", "-At", "-c", command])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| match error.kind() {
            std::io::ErrorKind::NotFound => {
                panic!("psql not found: apt-get install -y postgresql-client")
            }
            _ => panic!("cannot run psql: {error}"),
        });
    let success = wait(&mut child, Duration::from_secs(30), command);
    let mut stdout = String::new();
    let mut stderr = String::new();
    // The outputs are small, so they fit the pipe buffers until psql exits.
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Output {
        success,
        stdout,
        stderr,
    }
}

fn wait(child: &mut Child, limit: Duration, command: &str) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            // Our own child, by handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!("psql timed out running {command:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(port: u16, command: &str) -> String {
    let output = psql(port, command);
    assert!(output.success, "psql {command:?} failed: {}", output.stderr);
    output.stdout
}

#[test]
fn psql_queries_the_live_store() {
    let store = store();
    let server = spawn_pg_server_thread(store.clone(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let port = server.local_addr().port();
    publish(&store, 1);

    assert_eq!(
        ok(
            port,
            "SELECT customer, partition FROM assignments ORDER BY 1 LIMIT 5"
        ),
        "acme|3\nglobex|7\nhooli|2\ninitech|1\nstark|6\n"
    );
    assert_eq!(ok(port, "SELECT count(*) FROM assignments"), "7\n");
    assert_eq!(
        ok(port, "SELECT customer, shift, score, note FROM assignments WHERE note IS NOT NULL ORDER BY score DESC"),
        "acme|1|1.5|hot\nwayne|2|1.0|new\numbrella|-1|0.75|moved\n"
    );

    // A new epoch is visible to the next statement.
    publish(&store, 2);
    assert_eq!(ok(port, "SELECT epoch FROM shardcast_epoch"), "2\n");

    // Catalog introspection as psql does it.
    assert_eq!(
        ok(port, "\\d assignments"),
        "customer|text||not null|\n\
         partition|numeric||not null|\n\
         shift|bigint||not null|\n\
         score|double precision||not null|\n\
         note|text|||\n"
    );

    // Writes are refused with a clear message.
    let output = psql(port, "DROP TABLE assignments");
    assert!(!output.success);
    assert!(output.stderr.contains("read-only"), "{}", output.stderr);
    assert_eq!(ok(port, "SELECT count(*) FROM assignments"), "7\n");

    server.stop();
}
