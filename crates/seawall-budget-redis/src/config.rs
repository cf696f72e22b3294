//! Configuration: [`RedisBudgetConfig`], [`FallbackPolicy`] and the builder.
//!
//! Plain data (`Clone`, `Debug`, `Default` with the documented defaults;
//! with feature `serde`, `Deserialize` with durations written as `"50ms"`).
//! Validation reports *every* bad field at once in a [`ConfigError`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use seawall_budget::{BudgetLayer, BudgetMode};
use seawall_core::config::Check;
use seawall_core::names::DEFAULT_NAME;
use seawall_core::{Clock, ConfigError, KeyMapConfig};

use crate::layer::RedisBudgetLayer;
use crate::redact::{MAX_URL_LEN, redact_url, scrub, secrets};

/// What a budget does while Redis cannot be reached (a call timed out or
/// failed), until a probe finds it again.
///
/// Leased tokens still held locally are spent first, whatever the policy.
///
/// In TOML: `fallback = "fail_open"`, `fallback = "fail_closed"`, or
/// `fallback = { local = { share = 0.25 } }`.
///
/// ```
/// use std::time::Duration;
/// use seawall_budget_redis::{Backend, FallbackPolicy, RedisBudgetLayer};
/// use seawall_core::Rejection;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // Nothing listens on port 1: the first refill fails, the budget fails closed.
/// let layer = RedisBudgetLayer::builder()
///     .url("redis://127.0.0.1:1")
///     .fallback(FallbackPolicy::FailClosed)
///     .probe_interval(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// let svc = layer.layer(service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) }));
/// while layer.backend() == Backend::Redis {
///     // Calls admitted on credit (at most one lease) until Redis fails to answer.
///     let _ = svc.clone().oneshot(1).await;
///     tokio::time::sleep(Duration::from_millis(5)).await;
/// }
/// let err = svc.clone().oneshot(2).await.unwrap_err();
/// assert_eq!(Rejection::find(&*err).unwrap().retry_after(), Some(Duration::from_secs(2)));
/// assert!(layer.stats().last_error.is_some());
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub enum FallbackPolicy {
    /// Admit every call: availability over the limit.
    FailOpen,
    /// Refuse every call with `BudgetExhausted` (its `retry_after` is the
    /// probe interval): the limit over availability.
    FailClosed,
    /// Each replica enforces `rate × share` (and `burst × share`, each at
    /// least 1) by itself, with a local GCRA; `share = 1 / replicas` keeps the
    /// total near the shared rate. The default, with `share = 1.0`: each
    /// replica alone keeps the whole budget, so a single replica behaves
    /// exactly as before and `n` replicas admit at most `n × rate` while
    /// Redis is down. The calls it admits, up to `rate` (one `per` of the
    /// whole budget), are charged to the shared budget when Redis answers
    /// again, so a partial outage shorter than about `per / share` keeps the
    /// shared bound over a span that ends after they are paid off, and the
    /// payback refuses the fleet for at most one `per` per cut-off replica.
    Local {
        /// The part of the shared rate this replica may use, in `(0, 1]`.
        share: f64,
    },
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy::Local { share: 1.0 }
    }
}

/// Which Redis the budget lives in: one server (`url`), a Redis Cluster, or
/// a primary found through Sentinel.
///
/// In TOML: `deployment = "single"` (the default),
/// `deployment = { cluster = { nodes = ["redis://10.0.0.1:6379", ...] } }`, or
/// `deployment = { sentinel = { master = "budget", sentinels = ["redis://10.0.0.1:26379", ...] } }`.
///
/// Every URL here may be `rediss://` (TLS, see [`TlsConfig`]); `Debug`
/// prints them redacted ([`redact_url`]).
#[derive(Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Deployment {
    /// One Redis server, at the config's `url` (its restarts and a DNS name
    /// that moves are followed by reconnecting).
    #[default]
    Single,
    /// A Redis Cluster, found from any of these nodes (a few are enough: the
    /// client reads the slot map from the first that answers). The client
    /// follows `MOVED`/`ASK` redirections and the promotion of a replica;
    /// the script is loaded on every primary. The budget's keys are placed by
    /// hash tag: see [`RedisBudgetConfig::key_slots`].
    Cluster {
        /// Seed nodes, as `redis://host:port` (or `rediss://`) URLs.
        nodes: Vec<String>,
    },
    /// A primary found through Redis Sentinel, followed across failovers:
    /// when the primary stops answering (or answers as a replica), the next
    /// probe asks the sentinels again.
    Sentinel {
        /// The name the sentinels monitor the primary under.
        master: String,
        /// The sentinels, as `redis://host:26379` URLs; the first that
        /// answers is asked. A password in these URLs is the sentinels'
        /// own; the primary's is `username`/`password` (or none).
        sentinels: Vec<String>,
    },
}

/// The URLs are printed redacted ([`redact_url`]).
impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>();
        match self {
            Deployment::Single => f.write_str("Single"),
            Deployment::Cluster { nodes } => f
                .debug_struct("Cluster")
                .field("nodes", &redacted(nodes))
                .finish(),
            Deployment::Sentinel { master, sentinels } => f
                .debug_struct("Sentinel")
                .field("master", master)
                .field("sentinels", &redacted(sentinels))
                .finish(),
        }
    }
}

impl Deployment {
    /// The deployment's name: `"single"`, `"cluster"` or `"sentinel"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Deployment::Single => "single",
            Deployment::Cluster { .. } => "cluster",
            Deployment::Sentinel { .. } => "sentinel",
        }
    }
}

/// TLS to Redis (rustls, with the `ring` provider). TLS is on for every
/// `rediss://` URL; these options say how the server's certificate is
/// checked. By default it is checked against the system's roots.
///
/// In TOML: `[tls]` with `ca_file = "/etc/redis/ca.pem"`, or (tests only)
/// `insecure_skip_verify = true`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct TlsConfig {
    /// A PEM file of the CA certificate(s) to trust instead of the system's
    /// roots; read when the layer is built. At most [`MAX_CA_FILE_LEN`] bytes.
    pub ca_file: Option<PathBuf>,
    /// Accepts any certificate and host name: **for tests only**, against a
    /// server with a throwaway self-signed certificate. Never set in
    /// production: anyone on the path can read the password. A URL's own
    /// `#insecure` fragment is refused; this field is the one way to ask for
    /// it, so a config says so in plain words.
    pub insecure_skip_verify: bool,
}

/// The largest CA file [`TlsConfig::ca_file`] may name, in bytes (a bundle of
/// a few hundred certificates).
pub const MAX_CA_FILE_LEN: u64 = 1 << 20;

impl TlsConfig {
    /// Certificates checked against the system's roots (the default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the CA certificate(s) in this PEM file instead of the system's roots.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Skips the certificate check: **for tests only** (see the field).
    #[must_use]
    pub fn insecure_skip_verify(mut self, skip: bool) -> Self {
        self.insecure_skip_verify = skip;
        self
    }
}

/// The most hash tags [`RedisBudgetConfig::key_slots`] may spread a keyed
/// budget over: one per Redis Cluster slot.
pub const MAX_KEY_SLOTS: u16 = 16_384;

/// Configuration of a [`RedisBudgetLayer`] (and, with `keys`, of a
/// [`RedisKeyedBudgetLayer`](crate::RedisKeyedBudgetLayer)).
///
/// `#[non_exhaustive]`: build one with [`RedisBudgetLayer::builder`] (every
/// field has a setter; [`RedisBudgetBuilder::into_config`] hands the config
/// over), or from `Default` and field assignment.
///
/// | field | default | meaning |
/// |-------|---------|---------|
/// | `url` | `"redis://127.0.0.1:6379"` | the Redis server of a `single` deployment (`redis://`, `rediss://` for TLS, `redis+unix://`); at most [`MAX_URL_LEN`] bytes; `Debug` and errors show it redacted |
/// | `name` | `"default"` | the budget's name: Redis key `seawall:{name}` (a hash tag, so one Cluster slot), tracing and metric label; replicas with the same `url` and `name` share one budget |
/// | `rate` | 1000 | calls per `per`, all replicas together |
/// | `per` | 1s | the span `rate` is counted over (at most 365 days) |
/// | `burst` | `rate / 10`, at least 1 | most calls admitted at once, all replicas together |
/// | `mode` | `reject` | [`BudgetMode::Reject`] or [`BudgetMode::Wait`] (the keyed layer only rejects) |
/// | `fallback` | `local { share = 1.0 }` | [`FallbackPolicy`] while Redis is unreachable |
/// | `redis_timeout` | 50ms | limit on each Redis command (and on connecting); at most 365 days |
/// | `probe_interval` | 1s | while falling back (the backend, or one key), how often Redis is tried again; at most 365 days |
/// | `lease_interval` | 50ms | a replica leases about `local rate × lease_interval` tokens per round trip; at most 365 days |
/// | `lease_share` | 0.1 | a lease is at most `lease_share × burst` tokens (at least 1); in `(0, 1]` |
/// | `keys.capacity` | 10 000 | keyed layer: most keys held at once (more new keys share one overflow budget); at most 2^24 |
/// | `keys.idle_ttl` | 5 minutes | keyed layer: a key unused this long may be forgotten; at most 365 days |
/// | `deployment` | `single` | [`Deployment`]: `single` (at `url`), `cluster { nodes }`, `sentinel { master, sentinels }` |
/// | `key_slots` | 1 | keyed layer: how many hash tags (Cluster slots) its keys are spread over; 1 keeps every key in `{name}`'s slot; at most [`MAX_KEY_SLOTS`] |
/// | `username` | none | ACL user for every Redis node (overrides a URL's) |
/// | `password` | none | password for every Redis node (overrides a URL's); `Debug` prints `***` |
/// | `tls` | system roots | [`TlsConfig`]: `ca_file`, or `insecure_skip_verify` (tests only); TLS is on for `rediss://` URLs |
///
/// ```
/// use std::time::Duration;
/// use seawall_budget_redis::{RedisBudgetConfig, RedisBudgetLayer};
/// use seawall_core::KeyMapConfig;
///
/// let cfg: RedisBudgetConfig = RedisBudgetLayer::builder()
///     .name("per-tenant")
///     .rate(100)
///     .keys(KeyMapConfig::new().capacity(1_000).idle_ttl(Duration::from_secs(60)))
///     .into_config();
/// assert!(cfg.validate().is_ok());
///
/// let mut cfg = RedisBudgetConfig::default();
/// cfg.keys.capacity = 0;
/// assert_eq!(cfg.validate().unwrap_err().field(), "keys.capacity");
/// ```
///
/// In TOML (feature `serde`), the map's bounds are the `keys` table:
///
/// ```toml
/// url = "redis://10.0.0.5:6379"
/// name = "per-tenant"
/// rate = 100
/// [keys]
/// capacity = 1000
/// idle_ttl = "1m"
/// ```
#[derive(Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct RedisBudgetConfig {
    /// The Redis server's URL.
    pub url: String,
    /// The budget's name: its Redis key and its label in events and metrics.
    pub name: String,
    /// Calls per `per`, all replicas together.
    pub rate: u32,
    /// The span `rate` is counted over.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub per: Duration,
    /// Most calls admitted at once; `None` means `rate / 10`, at least 1.
    pub burst: Option<u32>,
    /// What to do when the budget is spent.
    pub mode: BudgetMode,
    /// What to do while Redis is unreachable.
    pub fallback: FallbackPolicy,
    /// Limit on each Redis command.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub redis_timeout: Duration,
    /// While falling back, how often Redis is tried again.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub probe_interval: Duration,
    /// The time one lease should last at the local rate.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub lease_interval: Duration,
    /// The largest lease, as a share of `burst`, in `(0, 1]`.
    pub lease_share: f64,
    /// Keyed layer: the bounds of its map of keys (most keys held, and how
    /// long a key must be unused before it may be forgotten).
    pub keys: KeyMapConfig,
    /// Which Redis: one server, a Cluster, or a primary through Sentinel.
    pub deployment: Deployment,
    /// Keyed layer: how many hash tags (so Cluster slots) its keys are
    /// spread over. 1 (the default) keeps every key in the slot of
    /// `{name}`; `n > 1` puts key `k` in `seawall:{name#b}:k` with `b` a
    /// stable hash of `k` modulo `n`, so the keys (and the load) spread over
    /// the Cluster's nodes, and refills are batched per node.
    pub key_slots: u16,
    /// The ACL user for every Redis node (overrides a URL's).
    pub username: Option<String>,
    /// The password for every Redis node (overrides a URL's). Never printed.
    pub password: Option<String>,
    /// How a `rediss://` server's certificate is checked.
    pub tls: TlsConfig,
}

impl Default for RedisBudgetConfig {
    fn default() -> Self {
        RedisBudgetConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            name: DEFAULT_NAME.to_owned(),
            rate: 1000,
            per: Duration::from_secs(1),
            burst: None,
            mode: BudgetMode::Reject,
            fallback: FallbackPolicy::default(),
            redis_timeout: Duration::from_millis(50),
            probe_interval: Duration::from_secs(1),
            lease_interval: Duration::from_millis(50),
            lease_share: 0.1,
            keys: KeyMapConfig::default(),
            deployment: Deployment::Single,
            key_slots: 1,
            username: None,
            password: None,
            tls: TlsConfig::default(),
        }
    }
}

/// The URL is printed with its password replaced ([`redact_url`]): a config
/// is logged at start-up, embedded in a whole stack's config, and shown by
/// every layer's `Debug`.
impl fmt::Debug for RedisBudgetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgetConfig")
            .field("url", &redact_url(&self.url))
            .field("name", &self.name)
            .field("rate", &self.rate)
            .field("per", &self.per)
            .field("burst", &self.burst)
            .field("mode", &self.mode)
            .field("fallback", &self.fallback)
            .field("redis_timeout", &self.redis_timeout)
            .field("probe_interval", &self.probe_interval)
            .field("lease_interval", &self.lease_interval)
            .field("lease_share", &self.lease_share)
            .field("keys", &self.keys)
            .field("deployment", &self.deployment)
            .field("key_slots", &self.key_slots)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisBudgetConfig {
    /// Checks every field (the URL is parsed, no connection is made).
    ///
    /// Bounds: every duration at most [`MAX_DURATION`] (365 days) and, but
    /// for none, longer than zero; `keys.capacity` in `1..=`[`MAX_CAPACITY`];
    /// `lease_share` and the `Local` share finite, in `(0, 1]`; the URL at
    /// most [`MAX_URL_LEN`] bytes. A bad URL is reported redacted
    /// ([`redact_url`]): the error never holds its password.
    ///
    /// [`MAX_DURATION`]: seawall_core::config::MAX_DURATION
    /// [`MAX_CAPACITY`]: seawall_core::config::MAX_CAPACITY
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut check = Check::new();
        let mut tls_urls = 0;
        let mut url = |check: &mut Check, field: &str, url: &str| {
            if check_url(check, field, url) {
                tls_urls += 1;
            }
        };
        match &self.deployment {
            Deployment::Single => url(&mut check, "url", &self.url),
            Deployment::Cluster { nodes } => {
                if nodes.is_empty() {
                    check.fail("deployment.cluster.nodes", "[]", "names no node");
                }
                if nodes.len() > MAX_NODES {
                    check.fail(
                        "deployment.cluster.nodes",
                        nodes.len(),
                        format!("names more than {MAX_NODES} nodes"),
                    );
                }
                for (i, node) in nodes.iter().take(MAX_NODES).enumerate() {
                    url(&mut check, &format!("deployment.cluster.nodes[{i}]"), node);
                }
            }
            Deployment::Sentinel { master, sentinels } => {
                if master.is_empty() || master.len() > 256 {
                    check.fail(
                        "deployment.sentinel.master",
                        format_args!("{master:?}"),
                        "must be a name of 1 to 256 bytes",
                    );
                }
                if sentinels.is_empty() {
                    check.fail("deployment.sentinel.sentinels", "[]", "names no sentinel");
                }
                if sentinels.len() > MAX_NODES {
                    check.fail(
                        "deployment.sentinel.sentinels",
                        sentinels.len(),
                        format!("names more than {MAX_NODES} sentinels"),
                    );
                }
                for (i, s) in sentinels.iter().take(MAX_NODES).enumerate() {
                    url(
                        &mut check,
                        &format!("deployment.sentinel.sentinels[{i}]"),
                        s,
                    );
                }
            }
        }
        if let Some(path) = &self.tls.ca_file {
            if self.tls.insecure_skip_verify {
                check.fail(
                    "tls.insecure_skip_verify",
                    true,
                    "contradicts tls.ca_file (a certificate is either checked or not)",
                );
            } else if tls_urls == 0 {
                check.fail(
                    "tls.ca_file",
                    format_args!("{path:?}"),
                    "is set, but no URL is rediss:// (TLS)",
                );
            }
        } else if self.tls.insecure_skip_verify && tls_urls == 0 {
            check.fail(
                "tls.insecure_skip_verify",
                true,
                "is set, but no URL is rediss:// (TLS)",
            );
        }
        if !(1..=MAX_KEY_SLOTS).contains(&self.key_slots) {
            check.fail(
                "key_slots",
                self.key_slots,
                format!("is not in 1..={MAX_KEY_SLOTS}"),
            );
        }
        if let Some(user) = &self.username
            && (user.is_empty() || user.len() > 256)
        {
            check.fail(
                "username",
                format_args!("{user:?}"),
                "must be 1 to 256 bytes",
            );
        }
        if let Some(password) = &self.password
            && password.len() > MAX_URL_LEN
        {
            // The value is never printed, not even its length's neighbourhood.
            check.fail(
                "password",
                "***",
                format!("is longer than {MAX_URL_LEN} bytes"),
            );
        }
        if self.name.is_empty() || self.name.contains(['{', '}']) {
            check.fail(
                "name",
                format_args!("{:?}", self.name),
                "must be non-empty and hold no `{` or `}` (it is the Redis hash tag)",
            );
        }
        // Rate, period and burst follow the local budget's rules, checked by
        // its own config (same field names, same messages).
        let mut rate = BudgetLayer::builder().rate(self.rate).per(self.per);
        if let Some(burst) = self.burst {
            rate = rate.burst(burst);
        }
        check.nested("", rate.config().validate());
        if let FallbackPolicy::Local { share } = self.fallback
            && !(share > 0.0 && share <= 1.0)
        {
            check.fail("fallback.local.share", share, "is not in (0, 1]");
        }
        check
            .nonzero_duration("redis_timeout", self.redis_timeout)
            .nonzero_duration("probe_interval", self.probe_interval)
            .nonzero_duration("lease_interval", self.lease_interval);
        if !(self.lease_share > 0.0 && self.lease_share <= 1.0) {
            check.fail("lease_share", self.lease_share, "is not in (0, 1]");
        }
        check.nested("keys", self.keys.validate());
        check.finish()
    }

    /// Every secret the config holds, as written and percent-decoded: the
    /// passwords of its URLs and the `password` field. Scrubbed from every
    /// text the budget keeps or prints.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut all = secrets(&self.url);
        let urls: &[String] = match &self.deployment {
            Deployment::Single => &[],
            Deployment::Cluster { nodes } => nodes,
            Deployment::Sentinel { sentinels, .. } => sentinels,
        };
        for url in urls.iter().take(MAX_NODES) {
            all.extend(secrets(url));
        }
        if let Some(p) = &self.password
            && !p.is_empty()
        {
            all.push(p.clone());
        }
        // Longest first, so a secret that contains another is replaced whole.
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
        all
    }

    /// The burst in force (`burst`, or its default).
    pub fn effective_burst(&self) -> u32 {
        self.burst.unwrap_or((self.rate / 10).max(1))
    }

    /// The largest lease: `lease_share × burst`, at least 1.
    pub fn max_lease(&self) -> u32 {
        let max = (f64::from(self.effective_burst()) * self.lease_share).floor();
        // Clamped into 1..=burst, so the cast cannot truncate.
        (max.clamp(1.0, f64::from(self.effective_burst().max(1)))) as u32
    }

    /// The Redis key of the whole budget (or the prefix of a keyed budget's
    /// keys): `seawall:{name}`.
    pub fn redis_key(&self) -> String {
        format!("seawall:{{{}}}", self.name)
    }
}

/// Most seed nodes or sentinels a deployment may name.
pub(crate) const MAX_NODES: usize = 64;

/// Checks one Redis URL (reported redacted); returns whether it asks for
/// TLS (`rediss://`).
fn check_url(check: &mut Check, field: &str, url: &str) -> bool {
    if url.len() > MAX_URL_LEN {
        check.fail(
            field,
            format_args!("{:?}", redact_url(url)),
            format!("is longer than {MAX_URL_LEN} bytes"),
        );
        return false;
    }
    match redis::IntoConnectionInfo::into_connection_info(url) {
        Ok(info) => match info.addr() {
            redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
                check.fail(
                    field,
                    format_args!("{:?}", redact_url(url)),
                    "skips the certificate check (`#insecure`): set tls.insecure_skip_verify \
                     instead (tests only)",
                );
                true
            }
            redis::ConnectionAddr::TcpTls { .. } => true,
            _ => false,
        },
        Err(e) => {
            // The redis crate's message names no part of the URL today;
            // scrubbed anyway, so a future one that does cannot leak.
            let reason = scrub(&e.to_string(), &secrets(url));
            check.fail(
                field,
                format_args!("{:?}", redact_url(url)),
                format!("is not a Redis URL ({reason})"),
            );
            false
        }
    }
}

/// Builds a [`RedisBudgetLayer`]; every method but [`clock`](Self::clock)
/// sets the [`RedisBudgetConfig`] field of the same name, so the builder
/// also makes the config of a keyed layer ([`into_config`](Self::into_config)).
///
/// ```
/// use std::time::Duration;
/// use seawall_budget_redis::{FallbackPolicy, RedisBudgetLayer};
///
/// let err = RedisBudgetLayer::builder().url("http://nope").rate(0).build().unwrap_err();
/// assert_eq!(err.errors()[0].field(), "url");
/// assert_eq!(err.errors()[1].field(), "rate");
///
/// let builder = RedisBudgetLayer::builder()
///     .url("redis://127.0.0.1:6379")
///     .name("payments-api")
///     .rate(1000)
///     .burst(50)
///     .fallback(FallbackPolicy::Local { share: 0.25 })
///     .redis_timeout(Duration::from_millis(20));
/// assert_eq!(builder.config().max_lease(), 5);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RedisBudgetBuilder {
    config: RedisBudgetConfig,
    clock: Clock,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, value: $ty) -> Self {
                self.config.$field = value;
                self
            }
        )*
    };
}

impl RedisBudgetBuilder {
    /// A builder with the defaults of [`RedisBudgetConfig`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the Redis server's URL (default `redis://127.0.0.1:6379`).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.config.url = url.into();
        self
    }

    /// Sets the budget's name: its Redis key and its label (default `"default"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Sets the most calls admitted at once (default `rate / 10`, at least 1).
    pub fn burst(mut self, burst: u32) -> Self {
        self.config.burst = Some(burst);
        self
    }

    setters! {
        /// Sets the calls per `per`, all replicas together (default 1000).
        rate: u32;
        /// Sets the span `rate` is counted over (default 1s).
        per: Duration;
        /// Sets what happens when the budget is spent (default `Reject`).
        mode: BudgetMode;
        /// Sets what happens while Redis is unreachable (default `Local { share: 1.0 }`).
        fallback: FallbackPolicy;
        /// Sets the limit on each Redis command (default 50ms).
        redis_timeout: Duration;
        /// Sets how often Redis is tried again while falling back (default 1s).
        probe_interval: Duration;
        /// Sets the time one lease should last at the local rate (default 50ms).
        lease_interval: Duration;
        /// Sets the largest lease as a share of `burst` (default 0.1).
        lease_share: f64;
        /// Sets a keyed layer's map bounds: most keys held (default
        /// 10 000) and how long a key must be unused before it may be
        /// forgotten (default 5 minutes).
        keys: KeyMapConfig;
        /// Sets which Redis: one server at `url` (the default), a Cluster,
        /// or a primary through Sentinel.
        deployment: Deployment;
        /// Sets how many hash tags (Cluster slots) a keyed layer's keys are
        /// spread over (default 1).
        key_slots: u16;
        /// Sets how a `rediss://` server's certificate is checked (default:
        /// against the system's roots).
        tls: TlsConfig;
    }

    /// Sets the ACL user for every Redis node (default: the URL's, if any).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.config.username = Some(username.into());
        self
    }

    /// Sets the password for every Redis node (default: the URL's, if any).
    /// It is never printed.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.password = Some(password.into());
        self
    }

    /// Reads the time from `clock` (default [`Clock::tokio`]); not part of
    /// the config. See [`RedisBudgetLayer`] for what a clock that does not
    /// follow tokio means for this layer.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The config built so far.
    pub fn config(&self) -> &RedisBudgetConfig {
        &self.config
    }

    /// The config built so far, not validated: for a
    /// [`RedisKeyedBudgetLayer`](crate::RedisKeyedBudgetLayer), or to keep.
    /// The clock is not part of it.
    pub fn into_config(self) -> RedisBudgetConfig {
        self.config
    }

    /// Validates and builds the layer. No connection is made here: the
    /// layer connects in the background, on the first tokio runtime it
    /// finds (now, or at the first call).
    pub fn build(self) -> Result<RedisBudgetLayer, ConfigError> {
        RedisBudgetLayer::make(&self.config, self.clock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let cfg = RedisBudgetConfig::default();
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.effective_burst(), 100);
        assert_eq!(cfg.max_lease(), 10);
        assert_eq!(cfg.redis_key(), "seawall:{default}");
    }

    #[test]
    fn every_bad_field_is_named() {
        let cfg = RedisBudgetBuilder::new()
            .url("localhost:6379")
            .name("a{b}")
            .rate(0)
            .burst(0)
            .fallback(FallbackPolicy::Local { share: 1.5 })
            .redis_timeout(Duration::ZERO)
            .lease_share(f64::NAN)
            .keys(KeyMapConfig::new().capacity(0).idle_ttl(Duration::ZERO))
            .into_config();
        let err = cfg.validate().unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field()).collect();
        assert_eq!(
            fields,
            [
                "url",
                "name",
                "rate",
                "burst",
                "fallback.local.share",
                "redis_timeout",
                "lease_share",
                "keys.capacity",
                "keys.idle_ttl"
            ]
        );
        let cfg = RedisBudgetBuilder::new()
            .rate(10)
            .per(Duration::from_nanos(5))
            .into_config();
        assert_eq!(cfg.validate().unwrap_err().field(), "rate");
    }

    #[test]
    fn deployments_tls_and_slots_are_validated_field_by_field() {
        let fields = |cfg: RedisBudgetConfig| -> Vec<String> {
            cfg.validate()
                .err()
                .map(|e| e.errors().iter().map(|e| e.field().to_owned()).collect())
                .unwrap_or_default()
        };
        let cluster = |nodes: &[&str]| Deployment::Cluster {
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            fields(
                RedisBudgetBuilder::new()
                    .deployment(cluster(&[]))
                    .into_config()
            ),
            ["deployment.cluster.nodes"]
        );
        assert_eq!(
            fields(
                RedisBudgetBuilder::new()
                    // The single `url` is not used, so not checked.
                    .url("nonsense")
                    .deployment(cluster(&["redis://a:1", "http://b:2"]))
                    .key_slots(0)
                    .into_config()
            ),
            ["deployment.cluster.nodes[1]", "key_slots"]
        );
        let sentinel = Deployment::Sentinel {
            master: String::new(),
            sentinels: vec!["nope".into()],
        };
        assert_eq!(
            fields(RedisBudgetBuilder::new().deployment(sentinel).into_config()),
            [
                "deployment.sentinel.master",
                "deployment.sentinel.sentinels[0]"
            ]
        );
        // TLS options need a TLS URL, and cannot contradict each other.
        assert_eq!(
            fields(
                RedisBudgetBuilder::new()
                    .tls(TlsConfig::new().ca_file("/ca.pem"))
                    .into_config()
            ),
            ["tls.ca_file"]
        );
        assert_eq!(
            fields(
                RedisBudgetBuilder::new()
                    .url("rediss://h:6380")
                    .tls(
                        TlsConfig::new()
                            .ca_file("/ca.pem")
                            .insecure_skip_verify(true)
                    )
                    .into_config()
            ),
            ["tls.insecure_skip_verify"]
        );
        // The check is off only when the config says so in plain words.
        assert_eq!(
            fields(
                RedisBudgetBuilder::new()
                    .url("rediss://h:6380/#insecure")
                    .into_config()
            ),
            ["url"]
        );
        let ok = RedisBudgetBuilder::new()
            .url("rediss://h:6380")
            .tls(TlsConfig::new().insecure_skip_verify(true))
            .key_slots(MAX_KEY_SLOTS)
            .into_config();
        assert!(ok.validate().is_ok());
        assert_eq!(
            fields(RedisBudgetBuilder::new().username("").into_config()),
            ["username"]
        );
    }

    #[test]
    fn no_secret_reaches_debug_or_a_config_error() {
        let cfg = RedisBudgetBuilder::new()
            .url("redis://app:url-pw@h:1")
            .password("field-pw")
            .deployment(Deployment::Cluster {
                nodes: vec![
                    "redis://app:node-pw@a:1".into(),
                    "ftp://app:bad-pw@b:2".into(),
                ],
            })
            .into_config();
        let printed = format!("{cfg:?}");
        let err = cfg.validate().unwrap_err();
        for text in [printed.clone(), err.to_string(), format!("{err:?}")] {
            for secret in ["url-pw", "field-pw", "node-pw", "bad-pw"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        assert!(printed.contains("password: Some(\"***\")"), "{printed}");
        assert!(printed.contains("redis://app:***@a:1"), "{printed}");
        let secrets = cfg.secrets();
        for secret in ["url-pw", "field-pw", "node-pw", "bad-pw"] {
            assert!(secrets.iter().any(|s| s == secret), "{secrets:?}");
        }
        let sentinel = Deployment::Sentinel {
            master: "m".into(),
            sentinels: vec!["redis://:s-pw@s:26379".into()],
        };
        assert!(!format!("{sentinel:?}").contains("s-pw"));
    }

    #[test]
    fn a_missing_or_bad_ca_file_fails_the_build() {
        let build = |path: &std::path::Path| {
            RedisBudgetBuilder::new()
                .url("rediss://127.0.0.1:1")
                .tls(TlsConfig::new().ca_file(path))
                .build()
                .unwrap_err()
        };
        let err = build(std::path::Path::new("/nonexistent/seawall-ca.pem"));
        assert_eq!(err.field(), "tls.ca_file");
        let dir = std::env::temp_dir().join(format!("seawall-ca-{}", std::process::id()));
        std::fs::write(&dir, b"not a certificate").unwrap();
        let err = build(&dir);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(err.field(), "tls.ca_file");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn lease_is_a_bounded_share_of_the_burst() {
        let cfg = RedisBudgetBuilder::new()
            .burst(3)
            .lease_share(0.1)
            .into_config();
        assert_eq!(cfg.max_lease(), 1);
        let cfg = RedisBudgetBuilder::new()
            .burst(1000)
            .lease_share(1.0)
            .into_config();
        assert_eq!(cfg.max_lease(), 1000);
    }
}
