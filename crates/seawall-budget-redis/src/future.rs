//! The response future of [`RedisBudget`](crate::RedisBudget) and
//! [`RedisKeyedBudget`](crate::RedisKeyedBudget): the local budget's own,
//! since a refusal looks the same whichever backend made it.

pub use seawall_budget::ResponseFuture;
