//! Tests of the migration module against real Redis servers: a coordination server and a few
//! data nodes per test, each on its own free port.

mod client;
mod failover;
mod fencing;
mod phased;
mod reshape;
mod subrange;
mod switchover;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use shardcast_shardmap::ShardMap;

use super::{bootstrap, NodeSet, RoutingClient, RoutingStore};
use crate::testing::RedisServer;

/// A coordination Redis, data nodes `n0..`, a bootstrapped map and its store.
pub(super) struct Cluster {
    pub(super) coordination: RedisServer,
    pub(super) servers: Vec<Option<RedisServer>>,
    pub(super) nodes: NodeSet,
    pub(super) store: Arc<RoutingStore>,
}

impl Cluster {
    /// `nodes` data nodes, a uniform map of `shards` shards with `replicas` replicas each.
    pub(super) fn start(nodes: usize, shards: u64, replicas: usize) -> Cluster {
        let coordination = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
        let servers: Vec<RedisServer> = (0..nodes)
            .map(|_| RedisServer::start().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let names: Vec<String> = (0..nodes).map(|i| format!("n{i}")).collect();
        let set = NodeSet::new(
            "t:",
            names.iter().cloned().zip(servers.iter().map(|s| s.url())),
        )
        .with_timeout(Duration::from_millis(500));
        let store =
            Arc::new(RoutingStore::open(&coordination.url(), "t:").expect("the URL parses"));
        let map = ShardMap::uniform(shards, &names, replicas).expect("a valid map");
        bootstrap(&store, &set, &map).expect("bootstrap");
        Cluster {
            coordination,
            servers: servers.into_iter().map(Some).collect(),
            nodes: set,
            store,
        }
    }

    /// A routing client over the store.
    pub(super) fn client(&self) -> RoutingClient<Arc<RoutingStore>> {
        RoutingClient::new(Arc::clone(&self.store), self.nodes.clone()).expect("client")
    }

    /// A raw connection to node `i`.
    pub(super) fn raw(&self, i: usize) -> redis::Connection {
        self.servers[i]
            .as_ref()
            .expect("node is running")
            .connection()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Kills node `i`.
    pub(super) fn kill(&mut self, i: usize) {
        if let Some(server) = self.servers[i].take() {
            server.stop();
        }
    }
}

/// `count` keys `k0000..` written through `client` with value `v{i}-{round}`.
pub(super) fn write_keys(
    client: &mut RoutingClient<Arc<RoutingStore>>,
    count: usize,
    round: u32,
) -> Vec<String> {
    (0..count)
        .map(|i| {
            let key = format!("k{i:04}");
            client
                .put(&key, format!("v{i}-{round}").as_bytes())
                .unwrap_or_else(|e| panic!("writing {key}: {e}"));
            key
        })
        .collect()
}

/// Reads every key through a fresh client and checks it holds round `round`'s value.
pub(super) fn assert_round(cluster: &Cluster, keys: &[String], round: u32) {
    let mut client = cluster.client();
    for (i, key) in keys.iter().enumerate() {
        let value = client
            .get(key)
            .unwrap_or_else(|e| panic!("reading {key}: {e}"))
            .unwrap_or_else(|| panic!("{key} is missing"));
        assert_eq!(
            String::from_utf8_lossy(&value.data),
            format!("v{i}-{round}"),
            "{key}"
        );
    }
}
