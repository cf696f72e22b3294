//! Where the budget's Redis is, made into the `redis` crate's clients: one
//! server, a Cluster, or a primary found through Sentinel, each with its TLS
//! and ACL settings applied.
//!
//! Made once per layer from a validated config (the CA file is read here, so
//! a missing one is a `ConfigError` at `build()`, not an outage later). No
//! connection is made: the background task connects ([`crate::script::Conn`]).
//! `Debug` prints no secret: the clients are not printed at all.

use std::io::Read;
use std::sync::Arc;

use redis::cluster::ClusterClient;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult, TlsCertificates,
    TlsMode,
};
use seawall_core::ConfigError;

use crate::config::{Deployment, MAX_CA_FILE_LEN, RedisBudgetConfig};
use crate::redact::{redact_url, scrub};

/// The clients of one layer; cheap to clone.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// One server, reached through a reconnecting `ConnectionManager`.
    Single(Arc<Client>),
    /// A Redis Cluster.
    Cluster(Arc<ClusterClient>),
    /// A primary found through Sentinel; a `SentinelClient` is made from
    /// these whenever the primary must be found again.
    Sentinel(Arc<SentinelParams>),
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Endpoint::Single(_) => "Single",
            Endpoint::Cluster(_) => "Cluster",
            Endpoint::Sentinel(_) => "Sentinel",
        })
    }
}

/// What a `SentinelClient` is built from.
pub(crate) struct SentinelParams {
    sentinels: Vec<ConnectionAddr>,
    master: String,
    sentinel_user: Option<String>,
    sentinel_password: Option<String>,
    /// TLS to the sentinels and to the primary (the sentinels' scheme).
    tls: Option<TlsMode>,
    user: Option<String>,
    password: Option<String>,
    certs: Option<TlsCertificates>,
}

impl SentinelParams {
    /// A fresh client (it caches no connection we rely on).
    pub(crate) fn client(&self) -> RedisResult<SentinelClient> {
        let mut b = SentinelClientBuilder::new(
            self.sentinels.iter().cloned(),
            &self.master,
            SentinelServerType::Master,
        )?;
        if let Some(mode) = self.tls {
            b = b
                .set_client_to_sentinel_tls_mode(mode)
                .set_client_to_redis_tls_mode(mode);
        }
        if let Some(certs) = &self.certs {
            b = b
                .set_client_to_sentinel_certificates(certs.clone())
                .set_client_to_redis_certificates(certs.clone());
        }
        if let Some(u) = &self.sentinel_user {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &self.sentinel_password {
            b = b.set_client_to_sentinel_password(p);
        }
        if let Some(u) = &self.user {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.password {
            b = b.set_client_to_redis_password(p);
        }
        b.build()
    }
}

/// Reads the CA file: at most [`MAX_CA_FILE_LEN`] bytes.
fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read ({e})"))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_LEN + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot be read ({e})"))?;
    if pem.len() as u64 > MAX_CA_FILE_LEN {
        return Err(format!("is larger than {MAX_CA_FILE_LEN} bytes"));
    }
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(pem)
}

/// `info` with the config's user and password, and with the certificate
/// check off when the config says so (tests only).
fn apply(info: ConnectionInfo, config: &RedisBudgetConfig) -> ConnectionInfo {
    let mut settings = info.redis_settings().clone();
    if let Some(u) = &config.username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &config.password {
        settings = settings.set_password(p);
    }
    let info = info.set_redis_settings(settings);
    match info.addr().clone() {
        ConnectionAddr::TcpTls { host, port, .. } if config.tls.insecure_skip_verify => info
            .set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params: None,
            }),
        _ => info,
    }
}

impl Endpoint {
    /// The clients for a validated `config`.
    pub(crate) fn new(config: &RedisBudgetConfig) -> Result<Endpoint, ConfigError> {
        let secrets = config.secrets();
        let ca = match &config.tls.ca_file {
            Some(path) => Some(read_ca(path).map_err(|reason| {
                ConfigError::new("tls.ca_file", format_args!("{path:?}"), reason)
            })?),
            None => None,
        };
        let certs = ca.map(|pem| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
        let bad = |field: &str, url: &str, e: redis::RedisError| {
            ConfigError::new(
                field,
                format_args!("{:?}", redact_url(url)),
                scrub(&e.to_string(), &secrets),
            )
        };
        let timeout = config.redis_timeout;
        match &config.deployment {
            Deployment::Single => {
                let info = config
                    .url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| bad("url", &config.url, e))?;
                let info = apply(info, config);
                let client = match certs {
                    Some(certs) => Client::build_with_tls(info, certs),
                    None => Client::open(info),
                }
                .map_err(|e| bad("url", &config.url, e))?;
                Ok(Endpoint::Single(Arc::new(client)))
            }
            Deployment::Cluster { nodes } => {
                let mut infos = Vec::with_capacity(nodes.len());
                let mut tls = false;
                for (i, node) in nodes.iter().enumerate() {
                    let info = node
                        .as_str()
                        .into_connection_info()
                        .map_err(|e| bad(&format!("deployment.cluster.nodes[{i}]"), node, e))?;
                    tls |= matches!(info.addr(), ConnectionAddr::TcpTls { .. });
                    infos.push(apply(info, config));
                }
                let mut b = ClusterClient::builder(infos)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // Redirections and a promoted replica are followed by the
                    // client; the budget's own timeout bounds the whole call.
                    .retries(3)
                    .min_retry_wait(5)
                    .max_retry_wait(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
                if let Some(u) = &config.username {
                    b = b.username(u);
                }
                if let Some(p) = &config.password {
                    b = b.password(p);
                }
                if tls {
                    b = b.tls(if config.tls.insecure_skip_verify {
                        TlsMode::Insecure
                    } else {
                        TlsMode::Secure
                    });
                }
                if let Some(certs) = certs {
                    b = b.certs(certs);
                }
                let client = b
                    .build()
                    .map_err(|e| bad("deployment.cluster.nodes", &nodes[0], e))?;
                Ok(Endpoint::Cluster(Arc::new(client)))
            }
            Deployment::Sentinel { master, sentinels } => {
                let mut addrs = Vec::with_capacity(sentinels.len());
                let (mut s_user, mut s_pass, mut tls) = (None, None, None);
                for (i, s) in sentinels.iter().enumerate() {
                    let info = s
                        .as_str()
                        .into_connection_info()
                        .map_err(|e| bad(&format!("deployment.sentinel.sentinels[{i}]"), s, e))?;
                    if let ConnectionAddr::TcpTls { .. } = info.addr() {
                        tls = Some(if config.tls.insecure_skip_verify {
                            TlsMode::Insecure
                        } else {
                            TlsMode::Secure
                        });
                    }
                    if s_user.is_none() {
                        s_user = info.redis_settings().username().map(str::to_owned);
                    }
                    if s_pass.is_none() {
                        s_pass = info.redis_settings().password().map(str::to_owned);
                    }
                    addrs.push(info.addr().clone());
                }
                let params = SentinelParams {
                    sentinels: addrs,
                    master: master.clone(),
                    sentinel_user: s_user,
                    sentinel_password: s_pass,
                    tls,
                    user: config.username.clone(),
                    password: config.password.clone(),
                    certs,
                };
                // Checked now, so a bad combination is a config error.
                params
                    .client()
                    .map_err(|e| bad("deployment.sentinel.sentinels", &sentinels[0], e))?;
                Ok(Endpoint::Sentinel(Arc::new(params)))
            }
        }
    }
}
