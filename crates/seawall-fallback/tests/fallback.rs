//! Unit tests of the fallback layer, with paused time.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use seawall_core::{
    BoxError, CircuitOpen, Elapsed, Outcome, OverloadReason, Overloaded, classify_fn,
};
use seawall_fallback::{FailedResponse, FallbackConfig, FallbackLayer, FallbackOn, FnBackup};
use tokio_test::{assert_pending, assert_ready, task};
use tower::{Layer, Service, ServiceExt, service_fn};

fn refused() -> BoxError {
    CircuitOpen::new(Some(Duration::from_secs(3)))
        .with_key("peer-1")
        .into()
}

/// A primary that answers `Err(make())` for every request.
fn failing(
    make: fn() -> BoxError,
) -> impl Service<u32, Response = String, Error = BoxError, Future: Send> + Clone {
    service_fn(move |_: u32| async move { Err::<String, BoxError>(make()) })
}

fn ok_primary() -> impl Service<u32, Response = String, Error = BoxError> + Clone {
    service_fn(|r: u32| async move { Ok::<_, BoxError>(format!("primary {r}")) })
}

fn backup_fn() -> impl Fn(u32, BoxError) -> Result<String, BoxError> + Clone {
    |r: u32, e: BoxError| Ok(format!("backup {r}: {e}"))
}

#[tokio::test(start_paused = true)]
async fn success_passes_through_without_fallback() {
    let layer = FallbackLayer::builder()
        .answer_with(backup_fn())
        .build()
        .unwrap();
    let svc = layer.layer(ok_primary());
    assert_eq!(svc.oneshot(1).await.unwrap(), "primary 1");
    assert_eq!(layer.stats().fallbacks, 0);
}

#[tokio::test(start_paused = true)]
async fn rejection_falls_back_by_default() {
    let layer = FallbackLayer::builder()
        .answer_with(backup_fn())
        .build()
        .unwrap();
    for make in [
        refused as fn() -> BoxError,
        || Overloaded::new(OverloadReason::HardLimit).into(),
        || Elapsed::new(Duration::from_secs(1)).into(),
    ] {
        let answer = layer.layer(failing(make)).oneshot(7).await.unwrap();
        assert!(answer.starts_with("backup 7: "), "{answer}");
    }
    assert_eq!(layer.stats().fallbacks, 3);
}

#[derive(Debug)]
struct Wrapped(BoxError);
impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}
impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn rejection_deep_in_the_source_chain_falls_back() {
    let layer = FallbackLayer::builder()
        .answer_with(backup_fn())
        .build()
        .unwrap();
    let svc = layer.layer(failing(|| Box::new(Wrapped(refused()))));
    assert_eq!(svc.oneshot(2).await.unwrap(), "backup 2: wrapped");
}

#[tokio::test(start_paused = true)]
async fn plain_error_passes_through_on_rejection_only() {
    let layer = FallbackLayer::builder()
        .answer_with(backup_fn())
        .build()
        .unwrap();
    let svc = layer.layer(failing(|| "connection reset".into()));
    let err = svc.oneshot(3).await.unwrap_err();
    assert_eq!(err.to_string(), "connection reset");
    assert_eq!(layer.stats().fallbacks, 0);
}

#[tokio::test(start_paused = true)]
async fn any_failure_falls_back_with_on_failure() {
    let layer = FallbackLayer::builder()
        .on(FallbackOn::Failure)
        .answer_with(backup_fn())
        .build()
        .unwrap();
    let svc = layer.layer(failing(|| "connection reset".into()));
    assert_eq!(svc.oneshot(3).await.unwrap(), "backup 3: connection reset");
    assert_eq!(layer.stats().fallbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn classified_ok_falls_back_with_failed_response() {
    let layer = FallbackLayer::builder()
        .classify(classify_fn(|r: &Result<String, BoxError>| match r {
            Ok(s) if s.contains("503") => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }))
        .answer_with(|r: u32, e: BoxError| {
            assert!(e.is::<FailedResponse>());
            Ok::<_, BoxError>(format!("backup {r}"))
        })
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|r: u32| async move {
        Ok::<_, BoxError>(if r == 0 {
            "503".to_owned()
        } else {
            "200".to_owned()
        })
    }));
    assert_eq!(svc.clone().oneshot(0).await.unwrap(), "backup 0");
    assert_eq!(svc.oneshot(1).await.unwrap(), "200");
}

#[tokio::test(start_paused = true)]
async fn uncloneable_request_gets_the_original_error() {
    let layer = FallbackLayer::builder()
        .clone_with(|r: &u32| (*r != 0).then_some(*r))
        .answer_with(backup_fn())
        .build()
        .unwrap();
    let svc = layer.layer(failing(refused));
    let err = svc.clone().oneshot(0).await.unwrap_err();
    assert!(err.is::<CircuitOpen>(), "{err}");
    assert_eq!(layer.stats().not_cloneable, 1);
    assert_eq!(layer.stats().fallbacks, 0);
    // A copyable one still falls back.
    assert!(svc.oneshot(1).await.unwrap().starts_with("backup 1"));
}

#[derive(Debug, PartialEq)]
struct NotClone(u32);

#[tokio::test(start_paused = true)]
async fn requests_need_not_be_clone() {
    let layer = FallbackLayer::builder()
        .clone_with(|r: &NotClone| Some(NotClone(r.0)))
        .answer_with(|r: NotClone, _| Ok::<_, BoxError>(r.0 * 10))
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|_: NotClone| async {
        Err::<u32, BoxError>(refused())
    }));
    assert_eq!(svc.oneshot(NotClone(4)).await.unwrap(), 40);
}

#[tokio::test(start_paused = true)]
async fn backup_service_answers_after_becoming_ready() {
    // The backup admits one call at a time; the first fallback occupies it.
    let slow_backup =
        tower::limit::ConcurrencyLimitLayer::new(1).layer(service_fn(|r: u32| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, BoxError>(format!("replica {r}"))
        }));
    let layer = FallbackLayer::builder()
        .service(slow_backup)
        .build()
        .unwrap();
    let svc = layer.layer(failing(refused));

    let mut first = task::spawn(svc.clone().oneshot(1));
    let mut second = task::spawn(svc.oneshot(2));
    assert_pending!(first.poll());
    assert_pending!(second.poll()); // waits for the backup's permit
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(assert_ready!(first.poll()).unwrap(), "replica 1");
    assert!(second.is_woken());
    assert_pending!(second.poll());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(assert_ready!(second.poll()).unwrap(), "replica 2");
    assert_eq!(layer.stats().fallbacks, 2);
}

#[tokio::test(start_paused = true)]
async fn failing_backup_returns_its_error() {
    let layer = FallbackLayer::builder()
        .service(service_fn(|_: u32| async {
            Err::<String, BoxError>("replica down".into())
        }))
        .build()
        .unwrap();
    let err = layer.layer(failing(refused)).oneshot(1).await.unwrap_err();
    assert_eq!(err.to_string(), "replica down");
    let stats = layer.stats();
    assert_eq!((stats.fallbacks, stats.backup_failures), (1, 1));
}

/// Counts live futures: +1 when made, -1 when dropped.
struct Live(Arc<AtomicUsize>);
impl Live {
    fn new(n: &Arc<AtomicUsize>) -> Live {
        n.fetch_add(1, Ordering::SeqCst);
        Live(n.clone())
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_mid_fallback_drops_the_backup_call() {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let backup = service_fn(move |_: u32| {
        let guard = Live::new(&l);
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, BoxError>("late".to_owned())
        }
    });
    let layer = FallbackLayer::builder().service(backup).build().unwrap();
    let mut svc = layer.layer(failing(refused));
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll()); // the primary failed, the backup is running
    assert_eq!(live.load(Ordering::SeqCst), 1);
    assert_eq!(layer.stats().fallbacks, 1);
    drop(fut);
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the backup's call was dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_before_the_primary_answers_never_falls_back() {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let primary = service_fn(move |_: u32| {
        let guard = Live::new(&l);
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Err::<String, BoxError>(refused())
        }
    });
    let layer = FallbackLayer::builder()
        .answer_with(backup_fn())
        .build()
        .unwrap();
    let mut svc = layer.layer(primary);
    let mut fut = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(fut.poll());
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(fut);
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert_eq!(layer.stats().fallbacks, 0);
}

#[tokio::test(start_paused = true)]
async fn poll_ready_reports_only_the_inner_service() {
    // The inner service is not ready while its single permit is taken; the
    // backup plays no part in readiness.
    let inner = tower::limit::ConcurrencyLimitLayer::new(1).layer(service_fn(|_: u32| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, BoxError>("ok".to_owned())
    }));
    let layer = FallbackLayer::builder()
        .answer_with(backup_fn())
        .build()
        .unwrap();
    let mut svc = layer.layer(inner);
    let mut a = task::spawn(svc.ready().await.unwrap().call(1));
    assert_pending!(a.poll());
    let mut other = svc.clone();
    let mut ready = task::spawn(std::future::poll_fn(move |cx| match other.poll_ready(cx) {
        Poll::Ready(r) => Poll::Ready(r.is_ok()),
        Poll::Pending => Poll::Pending,
    }));
    assert_pending!(ready.poll());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(assert_ready!(a.poll()).unwrap(), "ok");
    drop(a); // gives the permit back
    assert!(ready.is_woken());
    assert!(assert_ready!(ready.poll()));
}

#[test]
fn config_errors_name_the_field() {
    let err = FallbackLayer::from_config(
        &FallbackConfig::new().name(""),
        FnBackup::new(|r: u32, _: BoxError| Ok::<_, BoxError>(r)),
    )
    .unwrap_err();
    assert_eq!(err.field(), "name");
}

#[cfg(feature = "serde")]
#[test]
fn config_from_toml() {
    let c: FallbackConfig = toml::from_str("name = \"users\"\non = \"failure\"").unwrap();
    assert_eq!(c.on, FallbackOn::Failure);
    assert_eq!(c.name, "users");
    let c: FallbackConfig = toml::from_str("").unwrap();
    assert_eq!(c, FallbackConfig::default());
    assert!(toml::from_str::<FallbackConfig>("onn = \"failure\"").is_err());
    assert!(toml::from_str::<FallbackConfig>("on = \"sometimes\"").is_err());
}
