//! Scenarios that run seawall's layers against real servers on 127.0.0.1
//! under overload and faults, and measure what each layer does.
//!
//! Each scenario is a module with a `…Config` (`full` for the runner,
//! `short` for tests), an async `run` and a `…Report` that prints a table
//! and gives charts for [`plot::draw`]. The runner binary
//! (`cargo run --release -p seawall-scenarios -- NAME`) runs them;
//! `docs/results.md` shows the figures of a full run.
//!
//! | scenario | module |
//! |----------|--------|
//! | overload: no protection vs tower vs seawall's shedder at 1–10× capacity | [`overload`] |
//! | dead peer: refused, then hanging, then recovered, with and without the keyed breaker + adaptive timeout | [`dead_peer`] |
//! | slow peer: latency growing 10×, the adaptive deadline following it | [`slow_peer`] |
//! | retry storm: a backend failing every call, naive retries vs the retry budget | [`retry_storm`] |
//! | runaway loop: a spinning loop with and without `LoopBudget` | [`runaway_loop`] |
//! | deadlines: A → B → C with C slowing past A's deadline, work wasted at B and C without and with propagation | [`deadline`] |
//! | key churn: a keyed budget flooded with fresh keys, honest clients and an abuser at its limit | [`churn`] |
//! | capacity drop: capacity falls to a quarter for 10 s under steady load; unknown capacity: the fixed limit guessed 4× too high; fixed vs adaptive limits | [`capacity_drop`] |
//! | chaos in a stack: injected errors on one peer and latency on another, under peer selection, keyed breakers, a retry budget and a fallback | [`chaos_stack`] |

pub mod capacity_drop;
pub mod chaos_stack;
pub mod churn;
pub mod dead_peer;
pub mod deadline;
pub mod hedge;
pub mod load;
pub mod overload;
pub mod plot;
pub mod retry_storm;
pub mod runaway_loop;
pub mod server;
pub mod slow_peer;
pub mod stats;
