//! Range locks with fencing tokens: one switchover (or split, merge, failover) per shard at a
//! time.
//!
//! A lock is `SET P routing:lock:SHARD TOKEN NX PX ttl`, where the token comes from `INCR` of the
//! store's fencing counter, so every lock ever taken has a larger token than those before it
//! (Kleppmann, "How to do distributed locking", 2016). A lock can expire while its holder is
//! stalled; the holder then still believes it holds it. Two things make that safe: every
//! ownership change on a node carries the token and the node refuses tokens lower than the
//! highest it has seen for the shard, and the routing store's compare-and-set checks the lock
//! is still held with the token.

use std::time::{Duration, Instant};

use shardcast_shardmap::ShardId;

use super::{MigrationError, RoutingStore};

/// A held range lock; released when dropped (best effort) or by [`LockGuard::release`].
pub struct LockGuard<'a> {
    store: &'a RoutingStore,
    shard: ShardId,
    token: u64,
    ttl: Duration,
    released: bool,
}

impl<'a> LockGuard<'a> {
    /// Takes the lock of `shard` for `ttl`, waiting up to `wait` for another holder to let go.
    pub fn acquire(
        store: &'a RoutingStore,
        shard: ShardId,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Self, MigrationError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(1);
        loop {
            let token = store.next_fence()?;
            if store.try_lock(shard, token, ttl)? {
                return Ok(LockGuard {
                    store,
                    shard,
                    token,
                    ttl,
                    released: false,
                });
            }
            if start.elapsed() >= wait {
                return Err(MigrationError::LockBusy {
                    shard,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    /// The locked shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The fencing token.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Checks the lock is still held and extends it by its ttl; [`MigrationError::LockLost`] if
    /// it expired or was taken over.
    pub fn renew(&self) -> Result<(), MigrationError> {
        if self.store.extend_lock(self.shard, self.token, self.ttl)? {
            Ok(())
        } else {
            Err(MigrationError::LockLost {
                shard: self.shard,
                token: self.token,
            })
        }
    }

    /// Releases the lock (if it is still ours).
    pub fn release(mut self) -> Result<(), MigrationError> {
        self.released = true;
        self.store.release_lock(self.shard, self.token).map(drop)
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            if let Err(err) = self.store.release_lock(self.shard, self.token) {
                tracing::warn!(shard = self.shard, error = %err, "releasing a lock failed; it expires by itself");
            }
        }
    }
}

/// Locks several shards in ascending id order (so two callers locking overlapping sets cannot
/// deadlock), all or none.
pub fn lock_all<'a>(
    store: &'a RoutingStore,
    shards: &[ShardId],
    ttl: Duration,
    wait: Duration,
) -> Result<Vec<LockGuard<'a>>, MigrationError> {
    let mut sorted = shards.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .into_iter()
        .map(|shard| LockGuard::acquire(store, shard, ttl, wait))
        .collect()
}
