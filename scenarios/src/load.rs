//! An open-loop load generator and a small HTTP client over loopback.
//!
//! Open loop: request `i` is due at `start + i / rate` whatever happened to
//! the earlier ones, so the generator does not slow down when the server
//! does (the mistake a closed loop makes, which hides queueing). Latency is
//! measured from the *due* time, not from when the task got to run, so a
//! stalled generator shows up as latency instead of hiding it. The run is
//! bounded three ways: `rate × duration` requests at most, at most
//! `max_outstanding` in flight (an arrival beyond it is counted as
//! [`Outcome::Dropped`]), and every request gives up after `timeout`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use seawall_core::BoxError;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A successful answer.
    Ok,
    /// Refused at once by a protection layer (a 503 from a shedder, a
    /// `CircuitOpen` from a breaker).
    Rejected,
    /// Any other failure: an error status, a refused or reset connection, a
    /// client-side deadline (`Elapsed`).
    Failed,
    /// No answer within the generator's own `timeout`.
    TimedOut,
    /// Never sent: `max_outstanding` requests were already in flight.
    Dropped,
}

/// One request of a run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Its sequence number, from 0.
    pub seq: u64,
    /// When it was due, from the start of the run.
    pub due: Duration,
    /// From its due time to its answer (or to the timeout).
    pub latency: Duration,
    /// What became of it.
    pub outcome: Outcome,
}

/// The shape of an open-loop run.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    /// Requests per second.
    pub rate: f64,
    /// How long requests are started for.
    pub duration: Duration,
    /// Most requests in flight at once.
    pub max_outstanding: usize,
    /// Each request gives up after this long.
    pub timeout: Duration,
}

impl OpenLoop {
    /// How many requests the run sends.
    pub fn count(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }

    /// Runs the load: `send(seq)` makes request `seq`'s future, which is
    /// spawned at its due time. Returns the samples in completion order.
    /// Returns once every request has finished or timed out.
    pub async fn run<F, Fut>(&self, mut send: F) -> Vec<Sample>
    where
        F: FnMut(u64) -> Fut,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let count = self.count();
        let interval = Duration::from_secs_f64(1.0 / self.rate.max(1e-3));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let mut samples = Vec::with_capacity(count as usize);
        let start = Instant::now();
        for seq in 0..count {
            let due = interval.mul_f64(seq as f64);
            tokio::time::sleep_until(start + due).await;
            while let Some(done) = tasks.try_join_next() {
                samples.extend(done.ok());
            }
            if outstanding.load(Ordering::Relaxed) >= self.max_outstanding {
                samples.push(Sample {
                    seq,
                    due,
                    latency: Duration::ZERO,
                    outcome: Outcome::Dropped,
                });
                continue;
            }
            outstanding.fetch_add(1, Ordering::Relaxed);
            let fut = send(seq);
            let timeout = self.timeout;
            let outstanding = outstanding.clone();
            tasks.spawn(async move {
                let outcome = tokio::time::timeout_at(start + due + timeout, fut)
                    .await
                    .unwrap_or(Outcome::TimedOut);
                outstanding.fetch_sub(1, Ordering::Relaxed);
                Sample {
                    seq,
                    due,
                    latency: (start + due).elapsed(),
                    outcome,
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            samples.extend(done.ok());
        }
        samples
    }
}

/// A keep-alive HTTP/1 client (hyper's pooled client) for loopback servers.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, String>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A new client with its own connection pool.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        HttpClient {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build(connector),
        }
    }

    /// GETs `uri` and reads the whole body; the status, or the transport error.
    pub async fn get(&self, uri: Uri) -> Result<StatusCode, BoxError> {
        let response = self.client.get(uri).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}

impl HttpClient {
    /// GETs `uri`: `Ok` for a success status, the status or transport
    /// error otherwise (as a concrete `io::Error`, which the layers above box).
    pub async fn get_ok(&self, uri: Uri) -> Result<(), std::io::Error> {
        self.get(uri)
            .await
            .and_then(status_to_result)
            .map_err(std::io::Error::other)
    }
}

/// A successful status is `Ok`, anything else an error naming the status,
/// for layers that count `Err` as failure.
pub fn status_to_result(status: StatusCode) -> Result<(), BoxError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn open_loop_is_bounded_in_count_time_and_outstanding() {
        let load = OpenLoop {
            rate: 100.0,
            duration: Duration::from_secs(1),
            max_outstanding: 10,
            timeout: Duration::from_millis(500),
        };
        let samples = load
            .run(|seq| async move {
                if seq % 2 == 0 {
                    std::future::pending::<()>().await;
                }
                Outcome::Ok
            })
            .await;
        assert_eq!(samples.len(), 100);
        let timed_out = samples
            .iter()
            .filter(|s| s.outcome == Outcome::TimedOut)
            .count();
        let dropped = samples
            .iter()
            .filter(|s| s.outcome == Outcome::Dropped)
            .count();
        assert!(timed_out > 0 && dropped > 0, "{timed_out} {dropped}");
        assert!(
            samples
                .iter()
                .all(|s| s.latency <= Duration::from_millis(500))
        );
    }
}
