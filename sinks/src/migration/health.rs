//! Noticing that a node stopped answering: a PING per probe, and a node counts as down after a
//! run of failed probes.

use std::collections::{BTreeMap, BTreeSet};

use super::{NodePool, NodeSet};

/// Probes every node and reports the ones that just went down (after `threshold` consecutive
/// failed PINGs) or came back.
pub struct HealthMonitor {
    pool: NodePool,
    names: Vec<String>,
    threshold: u32,
    failures: BTreeMap<String, u32>,
    down: BTreeSet<String>,
}

/// What one probe round found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthChange {
    /// Nodes that reached the failure threshold in this round.
    pub went_down: Vec<String>,
    /// Nodes counted as down that answered again.
    pub came_back: Vec<String>,
}

impl HealthMonitor {
    /// A monitor of every node in `nodes`; a node is down after `threshold` failed probes in a
    /// row (at least 1).
    pub fn new(nodes: &NodeSet, threshold: u32) -> Self {
        HealthMonitor {
            names: nodes.names().map(String::from).collect(),
            pool: NodePool::new(nodes.clone()),
            threshold: threshold.max(1),
            failures: BTreeMap::new(),
            down: BTreeSet::new(),
        }
    }

    /// PINGs every node once.
    pub fn probe(&mut self) -> HealthChange {
        let mut change = HealthChange::default();
        for name in &self.names {
            let ok = self.pool.get(name).and_then(|n| n.ping()).is_ok();
            if ok {
                self.failures.remove(name);
                if self.down.remove(name) {
                    change.came_back.push(name.clone());
                }
            } else {
                let count = self.failures.entry(name.clone()).or_default();
                *count += 1;
                if *count >= self.threshold && self.down.insert(name.clone()) {
                    change.went_down.push(name.clone());
                }
            }
        }
        change
    }

    /// Whether `node` counts as down.
    pub fn is_down(&self, node: &str) -> bool {
        self.down.contains(node)
    }

    /// The nodes counted as down.
    pub fn down(&self) -> impl Iterator<Item = &str> {
        self.down.iter().map(String::as_str)
    }
}
