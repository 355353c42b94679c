//! A bounded priority queue that sheds its lowest-priority entry when full.
//!
//! A `BTreeMap` keyed by rank gives both ends in `O(log n)`: the highest priority to copy next
//! and the lowest to shed, which a binary heap cannot do at once.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The place of an entry: higher priority first, then earlier arrival first. Kept by an entry
/// that is taken out and put back, so a retried order keeps its place among equal priorities.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rank {
    priority: f64,
    seq: u64,
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed on priority so the map's first entry is the one to take next and its last
        // entry the one to shed; `total_cmp` keeps the order total even for odd floats.
        other
            .priority
            .total_cmp(&self.priority)
            .then(self.seq.cmp(&other.seq))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Rank {}

/// What a push did.
#[derive(Debug, PartialEq)]
pub(crate) enum Pushed<T> {
    /// Stored; nothing dropped.
    Queued,
    /// Stored; the queue was full and this lowest-ranked entry was dropped to make room.
    Evicted(T),
    /// Not stored: the queue was full and the pushed entry ranked lowest; it is handed back.
    Rejected(T),
}

/// At most `capacity` entries, taken highest priority first (FIFO among equal priorities).
#[derive(Debug)]
pub(crate) struct PendingQueue<T> {
    entries: BTreeMap<Rank, T>,
    capacity: usize,
    next_seq: u64,
}

impl<T> PendingQueue<T> {
    /// An empty queue holding at most `capacity` entries (0 rejects everything).
    pub(crate) fn new(capacity: usize) -> Self {
        PendingQueue {
            entries: BTreeMap::new(),
            capacity,
            next_seq: 0,
        }
    }

    /// The number of entries waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a new entry behind all entries of equal priority, shedding the lowest-ranked entry
    /// (possibly this one) if the queue is full.
    pub(crate) fn push(&mut self, priority: f64, item: T) -> Pushed<T> {
        let rank = Rank {
            priority,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.restore(rank, item)
    }

    /// Puts back an entry taken with [`PendingQueue::pop`] at its old rank, shedding like
    /// [`PendingQueue::push`].
    pub(crate) fn restore(&mut self, rank: Rank, item: T) -> Pushed<T> {
        if self.entries.len() < self.capacity {
            self.entries.insert(rank, item);
            return Pushed::Queued;
        }
        match self.entries.last_key_value() {
            Some((lowest, _)) if rank < *lowest => {
                let evicted = self.entries.pop_last().map(|(_, old)| old);
                self.entries.insert(rank, item);
                match evicted {
                    Some(old) => Pushed::Evicted(old),
                    None => Pushed::Queued,
                }
            }
            _ => Pushed::Rejected(item),
        }
    }

    /// Takes the entry with the highest priority (the earliest among equals), with its rank.
    pub(crate) fn pop(&mut self) -> Option<(Rank, T)> {
        self.entries.pop_first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut PendingQueue<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| queue.pop().map(|(_, item)| item)).collect()
    }

    #[test]
    fn pops_highest_priority_first_and_fifo_among_equals() {
        let mut queue = PendingQueue::new(10);
        for (priority, name) in [(1.0, "a"), (5.0, "b"), (3.0, "c"), (5.0, "d"), (-2.0, "e")] {
            assert_eq!(queue.push(priority, name), Pushed::Queued);
        }
        assert_eq!(queue.len(), 5);
        assert_eq!(drain(&mut queue), ["b", "d", "c", "a", "e"]);
        assert!(queue.pop().is_none());
    }

    #[test]
    fn full_queue_sheds_the_lowest_priority() {
        let mut queue = PendingQueue::new(3);
        assert_eq!(queue.push(2.0, "two"), Pushed::Queued);
        assert_eq!(queue.push(9.0, "nine"), Pushed::Queued);
        assert_eq!(queue.push(5.0, "five"), Pushed::Queued);
        // Higher than the lowest: the lowest goes.
        assert_eq!(queue.push(7.0, "seven"), Pushed::Evicted("two"));
        // Lower than everything queued: the newcomer goes.
        assert_eq!(queue.push(1.0, "one"), Pushed::Rejected("one"));
        // A tie with the lowest goes against the newer entry.
        assert_eq!(
            queue.push(5.0, "five again"),
            Pushed::Rejected("five again")
        );
        assert_eq!(queue.len(), 3);
        assert_eq!(drain(&mut queue), ["nine", "seven", "five"]);
    }

    #[test]
    fn restored_entry_keeps_its_place_among_equals() {
        let mut queue = PendingQueue::new(4);
        queue.push(4.0, "first");
        queue.push(4.0, "second");
        let (rank, item) = queue.pop().expect("queue holds two entries");
        assert_eq!(item, "first");
        queue.push(4.0, "third");
        assert_eq!(queue.restore(rank, item), Pushed::Queued);
        assert_eq!(drain(&mut queue), ["first", "second", "third"]);
    }

    #[test]
    fn restore_into_a_full_queue_sheds_too() {
        let mut queue = PendingQueue::new(2);
        queue.push(3.0, "taken");
        let (rank, item) = queue.pop().expect("queue holds one entry");
        queue.push(8.0, "high");
        queue.push(1.0, "low");
        assert_eq!(queue.restore(rank, item), Pushed::Evicted("low"));
        let (rank, item) = queue.pop().expect("queue holds two entries");
        assert_eq!(item, "high");
        queue.push(9.0, "higher");
        // Now "taken" (3.0) is the lowest; a 2.0 entry put back loses against it.
        let low = Rank {
            priority: 2.0,
            seq: 99,
        };
        assert_eq!(queue.restore(low, "two"), Pushed::Rejected("two"));
        assert_eq!(queue.restore(rank, item), Pushed::Evicted("taken"));
        assert_eq!(drain(&mut queue), ["higher", "high"]);
    }

    #[test]
    fn zero_capacity_rejects_everything() {
        let mut queue = PendingQueue::new(0);
        assert_eq!(queue.push(1.0, "x"), Pushed::Rejected("x"));
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn odd_floats_do_not_break_the_order() {
        let mut queue = PendingQueue::new(4);
        queue.push(f64::INFINITY, "inf");
        queue.push(-0.0, "neg zero");
        queue.push(f64::NEG_INFINITY, "neg inf");
        queue.push(0.0, "zero");
        assert_eq!(drain(&mut queue), ["inf", "zero", "neg zero", "neg inf"]);
    }
}
