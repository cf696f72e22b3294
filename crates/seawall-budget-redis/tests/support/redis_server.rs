//! Starts a throwaway `redis-server` on 127.0.0.1 for tests, examples and
//! benches: a free port, no persistence, killed on drop.
//!
//! When `redis-server` is not installed, [`RedisServer::start`] returns
//! `None` after saying so on stderr, so the caller skips; with the `CI`
//! environment variable set it panics instead, because CI must run these.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

fn free_port() -> std::io::Result<u16> {
    // Redis has no `--port 0`: take a port the kernel says is free, close it,
    // and let the caller retry if someone else takes it first.
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Whether a server on `port` answers `PING`.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Waits until the child answers, or has exited.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if answers(port) {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
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
            if wait_ready(&mut child, port) {
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
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut child = spawn(self.port).expect("redis-server started before");
            if wait_ready(&mut child, self.port) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "redis-server did not restart");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
