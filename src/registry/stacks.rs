//! The stacks a `StackConfig` builds, in the registry: each part under its
//! config path, and a whole new config applied to them.

use std::fmt;
use std::sync::Arc;

use seawall_breaker::KeyedBreakerLayer;
use seawall_core::{ConfigError, ReloadError};
use seawall_retry::RetryLayer;
use seawall_timeout::KeyedAdaptiveTimeoutLayer;

use super::layers::{Inspect, LayerConfig, Register};
use super::{Registry, RegistryError, check_id};
use crate::config::{
    BudgetPart, BudgetPartLayer, ClientConfig, ClientStack, ServerConfig, ServerStack, StackConfig,
};

/// What [`Registry::apply`] did, layer by layer.
///
/// Each layer's reload is all or nothing; across layers, the ones that took
/// the new config run on it and the ones in [`refused`](Self::refused) run on
/// their old one.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ApplyReport {
    /// Ids of the layers reloaded (parts whose config did not change are
    /// reloaded too: a reload with the same config changes nothing).
    pub reloaded: Vec<String>,
    /// Ids of the parts that kept their old config, and why: the layer
    /// refused it, or the part was added or removed (a running stack
    /// cannot gain or lose a layer: that takes a restart).
    pub refused: Vec<(String, ReloadError)>,
    /// Parts of the config that were not applied, and why: no stack is
    /// registered under their prefix, or they are built apart from the
    /// stacks (`hedge`, `deadline`, `chaos`, `routes`: register and reload
    /// those by hand).
    pub skipped: Vec<(String, &'static str)>,
}

impl ApplyReport {
    /// Whether every part of the config took effect: none refused, none
    /// skipped.
    pub fn is_complete(&self) -> bool {
        self.refused.is_empty() && self.skipped.is_empty()
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reloaded {}", self.reloaded.len())?;
        if !self.refused.is_empty() {
            f.write_str("; refused ")?;
            for (i, (id, err)) in self.refused.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{id} ({err})")?;
            }
        }
        if !self.skipped.is_empty() {
            f.write_str("; skipped ")?;
            for (i, (id, why)) in self.skipped.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{id} ({why})")?;
            }
        }
        Ok(())
    }
}

fn budget_handle(part: &BudgetPartLayer) -> Arc<dyn Inspect> {
    match part {
        BudgetPartLayer::Local(layer) => layer.inspect(),
        #[cfg(feature = "redis")]
        BudgetPartLayer::Redis(layer) => layer.inspect(),
    }
}

fn budget_config(part: &BudgetPart) -> Result<LayerConfig, ReloadError> {
    match part {
        BudgetPart::Local(config) => Ok(LayerConfig::Budget(config.clone())),
        #[cfg(feature = "redis")]
        BudgetPart::Redis(config) => Ok(LayerConfig::RedisBudget(Box::new(config.clone()))),
    }
}

impl Registry {
    // Registers every part or none.
    fn register_parts(
        &self,
        prefix: &str,
        parts: Vec<(&'static str, Arc<dyn Inspect>)>,
    ) -> Result<(), RegistryError> {
        let parts: Vec<(String, Arc<dyn Inspect>)> = parts
            .into_iter()
            .map(|(part, handle)| (format!("{prefix}.{part}"), handle))
            .collect();
        for (id, _) in &parts {
            check_id(id)?;
        }
        let mut layers = self.write();
        if let Some((id, _)) = parts.iter().find(|(id, _)| layers.contains_key(id)) {
            return Err(RegistryError::Duplicate(id.clone()));
        }
        layers.extend(parts);
        Ok(())
    }

    /// Registers each part of a client stack built from a
    /// [`ClientConfig`] under `{prefix}.retry`, `{prefix}.breaker`,
    /// `{prefix}.timeout` and `{prefix}.budget`: all of them or, on an
    /// error, none. [`apply`](Self::apply) reloads the stack registered
    /// under the prefix `client`.
    ///
    /// ```
    /// use seawall::config::StackConfig;
    /// use seawall::registry::Registry;
    ///
    /// let config = StackConfig::from_toml_str(r#"
    ///     [client.breaker.per_key]
    ///     open_duration = "10s"
    ///     [client.retry]
    ///     max_attempts = 3
    /// "#)?;
    /// let client = config.client.build(|req: &(&'static str, u32)| req.0)?;
    ///
    /// let registry = Registry::new();
    /// registry.register_client("client", &client)?;
    /// assert_eq!(registry.ids(), ["client.breaker", "client.retry"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_client<KF, K, C, R, H>(
        &self,
        prefix: &str,
        stack: &ClientStack<KF, K, C, R, H>,
    ) -> Result<(), RegistryError>
    where
        RetryLayer<C, R, H>: Register,
        KeyedBreakerLayer<KF, K, C>: Register,
        KeyedAdaptiveTimeoutLayer<KF, K>: Register,
    {
        let mut parts = Vec::new();
        if let Some(l) = stack.retry() {
            parts.push(("retry", l.inspect()));
        }
        if let Some(l) = stack.breaker() {
            parts.push(("breaker", l.inspect()));
        }
        if let Some(l) = stack.timeout() {
            parts.push(("timeout", l.inspect()));
        }
        if let Some(l) = stack.budget() {
            parts.push(("budget", budget_handle(l)));
        }
        self.register_parts(prefix, parts)
    }

    /// Registers each part of a server stack built from a
    /// [`ServerConfig`] under `{prefix}.shed`, `{prefix}.budget` and
    /// `{prefix}.timeout`: all of them or none. [`apply`](Self::apply)
    /// reloads the stack registered under the prefix `server`.
    pub fn register_server<P, C>(
        &self,
        prefix: &str,
        stack: &ServerStack<P, C>,
    ) -> Result<(), RegistryError>
    where
        seawall_shed::ShedLayer<P, C>: Register,
    {
        let mut parts = Vec::new();
        if let Some(l) = stack.shed() {
            parts.push(("shed", l.inspect()));
        }
        if let Some(l) = stack.budget() {
            parts.push(("budget", budget_handle(l)));
        }
        if let Some(l) = stack.timeout() {
            parts.push(("timeout", l.inspect()));
        }
        self.register_parts(prefix, parts)
    }

    /// Applies a whole new [`StackConfig`] to the stacks registered under
    /// `client` and `server` (see [`apply_client`](Self::apply_client)):
    /// the live reload of a config file.
    ///
    /// # Errors
    ///
    /// The config's [`validate`](StackConfig::validate) error, before any
    /// layer is touched. Layers that refuse their part are in the report.
    pub fn apply(&self, config: &StackConfig) -> Result<ApplyReport, ConfigError> {
        config.validate()?;
        let _one = self.reloading();
        let mut report = ApplyReport::default();
        self.apply_client_parts("client", &config.client, &mut report);
        self.apply_server_parts("server", &config.server, &mut report);
        Ok(report)
    }

    /// Applies a [`ClientConfig`] to the client stack registered under
    /// `prefix`, part by part: a part present in both is reloaded (keeping
    /// its state); a part present in only one of them is refused with
    /// [`ReloadError::NotInPlace`] (a running stack cannot gain or lose a
    /// layer). A prefix with nothing registered is left alone.
    ///
    /// The parts built apart from the stack (`hedge`, `deadline`, `chaos`)
    /// are not part of it: register and reload those by hand.
    ///
    /// # Errors
    ///
    /// The config's `validate` error, before any layer is touched.
    pub fn apply_client(
        &self,
        prefix: &str,
        config: &ClientConfig,
    ) -> Result<ApplyReport, ConfigError> {
        config.validate()?;
        let _one = self.reloading();
        let mut report = ApplyReport::default();
        self.apply_client_parts(prefix, config, &mut report);
        Ok(report)
    }

    /// Applies a [`ServerConfig`] to the server stack registered under
    /// `prefix`; see [`apply_client`](Self::apply_client).
    ///
    /// # Errors
    ///
    /// The config's `validate` error, before any layer is touched.
    pub fn apply_server(
        &self,
        prefix: &str,
        config: &ServerConfig,
    ) -> Result<ApplyReport, ConfigError> {
        config.validate()?;
        let _one = self.reloading();
        let mut report = ApplyReport::default();
        self.apply_server_parts(prefix, config, &mut report);
        Ok(report)
    }

    fn apply_client_parts(&self, prefix: &str, config: &ClientConfig, report: &mut ApplyReport) {
        let parts = [
            (
                "retry",
                config
                    .retry
                    .as_ref()
                    .map(|c| Ok(LayerConfig::Retry(c.clone()))),
            ),
            (
                "breaker",
                config
                    .breaker
                    .as_ref()
                    .map(|c| Ok(LayerConfig::KeyedBreaker(c.clone()))),
            ),
            (
                "timeout",
                config
                    .timeout
                    .as_ref()
                    .map(|c| Ok(LayerConfig::KeyedTimeout(c.clone()))),
            ),
            ("budget", config.budget.as_ref().map(budget_config)),
        ];
        self.apply_parts(prefix, parts, report);
        let apart = [
            #[cfg(feature = "hedge")]
            ("hedge", config.hedge.is_some()),
            #[cfg(feature = "deadline")]
            ("deadline", config.deadline.is_some()),
            #[cfg(feature = "chaos")]
            ("chaos", config.chaos.is_some()),
        ];
        skip_apart(prefix, &apart, report);
    }

    fn apply_server_parts(&self, prefix: &str, config: &ServerConfig, report: &mut ApplyReport) {
        let parts = [
            (
                "shed",
                config
                    .shed
                    .as_ref()
                    .map(|c| Ok(LayerConfig::Shed(c.clone()))),
            ),
            ("budget", config.budget.as_ref().map(budget_config)),
            (
                "timeout",
                config
                    .timeout
                    .as_ref()
                    .map(|c| Ok(LayerConfig::Timeout(c.clone()))),
            ),
        ];
        self.apply_parts(prefix, parts, report);
        let apart = [
            ("routes", !config.routes.is_empty()),
            #[cfg(feature = "deadline")]
            ("deadline", config.deadline.is_some()),
            #[cfg(feature = "chaos")]
            ("chaos", config.chaos.is_some()),
        ];
        skip_apart(prefix, &apart, report);
    }

    fn apply_parts<const N: usize>(
        &self,
        prefix: &str,
        parts: [(&'static str, Option<Result<LayerConfig, ReloadError>>); N],
        report: &mut ApplyReport,
    ) {
        let handles: Vec<_> = {
            let layers = self.read();
            let registered = parts
                .iter()
                .any(|(part, _)| layers.contains_key(&format!("{prefix}.{part}")));
            if !registered {
                for (part, config) in &parts {
                    if config.is_some() {
                        report.skipped.push((
                            format!("{prefix}.{part}"),
                            "no stack is registered under this prefix",
                        ));
                    }
                }
                return;
            }
            parts
                .into_iter()
                .map(|(part, config)| {
                    let id = format!("{prefix}.{part}");
                    let handle = layers.get(&id).cloned();
                    (id, handle, config)
                })
                .collect()
        };
        for (id, handle, config) in handles {
            let outcome = match (handle, config) {
                (None, None) => continue,
                (Some(layer), Some(Ok(config))) => layer.reload(&config),
                (Some(_), Some(Err(err))) => Err(err),
                (Some(_), None) => Err(ReloadError::not_in_place(
                    id.clone(),
                    "the new config leaves this part out; a running stack cannot lose a layer (restart to remove it)",
                )),
                (None, Some(_)) => Err(ReloadError::not_in_place(
                    id.clone(),
                    "the new config adds this part; a running stack cannot gain a layer (restart to add it)",
                )),
            };
            match outcome {
                Ok(()) => report.reloaded.push(id),
                Err(err) => report.refused.push((id, err)),
            }
        }
    }
}

fn skip_apart(prefix: &str, parts: &[(&'static str, bool)], report: &mut ApplyReport) {
    for (part, present) in parts {
        if *present {
            report.skipped.push((
                format!("{prefix}.{part}"),
                "built apart from the stack: register and reload it by hand",
            ));
        }
    }
}
