//! The data nodes by name: where each one is, and a pool of connections to them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{MigrationError, Node};

/// The data nodes (name -> Redis URL) and the key prefix their data lives under. Cheap to clone:
/// each thread opens its own [`Node`]s from it.
///
/// ```
/// use shardcast_sinks::migration::NodeSet;
/// let nodes = NodeSet::new("s:", [("a", "redis://127.0.0.1:7001/"), ("b", "redis://127.0.0.1:7002/")]);
/// assert_eq!(nodes.names().collect::<Vec<_>>(), ["a", "b"]);
/// assert!(nodes.node("c").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct NodeSet {
    urls: BTreeMap<String, String>,
    prefix: String,
    timeout: Duration,
}

impl NodeSet {
    /// Nodes `(name, url)` with data under `prefix`; calls time out after 2 s.
    pub fn new<N: Into<String>, U: Into<String>>(
        prefix: &str,
        nodes: impl IntoIterator<Item = (N, U)>,
    ) -> Self {
        NodeSet {
            urls: nodes
                .into_iter()
                .map(|(n, u)| (n.into(), u.into()))
                .collect(),
            prefix: prefix.to_string(),
            timeout: Duration::from_secs(2),
        }
    }

    /// The same nodes with another call timeout (connect, read and write).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Node names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.urls.keys().map(String::as_str)
    }

    /// A handle on node `name` (not connected yet).
    pub fn node(&self, name: &str) -> Result<Node, MigrationError> {
        self.node_in(name, &self.prefix)
    }

    /// A handle on node `name` with its data under another prefix (a partition's own
    /// namespace, see [`PhasedMove`](super::PhasedMove)).
    pub fn node_in(&self, name: &str, prefix: &str) -> Result<Node, MigrationError> {
        let url = self
            .urls
            .get(name)
            .ok_or_else(|| MigrationError::UnknownNode(name.to_string()))?;
        Node::open(name, url, prefix, self.timeout)
    }
}

/// Open nodes of a [`NodeSet`], one connection each, kept between calls.
pub struct NodePool {
    set: NodeSet,
    open: HashMap<String, Node>,
}

impl NodePool {
    /// An empty pool over `set`.
    pub fn new(set: NodeSet) -> Self {
        NodePool {
            set,
            open: HashMap::new(),
        }
    }

    /// The node set.
    pub fn set(&self) -> &NodeSet {
        &self.set
    }

    /// Node `name`, opened on first use.
    pub fn get(&mut self, name: &str) -> Result<&mut Node, MigrationError> {
        if !self.open.contains_key(name) {
            let node = self.set.node(name)?;
            self.open.insert(name.to_string(), node);
        }
        Ok(self.open.get_mut(name).expect("inserted above"))
    }
}
