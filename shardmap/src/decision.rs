//! What the balancer decides, with the numbers behind each decision.

use serde::{Deserialize, Serialize};

use crate::{HashRange, MapChange, ShardId};

/// One action of the balancer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BalanceAction {
    /// A change applied to the map (its version advances).
    Change(MapChange),
    /// Start copying `range` of `shard` from `from` to `to` in the background: the trend says that
    /// range will split off and move there within `horizon + shadow_lead` windows. The map is not
    /// changed; the move that follows promotes the copy.
    Shadow {
        /// The shard the range belongs to now.
        shard: ShardId,
        /// The ring positions that will move.
        range: HashRange,
        /// Where the data is.
        from: String,
        /// Where the copy goes.
        to: String,
    },
    /// Drop the shadow copy of `shard` on `to`: the trend went away, the plan changed, or a node of
    /// the plan is down.
    CancelShadow {
        /// The shard the shadow was planned for.
        shard: ShardId,
        /// The node holding the copy.
        to: String,
    },
}

/// A decision and why: the routing changelog row of one balancer action.
///
/// Loads are per window in the unit observed (accesses, bytes). The imbalance of a set of loads is
/// `max / mean` (1 is perfect balance; 0 when the total is 0); a predictive balancer computes it on
/// the forecast of the next window, a reactive one on the window just observed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BalanceDecision {
    /// The window after which the decision was made (it takes effect from the next one).
    pub window: u64,
    /// What was decided.
    pub action: BalanceAction,
    /// The map version after the action (unchanged by shadow plans).
    pub version: u64,
    /// Why, in words.
    pub reason: String,
    /// The shard's load in the window (for a merge: both shards').
    pub shard_load: f64,
    /// The highest forecast of that load within the horizon (reactive: the lowest of the sustained
    /// windows, the level it held; static: 0).
    pub forecast_peak: f64,
    /// Load of the window on the keys whose node changes.
    pub load_moved: f64,
    /// Keys seen in the window whose node changes.
    pub keys_moved: u64,
    /// Max / mean shard load before the action.
    pub imbalance_before: f64,
    /// Max / mean shard load after it.
    pub imbalance_after: f64,
    /// Max / mean node load (over the live nodes) before the action.
    pub node_imbalance_before: f64,
    /// Max / mean node load after it.
    pub node_imbalance_after: f64,
}

impl BalanceDecision {
    /// The map change, if the action is one.
    pub fn change(&self) -> Option<&MapChange> {
        match &self.action {
            BalanceAction::Change(change) => Some(change),
            BalanceAction::Shadow { .. } | BalanceAction::CancelShadow { .. } => None,
        }
    }
}

/// `max / mean` of `loads` (0 for no loads or a zero total).
///
/// ```
/// use shardcast_shardmap::imbalance;
/// assert_eq!(imbalance([3.0, 1.0, 2.0]), 1.5);
/// assert_eq!(imbalance([0.0, 0.0]), 0.0);
/// ```
pub fn imbalance(loads: impl IntoIterator<Item = f64>) -> f64 {
    let (mut max, mut sum, mut n) = (0.0f64, 0.0, 0usize);
    for load in loads {
        max = max.max(load);
        sum += load;
        n += 1;
    }
    if n == 0 || sum <= 0.0 {
        0.0
    } else {
        max * n as f64 / sum
    }
}
