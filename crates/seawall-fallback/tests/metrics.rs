//! With feature `metrics`: the three counters, labelled with the layer's
//! name, count what `stats()` counts, on every path.
#![cfg(feature = "metrics")]

use std::fmt;

use seawall_core::names::{FALLBACK_FAILED_TOTAL, FALLBACK_NOT_COPIED_TOTAL, FALLBACK_USED_TOTAL};
use seawall_core::{BoxError, CircuitOpen};
use seawall_fallback::{FallbackLayer, FallbackOn, FallbackStats};
use seawall_test_support::metrics::Recording;
use seawall_test_support::service::ready_call_ok;
use tower::{Layer, service_fn};

#[derive(Debug)]
struct Down;
impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("backup down")
    }
}
impl std::error::Error for Down {}

fn counters(rec: &Recording, name: &str) -> [Option<u64>; 3] {
    [
        rec.counter(&format!("{FALLBACK_USED_TOTAL}{{name={name}}}")),
        rec.counter(&format!("{FALLBACK_FAILED_TOTAL}{{name={name}}}")),
        rec.counter(&format!("{FALLBACK_NOT_COPIED_TOTAL}{{name={name}}}")),
    ]
}

#[test]
fn fallbacks_failed_backups_and_uncopied_requests_are_counted() {
    let rec = Recording::default();
    // The handles are made when the layer is built; the recorder need not
    // be installed when calls are made.
    let layer = metrics::with_local_recorder(&rec, || {
        FallbackLayer::builder()
            .name("users")
            .on(FallbackOn::Failure)
            // Odd requests cannot be copied.
            .clone_with(|r: &u32| r.is_multiple_of(2).then_some(*r))
            // The backup fails for requests over 100.
            .answer_with(|r: u32, _: BoxError| if r > 100 { Err(Down) } else { Ok(r) })
            .build()
            .unwrap()
    });
    assert_eq!(counters(&rec, "users"), [Some(0), Some(0), Some(0)]);
    let mut svc = layer.layer(service_fn(|_: u32| async {
        Err::<u32, BoxError>(CircuitOpen::new(None).into())
    }));
    // Falls back, the backup answers.
    assert!(ready_call_ok(&mut svc, 2));
    assert!(ready_call_ok(&mut svc, 4));
    // Falls back, the backup fails.
    assert!(!ready_call_ok(&mut svc, 200));
    // Cannot fall back: not copied.
    assert!(!ready_call_ok(&mut svc, 3));
    assert_eq!(counters(&rec, "users"), [Some(3), Some(1), Some(1)]);
    let mut want = FallbackStats::default();
    want.fallbacks = 3;
    want.backup_failures = 1;
    want.not_cloneable = 1;
    assert_eq!(layer.stats(), want);
}

#[test]
fn a_success_counts_nothing_and_layers_keep_their_own_series() {
    let rec = Recording::default();
    let (a, b) = metrics::with_local_recorder(&rec, || {
        let make = |name: &str| {
            FallbackLayer::builder()
                .name(name)
                .answer_with(|r: u32, _: BoxError| Ok::<_, BoxError>(r + 1))
                .build()
                .unwrap()
        };
        (make("a"), make("b"))
    });
    let mut ok = a.layer(service_fn(|r: u32| async move { Ok::<_, BoxError>(r) }));
    assert!(ready_call_ok(&mut ok, 1));
    let mut refused = b.layer(service_fn(|_: u32| async {
        Err::<u32, BoxError>(CircuitOpen::new(None).into())
    }));
    assert!(ready_call_ok(&mut refused, 1));
    assert_eq!(counters(&rec, "a"), [Some(0), Some(0), Some(0)]);
    assert_eq!(counters(&rec, "b"), [Some(1), Some(0), Some(0)]);
    assert_eq!(rec.series().len(), 6);
}
