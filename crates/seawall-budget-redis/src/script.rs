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

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, RedisError, ServerErrorKind, Value};
use seawall_core::config::MAX_DURATION;

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

/// The background task's connection: a reconnecting `ConnectionManager`,
/// made on first use (it needs a runtime), and the script's SHA1.
pub(crate) struct Conn {
    client: Client,
    timeout: Duration,
    /// The URL's password (raw and decoded), scrubbed from every error.
    secrets: Vec<String>,
    manager: Option<ConnectionManager>,
    sha: String,
    loaded: bool,
}

impl Conn {
    pub(crate) fn new(client: Client, timeout: Duration, secrets: Vec<String>) -> Conn {
        Conn {
            client,
            timeout,
            secrets,
            manager: None,
            sha: redis::Script::new(LUA).get_hash().to_owned(),
            loaded: false,
        }
    }

    fn manager(&mut self) -> Result<ConnectionManager, RedisBudgetError> {
        if let Some(m) = &self.manager {
            return Ok(m.clone());
        }
        // Reconnects are driven by our own probes, so the manager tries once
        // per command instead of backing off for seconds.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(self.timeout);
        let m = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| self.sanitize(e))?;
        self.manager = Some(m.clone());
        Ok(m)
    }

    /// One command, one round trip, one timeout.
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        counters: &Counters,
        cmd: QueryKind<'_>,
    ) -> Result<T, RedisBudgetError> {
        let mut m = self.manager()?;
        counters.round_trips.fetch_add(1, Ordering::Relaxed);
        let fut = async {
            match cmd {
                QueryKind::Cmd(c) => c.query_async::<T>(&mut m).await,
                QueryKind::Pipe(p) => p.query_async::<T>(&mut m).await,
            }
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(|e| self.sanitize(e)),
            Err(_) => Err(RedisBudgetError::Timeout(self.timeout)),
        }
    }

    /// A Redis error without the URL's password in it. A server can echo a
    /// command's arguments in its error (an old Redis answers
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

    async fn load(&mut self, counters: &Counters) -> Result<(), RedisBudgetError> {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(LUA);
        let sha: String = self.query(counters, QueryKind::Cmd(&cmd)).await?;
        if sha != self.sha {
            return Err(RedisBudgetError::Reply(format!(
                "SCRIPT LOAD returned {sha}, expected {}",
                self.sha
            )));
        }
        self.loaded = true;
        Ok(())
    }

    /// Runs the script for every ask, in one pipeline (one round trip),
    /// loading the script first if needed and again on `NOSCRIPT`.
    ///
    /// The outer error is the round trip's (Redis unreachable, a timeout):
    /// every ask failed. Each reply is read on its own, so a key that holds
    /// something else (`WRONGTYPE`, a TAT that is not a number) is an error
    /// of that ask alone and the others are granted as usual.
    pub(crate) async fn lease(
        &mut self,
        counters: &Counters,
        rate: ScriptRate,
        asks: &[Ask<'_>],
    ) -> Result<Vec<Result<Grant, RedisBudgetError>>, RedisBudgetError> {
        if !self.loaded {
            self.load(counters).await?;
        }
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
        let no_script = |v: &Value| matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript));
        let mut replies: Vec<Value> = self.query(counters, QueryKind::Pipe(&pipe)).await?;
        if replies.iter().any(no_script) {
            // Redis restarted or `SCRIPT FLUSH`: the script is gone for
            // every ask alike, so load it and send the pipeline again.
            self.loaded = false;
            self.load(counters).await?;
            replies = self.query(counters, QueryKind::Pipe(&pipe)).await?;
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
