//! Helpers for tests that need real servers (used by this crate's tests and the end-to-end
//! harness). Not for production use.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The message a test fails with when Redis is not installed; tests must not skip silently.
pub const REDIS_MISSING: &str = "redis-server not found: apt-get install -y redis-server";

/// A throw-away `redis-server` child process on a loopback port, without persistence. Killed
/// (and reaped) when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    ///
    /// Errors with [`REDIS_MISSING`] if `redis-server` is not on the PATH, or with a description
    /// if it does not come up within 10 s.
    pub fn start() -> Result<Self, String> {
        Self::start_on(free_port()?)
    }

    /// Starts a server on `port` (e.g. to restart one that was stopped) and waits until it
    /// answers PING.
    pub fn start_on(port: u16) -> Result<Self, String> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => REDIS_MISSING.to_string(),
                _ => format!("cannot start redis-server: {e}"),
            })?;
        let mut server = RedisServer { child, port };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A new connection to the server.
    pub fn connection(&self) -> Result<redis::Connection, String> {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .map_err(|e| format!("cannot connect to {}: {e}", self.url()))
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited at startup: {status}",
                    self.port
                ));
            }
            let pong = self.connection().and_then(|mut c| {
                redis::cmd("PING")
                    .query::<String>(&mut c)
                    .map_err(|e| e.to_string())
            });
            if pong.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "redis-server on port {} did not answer within {timeout:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago (the OS picks it; it is released for the caller).
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}
