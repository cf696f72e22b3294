//! Real HTTP servers on 127.0.0.1 for integration tests.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves `app` on a free port of 127.0.0.1 until the returned sender is
/// sent to or dropped (a graceful shutdown: connections in flight finish).
///
/// # Panics
/// If no port of 127.0.0.1 can be bound; a test cannot go on without one.
pub async fn axum(app: ::axum::Router) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        ::axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    (addr, stop)
}

/// [`axum()`], with each request's peer address in its extensions as axum's
/// `ConnectInfo<SocketAddr>` (`into_make_service_with_connect_info`), for
/// layers keyed by the client's address.
///
/// # Panics
/// If no port of 127.0.0.1 can be bound.
pub async fn axum_with_peers(app: ::axum::Router) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        ::axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
    });
    (addr, stop)
}
