//! The scenarios' servers and fault injection work as the scenarios assume:
//! a peer that is down refuses connections, one that hangs never answers,
//! a stopped server (in-process or child) is gone. Real sockets on
//! 127.0.0.1 with generous timeouts.

use std::time::Duration;

use axum::http::{StatusCode, Uri};
use seawall_scenarios::load::HttpClient;
use seawall_scenarios::server::{ChildServer, Peer, Protection, Running, WorkSpec, work_app};

fn uri(addr: std::net::SocketAddr, path: &str) -> Uri {
    format!("http://{addr}{path}").parse().expect("valid uri")
}

/// Polls until connecting to `addr` is refused (the server is gone).
async fn refused(addr: std::net::SocketAddr) -> bool {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_goes_down_hangs_fails_and_recovers_on_its_port() {
    let mut peer = Peer::start(Duration::ZERO).await.expect("bound");
    let addr = peer.addr();
    let client = HttpClient::new();
    let get = |c: &HttpClient| {
        let c = c.clone();
        async move { tokio::time::timeout(Duration::from_millis(500), c.get(uri(addr, "/"))).await }
    };
    assert_eq!(
        get(&client).await.expect("answers").expect("ok"),
        StatusCode::OK
    );

    peer.down().await;
    assert!(refused(addr).await);
    assert!(get(&client).await.expect("fails fast").is_err());

    peer.hang().await.expect("bound again");
    assert!(get(&client).await.is_err(), "a hanging peer never answers");

    peer.serve().await.expect("bound again");
    assert_eq!(
        get(&client).await.expect("answers").expect("ok"),
        StatusCode::OK
    );
    peer.set_failing(true);
    assert_eq!(
        get(&client).await.expect("answers").expect("status"),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(peer.call_times().len() >= 3);

    drop(peer);
    assert!(refused(addr).await, "a dropped peer stops serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_in_process_server_stops_serving() {
    let spec = WorkSpec {
        capacity: 2,
        work: Duration::from_millis(1),
    };
    let server = Running::spawn(work_app(Protection::ShedFixed, spec).expect("valid"))
        .await
        .expect("bound");
    let addr = server.addr();
    let status = HttpClient::new()
        .get(uri(addr, "/work"))
        .await
        .expect("answers");
    assert_eq!(status, StatusCode::OK);
    drop(server);
    assert!(refused(addr).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_server_serves_reports_memory_and_exits_when_stopped() {
    let spec = WorkSpec {
        capacity: 2,
        work: Duration::from_millis(1),
    };
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_seawall-scenarios"));
    let server = ChildServer::spawn(exe, Protection::Tower, spec)
        .await
        .expect("started");
    let addr = server.addr();
    let status = HttpClient::new()
        .get(uri(addr, "/work"))
        .await
        .expect("answers");
    assert_eq!(status, StatusCode::OK);
    assert!(server.peak_memory_kib().is_some_and(|k| k > 0));
    server.stop().await;
    assert!(refused(addr).await, "the child is gone");
}
