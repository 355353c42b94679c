//! How a node resolves two writes of the same key: the conflict policy, chosen per partition
//! (key prefix).

/// What a node does with a write older (by writer timestamp) than the one it holds.
///
/// Seed 002 resolves conflicts by last-writer-wins on timestamps, "tuned per partition": some
/// data wants to know that its write lost instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConflictPolicy {
    /// Keep the write with the larger timestamp (ties: the larger value, so every node picks the
    /// same one); an older write is acknowledged as superseded.
    #[default]
    LastWriterWins,
    /// Refuse an older write with an error, so its writer learns that someone else wrote later.
    RejectOlder,
}

impl ConflictPolicy {
    /// The policy's name as the write script takes it.
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            ConflictPolicy::LastWriterWins => "lww",
            ConflictPolicy::RejectOlder => "reject",
        }
    }
}

/// A conflict policy per partition: the policy of the longest key prefix that matches, else the
/// default.
///
/// ```
/// use shardcast_sinks::migration::{ConflictPolicies, ConflictPolicy};
/// let policies = ConflictPolicies::new(ConflictPolicy::LastWriterWins)
///     .with_prefix("ledger/", ConflictPolicy::RejectOlder);
/// assert_eq!(policies.policy_for("ledger/7"), ConflictPolicy::RejectOlder);
/// assert_eq!(policies.policy_for("cart/7"), ConflictPolicy::LastWriterWins);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConflictPolicies {
    default: ConflictPolicy,
    by_prefix: Vec<(String, ConflictPolicy)>,
}

impl ConflictPolicies {
    /// `default` for every key.
    pub fn new(default: ConflictPolicy) -> Self {
        ConflictPolicies {
            default,
            by_prefix: Vec::new(),
        }
    }

    /// Keys starting with `prefix` use `policy`.
    pub fn with_prefix(mut self, prefix: &str, policy: ConflictPolicy) -> Self {
        self.by_prefix.push((prefix.to_string(), policy));
        self
    }

    /// The policy for `key`.
    pub fn policy_for(&self, key: &str) -> ConflictPolicy {
        self.by_prefix
            .iter()
            .filter(|(prefix, _)| key.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, policy)| *policy)
            .unwrap_or(self.default)
    }
}
