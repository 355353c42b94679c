//! The collector: turns worker reports into final epochs, writes each epoch's changes to the sinks as
//! one version, keeps the current tables, and publishes them as one SQL snapshot.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use shardcast_dataflows::{Decision, WorkerReport};
use shardcast_queries::SnapshotStore;
use shardcast_sinks::{Change, PrefetchExecutor, PrefetchOrder, PrefetchStats, Sink};
use shardcast_sources::DeadLetter;

use crate::routing::EpochObserver;
use crate::tables::{TableRow, TABLES};

/// Rows of `dead_letters` kept for SQL (all of them are written to the sinks and counted).
const DEAD_LETTERS_KEPT: usize = 100_000;

/// Counters shown in the status line and the final summary.
#[derive(Clone, Debug, Default)]
pub struct CollectorStats {
    /// Events accepted by all workers.
    pub events: u64,
    /// Late events sent to dead letters.
    pub late: u64,
    /// All dead letters (malformed and late).
    pub dead_letters: u64,
    /// Changes written to the sinks.
    pub changes: u64,
    /// The last epoch that is final everywhere.
    pub completed: Option<u64>,
}

/// See the module documentation.
pub struct Collector {
    frontiers: Vec<Option<Option<u64>>>,
    events: Vec<(u64, u64)>,
    pending: BTreeMap<u64, Vec<(Decision, isize)>>,
    pending_dead: BTreeMap<u64, Vec<DeadLetter>>,
    tables: HashMap<&'static str, BTreeMap<String, TableRow>>,
    sink: Option<Box<dyn Sink>>,
    store: Option<SnapshotStore>,
    dead_seq: i64,
    stats: CollectorStats,
    snapshot_due: bool,
    last_snapshot: Instant,
    last_status: Instant,
    started: Instant,
    status: bool,
    failure: Option<String>,
    prefetcher: Option<PrefetchExecutor>,
    observers: Vec<Box<dyn EpochObserver>>,
}

impl Collector {
    /// A collector for `workers` workers writing to `sink` and publishing to `store`; `status` prints a
    /// live one-line status on stderr.
    pub fn new(
        workers: usize,
        sink: Option<Box<dyn Sink>>,
        store: Option<SnapshotStore>,
        status: bool,
    ) -> Self {
        Collector {
            frontiers: vec![None; workers],
            events: vec![(0, 0); workers],
            pending: BTreeMap::new(),
            pending_dead: BTreeMap::new(),
            tables: TABLES.iter().map(|t| (*t, BTreeMap::new())).collect(),
            sink,
            store,
            dead_seq: 0,
            stats: CollectorStats::default(),
            snapshot_due: true,
            last_snapshot: Instant::now(),
            last_status: Instant::now(),
            started: Instant::now(),
            status,
            failure: None,
            prefetcher: None,
            observers: Vec::new(),
        }
    }

    /// Hands every new prefetch order to `executor` as its epoch becomes final.
    pub fn with_prefetcher(mut self, executor: PrefetchExecutor) -> Self {
        self.prefetcher = Some(executor);
        self
    }

    /// Shows every final epoch's decision changes to `observer`.
    pub fn with_observer(mut self, observer: Box<dyn EpochObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The observers' lines for the final summary.
    pub fn observer_summaries(&self) -> Vec<String> {
        self.observers.iter().filter_map(|o| o.summary()).collect()
    }

    /// Stops the prefetch executor, giving it `drain` to finish queued copies; its final counters.
    pub fn stop_prefetcher(&mut self, drain: Duration) -> Option<PrefetchStats> {
        self.prefetcher.take().map(|p| p.shutdown(drain))
    }

    /// Counters so far.
    pub fn stats(&self) -> &CollectorStats {
        &self.stats
    }

    /// The first worker failure, if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Takes in one report; completes epochs that every worker has passed.
    pub fn handle(&mut self, report: WorkerReport) -> anyhow::Result<()> {
        match report {
            WorkerReport::Changes { changes, .. } => {
                for (decision, epoch, diff) in changes {
                    self.pending
                        .entry(epoch)
                        .or_default()
                        .push((decision, diff));
                }
            }
            WorkerReport::DeadLetters { epoch, letters, .. } => {
                self.pending_dead.entry(epoch).or_default().extend(letters);
            }
            WorkerReport::Progress {
                worker,
                frontier,
                events,
                late,
            } => {
                if let Some(slot) = self.frontiers.get_mut(worker) {
                    *slot = Some(frontier);
                }
                if let Some(slot) = self.events.get_mut(worker) {
                    *slot = (events, late);
                }
                self.stats.events = self.events.iter().map(|e| e.0).sum();
                self.stats.late = self.events.iter().map(|e| e.1).sum();
                self.complete()?;
            }
            WorkerReport::Failed { worker, error } => {
                tracing::error!(worker, %error, "worker failed");
                self.failure
                    .get_or_insert(format!("worker {worker}: {error}"));
            }
        }
        Ok(())
    }

    /// The frontier every worker has passed: `Some(None)` when all are done, `None` if one is unknown.
    fn global_frontier(&self) -> Option<Option<u64>> {
        let mut global: Option<u64> = None;
        for frontier in &self.frontiers {
            match frontier {
                None => return None,
                Some(None) => {}
                Some(Some(f)) => global = Some(global.map_or(*f, |g: u64| g.min(*f))),
            }
        }
        Some(global)
    }

    fn complete(&mut self) -> anyhow::Result<()> {
        let Some(frontier) = self.global_frontier() else {
            return Ok(());
        };
        let done = |t: u64| frontier.is_none_or(|f| t < f);
        let mut epochs: Vec<u64> = self
            .pending
            .keys()
            .chain(self.pending_dead.keys())
            .copied()
            .collect();
        epochs.sort_unstable();
        epochs.dedup();
        for epoch in epochs.into_iter().take_while(|t| done(*t)) {
            let decisions = self.pending.remove(&epoch).unwrap_or_default();
            let dead = self.pending_dead.remove(&epoch).unwrap_or_default();
            self.apply_epoch(epoch, decisions, dead)?;
        }
        if let Some(f) = frontier {
            if f > 0 && self.stats.completed.is_none_or(|c| c < f - 1) {
                self.stats.completed = Some(f - 1);
            }
        }
        Ok(())
    }

    /// Writes one final epoch: consolidated row changes, retractions before insertions.
    fn apply_epoch(
        &mut self,
        epoch: u64,
        decisions: Vec<(Decision, isize)>,
        dead: Vec<DeadLetter>,
    ) -> anyhow::Result<()> {
        for observer in &mut self.observers {
            observer.observe(epoch, &decisions);
        }
        // Consolidate at row level: rows that a retraction and an insertion of the same epoch both carry
        // cancel out, so an unchanged row is never re-sent.
        // Each row is turned into JSON once: the text keys consolidation, the value goes to the sinks.
        let mut consolidated: BTreeMap<
            (&'static str, String, String),
            (TableRow, serde_json::Value, i64),
        > = BTreeMap::new();
        for (decision, diff) in decisions {
            for row in TableRow::from_decision(&decision) {
                let json = row.to_json();
                let entry = consolidated
                    .entry((row.table(), row.key(), json.to_string()))
                    .or_insert((row, json, 0));
                entry.2 += diff as i64;
            }
        }
        for letter in &dead {
            self.dead_seq += 1;
            let row = TableRow::from_dead_letter(self.dead_seq, epoch, letter);
            let json = row.to_json();
            consolidated.insert((row.table(), row.key(), String::new()), (row, json, 1));
        }
        self.stats.dead_letters += dead.len() as u64;
        let mut changes: Vec<(TableRow, serde_json::Value, i64)> = consolidated
            .into_values()
            .filter(|(_, _, d)| *d != 0)
            .collect();
        changes.sort_by_key(|(_, _, diff)| *diff > 0);
        for (row, _, diff) in &changes {
            let table = self.tables.entry(row.table()).or_default();
            if *diff > 0 {
                table.insert(row.key(), row.clone());
            } else if table.get(&row.key()) == Some(row) {
                table.remove(&row.key());
            }
        }
        let dead_letters = self.tables.entry("dead_letters").or_default();
        while dead_letters.len() > DEAD_LETTERS_KEPT {
            dead_letters.pop_first();
        }
        if let Some(sink) = self.sink.as_mut() {
            let changes: Vec<Change> = changes
                .iter()
                .map(|(row, json, diff)| Change {
                    table: row.table().to_string(),
                    key: row.key(),
                    row: json.clone(),
                    diff: *diff,
                    version: epoch,
                })
                .collect();
            sink.write_version(epoch, &changes)
                .with_context(|| format!("writing version {epoch} to sink {}", sink.name()))?;
            self.stats.changes += changes.len() as u64;
        }
        if let Some(prefetcher) = &self.prefetcher {
            // Only new orders: a retraction means the order is no longer wanted, and the executor
            // never removes a copy (its TTL does).
            for (row, _, diff) in &changes {
                if let (TableRow::Prefetch(p), true) = (row, *diff > 0) {
                    prefetcher.submit(PrefetchOrder {
                        key: p.key.clone(),
                        region: p.region.clone(),
                        priority: p.priority,
                        confidence: p.confidence,
                        bytes: p.bytes.max(0) as u64,
                        epoch,
                    });
                }
            }
        }
        self.stats.completed = Some(epoch);
        self.snapshot_due = true;
        Ok(())
    }

    /// Publishes the current tables if something changed and the last publication is old enough (or
    /// `force`), and refreshes the status line.
    pub fn tick(&mut self, force: bool) -> anyhow::Result<()> {
        for observer in &mut self.observers {
            observer.tick();
        }
        if self.snapshot_due
            && (force || self.last_snapshot.elapsed() >= Duration::from_millis(100))
        {
            self.publish()?;
        }
        if self.status && (force || self.last_status.elapsed() >= Duration::from_secs(1)) {
            self.print_status(force);
            self.last_status = Instant::now();
        }
        Ok(())
    }

    fn publish(&mut self) -> anyhow::Result<()> {
        self.snapshot_due = false;
        self.last_snapshot = Instant::now();
        let Some(store) = &self.store else {
            return Ok(());
        };
        let Some(epoch) = self.stats.completed else {
            return Ok(());
        };
        let mut batches = Vec::new();
        for table in TABLES.iter().copied() {
            let rows = self
                .tables
                .get(table)
                .map(|t| t.values().collect::<Vec<_>>())
                .unwrap_or_default();
            let batch = TableRow::batch(table, &rows)
                .with_context(|| format!("building the {table} snapshot"))?;
            batches.push((table.to_string(), batch));
        }
        store
            .publish(epoch, batches)
            .context("publishing the SQL snapshot")?;
        Ok(())
    }

    fn print_status(&self, last: bool) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rows = |t: &str| self.tables.get(t).map_or(0, |m| m.len());
        let line = format!(
            "epoch {} | events {} ({:.0}/s) | dead letters {} (late {}) | changes {} | keys {} customers {} assigned {}",
            self.stats.completed.map_or("-".to_string(), |e| e.to_string()),
            self.stats.events,
            self.stats.events as f64 / secs,
            self.stats.dead_letters,
            self.stats.late,
            self.stats.changes,
            rows("key_load"),
            self.tables.get("affinity").map_or(0, |m| m.values().filter_map(|r| match r {
                TableRow::Affinity(a) => Some(a.customer.as_str()),
                _ => None,
            }).collect::<std::collections::BTreeSet<_>>().len()),
            rows("assignments"),
        );
        let line = match &self.prefetcher {
            Some(p) => {
                let stats = p.stats();
                let copied: u64 = stats.regions.values().map(|r| r.copied).sum();
                let retrying = stats.regions.values().filter(|r| r.retrying).count();
                format!("{line} | prefetched {copied} (regions retrying {retrying})")
            }
            None => line,
        };
        let mut err = std::io::stderr();
        if err.is_terminal() {
            let _ = write!(err, "\r\x1b[2K{line}");
            if last {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
    }

    /// Flushes the sinks.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.tick(true)?;
        if let Some(sink) = self.sink.as_mut() {
            sink.flush()
                .with_context(|| format!("flushing sink {}", sink.name()))?;
        }
        Ok(())
    }
}
