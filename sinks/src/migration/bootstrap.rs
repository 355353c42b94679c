//! Setting up a cluster: the initial map in the routing store and each shard's ownership on its
//! node.

use super::{MigrationError, NodeSet, OwnerState, RoutingStore};
use shardcast_shardmap::ShardMap;

/// Stores `initial` as the map unless one is stored already, then gives every shard of the
/// stored map read-write ownership on its node (with a fresh fencing token). Returns the stored
/// map. Running it again is harmless: ownership is set to what the map says.
pub fn bootstrap(
    store: &RoutingStore,
    nodes: &NodeSet,
    initial: &ShardMap,
) -> Result<ShardMap, MigrationError> {
    store.init(initial)?;
    let map = store.load()?;
    let token = store.next_fence()?;
    for shard in map.shards() {
        nodes.node(&shard.node)?.set_owner(
            &shard.id.to_string(),
            token,
            Some(OwnerState::rw(token, shard.version)),
        )?;
    }
    Ok(map)
}
