//! [`SeawallMiddleware::from_config`]: the middleware from the `[client]`
//! part of the facade's `StackConfig` (feature `config`).

use seawall::config::ClientConfig;
use seawall_core::ConfigError;

use crate::SeawallMiddleware;

impl SeawallMiddleware {
    /// The middleware for the `[client]` part of a `seawall::config::StackConfig`:
    /// its `retry`, `breaker`, `timeout` and `budget` tables, keyed by
    /// authority, 5xx and 429 counted as failures, retries honouring the
    /// peer's hints (unless `honour_hints = false`). The error names every
    /// bad field by its full path (`client.breaker.per_key.open_duration`).
    ///
    /// The budget must be local: a `backend = "redis"` budget is refused
    /// (`client.budget.backend`). The tables built apart from the stack
    /// (`[client.hedge]`, `[client.chaos]`, `[client.deadline]`) are not
    /// read; the fallback is code, set with
    /// [`MiddlewareBuilder::fallback`](crate::MiddlewareBuilder::fallback).
    ///
    /// ```
    /// use seawall::config::StackConfig;
    /// use seawall_reqwest::SeawallMiddleware;
    ///
    /// let config = StackConfig::from_toml_str(r#"
    ///     [client.retry]
    ///     max_attempts = 3
    ///     [client.breaker.per_key]
    ///     policy = { kind = "consecutive_failures", threshold = 5 }
    ///     [client.timeout.per_key]
    ///     max = "2s"
    /// "#)?;
    /// let middleware = SeawallMiddleware::from_config(&config.client)?;
    /// assert!(middleware.retry().is_some() && middleware.budget().is_none());
    /// # Ok::<(), seawall_core::ConfigError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "config")))]
    pub fn from_config(config: &ClientConfig) -> Result<SeawallMiddleware, ConfigError> {
        config.validate()?;
        let mut builder = SeawallMiddleware::builder();
        if let Some(c) = &config.retry {
            builder = builder.retry(c.clone());
        }
        if let Some(c) = &config.breaker {
            builder = builder.breaker(c.clone());
        }
        if let Some(c) = &config.timeout {
            builder = builder.timeout(c.clone());
        }
        if let Some(part) = &config.budget {
            match part.as_local() {
                Some(c) => builder = builder.budget(c.clone()),
                None => {
                    return Err(ConfigError::new(
                        "client.budget.backend",
                        part.backend().as_str(),
                        "is not supported by seawall-reqwest (use a local budget)",
                    ));
                }
            }
        }
        builder.build().map_err(|e| e.prefixed("client"))
    }
}

#[cfg(test)]
mod tests {
    use seawall::config::StackConfig;

    use crate::SeawallMiddleware;

    #[test]
    fn every_part_is_built_and_bad_fields_are_named_by_their_path() {
        let config = StackConfig::from_toml_str(
            "[client.retry]\n[client.breaker]\n[client.timeout]\n[client.budget]\nrate = 10\n",
        )
        .unwrap();
        let built = SeawallMiddleware::from_config(&config.client).unwrap();
        assert!(built.retry().is_some() && built.breaker().is_some());
        assert!(built.timeout().is_some() && built.budget().is_some());
        assert!(built.fallback().is_none());

        let mut config = StackConfig::default();
        let mut retry = seawall_retry::RetryConfig::new();
        retry.max_attempts = 0;
        config.client.retry = Some(retry);
        let err = SeawallMiddleware::from_config(&config.client).unwrap_err();
        assert_eq!(err.errors()[0].field(), "client.retry.max_attempts");
    }
}
