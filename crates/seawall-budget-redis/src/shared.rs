//! The state a layer shares with its services and its background task:
//! which backend is in force (Redis or the fallback), the counters, and the
//! queue of refills.
//!
//! All Redis traffic happens on one background task, so a call never awaits
//! Redis: it takes a leased token, or a token on credit, or gets the fallback
//! policy's answer. The task holds only a `Weak` to this state and the
//! receiving end of the refill queue, so it ends as soon as the last layer
//! and service are dropped (the queue's sender lives here).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering, fence};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use seawall_budget::LoopBudget;
use seawall_core::Clock;
use seawall_core::names::TARGET_BUDGET;
use seawall_core::time::nanos;
use tokio::sync::{Notify, mpsc};

use crate::config::{FallbackPolicy, RedisBudgetConfig};
use crate::endpoint::Endpoint;
use crate::error::RedisBudgetError;
use crate::lease::{Acquire, Cell, Counters, Name};
use crate::script::{Ask, Conn, Grant, ScriptRate};
use crate::stats::Backend;

const REDIS: u8 = 0;
const FALLBACK: u8 = 1;
/// Most cells refilled in one round: one pipeline (one round trip), or on a
/// Cluster one pipeline per node, sent together.
const BATCH: usize = 1024;

pub(crate) struct Shared {
    pub(crate) config: RedisBudgetConfig,
    pub(crate) counters: Counters,
    backend: AtomicU8,
    /// The layer's clock: cells' instants are its readings.
    pub(crate) clock: Clock,
    /// Kept to make the state again on another clock, and for `ping`.
    pub(crate) endpoint: Endpoint,
    /// The budget's Redis key, and the prefix of a keyed budget's keys.
    pub(crate) prefix: String,
    emission_ns: u64,
    script_rate: ScriptRate,
    max_lease: u32,
    lease_interval_ns: u64,
    probe_interval_ns: u64,
    last_error: Mutex<Option<RedisBudgetError>>,
    refills: mpsc::Sender<Arc<Cell>>,
    /// Woken after every refill and every backend switch (waiting services).
    pub(crate) done: Arc<Notify>,
    started: AtomicBool,
    starter: Mutex<Option<(mpsc::Receiver<Arc<Cell>>, Conn)>>,
    #[cfg(feature = "metrics")]
    metrics: Metrics,
}

#[cfg(feature = "metrics")]
struct Metrics {
    admitted: metrics::Counter,
    exhausted: metrics::Counter,
    round_trips: metrics::Counter,
    to_fallback: metrics::Counter,
    to_redis: metrics::Counter,
    fallback: metrics::Gauge,
}

impl Shared {
    /// `config` must be valid and `endpoint` made from it; `queue` is the
    /// refill queue's capacity.
    pub(crate) fn new(
        config: &RedisBudgetConfig,
        endpoint: Endpoint,
        queue: usize,
        clock: Clock,
    ) -> Shared {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let per_ns = nanos(config.per);
        let emission_ns = (per_ns / u64::from(config.rate.max(1))).max(1);
        let emission_us = per_ns as f64 / 1000.0 / f64::from(config.rate.max(1));
        #[cfg(feature = "metrics")]
        let metrics = {
            use seawall_core::names::{
                BUDGET_ADMITTED_TOTAL, BUDGET_BACKEND_FALLBACK, BUDGET_BACKEND_SWITCHES_TOTAL,
                BUDGET_EXHAUSTED_TOTAL, BUDGET_REDIS_ROUND_TRIPS_TOTAL, LABEL_NAME, LABEL_STATE,
            };
            let name = config.name.clone();
            Metrics {
                admitted: metrics::counter!(BUDGET_ADMITTED_TOTAL, LABEL_NAME => name.clone()),
                exhausted: metrics::counter!(BUDGET_EXHAUSTED_TOTAL, LABEL_NAME => name.clone()),
                round_trips: metrics::counter!(BUDGET_REDIS_ROUND_TRIPS_TOTAL, LABEL_NAME => name.clone()),
                to_fallback: metrics::counter!(BUDGET_BACKEND_SWITCHES_TOTAL, LABEL_NAME => name.clone(), LABEL_STATE => "fallback"),
                to_redis: metrics::counter!(BUDGET_BACKEND_SWITCHES_TOTAL, LABEL_NAME => name.clone(), LABEL_STATE => "redis"),
                fallback: metrics::gauge!(BUDGET_BACKEND_FALLBACK, LABEL_NAME => name),
            }
        };
        Shared {
            config: config.clone(),
            counters: Counters::default(),
            backend: AtomicU8::new(REDIS),
            clock,
            endpoint: endpoint.clone(),
            prefix: config.redis_key(),
            emission_ns,
            script_rate: ScriptRate {
                emission_us,
                limit_us: emission_us * f64::from(config.effective_burst()),
            },
            max_lease: config.max_lease(),
            lease_interval_ns: nanos(config.lease_interval),
            probe_interval_ns: nanos(config.probe_interval),
            last_error: Mutex::new(None),
            refills: tx,
            done: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
            starter: Mutex::new(Some((
                rx,
                Conn::new(
                    endpoint,
                    config.redis_timeout,
                    config.probe_interval,
                    config.secrets(),
                ),
            ))),
            #[cfg(feature = "metrics")]
            metrics,
        }
    }

    /// The unkeyed layer's cell: it may admit up to a lease on credit
    /// before its first refill answers.
    pub(crate) fn budget_cell(&self) -> Cell {
        Cell::new(Name::Budget, self.max_lease)
    }

    /// A keyed layer's cell (a key's, or the overflow cell). It admits one
    /// call on credit before its first refill answers, no more: a key that
    /// was forgotten while fresh (Redis had a token due for it) and comes
    /// back gets what Redis would have granted it, and nothing a key that
    /// stayed would not have had.
    pub(crate) fn key_cell(&self, name: Name) -> Cell {
        Cell::new(name, 1)
    }

    /// The `Local` fallback's budget for one cell.
    fn local_budget(&self, share: f64) -> LoopBudget {
        let scale = |n: u32| ((f64::from(n) * share).ceil() as u32).max(1);
        let rate = scale(self.config.rate);
        // Validated config scaled by a share in (0, 1], so every field stays
        // valid; fall back to a plain budget otherwise.
        LoopBudget::builder()
            .name(self.config.name.clone())
            .rate(rate)
            .per(self.config.per)
            .burst(scale(self.config.effective_burst()))
            .clock(self.clock.clone())
            .build()
            .unwrap_or_else(|_| LoopBudget::new(rate))
    }

    /// A reading of the layer's clock (ns): cells' instants are readings.
    pub(crate) fn now(&self) -> u64 {
        self.clock.nanos()
    }

    pub(crate) fn backend(&self) -> Backend {
        // `Acquire`: a caller that sees the fallback sees its `last_error`.
        if self.backend.load(Ordering::Acquire) == FALLBACK {
            Backend::Fallback
        } else {
            Backend::Redis
        }
    }

    pub(crate) fn last_error(&self) -> Option<RedisBudgetError> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn emission(&self) -> Duration {
        Duration::from_nanos(self.emission_ns)
    }

    /// Decides one call. The fast path is one compare-exchange on the cell.
    #[inline]
    pub(crate) fn acquire(self: &Arc<Self>, cell: &Arc<Cell>) -> Acquire {
        if let Some(low) = cell.take_leased() {
            if low {
                self.request_refill(cell);
            }
            self.note_admitted();
            return Acquire::Admit { refundable: true };
        }
        self.acquire_slow(cell)
    }

    #[cold]
    fn acquire_slow(self: &Arc<Self>, cell: &Arc<Cell>) -> Acquire {
        if self.backend.load(Ordering::Relaxed) == FALLBACK {
            return self.fallback(cell);
        }
        let now = self.now();
        if let Some(retry) = cell.failed(now) {
            // This key's own error: it follows the fallback while the others
            // stay on Redis, and asks Redis again every probe interval.
            if retry {
                self.request_refill(cell);
            }
            return self.fallback(cell);
        }
        let until = cell.exhausted_until();
        if now < until {
            self.note_rejected();
            return Acquire::Reject(until - now);
        }
        let credit = cell.take_credit();
        // Pairs with the fence in `refill`: either the refill in flight
        // plans after this credit, or it sees `pending` cleared after it
        // and queues another, so no credit is left for no refill to charge.
        fence(Ordering::SeqCst);
        if !self.request_refill(cell) {
            // The queue is full: nothing would charge this credit, so none
            // is given.
            if credit {
                cell.refund();
            }
            return Acquire::Pending;
        }
        if credit {
            self.note_admitted();
            Acquire::Admit { refundable: true }
        } else {
            Acquire::Pending
        }
    }

    /// The fallback policy's answer for one call.
    pub(crate) fn fallback(self: &Arc<Self>, cell: &Arc<Cell>) -> Acquire {
        match self.config.fallback {
            FallbackPolicy::FailOpen => {
                self.note_admitted();
                Acquire::Admit { refundable: false }
            }
            FallbackPolicy::FailClosed => {
                self.note_rejected();
                Acquire::Closed(nanos(self.config.probe_interval))
            }
            FallbackPolicy::Local { share } => {
                match cell.local(|| self.local_budget(share)).try_consume(1) {
                    Ok(()) => {
                        // Charged to Redis when it answers again, so a replica
                        // cut off does not add its share on top of the others'.
                        // At most one `per` of the whole budget: paying back a
                        // long outage in full would refuse the whole fleet for
                        // as long; this way the refusal after it lasts at most
                        // one `per` for each replica that was cut off.
                        cell.add_debt(self.config.rate);
                        // While Redis is down, hand the cell to the task, which
                        // holds it until Redis answers and then charges the
                        // debt, so the cell does not stay unsettled (and
                        // unevictable) for want of another call. (A key with an
                        // error of its own asks again at its retry time.)
                        if self.backend.load(Ordering::Relaxed) == FALLBACK {
                            self.request_refill(cell);
                        }
                        self.note_admitted();
                        Acquire::Admit { refundable: false }
                    }
                    Err(e) => {
                        self.note_rejected();
                        Acquire::Reject(nanos(e.retry_after()))
                    }
                }
            }
        }
    }

    pub(crate) fn note_admitted(&self) {
        self.counters.admitted.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.admitted.increment(1);
    }

    pub(crate) fn note_rejected(&self) {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.metrics.exhausted.increment(1);
    }

    /// A token reserved and not used goes back (and is not counted).
    pub(crate) fn refund(&self, cell: &Cell) {
        cell.refund();
        self.counters.admitted.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues a refill of `cell` unless one is pending already; returns
    /// whether one is pending now.
    pub(crate) fn request_refill(self: &Arc<Self>, cell: &Arc<Cell>) -> bool {
        if !cell.claim_refill() {
            return true;
        }
        self.ensure_task();
        if self.refills.try_send(cell.clone()).is_err() {
            // The queue is full: a later call asks again.
            cell.release_refill();
            return false;
        }
        true
    }

    /// Starts the background task on the current tokio runtime, once.
    pub(crate) fn ensure_task(self: &Arc<Self>) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut starter = self.starter.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((rx, conn)) = starter.take() {
            // The task holds a `Weak`: it ends when the last layer and service go.
            handle.spawn(run(Arc::downgrade(self), rx, conn));
            self.started.store(true, Ordering::Release);
        }
    }

    fn enter_fallback(&self, err: RedisBudgetError) {
        // The error is kept before the backend changes, so whoever sees the
        // fallback (the swap below, read with `Acquire` by `backend()`) also
        // sees why.
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(err.clone());
        if self.backend.swap(FALLBACK, Ordering::AcqRel) == REDIS {
            self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            self.emit_switch(seawall_core::event::BudgetBackend::Fallback);
            tracing::warn!(
                target: TARGET_BUDGET,
                name = %self.config.name,
                error = %err,
                source = ?std::error::Error::source(&err),
                policy = ?self.config.fallback,
                "redis unreachable; the budget follows its fallback policy"
            );
            #[cfg(feature = "metrics")]
            {
                self.metrics.to_fallback.increment(1);
                self.metrics.fallback.set(1.0);
            }
            self.done.notify_waiters();
        }
    }

    fn emit_switch(&self, to: seawall_core::event::BudgetBackend) {
        use seawall_core::event::{Event, EventKind, emit};
        emit(|| Event::new(self.config.name.as_str(), EventKind::backend_switched(to)));
    }

    fn leave_fallback(&self) {
        if self.backend.swap(REDIS, Ordering::AcqRel) == FALLBACK {
            self.emit_switch(seawall_core::event::BudgetBackend::Redis);
            tracing::info!(
                target: TARGET_BUDGET,
                name = %self.config.name,
                "redis is back; the shared budget resumes"
            );
            #[cfg(feature = "metrics")]
            {
                self.metrics.to_redis.increment(1);
                self.metrics.fallback.set(0.0);
            }
            self.done.notify_waiters();
        }
    }

    /// One pipeline of refills. When Redis does not answer, the cells that
    /// owe it something (credit, fallback debt) go to `unsettled`, still
    /// marked pending, to be refilled when it answers again.
    async fn refill(
        self: &Arc<Self>,
        conn: &mut Conn,
        batch: &[Arc<Cell>],
        unsettled: &mut Vec<Arc<Cell>>,
    ) {
        let now = self.now();
        let keys: Vec<String> = batch
            .iter()
            .map(|c| c.redis_key(&self.prefix, &self.config.name, self.config.key_slots))
            .collect();
        let asks: Vec<Ask<'_>> = batch
            .iter()
            .zip(&keys)
            .map(|(c, key)| c.plan(key, now, self.max_lease, self.lease_interval_ns))
            .collect();
        let result = self.lease(conn, &asks).await;
        let after = self.now();
        let mut again = false;
        match result {
            Ok(grants) => {
                for ((cell, ask), grant) in batch.iter().zip(&asks).zip(grants) {
                    match grant {
                        Ok(grant) => again |= self.granted(cell, ask, grant, after),
                        Err(e) => self.key_failed(cell, ask, e, after),
                    }
                }
            }
            Err(e) => {
                for (cell, ask) in batch.iter().zip(&asks) {
                    cell.restore_debt(ask.debt, self.config.rate);
                    if cell.owes() {
                        unsettled.push(cell.clone());
                    } else {
                        cell.release_refill();
                    }
                }
                self.enter_fallback(e);
                return;
            }
        }
        for cell in batch {
            cell.release_refill();
        }
        // Pairs with the fence in `acquire_slow`: credit taken after this
        // refill planned is seen here, and queued again below.
        fence(Ordering::SeqCst);
        self.done.notify_waiters();
        for cell in batch {
            if cell.failed(after).is_none() && (cell.owes() || (again && cell.is_low())) {
                self.request_refill(cell);
            }
        }
    }

    /// Redis granted `cell`'s ask; returns whether to ask again at once.
    fn granted(&self, cell: &Cell, ask: &Ask<'_>, grant: Grant, now: u64) -> bool {
        cell.apply(ask, grant, now);
        self.counters.leased.fetch_add(
            ask.owed
                .saturating_add(ask.debt)
                .saturating_add(grant.granted),
            Ordering::Relaxed,
        );
        if cell.recover() {
            tracing::info!(
                target: TARGET_BUDGET,
                name = %self.config.name,
                key = %seawall_core::key::Escaped(&ask.key),
                "redis answers for this key again; its shared budget resumes"
            );
        }
        grant.granted > 0 && cell.is_low()
    }

    /// Redis answered `cell`'s ask with an error of its own (the key holds
    /// another type, or a value that is not a TAT): that key follows the
    /// fallback policy until a refill, every `probe_interval`, succeeds.
    /// The other keys, and the backend, are not affected.
    fn key_failed(&self, cell: &Cell, ask: &Ask<'_>, err: RedisBudgetError, now: u64) {
        cell.restore_debt(ask.debt, self.config.rate);
        self.counters.key_errors.fetch_add(1, Ordering::Relaxed);
        if cell.fail(now.saturating_add(self.probe_interval_ns)) {
            if err.is_node_outage() {
                // A Cluster node that does not answer fails every key it
                // holds: one event per node comes from the connection;
                // each key's is detail.
                tracing::debug!(
                    target: TARGET_BUDGET,
                    name = %self.config.name,
                    key = %seawall_core::key::Escaped(&ask.key),
                    error = %err,
                    "this key's node did not answer; the key follows the fallback policy"
                );
            } else {
                tracing::warn!(
                    target: TARGET_BUDGET,
                    name = %self.config.name,
                    key = %seawall_core::key::Escaped(&ask.key),
                    error = %err,
                    source = ?std::error::Error::source(&err),
                    policy = ?self.config.fallback,
                    "redis refused this key's lease; the key follows the fallback policy"
                );
            }
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(err);
    }

    async fn lease(
        &self,
        conn: &mut Conn,
        asks: &[Ask<'_>],
    ) -> Result<Vec<Result<Grant, RedisBudgetError>>, RedisBudgetError> {
        #[cfg(feature = "metrics")]
        let before = self.counters.round_trips.load(Ordering::Relaxed);
        let r = conn.lease(&self.counters, self.script_rate, asks).await;
        #[cfg(feature = "metrics")]
        self.report_round_trips(before);
        r
    }

    /// Connects and loads the script, counted like every other round trip.
    async fn warm_up(&self, conn: &mut Conn) -> Result<(), RedisBudgetError> {
        #[cfg(feature = "metrics")]
        let before = self.counters.round_trips.load(Ordering::Relaxed);
        let r = conn.warm_up(&self.counters).await;
        #[cfg(feature = "metrics")]
        self.report_round_trips(before);
        r
    }

    /// Adds the round trips counted since `before` to the metric. Only the
    /// background task sends commands on the layer's counters, so the
    /// difference is its own.
    #[cfg(feature = "metrics")]
    fn report_round_trips(&self, before: u64) {
        let now = self.counters.round_trips.load(Ordering::Relaxed);
        self.metrics
            .round_trips
            .increment(now.saturating_sub(before));
    }

    /// Asks Redis for nothing (no write): succeeds when it answers.
    pub(crate) async fn probe(&self, conn: &mut Conn) -> Result<(), RedisBudgetError> {
        let ask = Ask {
            key: &self.prefix,
            owed: 0,
            debt: 0,
            wanted: 0,
        };
        // Any answer from Redis, a key's own error included, means Redis is
        // back: the keys' errors are the keys' business.
        match self.lease(conn, &[ask]).await {
            Ok(_) => {
                self.leave_fallback();
                Ok(())
            }
            Err(e) => {
                *self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(e.clone());
                Err(e)
            }
        }
    }

    /// A connection of its own, for [`ping`](crate::RedisBudgetLayer::ping).
    pub(crate) fn conn(&self) -> Conn {
        Conn::new(
            self.endpoint.clone(),
            self.config.redis_timeout,
            self.config.probe_interval,
            self.config.secrets(),
        )
    }
}

/// The background task: refills cells in batches while Redis answers, probes
/// it every `probe_interval` while it does not. Ends when the layer is gone.
///
/// Cells that owe Redis something while it does not answer wait in
/// `unsettled` (each at most once: it stays marked pending, so it is not
/// queued again), and are refilled as soon as a probe succeeds. So credit
/// and fallback debt are always charged in the end, even for a key never
/// called again, and the cell becomes fresh (evictable) after.
async fn run(weak: Weak<Shared>, mut rx: mpsc::Receiver<Arc<Cell>>, mut conn: Conn) {
    let mut batch: Vec<Arc<Cell>> = Vec::with_capacity(BATCH);
    let mut unsettled: Vec<Arc<Cell>> = Vec::new();
    // Connect and load the script before the first call needs a lease; a
    // Redis that is not there at start is a switch to the fallback like any.
    match weak.upgrade() {
        None => return,
        Some(shared) => {
            if let Err(e) = shared.warm_up(&mut conn).await {
                shared.enter_fallback(e);
            }
        }
    }
    loop {
        let probe_in = match weak.upgrade() {
            None => return,
            Some(shared) if shared.backend() == Backend::Fallback => {
                Some(shared.config.probe_interval)
            }
            Some(_) => None,
        };
        if let Some(interval) = probe_in {
            let sleep = tokio::time::sleep(interval);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    item = rx.recv() => match item {
                        // Nothing to lease while falling back; what is
                        // owed is charged when Redis answers again.
                        Some(cell) if cell.owes() => unsettled.push(cell),
                        Some(cell) => cell.release_refill(),
                        None => return,
                    },
                }
            }
            let Some(shared) = weak.upgrade() else { return };
            if shared.probe(&mut conn).await.is_ok() {
                let owed = std::mem::take(&mut unsettled);
                let mut chunks = owed.chunks(BATCH);
                for chunk in chunks.by_ref() {
                    shared.refill(&mut conn, chunk, &mut unsettled).await;
                    if shared.backend() == Backend::Fallback {
                        break;
                    }
                }
                // Redis went away again: the rest waits for the next probe.
                chunks.for_each(|rest| unsettled.extend_from_slice(rest));
            }
            continue;
        }
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let Some(shared) = weak.upgrade() else { return };
        shared.refill(&mut conn, &batch, &mut unsettled).await;
        drop(shared);
        batch.clear();
    }
}
