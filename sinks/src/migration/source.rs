//! Where a client gets the current shard map from.

use std::sync::Arc;

use shardcast_shardmap::ShardMap;

use super::MigrationError;

/// A source of the current shard map: the routing store, or (elsewhere) the routing HTTP API.
///
/// Clients call it at start and whenever a node tells them their map is stale, so it needs to
/// be neither fast nor pushed.
pub trait MapSource {
    /// The current map.
    fn current(&self) -> Result<ShardMap, MigrationError>;

    /// The current map's version; by default read from the map itself.
    fn version(&self) -> Result<u64, MigrationError> {
        self.current().map(|map| map.version())
    }
}

impl<T: MapSource + ?Sized> MapSource for Arc<T> {
    fn current(&self) -> Result<ShardMap, MigrationError> {
        (**self).current()
    }

    fn version(&self) -> Result<u64, MigrationError> {
        (**self).version()
    }
}

impl<T: MapSource + ?Sized> MapSource for &T {
    fn current(&self) -> Result<ShardMap, MigrationError> {
        (**self).current()
    }

    fn version(&self) -> Result<u64, MigrationError> {
        (**self).version()
    }
}
