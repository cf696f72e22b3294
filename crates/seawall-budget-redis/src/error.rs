//! [`RedisBudgetError`]: why a Redis call of the budget failed.

use std::time::Duration;

/// Why a call to Redis failed. The budget never hands this to a caller as a
/// call's error (callers see the fallback policy's answer); it is reported in
/// tracing events, kept as [`RedisBudgetStats::last_error`](crate::RedisBudgetStats::last_error),
/// and returned by [`RedisBudgetLayer::ping`](crate::RedisBudgetLayer::ping).
///
/// Its text never holds the URL's password: an error from Redis whose text
/// does (a server echoing `HELLO 3 AUTH user password`) is rebuilt with the
/// same [`ErrorKind`](redis::ErrorKind) and the password replaced by `***`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBudgetError {
    /// The command did not answer within `redis_timeout`.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis, or the connection to it, returned an error; the source says which.
    #[error("redis call failed")]
    Redis(#[source] redis::RedisError),
    /// The budget script answered something it never returns.
    #[error("unexpected reply from the budget script: {0}")]
    Reply(String),
}

impl RedisBudgetError {
    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RedisBudgetError::Timeout(_))
    }

    /// Whether the server did not answer (a timeout, a connection refused
    /// or dropped, a Cluster slot range down), as opposed to answering
    /// with an error of the command's own.
    pub(crate) fn is_node_outage(&self) -> bool {
        match self {
            RedisBudgetError::Timeout(_) => true,
            RedisBudgetError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::ClusterConnectionNotFound
                            | redis::ErrorKind::Server(
                                redis::ServerErrorKind::ClusterDown
                                    | redis::ServerErrorKind::TryAgain
                                    | redis::ServerErrorKind::Moved
                                    | redis::ServerErrorKind::Ask
                            )
                    )
            }
            RedisBudgetError::Reply(_) => false,
        }
    }

    /// The Redis error, when there is one.
    pub fn redis_error(&self) -> Option<&redis::RedisError> {
        match self {
            RedisBudgetError::Redis(e) => Some(e),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for RedisBudgetError {
    fn from(e: redis::RedisError) -> Self {
        RedisBudgetError::Redis(e)
    }
}
