//! A retry waiting for readiness under a caller's deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use seawall_core::deadline::Deadline;
use seawall_core::{BoxError, Rejection, RejectionKind};
use seawall_retry::{Backoff, RetryLayer};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

const MS: Duration = Duration::from_millis(1);

/// Ready once; after its first call, never ready again (a full concurrency
/// limit, say). Counts its live clones, to see the retry drop its own.
struct OnceReady {
    calls: Arc<AtomicUsize>,
    live: Arc<AtomicUsize>,
}

impl Clone for OnceReady {
    fn clone(&self) -> Self {
        self.live.fetch_add(1, Ordering::SeqCst);
        OnceReady {
            calls: self.calls.clone(),
            live: self.live.clone(),
        }
    }
}

impl Drop for OnceReady {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Service<()> for OnceReady {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.calls.load(Ordering::SeqCst) == 0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _: ()) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Err("reset".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_ready_ends_at_the_callers_deadline() {
    let layer = RetryLayer::builder()
        .max_attempts(3)
        .backoff(Backoff::constant(10 * MS).jitter(0.0))
        .build()
        .unwrap();
    let live = Arc::new(AtomicUsize::new(1));
    let svc = layer.layer(OnceReady {
        calls: Arc::new(AtomicUsize::new(0)),
        live: live.clone(),
    });
    let balance = layer.stats().budget_balance.unwrap();
    let start = Instant::now();
    let mut fut =
        tokio_test::task::spawn(Deadline::scope(Deadline::after(50 * MS), svc.oneshot(())));
    tokio_test::assert_pending!(fut.poll());
    tokio::time::advance(10 * MS).await;
    tokio_test::assert_pending!(fut.poll());
    tokio::time::advance(40 * MS).await;
    let err = match fut.poll() {
        Poll::Ready(out) => out.unwrap_err(),
        Poll::Pending => panic!("still waiting for readiness past the caller's deadline"),
    };
    assert_eq!(start.elapsed(), 50 * MS);
    let found = Rejection::find(&*err).unwrap();
    assert_eq!(found.kind(), RejectionKind::DeadlineExceeded);
    // The retry's clone of the service is dropped with the give-up, while
    // the (finished) future is still held.
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the service clone was dropped"
    );
    let stats = layer.stats();
    assert_eq!(stats.gave_up_deadline, 1, "{stats:?}");
    assert_eq!(stats.retries, 0, "{stats:?}");
    // The token taken for the retry never sent went back.
    assert!(
        stats.budget_balance.unwrap() >= balance,
        "{stats:?} {balance}"
    );
    drop(fut);
}
