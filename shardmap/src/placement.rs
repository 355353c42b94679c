//! Which node a shard should move to: the one with the least predicted load, if moving there lowers
//! the imbalance.

use std::collections::BTreeMap;

use crate::imbalance;

/// Load per live node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeLoads {
    loads: BTreeMap<String, f64>,
}

impl NodeLoads {
    /// Every node of `live` with load 0, then each `(node, load)` added (nodes not live are left
    /// out: nothing can be placed on them).
    pub fn new<'a>(
        live: impl IntoIterator<Item = &'a String>,
        loads: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Self {
        let mut map: BTreeMap<String, f64> = live.into_iter().map(|n| (n.clone(), 0.0)).collect();
        for (node, load) in loads {
            if let Some(l) = map.get_mut(node) {
                *l += load;
            }
        }
        NodeLoads { loads: map }
    }

    /// The load of `node` (0 if it is not live).
    pub fn load(&self, node: &str) -> f64 {
        self.loads.get(node).copied().unwrap_or(0.0)
    }

    /// Max / mean load over the live nodes.
    pub fn imbalance(&self) -> f64 {
        imbalance(self.loads.values().copied())
    }

    /// Moves `load` from `from` to `to`.
    pub fn shift(&mut self, from: &str, to: &str, load: f64) {
        if let Some(l) = self.loads.get_mut(from) {
            *l -= load;
        }
        if let Some(l) = self.loads.get_mut(to) {
            *l += load;
        }
    }

    /// Adds `load` to `node` (if it is live).
    pub fn add(&mut self, node: &str, load: f64) {
        if let Some(l) = self.loads.get_mut(node) {
            *l += load;
        }
    }

    /// The least loaded live node other than `except` (ties: the first by name).
    pub fn coldest_except(&self, except: &str) -> Option<(&str, f64)> {
        self.loads
            .iter()
            .filter(|(n, _)| n.as_str() != except)
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(n, l)| (n.as_str(), *l))
    }

    /// Of `candidates` (a name and the load that would leave `from`), the one to move to the least
    /// loaded other node, and that node: the move must lower the busier of the two nodes,
    /// `max(from − x, to + x) < from`, and among such moves the one leaving that maximum lowest wins
    /// (ties: the heavier candidate, which relieves the source most).
    pub fn best_move<T: Copy>(&self, from: &str, candidates: &[(T, f64)]) -> Option<(T, String)> {
        let source = self.load(from);
        let (to, dest) = self.coldest_except(from)?;
        candidates
            .iter()
            .filter(|(_, x)| *x > 0.0)
            .map(|&(c, x)| (c, x, (source - x).max(dest + x)))
            .filter(|(_, _, after)| *after < source)
            .min_by(|a, b| a.2.total_cmp(&b.2).then(b.1.total_cmp(&a.1)))
            .map(|(c, _, _)| (c, to.to_string()))
    }

    /// Whether moving `x` from `from` to `to` lowers the busier of the two.
    pub fn improves(&self, from: &str, to: &str, x: f64) -> bool {
        self.loads.contains_key(to)
            && to != from
            && x > 0.0
            && (self.load(from) - x).max(self.load(to) + x) < self.load(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_go_to_the_coldest_node_only_when_they_help() {
        let nodes = ["a", "b", "c"].map(String::from);
        let loads = NodeLoads::new(&nodes, [("a", 10.0), ("b", 4.0), ("c", 6.0)]);
        // Moving 3 leaves max(7, 7) = 7; moving 5 leaves max(5, 9) = 9: 3 wins.
        assert_eq!(
            loads.best_move("a", &[(1, 5.0), (2, 3.0)]),
            Some((2, "b".to_string()))
        );
        // Moving 7 would leave b at 11 > 10: no move.
        assert_eq!(loads.best_move("a", &[(1, 7.0)]), None);
        assert!((loads.imbalance() - 1.5).abs() < 1e-12);
    }
}
