#![doc = include_str!("../README.md")]
//!
//! # In depth
//!
//! Deadlines that travel: read the caller's deadline from a request, keep
//! every time limit within it, and pass what is left to the next hop.
//!
//! A chain of services A → B → C where C slows down: A gives up after its
//! deadline, but without deadlines B keeps waiting on C, and C keeps working,
//! for an answer nobody will read. With them:
//!
//! - [`CallerDeadlineLayer`] (server side) reads the caller's deadline from
//!   `grpc-timeout` (or a header you name, holding milliseconds), waits for
//!   the inner service's readiness and runs the call inside a
//!   [`Deadline::scope`], and drops the wait or the handler's future with
//!   [`DeadlineExceeded`] when the deadline passes (a response already
//!   returned, and so a streaming body, is not followed). A request that
//!   arrives with no time left is refused at once.
//! - Every seawall time limit below it takes the smaller of its own and the
//!   caller's remaining time: the adaptive timeout, the retry deadline across
//!   attempts, the budget's wait, the shedder's queue wait. What they return:
//!   the adaptive timeout, `DeadlineExceeded` (cut short while running, or
//!   refused when called after the deadline); the retry layer, a
//!   `RetryError` with `StopReason::Deadline`
//!   and the last attempt's error when the next retry would start after the
//!   deadline, and `DeadlineExceeded` when the deadline passes while it waits
//!   for readiness or before its first attempt; the budget (Wait mode),
//!   `BudgetExhausted` when the next token is due after the deadline and
//!   `DeadlineExceeded` when the deadline has passed; the shedder's queue,
//!   `DeadlineExceeded` when the deadline passes in the queue or before the
//!   request would join it.
//! - [`PropagateDeadlineLayer`] (client side) writes the time left, minus a
//!   margin, into outgoing requests, so the next hop does the same.
//! - [`CallTimeoutLayer`] lets one request carry its own timeout (a
//!   [`CallTimeout`] in its extensions), which the adaptive timeout below
//!   takes in place of its own, within its `[min, max]`.
//!
//! The deadline itself lives in [`seawall_core::deadline`]: a [`Deadline`]
//! is an instant on tokio's clock, and the scope is one thread-local, so a
//! layer with nothing to do pays one thread-local read.
//!
//! # Example
//!
//! A server that gives its handler the caller's deadline, and a client inside
//! the handler that passes it on:
//!
//! ```
//! use std::time::Duration;
//! use http::{Request, Response};
//! use seawall_deadline::{CallerDeadlineLayer, Deadline, PropagateDeadlineLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), seawall_core::BoxError> {
//! // The next hop: echoes the deadline it was given.
//! let downstream = service_fn(|req: Request<()>| async move {
//!     let header = req.headers().get("grpc-timeout").cloned();
//!     Ok::<_, seawall_core::BoxError>(Response::new(header))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(PropagateDeadlineLayer::new())
//!     .service(downstream);
//!
//! let server = ServiceBuilder::new()
//!     .layer(CallerDeadlineLayer::new())
//!     .service(service_fn(move |_req: Request<()>| {
//!         let client = client.clone();
//!         async move {
//!             assert!(Deadline::current().is_some());
//!             client.oneshot(Request::new(())).await
//!         }
//!     }));
//!
//! let req = Request::builder().header("grpc-timeout", "250m").body(())?;
//! let res = server.oneshot(req).await?;
//! assert_eq!(res.into_body().unwrap(), "250000u");
//! # Ok(()) }
//! ```
//!
//! # Where the deadline is seen
//!
//! The scope covers the inner service's `call` and every poll of its
//! response future, so whatever runs there sees the caller's deadline: a
//! seawall timeout or retry below [`CallerDeadlineLayer`], the handler, and
//! every client stack the handler calls (its `poll_ready` included, since the
//! handler drives it). It does not cover the server stack's own `poll_ready`,
//! which runs before the request is known: a budget in Wait mode or a
//! shedder's queue *below* `CallerDeadlineLayer` on the server waits as it
//! would without a deadline. In the client stacks the handler uses, they
//! honour it.
//!
//! A task the handler spawns is polled outside the scope: give it the
//! deadline with `Deadline::scope(deadline, task)`, or put the [`Deadline`]
//! in the outgoing request's extensions, which [`PropagateDeadlineLayer`]
//! reads too.
//!
//! # Choices
//!
//! - The scope is a thread-local set around each poll rather than a tokio
//!   `task_local!`: it needs no `rt` feature, keeps the earlier deadline when
//!   scopes nest, and a read is one load.
//! - The deadline is not put into the request's extensions by the server
//!   layer: the first insert allocates the extension map, on every request.
//! - A header that does not parse is ignored rather than refused: the layer
//!   then behaves as if the caller had sent none, which is what it did
//!   before deadlines existed; a hostile value can never lengthen anything,
//!   since every deadline is capped at `max`.
//! - When the caller's deadline passes, the work is dropped and the answer is
//!   [`DeadlineExceeded`]: never retried (the caller has given up). Refused
//!   before the work started, it is a refusal, which no breaker counts
//!   against the peer (the caller's hurry says nothing about the peer's
//!   health); cut short while the work ran
//!   ([`DeadlineExceeded::was_running`]), it is a failure to a breaker or
//!   adaptive limit above, as a timeout is: otherwise a peer that hangs would
//!   never trip a breaker whose callers all carry deadlines.
//!
//! # Feature flags
//!
//! No feature is on by default.
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `metrics` | `seawall_deadline_carried_total` and `seawall_deadline_exceeded_total` through the `metrics` facade |
//! | `serde` | `Deserialize` for both configs (durations as `"250ms"`) |
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod call_timeout;
mod caller;
mod config;
mod future;
mod propagate;
mod shared;

pub use call_timeout::{CallTimeoutLayer, CallTimeoutService};
pub use caller::{CallerDeadline, CallerDeadlineLayer};
pub use config::{
    CallerDeadlineConfig, GRPC_TIMEOUT, MAX_CALLER_DEADLINE, MAX_MARGIN, PropagateDeadlineConfig,
};
pub use future::{CallerFuture, PropagateFuture};
pub use propagate::{PropagateDeadline, PropagateDeadlineLayer};
pub use seawall_core::DeadlineExceeded;
pub use seawall_core::deadline::{CallTimeout, Deadline};
pub use shared::DeadlineStats;
