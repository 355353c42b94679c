//! Errors of the shard balancer.

use thiserror::Error;

use crate::MapError;

/// A balancer setting out of its range, or a map the balancer cannot work on.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum BalanceError {
    /// A setting of [`BalanceConfig`](crate::BalanceConfig) out of its range.
    #[error("invalid balance setting `{field}`: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A map change the balancer made was refused by the map.
    #[error(transparent)]
    Map(#[from] MapError),
}
