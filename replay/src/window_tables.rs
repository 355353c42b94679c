//! Count tables over a sliding window of epochs, changed only at epoch boundaries: the state a dataflow
//! keeps as collections with an insert at epoch t and a retraction at t + W.
//!
//! A table maps a context (a key, a pair of keys, a region) to how often the context occurred and how
//! often each target followed it. Updates of the current epoch are staged; when the next epoch begins
//! they are applied and the epochs that left the window are retracted, so lookups during epoch t see
//! exactly the updates of epochs t-W..t-1. The targets of each changed context are then re-ranked (most
//! frequent first, ties by smaller target), keeping the `top_k` a lookup returns.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// The tables the predictor keeps; each is an independent namespace of contexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    /// Context: key X. Target: key Y among the same client's next requests.
    Successor = 0,
    /// Context: keys (W, X) of a client's last two requests. Target: Y as for `Successor`.
    SecondOrder = 1,
    /// Context: key X. Target: key Y requested by another client of the region soon after.
    CoAccess = 2,
    /// Context: region. Target: offset d (as u32 bits of an i32) with X + d among a client's next
    /// requests.
    Stride = 3,
}

const TABLES: usize = 4;

/// One update: `count` occurrences of `ctx`, or `count` more `ctx -> target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Update {
    table: u8,
    ctx: u64,
    /// `None`: occurrences of the context.
    target: Option<u32>,
    count: u32,
}

/// The window counts of one context.
#[derive(Clone, Debug, Default)]
struct Context {
    occurrences: u32,
    targets: FxHashMap<u32, u32>,
    /// The `top_k` targets by count as of the start of the epoch.
    top: Vec<(u32, u32)>,
    dirty: bool,
}

/// What a lookup returns: how often the context occurred in the window and its top targets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ranked<'a> {
    pub(crate) occurrences: u32,
    pub(crate) top: &'a [(u32, u32)],
}

/// The predictor's tables over a window of `window` epochs.
#[derive(Clone, Debug)]
pub(crate) struct WindowTables {
    tables: [FxHashMap<u64, Context>; TABLES],
    /// Committed epochs still in the window, oldest first, with their updates.
    window: VecDeque<(u64, Vec<Update>)>,
    staged: Vec<Update>,
    /// The epoch `staged` belongs to; `None` before the first update.
    epoch: Option<u64>,
    dirty: Vec<(u8, u64)>,
    window_epochs: u64,
    top_k: usize,
}

impl WindowTables {
    /// Empty tables keeping `window_epochs` epochs and `top_k` targets per context.
    pub(crate) fn new(window_epochs: u64, top_k: usize) -> Self {
        WindowTables {
            tables: Default::default(),
            window: VecDeque::new(),
            staged: Vec::new(),
            epoch: None,
            dirty: Vec::new(),
            window_epochs,
            top_k,
        }
    }

    /// Moves to `epoch` (not earlier than the current one): the staged updates join the window, epochs
    /// before `epoch - W` leave it, and changed contexts are re-ranked.
    pub(crate) fn advance(&mut self, epoch: u64) {
        match self.epoch {
            Some(current) if epoch <= current => return,
            Some(current) => {
                let staged = consolidate(std::mem::take(&mut self.staged));
                for update in &staged {
                    self.apply(*update, true);
                }
                self.window.push_back((current, staged));
            }
            None => {}
        }
        self.epoch = Some(epoch);
        let oldest_kept = epoch.saturating_sub(self.window_epochs);
        while self.window.front().is_some_and(|(e, _)| *e < oldest_kept) {
            if let Some((_, updates)) = self.window.pop_front() {
                for update in &updates {
                    self.apply(*update, false);
                }
            }
        }
        self.rerank();
    }

    /// Stages an occurrence of `ctx` in the current epoch.
    pub(crate) fn occurrence(&mut self, table: Table, ctx: u64) {
        self.staged.push(Update {
            table: table as u8,
            ctx,
            target: None,
            count: 1,
        });
    }

    /// Stages one `ctx -> target` in the current epoch.
    pub(crate) fn pair(&mut self, table: Table, ctx: u64, target: u32) {
        self.staged.push(Update {
            table: table as u8,
            ctx,
            target: Some(target),
            count: 1,
        });
    }

    /// The window counts of `ctx` as of the start of the current epoch.
    pub(crate) fn lookup(&self, table: Table, ctx: u64) -> Option<Ranked<'_>> {
        self.tables[table as usize].get(&ctx).map(|c| Ranked {
            occurrences: c.occurrences,
            top: &c.top,
        })
    }

    fn apply(&mut self, update: Update, insert: bool) {
        let table = &mut self.tables[usize::from(update.table)];
        let context = table.entry(update.ctx).or_default();
        match update.target {
            None => {
                if insert {
                    context.occurrences += update.count;
                } else {
                    context.occurrences = context.occurrences.saturating_sub(update.count);
                }
            }
            Some(target) => {
                if insert {
                    *context.targets.entry(target).or_insert(0) += update.count;
                } else if let Some(count) = context.targets.get_mut(&target) {
                    *count = count.saturating_sub(update.count);
                    if *count == 0 {
                        context.targets.remove(&target);
                    }
                }
                if !context.dirty {
                    context.dirty = true;
                    self.dirty.push((update.table, update.ctx));
                }
            }
        }
        if context.occurrences == 0 && context.targets.is_empty() && !context.dirty {
            table.remove(&update.ctx);
        }
    }

    fn rerank(&mut self) {
        let top_k = self.top_k;
        for (table, ctx) in self.dirty.drain(..) {
            let table = &mut self.tables[usize::from(table)];
            let Some(context) = table.get_mut(&ctx) else {
                continue;
            };
            context.dirty = false;
            context.top.clear();
            context
                .top
                .extend(context.targets.iter().map(|(&t, &n)| (t, n)));
            let order = |a: &(u32, u32), b: &(u32, u32)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
            // Popular contexts have thousands of targets: select the top k before sorting them.
            if context.top.len() > top_k && top_k > 0 {
                context.top.select_nth_unstable_by(top_k - 1, order);
            }
            context.top.truncate(top_k);
            context.top.sort_unstable_by(order);
            context.top.shrink_to_fit();
            if context.occurrences == 0 && context.targets.is_empty() {
                table.remove(&ctx);
            }
        }
    }
}

/// Sums equal updates, so an epoch is kept as its distinct changes (the way differential consolidates
/// a batch) and repetitive traces cost memory per distinct pair, not per request.
fn consolidate(mut updates: Vec<Update>) -> Vec<Update> {
    updates.sort_unstable();
    let mut out: Vec<Update> = Vec::with_capacity(updates.len() / 2);
    for update in updates {
        match out.last_mut() {
            Some(last)
                if (last.table, last.ctx, last.target)
                    == (update.table, update.ctx, update.target) =>
            {
                last.count += update.count;
            }
            _ => out.push(update),
        }
    }
    out.shrink_to_fit();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_show_from_the_next_epoch_and_leave_after_the_window() {
        let mut t = WindowTables::new(2, 2);
        t.advance(0);
        t.occurrence(Table::Successor, 7);
        t.pair(Table::Successor, 7, 8);
        assert!(
            t.lookup(Table::Successor, 7).is_none(),
            "staged, not visible"
        );
        t.advance(1);
        let r = t.lookup(Table::Successor, 7).unwrap();
        assert_eq!((r.occurrences, r.top), (1, &[(8, 1)][..]));
        t.advance(2);
        assert!(
            t.lookup(Table::Successor, 7).is_some(),
            "epochs 0..=1 are in the window"
        );
        t.advance(3);
        assert!(
            t.lookup(Table::Successor, 7).is_none(),
            "epoch 0 left the window"
        );
    }

    #[test]
    fn ranking_is_by_count_then_target() {
        let mut t = WindowTables::new(5, 2);
        t.advance(0);
        for target in [5, 3, 9, 9, 3] {
            t.pair(Table::CoAccess, 1, target);
        }
        t.advance(1);
        assert_eq!(t.lookup(Table::CoAccess, 1).unwrap().top, &[(3, 2), (9, 2)]);
        assert!(t.lookup(Table::Successor, 1).is_none());
    }
}
