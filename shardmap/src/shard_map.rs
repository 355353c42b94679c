//! The versioned shard map: contiguous hash ranges covering the ring, each placed on a node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ring_position, MapError, RING};

/// A half-open range `lo..hi` of ring positions (`hi` at most [`RING`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HashRange {
    /// First position in the range.
    pub lo: u64,
    /// One past the last position.
    pub hi: u64,
}

impl HashRange {
    /// Whether `position` falls in the range.
    pub fn contains(&self, position: u32) -> bool {
        let p = u64::from(position);
        self.lo <= p && p < self.hi
    }

    /// Number of positions in the range.
    pub fn width(&self) -> u64 {
        self.hi - self.lo
    }
}

/// Identifier of a shard. A shard keeps its id while it moves; a split or merge retires the old ids and
/// creates new ones, so a client holding an old id learns that its map is stale.
pub type ShardId = u64;

/// One shard: a hash range, the node that owns it and the nodes that hold replicas.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// Its id.
    pub id: ShardId,
    /// The ring positions it holds.
    pub range: HashRange,
    /// The node that serves reads and writes.
    pub node: String,
    /// Nodes holding copies, in failover order.
    pub replicas: Vec<String>,
    /// The map version at which the shard took its current range and node.
    pub version: u64,
}

/// One change of the map. Applying it advances the version by one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MapChange {
    /// `shard` becomes `left` (`lo..at`) and `right` (`at..hi`), both on `shard`'s node.
    Split {
        /// The shard split.
        shard: ShardId,
        /// The split point.
        at: u64,
        /// Id of the lower half.
        left: ShardId,
        /// Id of the upper half.
        right: ShardId,
    },
    /// Adjacent shards `left` and `right` become `into`, on `left`'s node (the right one's data must
    /// have been moved there first).
    Merge {
        /// The lower shard.
        left: ShardId,
        /// The upper shard.
        right: ShardId,
        /// Id of the merged shard.
        into: ShardId,
    },
    /// `shard` is now served by `to` (its data was copied there; see the migration executor).
    Move {
        /// The shard.
        shard: ShardId,
        /// The node it leaves.
        from: String,
        /// The node it goes to.
        to: String,
    },
    /// `shard`'s node stopped answering: `to`, one of its replicas, serves it now.
    Failover {
        /// The shard.
        shard: ShardId,
        /// The node that failed.
        from: String,
        /// The replica promoted.
        to: String,
    },
    /// `shard`'s replica set is now `replicas`.
    Replicas {
        /// The shard.
        shard: ShardId,
        /// Its replicas, in failover order.
        replicas: Vec<String>,
    },
}

/// The shard map: shards covering the ring `0..RING` without gaps or overlaps, and a version that
/// every change advances by one.
///
/// Keys map to shards by consistent hashing over hash ranges: a key's ring position
/// ([`ring_position`]) falls in exactly one shard's range. A split or merge changes only the shards
/// involved, so only keys in their ranges change shard (as in Slicer and CockroachDB, whose ranges are
/// contiguous slices of the key space; here of the hashed key space).
///
/// ```
/// use shardcast_shardmap::{MapChange, ShardMap};
/// let mut map = ShardMap::uniform(4, &["a".to_string(), "b".to_string()], 1).unwrap();
/// assert_eq!(map.version(), 0);
/// let shard = map.lookup("some-key").clone();
/// let at = (shard.range.lo + shard.range.hi) / 2;
/// let change = map.split_change(shard.id, at).unwrap();
/// map.apply(&change).unwrap();
/// assert_eq!(map.version(), 1);
/// assert_eq!(map.shards().count(), 5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    version: u64,
    next_id: ShardId,
    /// Shards by the start of their range.
    shards: BTreeMap<u64, Shard>,
}

impl ShardMap {
    /// `count` equal ranges placed round-robin over `nodes`, each with `replicas` replicas on the next
    /// nodes round the list (fewer when there are not enough nodes).
    pub fn uniform(count: u64, nodes: &[String], replicas: usize) -> Result<Self, MapError> {
        if count == 0 || nodes.is_empty() {
            return Err(MapError::Empty);
        }
        let count = count.min(RING);
        let mut shards = BTreeMap::new();
        for i in 0..count {
            let range = HashRange {
                lo: RING * i / count,
                hi: RING * (i + 1) / count,
            };
            let n = nodes.len();
            let node = nodes[i as usize % n].clone();
            let replicas = (1..=replicas.min(n - 1))
                .map(|r| nodes[(i as usize + r) % n].clone())
                .collect();
            shards.insert(
                range.lo,
                Shard {
                    id: i,
                    range,
                    node,
                    replicas,
                    version: 0,
                },
            );
        }
        Ok(ShardMap {
            version: 0,
            next_id: count,
            shards,
        })
    }

    /// The map's version: the number of changes applied.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The shards in ring order.
    pub fn shards(&self) -> impl Iterator<Item = &Shard> {
        self.shards.values()
    }

    /// The shard holding `key`.
    pub fn lookup(&self, key: &str) -> &Shard {
        self.lookup_position(ring_position(key))
    }

    /// The shard holding ring position `position`.
    pub fn lookup_position(&self, position: u32) -> &Shard {
        self.shards
            .range(..=u64::from(position))
            .next_back()
            .map(|(_, shard)| shard)
            .expect("the shards cover the ring from 0")
    }

    /// The shard with id `id`.
    pub fn get(&self, id: ShardId) -> Option<&Shard> {
        self.shards.values().find(|shard| shard.id == id)
    }

    /// The shard right after `id` on the ring (none for the last one).
    pub fn next_of(&self, id: ShardId) -> Option<&Shard> {
        let shard = self.get(id)?;
        self.shards.get(&shard.range.hi)
    }

    /// The change that splits `shard` at `at`, with fresh ids for the halves.
    pub fn split_change(&self, shard: ShardId, at: u64) -> Result<MapChange, MapError> {
        let s = self.get(shard).ok_or(MapError::UnknownShard(shard))?;
        if at <= s.range.lo || at >= s.range.hi {
            return Err(MapError::SplitOutside {
                shard,
                at,
                lo: s.range.lo,
                hi: s.range.hi,
            });
        }
        Ok(MapChange::Split {
            shard,
            at,
            left: self.next_id,
            right: self.next_id + 1,
        })
    }

    /// The change that merges `left` with the shard after it, with a fresh id.
    pub fn merge_change(&self, left: ShardId) -> Result<MapChange, MapError> {
        self.get(left).ok_or(MapError::UnknownShard(left))?;
        let right = self
            .next_of(left)
            .ok_or(MapError::NotAdjacent { left, right: left })?;
        Ok(MapChange::Merge {
            left,
            right: right.id,
            into: self.next_id,
        })
    }

    /// Applies `change`, advancing the version; on error the map is unchanged.
    pub fn apply(&mut self, change: &MapChange) -> Result<u64, MapError> {
        let version = self.version + 1;
        match change {
            MapChange::Split {
                shard,
                at,
                left,
                right,
            } => {
                let s = self
                    .get(*shard)
                    .ok_or(MapError::UnknownShard(*shard))?
                    .clone();
                if *at <= s.range.lo || *at >= s.range.hi {
                    return Err(MapError::SplitOutside {
                        shard: *shard,
                        at: *at,
                        lo: s.range.lo,
                        hi: s.range.hi,
                    });
                }
                let lower = Shard {
                    id: *left,
                    range: HashRange {
                        lo: s.range.lo,
                        hi: *at,
                    },
                    version,
                    ..s.clone()
                };
                let upper = Shard {
                    id: *right,
                    range: HashRange {
                        lo: *at,
                        hi: s.range.hi,
                    },
                    version,
                    ..s
                };
                self.shards.insert(lower.range.lo, lower);
                self.shards.insert(upper.range.lo, upper);
                self.next_id = self.next_id.max(left + 1).max(right + 1);
            }
            MapChange::Merge { left, right, into } => {
                let l = self
                    .get(*left)
                    .ok_or(MapError::UnknownShard(*left))?
                    .clone();
                let r = self
                    .get(*right)
                    .ok_or(MapError::UnknownShard(*right))?
                    .clone();
                if l.range.hi != r.range.lo {
                    return Err(MapError::NotAdjacent {
                        left: *left,
                        right: *right,
                    });
                }
                self.shards.remove(&r.range.lo);
                let merged = Shard {
                    id: *into,
                    range: HashRange {
                        lo: l.range.lo,
                        hi: r.range.hi,
                    },
                    version,
                    ..l
                };
                self.shards.insert(merged.range.lo, merged);
                self.next_id = self.next_id.max(into + 1);
            }
            MapChange::Move { shard, to, .. } | MapChange::Failover { shard, to, .. } => {
                let s = self
                    .shards
                    .values_mut()
                    .find(|s| s.id == *shard)
                    .ok_or(MapError::UnknownShard(*shard))?;
                let from = std::mem::replace(&mut s.node, to.clone());
                // The new owner is no replica of itself; the node left (failed, or drained after a
                // move) is no replica either until a `Replicas` change says so.
                s.replicas.retain(|r| r != to && *r != from);
                s.version = version;
            }
            MapChange::Replicas { shard, replicas } => {
                let s = self
                    .shards
                    .values_mut()
                    .find(|s| s.id == *shard)
                    .ok_or(MapError::UnknownShard(*shard))?;
                s.replicas = replicas.clone();
                s.version = version;
            }
        }
        self.version = version;
        Ok(version)
    }

    /// Applies `change` only if the map is still at `expected` (compare-and-set for concurrent
    /// writers of one stored map).
    pub fn apply_at(&mut self, expected: u64, change: &MapChange) -> Result<u64, MapError> {
        if self.version != expected {
            return Err(MapError::StaleVersion {
                expected,
                actual: self.version,
            });
        }
        self.apply(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    fn assert_covers_ring(map: &ShardMap) {
        let mut expected = 0;
        for shard in map.shards() {
            assert_eq!(shard.range.lo, expected, "gap or overlap at {expected}");
            assert!(shard.range.hi > shard.range.lo);
            expected = shard.range.hi;
        }
        assert_eq!(expected, RING);
    }

    #[test]
    fn uniform_map_covers_the_ring_and_places_replicas_elsewhere() {
        let map = ShardMap::uniform(7, &nodes(3), 2).unwrap();
        assert_covers_ring(&map);
        for shard in map.shards() {
            assert_eq!(shard.replicas.len(), 2);
            assert!(!shard.replicas.contains(&shard.node));
        }
        assert_eq!(ShardMap::uniform(0, &nodes(1), 0), Err(MapError::Empty));
    }

    #[test]
    fn split_merge_and_move_keep_the_ring_covered_and_count_versions() {
        let mut map = ShardMap::uniform(4, &nodes(2), 1).unwrap();
        let key = "hot-key";
        let before = map.lookup(key).clone();
        let at = before.range.lo + before.range.width() / 3;
        let split = map.split_change(before.id, at).unwrap();
        map.apply(&split).unwrap();
        assert_covers_ring(&map);
        assert_eq!(map.shards().count(), 5);
        assert!(
            map.get(before.id).is_none(),
            "the split shard retires its id"
        );
        let after = map.lookup(key);
        assert_eq!(after.node, before.node);
        assert_ne!(after.id, before.id);

        let MapChange::Split { left, right, .. } = split else {
            unreachable!()
        };
        map.apply(&MapChange::Move {
            shard: right,
            from: before.node.clone(),
            to: "n9".into(),
        })
        .unwrap();
        assert_eq!(map.get(right).unwrap().node, "n9");
        let merge = map.merge_change(left).unwrap();
        map.apply(&merge).unwrap();
        assert_covers_ring(&map);
        assert_eq!(map.shards().count(), 4);
        assert_eq!(map.version(), 3);
        assert_eq!(map.lookup(key).range, before.range);
    }

    #[test]
    fn bad_changes_are_refused_and_leave_the_map_alone() {
        let mut map = ShardMap::uniform(2, &nodes(2), 0).unwrap();
        let copy = map.clone();
        let first = map.shards().next().unwrap().clone();
        assert!(matches!(
            map.split_change(first.id, first.range.lo),
            Err(MapError::SplitOutside { .. })
        ));
        assert_eq!(
            map.apply(&MapChange::Merge {
                left: 1,
                right: 0,
                into: 5
            }),
            Err(MapError::NotAdjacent { left: 1, right: 0 })
        );
        assert_eq!(
            map.apply_at(
                3,
                &MapChange::Replicas {
                    shard: 0,
                    replicas: vec![]
                }
            ),
            Err(MapError::StaleVersion {
                expected: 3,
                actual: 0
            })
        );
        assert_eq!(map, copy);
    }

    #[test]
    fn the_map_round_trips_through_json() {
        let map = ShardMap::uniform(3, &nodes(2), 1).unwrap();
        let text = serde_json::to_string(&map).unwrap();
        let back: ShardMap = serde_json::from_str(&text).unwrap();
        assert_eq!(back, map);
    }
}
