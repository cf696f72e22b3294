//! The names every seawall layer reports under: `tracing` targets, `metrics`
//! names and label keys. One place, so that all layers report alike and a
//! dashboard written for one layer reads the others.
//!
//! Conventions:
//! - `tracing` events use the crate name as their target (`seawall_breaker`),
//!   carry structured fields, and are never emitted per call at `INFO` or
//!   above: state transitions are `INFO`/`WARN`, per-call detail is `TRACE`.
//! - Metric names are `seawall_<layer>_<what>`, counters end in `_total`,
//!   durations are in seconds and end in `_seconds`.
//! - Every metric carries the label [`LABEL_NAME`]: the name given to the
//!   layer in its builder (`"default"` when none was given). Keyed layers add
//!   [`LABEL_KEY`] only to state gauges, never to per-call counters, so the
//!   number of series stays bounded by the layer's key capacity.

/// `tracing` target of the budget crate.
pub const TARGET_BUDGET: &str = "seawall_budget";
/// `tracing` target of the breaker crate.
pub const TARGET_BREAKER: &str = "seawall_breaker";
/// `tracing` target of the shedder crate.
pub const TARGET_SHED: &str = "seawall_shed";
/// `tracing` target of the timeout crate.
pub const TARGET_TIMEOUT: &str = "seawall_timeout";
/// `tracing` target of the retry crate.
pub const TARGET_RETRY: &str = "seawall_retry";
/// `tracing` target of the fallback crate.
pub const TARGET_FALLBACK: &str = "seawall_fallback";
/// `tracing` target of the hedging layer.
pub const TARGET_HEDGE: &str = "seawall_hedge";
/// `tracing` target of the deadline crate.
pub const TARGET_DEADLINE: &str = "seawall_deadline";

/// Label: the layer's name from its builder.
pub const LABEL_NAME: &str = "name";
/// Label: the key (peer, host, route) of a keyed layer.
pub const LABEL_KEY: &str = "key";
/// Label: why a call was refused or retrying stopped.
pub const LABEL_REASON: &str = "reason";
/// Label: a breaker state (`closed`, `open`, `half_open`, `forced_open`, `forced_closed`).
pub const LABEL_STATE: &str = "state";
/// The value of [`LABEL_NAME`] for a layer that was given no name.
pub const DEFAULT_NAME: &str = "default";

/// Gauge: breaker state, 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed.
pub const BREAKER_STATE: &str = "seawall_breaker_state";
/// Counter: breaker transitions, labelled with the new [`LABEL_STATE`].
pub const BREAKER_TRANSITIONS_TOTAL: &str = "seawall_breaker_transitions_total";
/// Counter: calls refused by an open or full half-open breaker.
pub const BREAKER_REJECTED_TOTAL: &str = "seawall_breaker_rejected_total";
/// Gauge: keys held by a keyed breaker.
pub const BREAKER_KEYS: &str = "seawall_breaker_keys";
/// Counter: requests a peer selection sent to their preferred peer.
pub const BREAKER_SELECT_PREFERRED_TOTAL: &str = "seawall_breaker_select_preferred_total";
/// Counter: requests a peer selection sent to another peer, the preferred
/// one's breaker refusing.
pub const BREAKER_SELECT_OTHER_TOTAL: &str = "seawall_breaker_select_other_total";
/// Counter: requests a peer selection refused, no peer's breaker admitting them.
pub const BREAKER_SELECT_NO_PEER_TOTAL: &str = "seawall_breaker_select_no_peer_total";
/// Gauge: peers in a peer selection.
pub const BREAKER_SELECT_PEERS: &str = "seawall_breaker_select_peers";

/// Counter: calls or iterations admitted by a budget.
pub const BUDGET_ADMITTED_TOTAL: &str = "seawall_budget_admitted_total";
/// Counter: calls or iterations refused (or made to wait) by a spent budget.
pub const BUDGET_EXHAUSTED_TOTAL: &str = "seawall_budget_exhausted_total";
/// Counter: items a bounded queue dropped or returned, labelled with [`LABEL_REASON`].
pub const BUDGET_DROPPED_TOTAL: &str = "seawall_budget_dropped_total";
/// Gauge: items in a bounded queue.
pub const BUDGET_QUEUE_LEN: &str = "seawall_budget_queue_len";
/// Counter: Redis commands sent by a shared (Redis) budget.
pub const BUDGET_REDIS_ROUND_TRIPS_TOTAL: &str = "seawall_budget_redis_round_trips_total";
/// Counter: a shared budget's switches between Redis and its fallback,
/// labelled with the new backend as [`LABEL_STATE`] (`redis` or `fallback`).
pub const BUDGET_BACKEND_SWITCHES_TOTAL: &str = "seawall_budget_backend_switches_total";
/// Gauge: 1 while a shared budget follows its fallback policy, else 0.
pub const BUDGET_BACKEND_FALLBACK: &str = "seawall_budget_backend_fallback";

/// Gauge: requests in flight through a shedder.
pub const SHED_IN_FLIGHT: &str = "seawall_shed_in_flight";
/// Gauge: a shedder's current in-flight limit (moves when adaptive).
pub const SHED_LIMIT: &str = "seawall_shed_limit";
/// Counter: requests admitted by a shedder.
pub const SHED_ADMITTED_TOTAL: &str = "seawall_shed_admitted_total";
/// Counter: requests shed, labelled with [`LABEL_REASON`].
pub const SHED_REJECTED_TOTAL: &str = "seawall_shed_rejected_total";

/// Gauge: the current deadline of an adaptive timeout, in seconds.
pub const TIMEOUT_DEADLINE_SECONDS: &str = "seawall_timeout_deadline_seconds";
/// Counter: calls cancelled at their deadline.
pub const TIMEOUT_ELAPSED_TOTAL: &str = "seawall_timeout_elapsed_total";

/// Counter: attempts made by a retry layer, first attempts included.
pub const RETRY_ATTEMPTS_TOTAL: &str = "seawall_retry_attempts_total";
/// Counter: retries (attempts after the first).
pub const RETRY_RETRIES_TOTAL: &str = "seawall_retry_retries_total";
/// Counter: requests that stopped retrying, labelled with [`LABEL_REASON`].
pub const RETRY_GAVE_UP_TOTAL: &str = "seawall_retry_gave_up_total";
/// Counter: retries refused by the retry budget.
pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "seawall_retry_budget_exhausted_total";
/// Counter: retries that waited for a peer's hint (`Retry-After`, a gRPC
/// pushback) because it was longer than the backoff's delay.
pub const RETRY_HINTED_TOTAL: &str = "seawall_retry_hinted_total";

/// Counter: calls a fallback layer answered with its backup.
pub const FALLBACK_USED_TOTAL: &str = "seawall_fallback_used_total";
/// Counter: backup answers that failed too.
pub const FALLBACK_FAILED_TOTAL: &str = "seawall_fallback_failed_total";
/// Counter: failed calls that could not fall back because their request
/// could not be copied.
pub const FALLBACK_NOT_COPIED_TOTAL: &str = "seawall_fallback_not_copied_total";

/// `tracing` target of the chaos crate.
pub const TARGET_CHAOS: &str = "seawall_chaos";
/// Label: the fault a chaos layer injected (`error`, `latency`, `outcome`).
pub const LABEL_FAULT: &str = "fault";
/// Counter: faults a chaos layer injected, labelled with [`LABEL_FAULT`].
pub const CHAOS_INJECTED_TOTAL: &str = "seawall_chaos_injected_total";
/// Gauge: 1 while a chaos layer injects, 0 while it is disabled.
pub const CHAOS_ENABLED: &str = "seawall_chaos_enabled";
/// Counter: hedges (second and later attempts) sent.
pub const HEDGE_SENT_TOTAL: &str = "seawall_hedge_sent_total";
/// Counter: calls answered by a hedge rather than the first attempt.
pub const HEDGE_WON_TOTAL: &str = "seawall_hedge_won_total";
/// Counter: hedges not sent because the hedge budget was spent.
pub const HEDGE_BUDGET_EXHAUSTED_TOTAL: &str = "seawall_hedge_budget_exhausted_total";
/// Counter: calls not hedged because their request could not be copied.
pub const HEDGE_NOT_CLONEABLE_TOTAL: &str = "seawall_hedge_not_cloneable_total";
/// Gauge: the delay after which a hedging layer's next call is hedged.
pub const HEDGE_DELAY_SECONDS: &str = "seawall_hedge_delay_seconds";
/// Counter: requests that arrived with a caller's deadline, or left with one.
pub const DEADLINE_CARRIED_TOTAL: &str = "seawall_deadline_carried_total";
/// Counter: requests refused because the caller's deadline had passed.
pub const DEADLINE_EXCEEDED_TOTAL: &str = "seawall_deadline_exceeded_total";

/// Prefix of the [`event`](crate::event) hub's metrics.
pub const TARGET_EVENTS: &str = "seawall_events";
/// Counter: events a subscriber's full channel dropped (one per subscriber
/// that missed it). The hub is per process, so this counter has no
/// [`LABEL_NAME`].
pub const EVENTS_DROPPED_TOTAL: &str = "seawall_events_dropped_total";

/// Every metric name above: what a dashboard or an alert may query. None
/// is a histogram or a summary (counters end in `_total`, the rest are
/// gauges), so a Prometheus exporter adds no `_bucket`, `_sum` or `_count`
/// series, and the names already carry their `_total` and unit suffixes
/// (`metrics-exporter-prometheus` adds none to them).
pub const ALL_METRICS: &[&str] = &[
    BREAKER_STATE,
    BREAKER_TRANSITIONS_TOTAL,
    BREAKER_REJECTED_TOTAL,
    BREAKER_KEYS,
    BREAKER_SELECT_PREFERRED_TOTAL,
    BREAKER_SELECT_OTHER_TOTAL,
    BREAKER_SELECT_NO_PEER_TOTAL,
    BREAKER_SELECT_PEERS,
    BUDGET_ADMITTED_TOTAL,
    BUDGET_EXHAUSTED_TOTAL,
    BUDGET_DROPPED_TOTAL,
    BUDGET_QUEUE_LEN,
    BUDGET_REDIS_ROUND_TRIPS_TOTAL,
    BUDGET_BACKEND_SWITCHES_TOTAL,
    BUDGET_BACKEND_FALLBACK,
    SHED_IN_FLIGHT,
    SHED_LIMIT,
    SHED_ADMITTED_TOTAL,
    SHED_REJECTED_TOTAL,
    TIMEOUT_DEADLINE_SECONDS,
    TIMEOUT_ELAPSED_TOTAL,
    RETRY_ATTEMPTS_TOTAL,
    RETRY_RETRIES_TOTAL,
    RETRY_GAVE_UP_TOTAL,
    RETRY_BUDGET_EXHAUSTED_TOTAL,
    RETRY_HINTED_TOTAL,
    FALLBACK_USED_TOTAL,
    FALLBACK_FAILED_TOTAL,
    FALLBACK_NOT_COPIED_TOTAL,
    CHAOS_INJECTED_TOTAL,
    CHAOS_ENABLED,
    HEDGE_SENT_TOTAL,
    HEDGE_WON_TOTAL,
    HEDGE_BUDGET_EXHAUSTED_TOTAL,
    HEDGE_NOT_CLONEABLE_TOTAL,
    HEDGE_DELAY_SECONDS,
    DEADLINE_CARRIED_TOTAL,
    DEADLINE_EXCEEDED_TOTAL,
    EVENTS_DROPPED_TOTAL,
];

/// Describes every seawall metric (unit and help text) to the installed
/// `metrics` recorder. Call it once after installing the recorder.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge};

    describe_gauge!(
        BREAKER_STATE,
        "Breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 forced closed."
    );
    describe_counter!(
        BREAKER_TRANSITIONS_TOTAL,
        Unit::Count,
        "Breaker state transitions, by new state."
    );
    describe_counter!(
        BREAKER_REJECTED_TOTAL,
        Unit::Count,
        "Calls refused by an open breaker."
    );
    describe_gauge!(BREAKER_KEYS, Unit::Count, "Keys held by a keyed breaker.");
    describe_counter!(
        BREAKER_SELECT_PREFERRED_TOTAL,
        Unit::Count,
        "Requests sent to their preferred peer."
    );
    describe_counter!(
        BREAKER_SELECT_OTHER_TOTAL,
        Unit::Count,
        "Requests sent to another peer, the preferred one's breaker refusing."
    );
    describe_counter!(
        BREAKER_SELECT_NO_PEER_TOTAL,
        Unit::Count,
        "Requests refused, no peer's breaker admitting them."
    );
    describe_gauge!(
        BREAKER_SELECT_PEERS,
        Unit::Count,
        "Peers in a peer selection."
    );
    describe_counter!(
        BUDGET_ADMITTED_TOTAL,
        Unit::Count,
        "Calls admitted by a budget."
    );
    describe_counter!(
        BUDGET_EXHAUSTED_TOTAL,
        Unit::Count,
        "Calls refused or delayed by a spent budget."
    );
    describe_counter!(
        BUDGET_DROPPED_TOTAL,
        Unit::Count,
        "Items dropped or returned by a bounded queue, by reason."
    );
    describe_gauge!(BUDGET_QUEUE_LEN, Unit::Count, "Items in a bounded queue.");
    describe_counter!(
        BUDGET_REDIS_ROUND_TRIPS_TOTAL,
        Unit::Count,
        "Redis commands sent by a shared budget."
    );
    describe_counter!(
        BUDGET_BACKEND_SWITCHES_TOTAL,
        Unit::Count,
        "Switches between Redis and the fallback, by new backend."
    );
    describe_gauge!(
        BUDGET_BACKEND_FALLBACK,
        "1 while a shared budget follows its fallback policy, else 0."
    );
    describe_gauge!(SHED_IN_FLIGHT, Unit::Count, "Requests in flight.");
    describe_gauge!(SHED_LIMIT, Unit::Count, "Current in-flight limit.");
    describe_counter!(
        SHED_ADMITTED_TOTAL,
        Unit::Count,
        "Requests admitted by a shedder."
    );
    describe_counter!(
        SHED_REJECTED_TOTAL,
        Unit::Count,
        "Requests shed, by reason."
    );
    describe_gauge!(
        TIMEOUT_DEADLINE_SECONDS,
        Unit::Seconds,
        "Current adaptive deadline."
    );
    describe_counter!(
        TIMEOUT_ELAPSED_TOTAL,
        Unit::Count,
        "Calls cancelled at their deadline."
    );
    describe_counter!(
        RETRY_ATTEMPTS_TOTAL,
        Unit::Count,
        "Attempts, first attempts included."
    );
    describe_counter!(RETRY_RETRIES_TOTAL, Unit::Count, "Retries made.");
    describe_counter!(
        RETRY_GAVE_UP_TOTAL,
        Unit::Count,
        "Requests that stopped retrying, by reason."
    );
    describe_counter!(
        RETRY_BUDGET_EXHAUSTED_TOTAL,
        Unit::Count,
        "Retries refused by the retry budget."
    );
    describe_counter!(
        RETRY_HINTED_TOTAL,
        Unit::Count,
        "Retries that waited for a peer's hint longer than the backoff."
    );
    describe_counter!(
        FALLBACK_USED_TOTAL,
        Unit::Count,
        "Calls answered by the fallback's backup."
    );
    describe_counter!(
        FALLBACK_FAILED_TOTAL,
        Unit::Count,
        "Backup answers that failed too."
    );
    describe_counter!(
        FALLBACK_NOT_COPIED_TOTAL,
        Unit::Count,
        "Failed calls that could not fall back: the request could not be copied."
    );
    describe_counter!(
        CHAOS_INJECTED_TOTAL,
        Unit::Count,
        "Faults a chaos layer injected, by fault."
    );
    describe_gauge!(CHAOS_ENABLED, "1 while a chaos layer injects, else 0.");
    describe_counter!(HEDGE_SENT_TOTAL, Unit::Count, "Hedges sent.");
    describe_counter!(
        HEDGE_WON_TOTAL,
        Unit::Count,
        "Calls answered by a hedge rather than the first attempt."
    );
    describe_counter!(
        HEDGE_BUDGET_EXHAUSTED_TOTAL,
        Unit::Count,
        "Hedges not sent: the hedge budget was spent."
    );
    describe_counter!(
        HEDGE_NOT_CLONEABLE_TOTAL,
        Unit::Count,
        "Calls not hedged: the request could not be copied."
    );
    describe_gauge!(
        HEDGE_DELAY_SECONDS,
        Unit::Seconds,
        "Delay after which the next call is hedged."
    );
    describe_counter!(
        DEADLINE_CARRIED_TOTAL,
        Unit::Count,
        "Requests that arrived or left with a caller's deadline."
    );
    describe_counter!(
        DEADLINE_EXCEEDED_TOTAL,
        Unit::Count,
        "Requests refused because the caller's deadline had passed."
    );
    describe_counter!(
        EVENTS_DROPPED_TOTAL,
        Unit::Count,
        "Events dropped because a subscriber's channel was full."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_the_convention() {
        let all = ALL_METRICS;
        let targets = [
            TARGET_BUDGET,
            TARGET_BREAKER,
            TARGET_SHED,
            TARGET_TIMEOUT,
            TARGET_RETRY,
            TARGET_FALLBACK,
            TARGET_CHAOS,
            TARGET_HEDGE,
            TARGET_DEADLINE,
            TARGET_EVENTS,
        ];
        for name in all {
            assert!(
                targets.iter().any(|t| name.starts_with(&format!("{t}_"))),
                "{name} is not under a crate's prefix"
            );
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
        }
        let mut sorted = all.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "metric names are unique");
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn describing_without_a_recorder_is_harmless() {
        describe_metrics();
    }
}
