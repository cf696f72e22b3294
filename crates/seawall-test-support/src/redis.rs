//! Starts a throwaway `redis-server` on 127.0.0.1 for tests, examples and
//! benches: a free port, no persistence, killed on drop.
//!
//! When `redis-server` is not installed, [`RedisServer::start`] returns
//! `None` after saying so on stderr, so the caller skips; with the `CI`
//! environment variable set it panics instead, because CI must run these.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

/// A port on 127.0.0.1 that the kernel says is free right now. It is
/// closed again before this returns, so someone else may take it first: for
/// servers that cannot bind port 0 themselves (Redis has no `--port 0`),
/// with a retry.
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn spawn(port: u16) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .stdin(Stdio::null())
        // Its log tells when it listens: waited on, never polled.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

/// Waits for the server's "Ready to accept connections" log line; `false`
/// if it exits first (its port was taken) or says nothing within
/// [`READY_WITHIN`]. A thread reads the log, and keeps draining it until the
/// server exits so that it never blocks on a full pipe.
fn wait_ready(child: &mut Child) -> bool {
    let Some(out) = child.stdout.take() else {
        return false;
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines().map_while(Result::ok);
        let ready = lines
            .by_ref()
            .any(|l| l.contains("Ready to accept connections"));
        let _ = tx.send(ready);
        lines.for_each(drop);
    });
    rx.recv_timeout(READY_WITHIN).unwrap_or(false)
}

impl RedisServer {
    /// Starts a server, or says why not and returns `None` (panics on CI).
    pub fn start() -> Option<RedisServer> {
        for _ in 0..5 {
            let port = match free_port() {
                Ok(p) => p,
                Err(e) => panic!("cannot find a free port on 127.0.0.1: {e}"),
            };
            let mut child = match spawn(port) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let msg = "redis-server is not installed (Debian package `redis-server`); \
                               the shared-budget tests need it";
                    if std::env::var_os("CI").is_some() {
                        panic!("{msg}: CI must run them");
                    }
                    eprintln!("SKIPPED: {msg}");
                    return None;
                }
                Err(e) => panic!("cannot start redis-server: {e}"),
            };
            if wait_ready(&mut child) {
                return Some(RedisServer {
                    child: Some(child),
                    port,
                });
            }
            // Lost the port to someone else (or a slow start): try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start on 127.0.0.1 after 5 tries");
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (empty: no persistence).
    pub fn restart(&mut self) {
        self.stop();
        // Redis binds with SO_REUSEADDR, so the port is free again at once;
        // a few tries cover another process grabbing it in between.
        for _ in 0..5 {
            let mut child = spawn(self.port).expect("redis-server started before");
            if wait_ready(&mut child) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
