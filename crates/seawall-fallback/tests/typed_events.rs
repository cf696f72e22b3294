//! The fallback's typed events (`seawall_core::event`): `FallbackUsed`, at
//! most once a second per layer, counting the fallbacks it stands for (on
//! tokio's clock: paused time drives it).
//!
//! The hub is per process: only this test's layer's events are kept.

use std::time::Duration;

use seawall_core::BoxError;
use seawall_core::event::{self, EventKind};
use seawall_fallback::FallbackOn;
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn fallbacks_are_reported_once_a_second_with_the_count() {
    let layer = seawall_fallback::FallbackLayer::builder()
        .name("ev-fallback")
        .on(FallbackOn::Failure)
        .answer_with(|_req: u32, _err: BoxError| Ok::<_, BoxError>(0u32))
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|_: u32| async {
        Err::<u32, BoxError>("down".into())
    }));
    let mut events = event::subscribe(1024);
    let mut counts = || {
        let mut out = Vec::new();
        while let Some(e) = events.try_recv() {
            if &*e.layer == "ev-fallback"
                && let EventKind::FallbackUsed { count, .. } = e.kind
            {
                out.push(count);
            }
        }
        out
    };
    for i in 0..5 {
        assert_eq!(svc.clone().oneshot(i).await.unwrap(), 0);
    }
    assert_eq!(counts(), [1]);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(svc.clone().oneshot(9).await.unwrap(), 0);
    assert_eq!(counts(), [5]);
    assert_eq!(layer.stats().fallbacks, 6);
}
