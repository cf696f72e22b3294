//! The servers the scenarios run against: real axum apps on 127.0.0.1,
//! each on its own port, served connection by connection so that stopping a
//! server closes every connection it had (a dead peer is really dead).

use std::io;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use seawall_core::{BoxError, ConfigError, Rejection};
use seawall_shed::{Limit, ShedLayer, Vegas};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Binds `addr` with `SO_REUSEADDR`, so a peer can come back on its port.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves `router` on `listener` until the future is dropped; every
/// connection lives in a `JoinSet` owned by this future, so dropping it
/// closes them all.
async fn serve_router(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A server running in this process; stopped (with all its connections)
/// when dropped.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    /// Serves `router` on a fresh port of 127.0.0.1.
    pub async fn spawn(router: Router) -> io::Result<Running> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        Ok(Running {
            addr,
            task: tokio::spawn(serve_router(listener, router)),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What stands in front of the overload scenario's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Nothing: requests queue for the service's capacity.
    None,
    /// tower's `LoadShed` over `ConcurrencyLimit(capacity)`.
    Tower,
    /// seawall's `ShedLayer` with a fixed limit of `capacity`.
    ShedFixed,
    /// seawall's `ShedLayer`, probabilistic band from `3/4 capacity` up to `capacity`.
    ShedProbabilistic,
    /// seawall's `ShedLayer` with an adaptive (Vegas) limit in `1..=4 capacity`.
    ShedAdaptive,
}

impl Protection {
    /// Every variant, in table order.
    pub const ALL: [Protection; 5] = [
        Protection::None,
        Protection::Tower,
        Protection::ShedFixed,
        Protection::ShedProbabilistic,
        Protection::ShedAdaptive,
    ];

    /// Its name in tables, plots and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protection::None => "none",
            Protection::Tower => "tower",
            Protection::ShedFixed => "shed-fixed",
            Protection::ShedProbabilistic => "shed-prob",
            Protection::ShedAdaptive => "shed-adaptive",
        }
    }

    /// The variant called `name`.
    pub fn parse(name: &str) -> Option<Protection> {
        Protection::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// The overload scenario's service: `capacity` workers (a semaphore, like a
/// connection pool), each request holds one for `work`.
#[derive(Debug, Clone, Copy)]
pub struct WorkSpec {
    /// Requests served at once.
    pub capacity: usize,
    /// How long each takes.
    pub work: Duration,
}

impl WorkSpec {
    /// Requests per second it can finish.
    pub fn capacity_rps(&self) -> f64 {
        self.capacity as f64 / self.work.as_secs_f64()
    }
}

async fn work(State((workers, time)): State<(Arc<Semaphore>, Duration)>) -> &'static str {
    // The semaphore is never closed, so acquiring only waits.
    let _worker = workers.acquire().await;
    tokio::time::sleep(time).await;
    "ok"
}

pub(crate) async fn refuse(err: BoxError) -> (StatusCode, String) {
    let shed = matches!(Rejection::find(&*err), Some(Rejection::Overloaded(_)))
        || err.is::<tower::load_shed::error::Overloaded>();
    if shed {
        (StatusCode::SERVICE_UNAVAILABLE, "overloaded".to_string())
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
    }
}

/// The overload scenario's app (`GET /work`) behind `protection`.
pub fn work_app(protection: Protection, spec: WorkSpec) -> Result<Router, ConfigError> {
    let router = Router::new()
        .route("/work", get(work))
        .with_state((Arc::new(Semaphore::new(spec.capacity)), spec.work));
    let c = spec.capacity;
    let errors = HandleErrorLayer::new(refuse);
    Ok(match protection {
        Protection::None => router,
        Protection::Tower => router.layer(
            ServiceBuilder::new()
                .layer(errors)
                .load_shed()
                .concurrency_limit(c),
        ),
        Protection::ShedFixed => router.layer(
            ServiceBuilder::new()
                .layer(errors)
                .layer(ShedLayer::fixed(c)?),
        ),
        Protection::ShedProbabilistic => router.layer(
            ServiceBuilder::new().layer(errors).layer(
                ShedLayer::builder()
                    .max_in_flight(c)
                    .soft_limit((c * 3 / 4).max(1))
                    .build()?,
            ),
        ),
        Protection::ShedAdaptive => router.layer(
            ServiceBuilder::new().layer(errors).layer(
                ShedLayer::builder()
                    .limit(Limit::Vegas(
                        Vegas::new().initial((c / 2).max(1)).min(1).max(4 * c),
                    ))
                    .window(Duration::from_millis(100))
                    .build()?,
            ),
        ),
    })
}

/// Where the overload scenario's server runs.
#[derive(Debug, Clone)]
pub enum Placement {
    /// In this process (memory figures are then the whole process's).
    InProcess,
    /// In a child process: this executable run with `serve ...`, so that the
    /// server's peak memory is its own.
    Child(std::path::PathBuf),
}

/// A work server in a child process, stopped when its stdin closes.
#[derive(Debug)]
pub struct ChildServer {
    addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ChildServer {
    /// Starts `exe serve PROTECTION CAPACITY WORK_US` and waits for its address.
    pub async fn spawn(
        exe: &std::path::Path,
        protection: Protection,
        spec: WorkSpec,
    ) -> io::Result<ChildServer> {
        let mut child = Command::new(exe)
            .arg("serve")
            .arg(protection.name())
            .arg(spec.capacity.to_string())
            .arg(spec.work.as_micros().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .map_err(|_| io::Error::other("server did not start"))??;
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad server line {line:?}")))?;
        Ok(ChildServer { addr, child, stdin })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's peak resident memory (`VmHWM`), in KiB.
    pub fn peak_memory_kib(&self) -> Option<u64> {
        peak_memory_kib(self.child.id()?)
    }

    /// Closes its stdin and waits for it to exit (kills it after 5 s).
    pub async fn stop(mut self) {
        self.stdin.take();
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `VmHWM` of process `pid` in KiB, from `/proc` (Linux only).
pub fn peak_memory_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The body of `serve`: serves the work app and prints `listening ADDR`,
/// until stdin closes or `max_life` passes.
pub async fn serve_until_stdin_closes(
    protection: Protection,
    spec: WorkSpec,
    max_life: Duration,
) -> io::Result<()> {
    let router = work_app(protection, spec).map_err(io::Error::other)?;
    let server = Running::spawn(router).await?;
    println!("listening {}", server.addr());
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(max_life, async {
        while !matches!(stdin.read(&mut sink).await, Ok(0) | Err(_)) {}
    })
    .await;
    Ok(())
}

/// The shared state of a [`Peer`]'s app.
#[derive(Debug)]
struct PeerState {
    latency_us: AtomicU64,
    failing: AtomicBool,
    calls: Mutex<Vec<Instant>>,
}

/// Most calls a peer remembers the time of.
const CALL_LOG_CAP: usize = 1 << 20;

async fn peer_call(State(state): State<Arc<PeerState>>) -> Result<&'static str, StatusCode> {
    {
        let mut calls = state.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls.len() < CALL_LOG_CAP {
            calls.push(Instant::now());
        }
    }
    let latency = Duration::from_micros(state.latency_us.load(Ordering::Relaxed));
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if state.failing.load(Ordering::Relaxed) {
        Err(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        Ok("ok")
    }
}

/// A peer whose behaviour a scenario changes while it runs: serving (with a
/// set latency, or failing every call with 503), down (its port refuses
/// connections) or hanging (accepts connections and never answers).
#[derive(Debug)]
pub struct Peer {
    addr: SocketAddr,
    state: Arc<PeerState>,
    task: Option<JoinHandle<()>>,
}

impl Peer {
    /// A serving peer on a fresh port that answers after `latency`.
    pub async fn start(latency: Duration) -> io::Result<Peer> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(PeerState {
            latency_us: AtomicU64::new(latency.as_micros() as u64),
            failing: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/", get(peer_call))
            .with_state(state.clone());
        Ok(Peer {
            addr,
            state,
            task: Some(tokio::spawn(serve_router(listener, router))),
        })
    }

    /// Its address (the same across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets how long each call takes.
    pub fn set_latency(&self, latency: Duration) {
        self.state
            .latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Makes every call answer 503 (`true`) or 200 (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::Relaxed);
    }

    /// When each call arrived (the first million).
    pub fn call_times(&self) -> Vec<Instant> {
        self.state
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops serving: every connection is closed and the port refuses new ones.
    pub async fn down(&mut self) {
        self.stop().await;
    }

    /// Accepts connections and never answers.
    pub async fn hang(&mut self) -> io::Result<()> {
        self.stop().await;
        let listener = bind(self.addr)?;
        self.task = Some(tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                if let Ok((stream, _)) = listener.accept().await
                    && held.len() < 4096
                {
                    held.push(stream);
                }
            }
        }));
        Ok(())
    }

    /// Serves again on the same port.
    pub async fn serve(&mut self) -> io::Result<()> {
        self.stop().await;
        let listener = bind(self.addr)?;
        let router = Router::new()
            .route("/", get(peer_call))
            .with_state(self.state.clone());
        self.task = Some(tokio::spawn(serve_router(listener, router)));
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
