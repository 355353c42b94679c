//! What a balance replay measures: how even the shards and nodes were, and what it cost in moves.

use serde::{Deserialize, Serialize};

/// The median, 95th percentile and maximum of a per-window figure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` by nearest rank (the `p`-quantile is the `⌈p·n⌉`-th smallest value);
    /// all zeros when there are none. Values that are not numbers are left out.
    ///
    /// ```
    /// use shardcast_replay::Spread;
    /// let s = Spread::of((1..=100).map(f64::from).collect());
    /// assert_eq!((s.p50, s.p95, s.max), (50.0, 95.0, 100.0));
    /// ```
    pub fn of(mut values: Vec<f64>) -> Spread {
        values.retain(|v| !v.is_nan());
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let n = values.len();
            let k = ((p * n as f64).ceil() as usize).clamp(1, n);
            values[k - 1]
        };
        Spread {
            p50: rank(0.5),
            p95: rank(0.95),
            max: values[values.len() - 1],
        }
    }
}

/// The outcome of replaying a trace through one balancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BalanceReport {
    /// `static`, `reactive` or `predictive`.
    pub mode: String,
    /// Windows with load, over which the spreads are taken.
    pub windows: u64,
    /// Length of the trace in hours (its first to its last timestamp, at least one window). For
    /// order-only traces, whose timestamps count requests as milliseconds, an "hour" is 3.6 million
    /// requests.
    pub hours: f64,
    /// Max / mean shard load per window, over the shards of the map in force in that window.
    pub shard_balance: Spread,
    /// Max / mean node load per window, over the nodes.
    pub node_balance: Spread,
    /// Sum over windows of the share of the window's load whose node changed after it, per hour.
    pub load_moved_per_hour: f64,
    /// Sum over windows of the share of the window's distinct keys whose node changed after it, per
    /// hour.
    pub keys_moved_per_hour: f64,
    /// Load (accesses) whose node changed, in all.
    pub load_moved: f64,
    /// Key moves (a key moved twice counts twice), in all.
    pub keys_moved: u64,
    /// Moves of a range back to a node it left, and merges of a range split, within
    /// `4 × cooldown_windows` windows.
    pub move_backs: u64,
    /// Splits made.
    pub splits: u64,
    /// Merges made.
    pub merges: u64,
    /// Moves made (including those that bring cold neighbours together before a merge).
    pub moves: u64,
    /// Shadow copies planned.
    pub shadows: u64,
    /// Shadow copies cancelled.
    pub shadows_cancelled: u64,
    /// Moves that promoted a shadow copy planned in an earlier window.
    pub shadowed_moves: u64,
    /// Mean number of windows between a promoted shadow copy's plan and its move.
    pub shadow_lead_windows: f64,
    /// Shards at the end.
    pub final_shards: usize,
}
