//! Throwaway Redis deployments on 127.0.0.1 for the deployment tests: a
//! Cluster (primaries and replicas), a primary with a replica and a
//! sentinel, a TLS server with an ACL user. Every process is killed and every
//! temporary directory removed on drop, also when a test panics.
//!
//! When `redis-server` is not installed these return `None` after saying so
//! (with `CI` set they panic: CI must run them), like
//! `seawall_test_support::redis::RedisServer`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use seawall_test_support::redis::free_port;

/// How long a process may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "seawall-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One process, killed on drop.
pub(crate) struct Proc {
    child: Option<Child>,
    pub(crate) port: u16,
}

impl Proc {
    /// Kills it (as a crash would).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `redis-server` is here; says why not (or panics on CI).
pub(crate) fn have_redis() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "redis-server is not installed (Debian package `redis-server`); \
                   the deployment tests need it";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}: CI must run them");
        }
        eprintln!("SKIPPED: {msg}");
    }
    ok
}

/// Starts `redis-server` with `args` and waits for `ready` in its log.
fn spawn(args: &[String], ready: &str, port: u16) -> Option<Proc> {
    let mut child = Command::new("redis-server")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    let ready = ready.to_owned();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines().map_while(Result::ok);
        let ok = lines.by_ref().any(|l| l.contains(&ready));
        let _ = tx.send(ok);
        // Keep draining, so the server never blocks on a full pipe.
        lines.for_each(drop);
    });
    let proc = Proc {
        child: Some(child),
        port,
    };
    if rx.recv_timeout(READY_WITHIN).unwrap_or(false) {
        Some(proc)
    } else {
        None
    }
}

/// The common flags of a throwaway server on `port` with its files in `dir`.
fn base(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        dir.to_str().expect("a UTF-8 temp dir"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A server with extra flags, on a free port (a few tries: the port may be
/// taken between the check and the bind).
fn server(dir: &Path, extra: &[String], ready: &str) -> Proc {
    for _ in 0..5 {
        let port = free_port().expect("a free port");
        let mut args = base(port, dir);
        args.extend_from_slice(extra);
        if let Some(p) = spawn(&args, ready, port) {
            return p;
        }
    }
    panic!("redis-server did not start with {extra:?}");
}

/// `redis-cli` against 127.0.0.1:`port`, its output.
pub(crate) fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` (real time: these are real processes) until it holds, for at
/// most `limit`.
pub(crate) fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A Redis Cluster of `primaries` primaries, each with `replicas` replicas,
/// `cluster-require-full-coverage no` (a lost slot range leaves the others
/// served) and a 1 s node timeout (a failover in about two seconds).
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Proc>,
    _dir: TempDir,
}

impl Cluster {
    pub(crate) fn start(primaries: usize, replicas: usize) -> Option<Cluster> {
        if !have_redis() {
            return None;
        }
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for i in 0..primaries * (1 + replicas) {
            let extra: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{i}.conf"),
                "--cluster-node-timeout",
                "1000",
                "--cluster-require-full-coverage",
                "no",
                "--cluster-replica-validity-factor",
                "0",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            nodes.push(server(dir.path(), &extra, "Ready to accept connections"));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Cluster { nodes, _dir: dir };
        assert!(
            cluster.wait_ok(Duration::from_secs(20)),
            "the cluster did not reach cluster_state:ok"
        );
        Some(cluster)
    }

    /// Waits until every running node says `cluster_state:ok`.
    pub(crate) fn wait_ok(&self, limit: Duration) -> bool {
        wait_for(limit, || {
            self.nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        })
    }

    /// The seed URLs.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// The indexes of the running primaries.
    pub(crate) fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].is_running()
                    && cli(self.nodes[i].port, &["ROLE"]).starts_with("master")
            })
            .collect()
    }

    /// `EVALSHA` calls a node has served (`INFO commandstats`).
    pub(crate) fn evalsha_calls(&self, i: usize) -> u64 {
        let info = cli(self.nodes[i].port, &["INFO", "commandstats"]);
        info.lines()
            .find(|l| l.starts_with("cmdstat_evalsha:"))
            .and_then(|l| l.split("calls=").nth(1))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// One primary, one replica, one sentinel monitoring them as `budget`.
pub(crate) struct Sentinel {
    pub(crate) primary: Proc,
    pub(crate) replica: Proc,
    pub(crate) sentinel: Proc,
    _dir: TempDir,
}

impl Sentinel {
    pub(crate) const MASTER: &'static str = "budget";

    pub(crate) fn start() -> Option<Sentinel> {
        if !have_redis() {
            return None;
        }
        let dir = TempDir::new("sentinel");
        let ready = "Ready to accept connections";
        let primary = server(dir.path(), &[], ready);
        let replica = server(
            dir.path(),
            &[
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                primary.port.to_string(),
            ],
            ready,
        );
        assert!(
            wait_for(Duration::from_secs(10), || {
                cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up")
            }),
            "the replica did not sync"
        );
        let mut sentinel = None;
        for _ in 0..5 {
            let port = free_port().expect("a free port");
            let conf = dir.path().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {m} 127.0.0.1 {p} 1\n\
                     sentinel down-after-milliseconds {m} 1000\n\
                     sentinel failover-timeout {m} 5000\n",
                    dir.path().display(),
                    m = Self::MASTER,
                    p = primary.port
                ),
            )
            .expect("sentinel.conf written");
            let args = vec![conf.display().to_string(), "--sentinel".to_owned()];
            if let Some(s) = spawn(&args, "+monitor master", port) {
                sentinel = Some(s);
                break;
            }
        }
        let sentinel = sentinel.expect("redis-server --sentinel started");
        let s = Sentinel {
            primary,
            replica,
            sentinel,
            _dir: dir,
        };
        assert!(
            wait_for(Duration::from_secs(20), || {
                let r = cli(s.sentinel.port, &["SENTINEL", "REPLICAS", Self::MASTER]);
                r.contains(&s.replica.port.to_string())
            }),
            "the sentinel did not find the replica"
        );
        Some(s)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.sentinel.port)
    }

    /// The port of the primary the sentinel names now.
    pub(crate) fn primary_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinel.port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }
}

/// A TLS-only server (a CA and a certificate for 127.0.0.1 made by
/// `openssl`), with an ACL user `budget` (password in `PASSWORD`) and the
/// default user off.
pub(crate) struct TlsServer {
    pub(crate) server: Proc,
    pub(crate) ca: PathBuf,
    dir: TempDir,
}

impl TlsServer {
    pub(crate) const USER: &'static str = "budget";
    pub(crate) const PASSWORD: &'static str = "tls-s3cret-pw";

    pub(crate) fn start() -> Option<TlsServer> {
        if !have_redis() {
            return None;
        }
        let dir = TempDir::new("tls");
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "openssl {args:?} failed (Debian package `openssl`)");
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            &[
                &[
                    "req",
                    "-x509",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=seawall test CA",
                ],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.crt"],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-nodes", "-subj", "/CN=127.0.0.1"],
                &ec[..],
                &["-keyout", "server.key", "-out", "server.csr"],
            ]
            .concat(),
        );
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("server.ext written");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ]);
        let file = |f: &str| d.join(f).display().to_string();
        let mut server = None;
        for _ in 0..5 {
            let port = free_port().expect("a free port");
            let mut args = base(0, d);
            args.extend([
                "--tls-port".to_owned(),
                port.to_string(),
                "--tls-cert-file".to_owned(),
                file("server.crt"),
                "--tls-key-file".to_owned(),
                file("server.key"),
                "--tls-ca-cert-file".to_owned(),
                file("ca.crt"),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
            ]);
            // One argument per word: `--user` takes the rest as its rule.
            for word in format!(
                "--user default off --user {} on >{} ~* &* +@all",
                Self::USER,
                Self::PASSWORD
            )
            .split(' ')
            {
                args.push(word.to_owned());
            }
            if let Some(p) = spawn(&args, "Ready to accept connections", port) {
                server = Some(p);
                break;
            }
        }
        let server = server.expect("a TLS redis-server started");
        Some(TlsServer {
            server,
            ca: d.join("ca.crt"),
            dir,
        })
    }

    /// `rediss://127.0.0.1:port` (no credentials: the config carries them).
    pub(crate) fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.server.port)
    }
}
