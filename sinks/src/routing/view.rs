//! What the routing API answers about a customer: its partition and the score breakdown behind it.

use serde::{Deserialize, Serialize};

/// One candidate partition's score for a customer, split into the terms of seed 001's formula
/// (`PartitionPolicy` in shardcast-operators):
///
/// `total = static_part + affinity_part + load_part`, with
/// `static_part = static_weight·[partition is home]`, `affinity_part = affinity_weight·affinity[partition]`
/// and `load_part = −load_weight·load_share(partition)` (a penalty, so zero or negative).
///
/// ```
/// use shardcast_sinks::routing::PartitionScore;
/// let s = PartitionScore::from_parts("eu-west", 0.4, 0.3, -0.05);
/// assert!((s.total - 0.65).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionScore {
    /// The candidate partition.
    pub partition: String,
    /// The bonus for being the customer's static (home) partition.
    pub static_part: f64,
    /// The contribution of the customer's affinity for the partition.
    pub affinity_part: f64,
    /// The load penalty, signed: `−load_weight·load_share`.
    pub load_part: f64,
    /// The score: the sum of the three parts.
    pub total: f64,
}

impl PartitionScore {
    /// A score whose `total` is the sum of the parts.
    pub fn from_parts(
        partition: impl Into<String>,
        static_part: f64,
        affinity_part: f64,
        load_part: f64,
    ) -> Self {
        PartitionScore {
            partition: partition.into(),
            static_part,
            affinity_part,
            load_part,
            total: static_part + affinity_part + load_part,
        }
    }

    /// Whether `total` equals the sum of the parts up to rounding, and every number is finite.
    pub fn is_consistent(&self) -> bool {
        let parts = [
            self.static_part,
            self.affinity_part,
            self.load_part,
            self.total,
        ];
        if !parts.iter().all(|x| x.is_finite()) {
            return false;
        }
        let sum = self.static_part + self.affinity_part + self.load_part;
        // A few ulps of the largest magnitude involved: the sum may be computed in another order.
        let scale = parts.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        (self.total - sum).abs() <= 8.0 * f64::EPSILON * scale
    }
}

/// Where a customer's data is in seed 001's phased migration to a new partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStep {
    /// The shadow partition is being filled; reads and writes go to the old partition.
    Shadow,
    /// New writes go to both partitions; reads still go to the old one.
    DualWrite,
    /// Writes go to both; a growing share of reads (`read_share`) goes to the new partition.
    ShiftReads,
    /// The new partition serves everything.
    Switched,
}

/// A migration of a customer between partitions in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionPhase {
    /// The partition the customer leaves.
    pub from: String,
    /// The partition the customer goes to.
    pub to: String,
    /// The step the migration is at.
    pub step: PhaseStep,
    /// Share of reads routed to `to`, in `[0, 1]`.
    pub read_share: f64,
}

/// The routing API's answer for a customer: the partition it should use and why.
///
/// `partition` is the decision in force, which with hysteresis need not be the candidate with the
/// highest total right now ([`PartitionView::best`] is that one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionView {
    /// The customer.
    pub customer: String,
    /// The partition the customer is assigned to.
    pub partition: String,
    /// The customer's static (home) partition.
    pub home: String,
    /// The epoch since which the customer has been on `partition`.
    pub since: u64,
    /// The score of every candidate partition.
    pub scores: Vec<PartitionScore>,
    /// The migration in progress, if any.
    pub phase: Option<PartitionPhase>,
}

impl PartitionView {
    /// The candidate with the highest total (the first one among equals).
    pub fn best(&self) -> Option<&PartitionScore> {
        self.scores.iter().fold(None, |best, s| match best {
            Some(b) if b.total >= s.total => Some(b),
            _ => Some(s),
        })
    }

    /// The score of `partition`, if it is a candidate.
    pub fn score_of(&self, partition: &str) -> Option<&PartitionScore> {
        self.scores.iter().find(|s| s.partition == partition)
    }

    /// Why the view cannot be served, if it cannot: an empty customer, a score whose total is not
    /// the sum of its parts, a non-finite number (JSON has none) or a read share outside `[0, 1]`.
    pub fn problem(&self) -> Option<String> {
        if self.customer.is_empty() {
            return Some("empty customer id".into());
        }
        if let Some(s) = self.scores.iter().find(|s| !s.is_consistent()) {
            return Some(format!(
                "score of {:?} is not finite or its total {} is not the sum of its parts",
                s.partition, s.total
            ));
        }
        if let Some(phase) = &self.phase {
            if !(0.0..=1.0).contains(&phase.read_share) {
                return Some(format!("read share {} is outside [0, 1]", phase.read_share));
            }
        }
        None
    }
}
