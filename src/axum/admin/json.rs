//! The registry as JSON: durations in milliseconds (`…_ms`), states and
//! kinds as their stable snake_case names.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::registry::{ApplyReport, KeyPage, KeyStats, LayerSnapshot, LayerStats};

fn ms(d: Duration) -> Value {
    json!(d.as_secs_f64() * 1e3)
}

fn opt_ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, ms)
}

// `FooBar` → `foo_bar`, for enums without a stable name of their own.
fn snake(value: &dyn fmt::Debug) -> String {
    let debug = format!("{value:?}");
    let mut out = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(super) fn snapshot(s: &LayerSnapshot) -> Value {
    json!({
        "id": s.id,
        "kind": s.kind.as_str(),
        "stats": stats(&s.stats),
    })
}

pub(super) fn page(p: &KeyPage) -> Value {
    let keys: Vec<Value> = p
        .keys
        .iter()
        .map(|(key, s)| json!({ "key": key, "stats": key_stats(s) }))
        .collect();
    json!({ "total": p.total, "offset": p.offset, "keys": keys })
}

pub(super) fn report(r: &ApplyReport) -> Value {
    let refused: Vec<Value> = r
        .refused
        .iter()
        .map(|(id, err)| json!({ "id": id, "error": err.to_string() }))
        .collect();
    let skipped: Vec<Value> = r
        .skipped
        .iter()
        .map(|(id, why)| json!({ "id": id, "why": why }))
        .collect();
    json!({
        "complete": r.is_complete(),
        "reloaded": r.reloaded,
        "refused": refused,
        "skipped": skipped,
    })
}

fn key_stats(s: &KeyStats) -> Value {
    match s {
        KeyStats::Breaker(b) => breaker(b),
        KeyStats::Timeout(t) => timeout(t),
        #[allow(unreachable_patterns)]
        _ => Value::Null,
    }
}

fn breaker(b: &seawall_breaker::BreakerStats) -> Value {
    json!({
        "state": b.state.as_str(),
        "time_in_state_ms": ms(b.time_in_state),
        "retry_after_ms": opt_ms(b.retry_after),
        "open_duration_ms": ms(b.open_duration),
        "consecutive_failures": b.consecutive_failures,
        "window_calls": b.window_calls,
        "window_failures": b.window_failures,
        "window_successes": b.window_successes,
        "window_slow_calls": b.window_slow_calls,
        "half_open_in_flight": b.half_open_in_flight,
        "half_open_successes": b.half_open_successes,
        "successes": b.successes,
        "failures": b.failures,
        "trips": b.trips,
        "rejected": b.rejected,
    })
}

fn timeout(t: &seawall_timeout::AdaptiveTimeoutStats) -> Value {
    json!({
        "deadline_ms": ms(t.deadline),
        "source": snake(&t.source),
        "p50_ms": ms(t.p50),
        "p90_ms": ms(t.p90),
        "p99_ms": ms(t.p99),
        "p999_ms": ms(t.p999),
        "samples": t.samples,
        "timeouts": t.timeouts,
    })
}

fn stats(s: &LayerStats) -> Value {
    match s {
        LayerStats::Breaker(b) => breaker(b),
        LayerStats::KeyedBreaker(k) => json!({
            "keys": k.keys,
            "closed": k.closed,
            "open": k.open,
            "half_open": k.half_open,
            "forced_open": k.forced_open,
            "forced_closed": k.forced_closed,
            "overflow_calls": k.overflow_calls,
            "overflow_open": k.overflow_open,
            "rejected": k.rejected,
            "trips": k.trips,
            "failures": k.failures,
        }),
        LayerStats::Shed(s) => json!({
            "in_flight": s.in_flight,
            "limit": s.limit,
            "min_limit": s.min_limit,
            "max_limit": s.max_limit,
            "queued": s.queued,
            "admitted": s.admitted,
            "shed": {
                "hard_limit": s.shed.hard_limit,
                "probabilistic": s.shed.probabilistic,
                "priority": s.shed.priority,
                "queue_delay": s.shed.queue_delay,
                "queue_full": s.shed.queue_full,
                "memory_pressure": s.shed.memory_pressure,
            },
            "rtt_min_ms": opt_ms(s.rtt_min),
            "rtt_recent_ms": opt_ms(s.rtt_recent),
            "rtt_long_ms": opt_ms(s.rtt_long),
            "pressure": snake(&s.pressure),
        }),
        LayerStats::Budget(b) => json!({
            "iterations": b.iterations,
            "exhausted": b.exhausted,
            "backoffs": b.backoffs,
            "backoff_time_ms": ms(b.backoff_time),
            "available": b.available,
            "utilisation": b.utilisation,
        }),
        LayerStats::KeyedBudget(k) => json!({
            "keys": k.keys,
            "admitted": k.admitted,
            "exhausted": k.exhausted,
            "overflow": k.overflow,
            "overflow_rejected": k.overflow_rejected,
        }),
        #[cfg(feature = "redis")]
        LayerStats::RedisBudget(r) => json!({
            "admitted": r.admitted,
            "rejected": r.rejected,
            "round_trips": r.round_trips,
            "leased": r.leased,
            "fallbacks": r.fallbacks,
            "key_errors": r.key_errors,
            "overflowed": r.overflowed,
            "backend": snake(&r.backend),
            // The error's Display is redacted by the Redis budget.
            "last_error": r.last_error.as_ref().map(|e| e.to_string()),
            "keys": r.keys,
        }),
        LayerStats::Timeout(t) => timeout(t),
        LayerStats::KeyedTimeout {
            keys,
            overflowed,
            overflow,
        } => json!({
            "keys": keys,
            "overflowed": overflowed,
            "overflow": timeout(overflow),
        }),
        LayerStats::Retry(r) => json!({
            "requests": r.requests,
            "attempts": r.attempts,
            "retries": r.retries,
            "budget_refusals": r.budget_refusals,
            "gave_up_attempts_exhausted": r.gave_up_attempts_exhausted,
            "gave_up_deadline": r.gave_up_deadline,
            "gave_up_not_retryable": r.gave_up_not_retryable,
            "gave_up_do_not_retry": r.gave_up_do_not_retry,
            "gave_up_hint_too_long": r.gave_up_hint_too_long,
            "hinted": r.hinted,
            "not_cloneable": r.not_cloneable,
            "budget_balance": r.budget_balance,
        }),
        #[cfg(feature = "hedge")]
        LayerStats::Hedge(h) => json!({
            "calls": h.calls,
            "hedges_sent": h.hedges_sent,
            "hedges_won": h.hedges_won,
            "budget_exhausted": h.budget_exhausted,
            "not_cloneable": h.not_cloneable,
            "delay_ms": ms(h.delay),
            "budget_balance": h.budget_balance,
        }),
        #[cfg(feature = "chaos")]
        LayerStats::Chaos(c) => json!({
            "calls": c.calls,
            "errors": c.errors,
            "latencies": c.latencies,
            "outcomes": c.outcomes,
            "passed": c.passed,
        }),
        #[allow(unreachable_patterns)]
        _ => Value::Object(Map::new()),
    }
}
