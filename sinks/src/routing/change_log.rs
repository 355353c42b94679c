//! The recent changes of the shard map, so that a client can catch up without fetching the map.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use shardcast_shardmap::MapChange;

/// A map change and the map version it produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionedChange {
    /// The version the map reached by applying `change`.
    pub version: u64,
    /// The change.
    pub change: MapChange,
}

/// The answer to "what changed after version `since`?".
///
/// When `complete`, applying `changes` in order to a map at version `since` gives the server's map
/// at `version`. Otherwise the server no longer holds every change after `since` (its log is
/// bounded, or its map was replaced, or `since` is ahead of it) and the client must fetch the whole
/// map (`GET /v1/map`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesSince {
    /// The version the client has.
    pub since: u64,
    /// The server's map version.
    pub version: u64,
    /// Whether `changes` lead from `since` to `version`.
    pub complete: bool,
    /// The changes after `since`, oldest first (empty when not `complete`).
    pub changes: Vec<VersionedChange>,
}

/// The last `capacity` changes; holds every change with a version above `start`.
#[derive(Clone, Debug)]
pub(crate) struct ChangeLog {
    entries: VecDeque<VersionedChange>,
    capacity: usize,
    start: u64,
}

impl ChangeLog {
    /// An empty log for a map at version `start`.
    pub(crate) fn new(capacity: usize, start: u64) -> Self {
        ChangeLog {
            entries: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            start,
        }
    }

    /// Forgets every change: the map was replaced by one at `version`.
    pub(crate) fn reset(&mut self, version: u64) {
        self.entries.clear();
        self.start = version;
    }

    /// Appends the change that produced the next version, dropping the oldest beyond capacity.
    pub(crate) fn push(&mut self, entry: VersionedChange) {
        if self.capacity == 0 {
            self.start = entry.version;
            return;
        }
        if self.entries.len() == self.capacity {
            if let Some(oldest) = self.entries.pop_front() {
                self.start = oldest.version;
            }
        }
        self.entries.push_back(entry);
    }

    /// The change logged for `version`, if still held.
    pub(crate) fn get(&self, version: u64) -> Option<&MapChange> {
        let first = self.entries.front()?.version;
        let index = usize::try_from(version.checked_sub(first)?).ok()?;
        self.entries.get(index).map(|e| &e.change)
    }

    /// The changes after `since` for a map now at `current`.
    pub(crate) fn since(&self, since: u64, current: u64) -> ChangesSince {
        let complete = self.start <= since && since <= current;
        let changes = if complete {
            self.entries
                .iter()
                .filter(|e| e.version > since)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        ChangesSince {
            since,
            version: current,
            complete,
            changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version: u64) -> VersionedChange {
        VersionedChange {
            version,
            change: MapChange::Replicas {
                shard: version,
                replicas: vec![],
            },
        }
    }

    #[test]
    fn bounded_log_reports_what_it_no_longer_holds() {
        let mut log = ChangeLog::new(2, 0);
        for v in 1..=3 {
            log.push(change(v));
        }
        // Version 1 was dropped: a client at 0 cannot catch up, one at 1 can.
        assert!(!log.since(0, 3).complete);
        let from_one = log.since(1, 3);
        assert!(from_one.complete);
        let versions: Vec<u64> = from_one.changes.iter().map(|c| c.version).collect();
        assert_eq!(versions, vec![2, 3]);
        assert_eq!(log.since(3, 3).changes, vec![]);
        assert!(log.since(3, 3).complete);
        // A client ahead of the server has another history.
        assert!(!log.since(4, 3).complete);
        assert_eq!(log.get(3), Some(&change(3).change));
        assert_eq!(log.get(1), None);
    }

    #[test]
    fn zero_capacity_keeps_nothing_but_stays_correct() {
        let mut log = ChangeLog::new(0, 5);
        log.push(change(6));
        assert!(!log.since(5, 6).complete);
        assert!(log.since(6, 6).complete);
    }
}
