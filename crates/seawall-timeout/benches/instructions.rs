//! Instructions per call, for a comparison the noise of a shared machine
//! cannot blur: run `N` calls of one variant, and count instructions from
//! outside (`perf stat -e instructions:u`, or callgrind) at two values of
//! `N`; the difference divided by the difference of `N` is the cost of one
//! call. Usage: `instructions <variant> <n>`, variants `bare`, `tower`,
//! `adaptive`, `fixed`, `keyed`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use seawall_timeout::AdaptiveTimeoutLayer;
use tower::{Layer, Service, service_fn};

fn call<S: Service<u64>>(svc: &mut S, cx: &mut Context<'_>, x: u64) {
    let Poll::Ready(Ok(())) = svc.poll_ready(cx) else {
        panic!("ready")
    };
    let fut = pin!(svc.call(x));
    match fut.poll(cx) {
        Poll::Ready(r) => {
            let _ = black_box(r.is_ok());
        }
        Poll::Pending => panic!("answers at once"),
    }
}

fn run<S: Service<u64>>(mut svc: S, n: u64) {
    let mut cx = Context::from_waker(Waker::noop());
    // Warm up past the adaptive layer's sampling threshold.
    for i in 0..20_000 {
        call(&mut svc, &mut cx, black_box(i & 1));
    }
    for i in 0..n {
        call(&mut svc, &mut cx, black_box(i & 1));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.iter().any(|a| a == "--bench") {
        return;
    }
    let n: u64 = args[2].parse().expect("n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = rt.enter();
    let bare = service_fn(|x: u64| std::future::ready(Ok::<_, std::io::Error>(x)));
    match args[1].as_str() {
        "bare" => run(bare, n),
        "tower" => run(
            tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(bare),
            n,
        ),
        "adaptive" => run(
            AdaptiveTimeoutLayer::builder()
                .build()
                .expect("valid")
                .layer(bare),
            n,
        ),
        "adaptive_every_call" => run(
            AdaptiveTimeoutLayer::builder()
                .sample_every(1)
                .build()
                .expect("valid")
                .layer(bare),
            n,
        ),
        "fixed" => run(
            AdaptiveTimeoutLayer::fixed(Duration::from_secs(1)).layer(bare),
            n,
        ),
        "keyed" => run(
            AdaptiveTimeoutLayer::builder()
                .build_keyed(|x: &u64| *x)
                .expect("valid")
                .layer(bare),
            n,
        ),
        other => panic!("unknown variant {other}"),
    }
}
