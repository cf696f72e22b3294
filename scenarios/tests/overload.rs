//! The overload scenario, short: at 5× capacity the fixed shedder keeps
//! admitted latency near the unloaded one while the unprotected service's
//! queue grows. Real sockets on 127.0.0.1, so only directions are asserted,
//! with wide margins.

use std::time::Duration;

use seawall_scenarios::overload::{OverloadConfig, run};
use seawall_scenarios::server::{Placement, Protection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_keeps_admitted_latency_low_while_the_unprotected_queue_grows() {
    let config = OverloadConfig::short(Placement::InProcess);
    let report = tokio::time::timeout(Duration::from_secs(60), run(config))
        .await
        .expect("bounded")
        .expect("ran");
    println!("{}", report.table());
    let none = report.point(Protection::None, 5.0).expect("ran");
    let shed = report.point(Protection::ShedFixed, 5.0).expect("ran");
    // The shedder refuses most of a 5x load; the unprotected service refuses nothing.
    assert!(shed.rejected > 0.3, "shed rejected {}", shed.rejected);
    assert_eq!(none.rejected, 0.0);
    // Admitted p99: the queue makes the unprotected one several times worse.
    assert!(
        shed.admitted.p99 * 3 < none.admitted.p99,
        "shed p99 {:?}, unprotected p99 {:?}",
        shed.admitted.p99,
        none.admitted.p99
    );
    // The shedder still does useful work.
    assert!(shed.goodput_rps > 0.3 * report.config.spec.capacity_rps());
}
