//! The GCRA lease script and the one connection that runs it.
//!
//! All the budget's state in Redis is one number per key, the theoretical
//! arrival time (TAT) in microseconds since 2020-09-13 on Redis's own clock
//! (`TIME`, read inside the script, so replicas with skewed clocks agree).
//! The script takes the tokens a replica already admitted on credit
//! unconditionally (so the long-run rate holds), then grants up to `wanted`
//! more, as many as the budget holds now, and sets the key to expire when the
//! bucket would be full again (`PX` at the GCRA horizon): an expired key *is*
//! a full bucket, so Redis memory is bounded by the keys in use.
//!
//! The script is loaded once (`SCRIPT LOAD`) and run with `EVALSHA`; a
//! `NOSCRIPT` answer (Redis restarted, or `SCRIPT FLUSH`) loads it again and
//! retries. Every command has its own timeout.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisError, ServerErrorKind, Value};
use seawall_core::config::MAX_DURATION;

use seawall_core::names::TARGET_BUDGET;

use crate::endpoint::Endpoint;
use crate::error::RedisBudgetError;
use crate::lease::Counters;
use crate::redact::scrub;

/// The lease script. Numbers are Lua doubles: microseconds since the base
/// stay exact to 0.03µs for centuries; the TAT is stored with 17 digits.
pub(crate) const LUA: &str = r#"
-- seawall: lease tokens from a GCRA budget, atomically.
-- KEYS[1]  the budget's key (its hash tag keeps a budget in one cluster slot)
-- ARGV[1]  emission interval, microseconds (may be fractional)
-- ARGV[2]  burst limit = burst x emission, microseconds
-- ARGV[3]  owed: tokens already admitted on credit, taken unconditionally
-- ARGV[4]  wanted: tokens to lease; granted as far as the budget holds
-- returns  {granted, wait}: wait = microseconds until one more token is due
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1600000000) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local owed = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if not tat then
  return redis.error_reply('ERR seawall: budget key does not hold a number')
end
if tat < now then tat = now end
tat = tat + owed * emission
local granted = 0
if wanted > 0 then
  local room = math.floor((now + limit - tat) / emission + 1e-9)
  if room > 0 then granted = math.min(wanted, room) end
  tat = tat + granted * emission
end
if owed + granted > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', math.ceil((tat - now) / 1000))
end
local wait = tat + emission - (now + limit)
if wait < 0 then wait = 0 end
return {granted, math.ceil(wait)}
"#;

/// One answer of the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) granted: u64,
    /// Until one more token is due.
    pub(crate) wait: Duration,
}

/// One lease request: a key and what to take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) key: &'a str,
    /// Calls admitted on credit (the pool is this far below zero).
    pub(crate) owed: u64,
    /// Calls the `Local` fallback admitted while this key was cut off.
    pub(crate) debt: u64,
    pub(crate) wanted: u64,
}

/// The emission interval and burst limit, as the script takes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScriptRate {
    pub(crate) emission_us: f64,
    pub(crate) limit_us: f64,
}

/// The background task's connection to whichever Redis the config names,
/// made on first use (it needs a runtime), and the script's SHA1.
///
/// - **Single**: a reconnecting `ConnectionManager` (one try per command:
///   the budget's own probes drive reconnects).
/// - **Sentinel**: a multiplexed connection to the primary the sentinels
///   name. A connection error, a timeout, or a `READONLY` answer (the node
///   was demoted) drops it; the next command asks the sentinels again, so a
///   failover is followed at the first probe after the sentinels promoted a
///   replica.
/// - **Cluster**: the `redis` crate's cluster connection (it follows `MOVED`
///   and `ASK`, and a promoted replica). Refills are grouped by the node that
///   holds their slot (from `CLUSTER SLOTS`, read again after any redirection
///   or failure) and each node's group goes in one pipeline; the groups go
///   out together, under one `redis_timeout`.
pub(crate) struct Conn {
    endpoint: Endpoint,
    timeout: Duration,
    /// The config's secrets (passwords), scrubbed from every error.
    secrets: Vec<String>,
    live: Option<Live>,
    sha: String,
    loaded: bool,
    /// Cluster: slot ranges and the primary ("host:port") that holds them.
    slots: Vec<(u16, u16, u32)>,
    nodes: Vec<String>,
    /// Cluster: the slot map must be read again before the next lease.
    stale: bool,
    /// Sentinel: how often the sentinels are asked which node is primary,
    /// when they were last asked, what they said, and the client asking.
    recheck: Duration,
    checked: Option<tokio::time::Instant>,
    primary: Option<redis::ConnectionAddr>,
    sentinel: Option<redis::sentinel::SentinelClient>,
}

#[derive(Clone)]
enum Live {
    Manager(ConnectionManager),
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Conn {
    /// `recheck`: how often a Sentinel deployment asks which node is primary.
    pub(crate) fn new(
        endpoint: Endpoint,
        timeout: Duration,
        recheck: Duration,
        secrets: Vec<String>,
    ) -> Conn {
        Conn {
            recheck,
            checked: None,
            primary: None,
            sentinel: None,
            endpoint,
            timeout,
            secrets,
            live: None,
            sha: redis::Script::new(LUA).get_hash().to_owned(),
            loaded: false,
            slots: Vec::new(),
            nodes: Vec::new(),
            stale: true,
        }
    }

    /// The connection, made if there is none (within one timeout).
    async fn live(&mut self) -> Result<Live, RedisBudgetError> {
        // Through Sentinel the primary is asked for again every `recheck`:
        // a primary demoted by a failover may go on accepting writes until
        // the sentinels reconfigure it, seconds later.
        let recheck = matches!(self.endpoint, Endpoint::Sentinel(_))
            && self.checked.is_none_or(|t| t.elapsed() >= self.recheck);
        if let Some(l) = &self.live
            && !recheck
        {
            return Ok(l.clone());
        }
        let timeout = self.timeout;
        let live = match &self.endpoint {
            Endpoint::Single(client) => {
                // Reconnects are driven by our own probes, so the manager
                // tries once per command instead of backing off for seconds.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(timeout);
                let m = ConnectionManager::new_lazy_with_config(Client::clone(client), config)
                    .map_err(|e| self.sanitize(e))?;
                Live::Manager(m)
            }
            Endpoint::Sentinel(params) => {
                let params = params.clone();
                let sentinel = match self.sentinel.take() {
                    Some(s) => s,
                    None => params.client().map_err(|e| self.sanitize(e))?,
                };
                let known = self.primary.clone();
                let held = self.live.clone();
                let ask = async move {
                    let mut sentinel = sentinel;
                    let r = sentinel.async_get_client().await;
                    (sentinel, r)
                };
                let client = match tokio::time::timeout(timeout, ask).await {
                    Ok((sentinel, r)) => {
                        self.sentinel = Some(sentinel);
                        r.map_err(|e| self.sanitize(e))
                    }
                    Err(_) => Err(RedisBudgetError::Timeout(timeout)),
                };
                self.checked = Some(tokio::time::Instant::now());
                let client = match (client, held) {
                    // The sentinels do not answer: keep the primary we have.
                    (Err(_), Some(live)) => return Ok(live),
                    (Err(e), None) => return Err(e),
                    (Ok(client), Some(live))
                        if known.as_ref() == Some(client.get_connection_info().addr()) =>
                    {
                        return Ok(live);
                    }
                    (Ok(client), _) => client,
                };
                let addr = client.get_connection_info().addr().clone();
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let connect = client.get_multiplexed_async_connection_with_config(&config);
                let c = match tokio::time::timeout(timeout, connect).await {
                    Ok(r) => r.map_err(|e| self.sanitize(e))?,
                    Err(_) => return Err(RedisBudgetError::Timeout(timeout)),
                };
                if known.is_some() {
                    tracing::info!(
                        target: TARGET_BUDGET,
                        primary = %addr,
                        "the sentinels name another primary; the budget follows it"
                    );
                }
                self.primary = Some(addr);
                // Another node than before: it may not have the script.
                self.loaded = false;
                Live::Plain(c)
            }
            Endpoint::Cluster(client) => {
                let c = match tokio::time::timeout(timeout, client.get_async_connection()).await {
                    Ok(r) => r.map_err(|e| self.sanitize(e))?,
                    Err(_) => return Err(RedisBudgetError::Timeout(timeout)),
                };
                self.loaded = false;
                self.stale = true;
                Live::Cluster(c)
            }
        };
        self.live = Some(live.clone());
        Ok(live)
    }

    /// After a failed command: a Sentinel or Cluster connection that failed
    /// as a whole is made again next time (the sentinels are asked again).
    fn failed(&mut self, err: &RedisBudgetError) {
        let reconnect = match err {
            RedisBudgetError::Timeout(_) => true,
            RedisBudgetError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
            }
            RedisBudgetError::Reply(_) => false,
        };
        if reconnect && !matches!(self.live, Some(Live::Manager(_))) {
            self.live = None;
        }
        self.stale = true;
    }

    /// One command, one round trip, one timeout.
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        counters: &Counters,
        cmd: QueryKind<'_>,
    ) -> Result<T, RedisBudgetError> {
        let live = self.live().await?;
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        let fut = async move {
            match (live, cmd) {
                (Live::Manager(mut c), QueryKind::Cmd(cmd)) => cmd.query_async::<T>(&mut c).await,
                (Live::Manager(mut c), QueryKind::Pipe(p)) => p.query_async::<T>(&mut c).await,
                (Live::Plain(mut c), QueryKind::Cmd(cmd)) => cmd.query_async::<T>(&mut c).await,
                (Live::Plain(mut c), QueryKind::Pipe(p)) => p.query_async::<T>(&mut c).await,
                (Live::Cluster(mut c), QueryKind::Cmd(cmd)) => cmd.query_async::<T>(&mut c).await,
                (Live::Cluster(mut c), QueryKind::Pipe(p)) => p.query_async::<T>(&mut c).await,
            }
        };
        let r = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| self.sanitize(e)),
            Err(_) => Err(RedisBudgetError::Timeout(self.timeout)),
        };
        if let Err(e) = &r {
            self.failed(e);
        }
        r
    }

    /// A Redis error without the config's secrets in it. A server can echo
    /// a command's arguments in its error (an old Redis answers
    /// `HELLO 3 AUTH user password` with "unknown command ... with args
    /// beginning with: ... 'password'"); such an error is rebuilt with the
    /// same kind and its text scrubbed before anyone can print it.
    fn sanitize(&self, e: RedisError) -> RedisBudgetError {
        sanitize(e, &self.secrets)
    }

    /// Connects and loads the script, so the first lease is one round trip.
    pub(crate) async fn warm_up(&mut self, counters: &Counters) -> Result<(), RedisBudgetError> {
        self.load(counters).await
    }

    /// Loads the script (on every primary of a Cluster).
    async fn load(&mut self, counters: &Counters) -> Result<(), RedisBudgetError> {
        let live = self.live().await?;
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(LUA);
        let sha: String = match live {
            Live::Cluster(mut c) => {
                counters.round_trips.fetch_add(1, Ordering::Relaxed);
                // Every primary that answers gets it; one that is down gets
                // it when it answers `NOSCRIPT` later, so a lost node does
                // not stop the others.
                let routing = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::OneSucceeded),
                ));
                let r =
                    match tokio::time::timeout(self.timeout, c.route_command(cmd, routing)).await {
                        Ok(r) => r
                            .and_then(|v| {
                                redis::from_redis_value::<String>(v).map_err(RedisError::from)
                            })
                            .map_err(|e| self.sanitize(e)),
                        Err(_) => Err(RedisBudgetError::Timeout(self.timeout)),
                    };
                if let Err(e) = &r {
                    self.failed(e);
                }
                r?
            }
            _ => self.query(counters, QueryKind::Cmd(&cmd)).await?,
        };
        if sha != self.sha {
            return Err(RedisBudgetError::Reply(format!(
                "SCRIPT LOAD returned {sha}, expected {}",
                self.sha
            )));
        }
        self.loaded = true;
        Ok(())
    }

    /// One `EVALSHA` of the script per ask, in a pipeline.
    fn pipeline(&self, asks: &[Ask<'_>], rate: ScriptRate) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for ask in asks {
            pipe.cmd("EVALSHA")
                .arg(&self.sha)
                .arg(1)
                .arg(ask.key)
                .arg(rate.emission_us)
                .arg(rate.limit_us)
                // Credit and fallback debt alike are taken unconditionally.
                .arg(ask.owed.saturating_add(ask.debt))
                .arg(ask.wanted);
        }
        pipe
    }

    /// Runs the script for every ask, loading the script first if needed and
    /// again on `NOSCRIPT`: one pipeline (one round trip), or on a Cluster
    /// one pipeline per node, sent together.
    ///
    /// The outer error is the round trip's (Redis unreachable, a timeout):
    /// every ask failed. Each reply is read on its own, so a key that holds
    /// something else (`WRONGTYPE`, a TAT that is not a number) is an error
    /// of that ask alone and the others are granted as usual; on a Cluster,
    /// so is every ask of a node that did not answer while others did.
    pub(crate) async fn lease(
        &mut self,
        counters: &Counters,
        rate: ScriptRate,
        asks: &[Ask<'_>],
    ) -> Result<Vec<Result<Grant, RedisBudgetError>>, RedisBudgetError> {
        if !self.loaded {
            self.load(counters).await?;
        }
        if matches!(self.endpoint, Endpoint::Cluster(_)) {
            return self.lease_cluster(counters, rate, asks).await;
        }
        let pipe = self.pipeline(asks, rate);
        let mut replies: Vec<Value> = self.query(counters, QueryKind::Pipe(&pipe)).await?;
        if replies.iter().any(no_script) {
            // Redis restarted or `SCRIPT FLUSH`: the script is gone for
            // every ask alike, so load it and send the pipeline again.
            self.loaded = false;
            self.load(counters).await?;
            replies = self.query(counters, QueryKind::Pipe(&pipe)).await?;
        }
        if replies.iter().any(read_only) {
            // A demoted primary (Sentinel failover): find the new one.
            let e = RedisBudgetError::Redis(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the node is a replica now",
            )));
            self.failed(&e);
            return Err(e);
        }
        if replies.len() != asks.len() {
            return Err(RedisBudgetError::Reply(format!(
                "{} replies to {} calls",
                replies.len(),
                asks.len()
            )));
        }
        Ok(replies.into_iter().map(|v| self.grant(v)).collect())
    }

    /// Reads the Cluster's slot map (`CLUSTER SLOTS`), best effort.
    async fn read_slots(&mut self, counters: &Counters) {
        let Some(Live::Cluster(mut conn)) = self.live.clone() else {
            return;
        };
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        // Any node will do; one that fails leaves the old map (and the
        // connection: the other nodes may be fine).
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let ranges =
            match tokio::time::timeout(self.timeout, conn.route_command(cmd, routing)).await {
                Ok(Ok(v)) => v,
                _ => return,
            };
        let Ok(ranges) = redis::from_redis_value::<Vec<Value>>(ranges) else {
            return;
        };
        let mut slots = Vec::with_capacity(ranges.len());
        let mut nodes: Vec<String> = Vec::new();
        for range in ranges {
            let Ok(parts) = redis::from_redis_value::<Vec<Value>>(range) else {
                continue;
            };
            let mut it = parts.into_iter();
            let (Some(start), Some(end), Some(primary)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                redis::from_redis_value::<u16>(start),
                redis::from_redis_value::<u16>(end),
            ) else {
                continue;
            };
            let Some((host, port)) = redis::from_redis_value::<Vec<Value>>(primary)
                .ok()
                .and_then(|p| {
                    let mut p = p.into_iter();
                    let host = redis::from_redis_value::<String>(p.next()?).ok()?;
                    let port = redis::from_redis_value::<u16>(p.next()?).ok()?;
                    Some((host, port))
                })
            else {
                continue;
            };
            let node = format!("{host}:{port}");
            let idx = match nodes.iter().position(|n| *n == node) {
                Some(i) => i,
                None => {
                    nodes.push(node);
                    nodes.len() - 1
                }
            };
            slots.push((start, end, u32::try_from(idx).unwrap_or(u32::MAX)));
        }
        slots.sort_unstable();
        self.slots = slots;
        self.nodes = nodes;
        self.stale = false;
    }

    /// A group's node, `host:port` (no secret), or its slot.
    fn node_name(&self, group: u64) -> String {
        match usize::try_from(group).ok().and_then(|g| self.nodes.get(g)) {
            Some(node) if group < (1 << 32) => node.clone(),
            _ => format!("slot {}", group & 0xffff),
        }
    }

    /// The node holding `slot`, as far as the last slot map says.
    fn node_of(&self, slot: u16) -> Option<u32> {
        let i = self.slots.partition_point(|&(start, _, _)| start <= slot);
        let &(start, end, node) = self.slots.get(i.checked_sub(1)?)?;
        (start <= slot && slot <= end).then_some(node)
    }

    /// The Cluster's lease: one pipeline per node, all sent together.
    async fn lease_cluster(
        &mut self,
        counters: &Counters,
        rate: ScriptRate,
        asks: &[Ask<'_>],
    ) -> Result<Vec<Result<Grant, RedisBudgetError>>, RedisBudgetError> {
        let Live::Cluster(conn) = self.live().await? else {
            return Err(RedisBudgetError::Reply("no cluster connection".to_owned()));
        };
        if self.stale {
            self.read_slots(counters).await;
        }
        // Group the asks by node (by slot where the map does not know it).
        let mut groups: Vec<(u64, u16, Vec<usize>)> = Vec::new();
        for (i, ask) in asks.iter().enumerate() {
            let slot = key_slot(ask.key.as_bytes());
            let group = match self.node_of(slot) {
                Some(node) => u64::from(node),
                None => (1 << 32) | u64::from(slot),
            };
            match groups.iter_mut().find(|g| g.0 == group) {
                Some(g) => g.2.push(i),
                None => groups.push((group, slot, vec![i])),
            }
        }
        let send = |this: &Conn, which: &[usize]| {
            let mut set = tokio::task::JoinSet::new();
            for (at, &g) in which.iter().enumerate() {
                let (_, slot, members) = &groups[g];
                let picked: Vec<Ask<'_>> = members.iter().map(|&i| asks[i]).collect();
                let pipe = this.pipeline(&picked, rate);
                let mut conn = conn.clone();
                let route =
                    SingleNodeRoutingInfo::SpecificNode(Route::new(*slot, SlotAddr::Master));
                let n = members.len();
                counters.round_trips.fetch_add(1, Ordering::Relaxed);
                set.spawn(async move { (at, conn.route_pipeline(pipe, 0, n, route).await) });
            }
            set
        };
        let mut results: Vec<Option<Result<Vec<Value>, RedisBudgetError>>> =
            (0..groups.len()).map(|_| None).collect();
        // One timeout for all the groups; dropping the set aborts the rest.
        let all: Vec<usize> = (0..groups.len()).collect();
        let mut set = send(self, &all);
        let deadline = seawall_core::time::deadline(tokio::time::Instant::now(), self.timeout);
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            if let Ok((g, r)) = joined {
                results[g] = Some(r.map_err(|e| self.sanitize(e)));
            }
        }
        drop(set);
        // A node that lost the script (restarted, promoted): load it on
        // every primary and send that node's group again, once.
        let again: Vec<usize> = (0..groups.len())
            .filter(|&g| match &results[g] {
                Some(Ok(values)) => values.iter().any(no_script),
                Some(Err(RedisBudgetError::Redis(e))) => {
                    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
                }
                _ => false,
            })
            .collect();
        if !again.is_empty() {
            self.load(counters).await?;
            let mut set = send(self, &again);
            let deadline = seawall_core::time::deadline(tokio::time::Instant::now(), self.timeout);
            while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
                if let Ok((g, r)) = joined {
                    results[again[g]] = Some(r.map_err(|e| self.sanitize(e)));
                }
            }
        }
        let mut out: Vec<Option<Result<Grant, RedisBudgetError>>> =
            (0..asks.len()).map(|_| None).collect();
        let mut answered = false;
        let mut first_err = None;
        let answered_any = results
            .iter()
            .any(|r| matches!(r, Some(Ok(v)) if !v.is_empty()));
        for ((group, _, members), result) in groups.iter().zip(results) {
            let result = result.unwrap_or(Err(RedisBudgetError::Timeout(self.timeout)));
            match result {
                Ok(values) if values.len() == members.len() => {
                    answered = true;
                    for (&i, v) in members.iter().zip(values) {
                        if let Value::ServerError(e) = &v
                            && matches!(
                                e.kind(),
                                Some(
                                    ServerErrorKind::Moved
                                        | ServerErrorKind::Ask
                                        | ServerErrorKind::ClusterDown
                                        | ServerErrorKind::TryAgain
                                        | ServerErrorKind::ReadOnly
                                )
                            )
                        {
                            // The slot moved or its node is failing over:
                            // read the map again before the next lease.
                            self.stale = true;
                        }
                        out[i] = Some(self.grant(v));
                    }
                }
                Ok(values) => {
                    let e = RedisBudgetError::Reply(format!(
                        "{} replies to {} calls",
                        values.len(),
                        members.len()
                    ));
                    for &i in members {
                        out[i] = Some(Err(e.clone()));
                    }
                }
                Err(e) => {
                    self.stale = true;
                    if answered_any {
                        tracing::warn!(
                            target: TARGET_BUDGET,
                            node = %self.node_name(*group),
                            keys = members.len(),
                            error = %e,
                            "a cluster node did not answer; its keys follow the fallback policy"
                        );
                    }
                    for &i in members {
                        out[i] = Some(Err(e.clone()));
                    }
                    first_err.get_or_insert(e);
                }
            }
        }
        if !answered && let Some(e) = first_err {
            // No node answered: the Cluster is unreachable as a whole.
            self.failed(&e);
            return Err(e);
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or(Err(RedisBudgetError::Timeout(self.timeout))))
            .collect())
    }

    /// One reply of the script, read on its own.
    fn grant(&self, reply: Value) -> Result<Grant, RedisBudgetError> {
        if let Value::ServerError(e) = reply {
            return Err(self.sanitize(RedisError::from(e)));
        }
        let (granted, wait) = redis::from_redis_value::<(i64, i64)>(reply)
            .map_err(|e| RedisBudgetError::Reply(scrub(&e.to_string(), &self.secrets)))?;
        match (u64::try_from(granted), u64::try_from(wait)) {
            (Ok(granted), Ok(wait)) => Ok(Grant {
                granted,
                // A corrupt TAT can put the next token centuries away; no
                // wait a peer reports exceeds the longest configurable span.
                wait: Duration::from_micros(wait).min(MAX_DURATION),
            }),
            _ => Err(RedisBudgetError::Reply(format!("{{{granted}, {wait}}}"))),
        }
    }
}

/// The Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the text
/// between the first `{` and the next `}`, when not empty) or of the whole
/// key, modulo 16384, as Redis computes it.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    let mut crc: u16 = 0;
    for &b in tagged.unwrap_or(key) {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16_384
}

fn no_script(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}

fn read_only(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::ReadOnly))
}

/// `e`, rebuilt with the same kind and `secrets` replaced by `***` when its
/// text holds one of them; see [`Conn::sanitize`].
pub(crate) fn sanitize(e: RedisError, secrets: &[String]) -> RedisBudgetError {
    let text = e.to_string();
    if secrets.iter().any(|s| text.contains(s.as_str())) {
        let clean = scrub(&text, secrets);
        RedisBudgetError::Redis(RedisError::from((
            e.kind(),
            "redis error (password redacted)",
            clean,
        )))
    } else {
        RedisBudgetError::Redis(e)
    }
}

enum QueryKind<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a redis::Pipeline),
}

#[cfg(test)]
mod tests {
    use super::key_slot;

    #[test]
    fn slots_are_computed_as_redis_does() {
        // `CLUSTER KEYSLOT` answers, from Redis's documentation and a server.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(
            key_slot(b"foo{}{bar}"),
            key_slot(b"bar"),
            "an empty tag is no tag"
        );
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }
}
