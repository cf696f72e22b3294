//! Live reload that keeps state: a server stack built from a config file,
//! reloaded when the file changes (or on SIGHUP), and the admin endpoint.
//!
//! ```text
//! config file ──(watcher / SIGHUP)──┐
//!                                   ▼
//!   callers ─▶ ServerStack ◀── Registry ◀── admin endpoint (127.0.0.1, bearer token)
//!               shed → timeout
//! ```
//!
//! By itself it runs a short demo and exits: 8 callers offer more than the
//! shedder's limit of 4 admits, the file is rewritten with a limit of 16,
//! the watcher applies it in place (the shedder's counters and in-flight
//! calls are kept), and the admin endpoint is read over HTTP.
//! `cargo run --example reload --features admin`.
//!
//! With `--serve` it serves the admin endpoint on 127.0.0.1:3000 and
//! watches `seawall.toml` in the current directory until Ctrl-C:
//! `cargo run --example reload --features admin -- --serve`, then edit the
//! file, send SIGHUP, or drive the endpoint:
//!
//! ```text
//! curl -s -H "Authorization: Bearer $SEAWALL_ADMIN_TOKEN" http://127.0.0.1:3000/admin
//! curl -s -X POST -H "Authorization: Bearer $SEAWALL_ADMIN_TOKEN" \
//!      --data-binary 'limit = { fixed = 64 }' http://127.0.0.1:3000/admin/layers/server.shed/config
//! ```
//!
//! (A layer's body is its whole table: fields left out take their
//! defaults.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use seawall::axum::{AdminAuth, admin};
use seawall::config::StackConfig;
use seawall::prelude::BoxError;
use seawall::registry::Registry;
use tower::{Layer, Service, ServiceExt, service_fn};

const FIRST: &str = "\
[server.shed]
limit = { fixed = 4 }

[server.timeout]
fixed = \"1s\"
";

const SECOND: &str = "\
[server.shed]
limit = { fixed = 16 }

[server.timeout]
fixed = \"1s\"
";

/// Reads the file and applies it to the registered stacks; a bad file is
/// reported and the layers run on with what they had.
fn reload(registry: &Registry, path: &Path, why: &str) {
    match StackConfig::from_toml_file(path).and_then(|config| registry.apply(&config)) {
        Ok(report) => println!("reload ({why}): {report}"),
        Err(err) => println!("reload ({why}) refused, nothing changed: {err}"),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads when the file's modification time changes (checked every
/// 200 ms) or on SIGHUP.
fn watch(registry: Registry, path: PathBuf) {
    tokio::spawn(async move {
        let mut seen = modified(&path);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tick.tick() => {
                    let now = modified(&path);
                    if now != seen {
                        seen = now;
                        reload(&registry, &path, "file changed");
                    }
                }
                _ = hangup => reload(&registry, &path, "SIGHUP"),
            }
        }
    });
}

/// The admin token: `SEAWALL_ADMIN_TOKEN`, or for this demo one made up
/// here (and printed). A real service takes it from its secret store; the
/// made-up one is not from a cryptographic source.
fn token() -> (String, bool) {
    match std::env::var("SEAWALL_ADMIN_TOKEN") {
        Ok(token) => (token, false),
        Err(_) => {
            let (a, b) = (
                seawall::core::rand::random_seed(),
                seawall::core::rand::random_seed(),
            );
            (format!("{a:016x}{b:016x}"), true)
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let serve = std::env::args().any(|a| a == "--serve");
    let dir = std::env::temp_dir().join(format!("seawall-reload-{}", std::process::id()));
    let path = if serve {
        PathBuf::from("seawall.toml")
    } else {
        std::fs::create_dir_all(&dir)?;
        dir.join("seawall.toml")
    };
    if !path.exists() {
        std::fs::write(&path, FIRST)?;
    }

    // The stack, built once; the registry holds handles to its layers.
    let server = StackConfig::from_toml_file(&path)?.server.build()?;
    let registry = Registry::new();
    registry.register_server("server", &server)?;
    watch(registry.clone(), path.clone());

    let (token, made_up) = token();
    let app = Router::new().nest(
        "/admin",
        admin(registry.clone(), AdminAuth::bearer(&token)?),
    );
    let addr = if serve {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    if serve {
        println!("admin endpoint: http://{addr}/admin");
        if made_up {
            println!("no SEAWALL_ADMIN_TOKEN given; this run's token: {token}");
        }
        println!(
            "watching {}; edit it or send SIGHUP to reload. Ctrl-C stops.",
            path.display()
        );
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }

    // 8 callers, each call 20 ms of work: twice what a limit of 4 admits.
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let mut svc = server.layer(service_fn(|()| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, BoxError>(())
        }));
        let stop = stop.clone();
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ready = svc.ready().await.expect("the stack is always ready");
                if ready.call(()).await.is_err() {
                    // Shed: back off a little, as a client would.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }

    let shed = server.shed().expect("[server.shed] is configured");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = shed.stats();
    println!(
        "limit {}: admitted {}, shed {}",
        before.limit,
        before.admitted,
        before.shed.total()
    );

    // An operator edits the file; the watcher applies it in place.
    // (Some file systems keep modification times in whole seconds.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&path, SECOND)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mid = shed.stats();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = shed.stats();
    println!(
        "limit {}: admitted {} more, shed {} more in the last second (counters kept: {} admitted in all)",
        after.limit,
        after.admitted - mid.admitted,
        after.shed.total() - mid.shed.total(),
        after.admitted,
    );

    // What the admin endpoint shows, over HTTP.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<axum::body::Bytes>>();
    let req = http::Request::get(format!("http://{addr}/admin/layers/server.shed"))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::new())?;
    let res = client.request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    println!(
        "GET /admin/layers/server.shed → {status}: {}",
        String::from_utf8_lossy(&body)
    );

    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
