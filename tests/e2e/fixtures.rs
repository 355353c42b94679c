//! Real parts for the end-to-end tests: a tansu broker, Redis servers, psql, and the shardcast binary.
//! Each is started on a free loopback port and stopped when dropped. A missing part fails the test with
//! the command that installs it.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; the OS does not hand it out again right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on port {port}: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

/// A unique name for topics, groups and prefixes, so tests never share (or delete) state.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A child process killed on drop.
pub struct Process {
    /// The child.
    pub child: Child,
}

impl Process {
    /// Sends `signal` (`HUP`, `INT`, ...) to the child.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -{signal} {pid} failed");
    }

    /// Stops the child with Ctrl-C (SIGINT), asserts it exits successfully within 30 s, and returns
    /// what it wrote to its piped stderr.
    pub fn interrupt(&mut self) -> String {
        self.signal("INT");
        let status = eventually(Duration::from_secs(30), "the job to exit", || {
            self.child.try_wait().unwrap()
        });
        let mut stderr = String::new();
        if let Some(pipe) = self.child.stderr.as_mut() {
            std::io::Read::read_to_string(pipe, &mut stderr).unwrap();
        }
        assert!(
            status.success(),
            "exit status after Ctrl-C: {status}\n{stderr}"
        );
        stderr
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tansu broker with its data in a temporary folder.
pub struct Broker {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _process: Process,
    _dir: tempfile::TempDir,
}

fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SHARDCAST_TANSU") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return path;
        }
    }
    if let Ok(home) = std::env::var("HOME") {
        let cached = Path::new(&home).join(".cache/shardcast/tansu-0.6.0/bin/tansu");
        if cached.is_file() {
            return cached;
        }
    }
    if let Some(found) = which("tansu") {
        return found;
    }
    panic!(
        "tansu (the Kafka-protocol broker) not found: run scripts/install-deps.sh, or \
         `cargo install tansu --version 0.6.0 --locked --features libsql` and set SHARDCAST_TANSU to the binary"
    );
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// `name` on PATH, or a panic with how to install it.
pub fn require(name: &str, install: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("{name} not found: {install}"))
}

impl Broker {
    /// Starts a broker on a free port.
    pub fn start() -> Broker {
        let binary = tansu_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db", "--silent"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tansu");
        wait_for_port(port, "tansu", &mut child);
        Broker {
            addr: format!("127.0.0.1:{port}"),
            _process: Process { child },
            _dir: dir,
        }
    }
}

/// A Redis server that keeps nothing on disk.
pub struct Redis {
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server on a free port.
    pub fn start() -> Redis {
        let binary = require("redis-server", "apt-get install -y redis-server");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = Command::new(binary)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        wait_for_port(port, "redis-server", &mut child);
        Redis {
            url: format!("redis://127.0.0.1:{port}"),
            _process: Process { child },
            _dir: dir,
        }
    }
}

/// The shardcast binary under test.
pub fn shardcast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shardcast"))
}

/// Runs `command` to the end and returns its output, failing with its stderr if it did not succeed.
pub fn output_ok(command: &mut Command) -> Output {
    let out = command.output().expect("running the command");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `psql -At -c QUERY` against `port`; returns stdout, or panics with stderr.
pub fn psql(port: u16, query: &str) -> Result<String, String> {
    let binary = require("psql", "apt-get install -y postgresql-client");
    let output: Output = Command::new(binary)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "shardcast",
            "-d",
            "shardcast",
            "-At",
            "-c",
            query,
        ])
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("running psql");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every message of `topic` from the beginning, as `(partition, payload)` in the order of each
/// partition, read until the topic has been quiet for two seconds.
pub fn read_topic(broker: &str, topic: &str) -> Vec<(i32, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", unique("e2e-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    // Until the end offsets are reached: a large topic can take the broker longer than any fixed
    // quiet period to start serving.
    let mut end: BTreeMap<i32, i64> = BTreeMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .unwrap();
        end.insert(partition.id(), high);
    }
    let mut next: BTreeMap<i32, i64> = end.keys().map(|p| (*p, 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut messages, mut quiet) = (Vec::new(), 0);
    while next.iter().any(|(p, n)| *n < end[p]) || quiet < 5 {
        assert!(
            Instant::now() < deadline,
            "reading {topic}: stuck at {next:?} of {end:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                quiet = 0;
                next.insert(message.partition(), message.offset() + 1);
                messages.push((
                    message.partition(),
                    message.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => quiet += 1,
        }
    }
    messages
}

/// Fails the test unless `ORT_DYLIB_PATH` names the ONNX Runtime library, saying how to install it.
pub fn require_onnx_runtime() {
    let dylib = std::env::var("ORT_DYLIB_PATH").unwrap_or_default();
    assert!(
        std::path::Path::new(&dylib).is_file(),
        "ORT_DYLIB_PATH must name libonnxruntime.so (scripts/install-deps.sh installs the onnxruntime wheel and prints the path)"
    );
}
