//! The worker runtime: each timely worker polls its share of the source, feeds event-time epochs into
//! the dataflow, and reports the decision changes and its frontier to one collector.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use differential_dataflow::input::Input;
use shardcast_operators::PartitionPolicy;
use shardcast_sources::{encode_json, DeadLetter};

use crate::{
    affinity_family, forecast_family, prediction_family, shard_family, Access, Decision,
    FinishLine, ForecastConfig, PredictionConfig, ShardsConfig, SourceSpec,
};

/// How many epochs the input may run ahead of the output frontier before the worker stops reading: it
/// bounds memory to a few epochs of input while leaving room to pipeline (2 epochs gave 80k events/s on
/// the generator benchmark, 16 gave 99k).
const MAX_LAG_EPOCHS: u64 = 16;

/// What a job runs.
#[derive(Clone, Debug)]
pub struct JobOptions {
    /// The source each worker opens a share of.
    pub source: SourceSpec,
    /// Worker threads in this process.
    pub workers: usize,
    /// Epoch length in milliseconds.
    pub tick_ms: u64,
    /// Window length in epochs.
    pub window_epochs: u64,
    /// Allowed lateness in milliseconds.
    pub lateness_ms: u64,
    /// The partition policy.
    pub policy: PartitionPolicy,
    /// The forecast family's settings and forecaster (kind, model file, season); `None` leaves it out.
    pub forecast: Option<(ForecastConfig, String, Option<std::path::PathBuf>, usize)>,
    /// The prediction family's settings; `None` leaves it out.
    pub prediction: Option<PredictionConfig>,
    /// The shard family's settings and the forecaster of its predictive balancer (kind, model file,
    /// season); `None` leaves it out.
    pub shards: Option<(ShardsConfig, String, Option<std::path::PathBuf>, usize)>,
    /// Prefetch bytes per region per epoch. The job reads it every step, so a change (a config reload)
    /// applies from the epoch the input is at.
    pub prefetch_budget: Arc<AtomicU64>,
    /// Stop once a finite source is exhausted and its last epoch is final (benchmarks, tests); otherwise
    /// keep the final state and wait for `stop`.
    pub exit_when_finished: bool,
}

/// A message from a worker to the collector. A worker sends the changes of epoch `t` before it reports a
/// frontier beyond `t`, so the collector knows epoch `t` is complete once every worker has done so.
#[derive(Debug)]
pub enum WorkerReport {
    /// Decision changes `(row, epoch, diff)`.
    Changes {
        /// Sending worker.
        worker: usize,
        /// The changes.
        changes: Vec<(Decision, u64, isize)>,
    },
    /// Records that failed to decode or arrived too late, observed while the input was at `epoch`.
    DeadLetters {
        /// Sending worker.
        worker: usize,
        /// The epoch they belong to in the changelog.
        epoch: u64,
        /// The records.
        letters: Vec<DeadLetter>,
    },
    /// The worker's output frontier (`None`: empty, the dataflow is done) and its counters so far.
    Progress {
        /// Sending worker.
        worker: usize,
        /// Output frontier: every epoch before it is final.
        frontier: Option<u64>,
        /// Events accepted by this worker so far.
        events: u64,
        /// Late events sent to the dead-letter output so far.
        late: u64,
    },
    /// The worker could not go on.
    Failed {
        /// Sending worker.
        worker: usize,
        /// Why.
        error: String,
    },
}

/// Runs the job on `options.workers` threads until a finite source is done (with
/// `exit_when_finished`) or `stop` is set. Reports go to `reports`, a bounded channel: a collector that
/// waits on a slow sink slows the workers down instead of letting reports pile up in memory, and a
/// collector that has gone away stops the job.
pub fn run_job(
    options: JobOptions,
    reports: SyncSender<WorkerReport>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let workers = options.workers.max(1);
    let finish_line = FinishLine::new(workers);
    // The furthest epoch any worker's own source has let it close. A worker whose source is idle (its
    // partitions silent, or none) follows it, so it never holds the others back.
    let furthest = Arc::new(AtomicU64::new(0));
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let reports = reports.clone();
        let finish_line = finish_line.clone();
        let furthest = furthest.clone();
        let tick = options.tick_ms.max(1);
        let policy = options.policy.clone();
        let captured: Rc<RefCell<Vec<(Decision, u64, isize)>>> = Rc::default();

        let dataflow = worker.next_dataflow_index();
        let sink = captured.clone();
        let (window, dataflow_policy) = (options.window_epochs, policy.clone());
        let prediction = options.prediction.clone();
        // Each worker owns its forecaster (an inference session is not shared); a missing model or
        // runtime was reported once at start, and the fallback is used here silently.
        let forecast = options
            .forecast
            .clone()
            .map(|(config, kind, model, season)| {
                let (forecaster, _warning) = shardcast_operators::forecast::forecaster_from_config(
                    &kind,
                    model.as_deref(),
                    season,
                );
                (config, forecaster)
            });
        let shards = options.shards.clone().map(|(config, kind, model, season)| {
            let (forecaster, _warning) = shardcast_operators::forecast::forecaster_from_config(
                &kind,
                model.as_deref(),
                season,
            );
            let forecaster = shardcast_operators::forecast::ShardLoadForecaster::new(
                forecaster,
                options.tick_ms,
            );
            (config, forecaster)
        });
        let (mut input, mut budget_input, probe) = worker.dataflow::<u64, _, _>(move |scope| {
            let (input, accesses) = scope.new_collection::<Access, isize>();
            let (budget_input, budget) = scope.new_collection::<u64, isize>();
            let mut decisions =
                affinity_family(accesses.clone().map(|a| a.tuple()), window, dataflow_policy);
            if let Some((config, forecaster)) = forecast {
                let assignments = decisions.clone().flat_map(|d| match d {
                    Decision::Assignment {
                        customer,
                        assignment,
                    } => Some((customer, assignment.partition)),
                    _ => None,
                });
                decisions = decisions.concat(forecast_family(
                    accesses.clone(),
                    window,
                    assignments,
                    &config,
                    forecaster,
                ));
            }
            if let Some((config, forecaster)) = shards {
                // The initial map was checked when the options were made.
                if let Ok(family) = shard_family(accesses.clone(), &config, forecaster) {
                    decisions = decisions.concat(family);
                }
            }
            if let Some(config) = prediction {
                decisions = decisions.concat(prediction_family(accesses, budget, window, config));
            }
            let probe = decisions
                .inspect(move |x| sink.borrow_mut().push(x.clone()))
                .probe()
                .0;
            (input, budget_input, probe)
        });
        // Worker 0 holds the one budget row; it follows `prefetch_budget` epoch by epoch.
        let prefetch_budget = options.prefetch_budget.clone();
        let mut budget_row: Option<u64> = None;

        let mut source = match options.source.open(index, peers) {
            Ok(source) => source,
            Err(e) => {
                let _ = reports.send(WorkerReport::Failed {
                    worker: index,
                    error: e.to_string(),
                });
                worker.drop_dataflow(dataflow);
                return;
            }
        };

        let (mut events, mut late) = (0u64, 0u64);
        let mut max_epoch: Option<u64> = None;
        let mut finished = false;
        let mut end: Option<u64> = None;
        let mut arrived = false;
        let mut reported: Option<Option<u64>> = None;
        let mut reported_events = 0;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut idle = true;
            // Backpressure: read more only while the dataflow keeps up with the input, so memory stays
            // bounded by a few epochs of input instead of everything the source can deliver.
            let keeping_up = !probe.less_than(&input.time().saturating_sub(MAX_LAG_EPOCHS));
            if !finished && keeping_up {
                let batch = match source.poll(4096) {
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = reports.send(WorkerReport::Failed {
                            worker: index,
                            error: e.to_string(),
                        });
                        break;
                    }
                };
                idle = batch.records.is_empty();
                let mut dead = Vec::new();
                for record in batch.records {
                    match record {
                        Ok(event) => {
                            let epoch = event.epoch(tick);
                            if epoch.checked_add(options.window_epochs + 2).is_none() {
                                // The window's retraction and the feedback's next epoch must exist.
                                let reason = format!("timestamp out of range: {} ms", event.ts);
                                dead.push(DeadLetter::new(
                                    format!("worker {index}"),
                                    reason,
                                    &encode_json(&event),
                                ));
                            } else if epoch < *input.time() {
                                late += 1;
                                let reason = format!(
                                    "late: event time {} ms is in epoch {epoch}, but epochs before {} are closed (allowed lateness {} ms)",
                                    event.ts,
                                    input.time(),
                                    options.lateness_ms
                                );
                                dead.push(DeadLetter::new(
                                    format!("worker {index}"),
                                    reason,
                                    &encode_json(&event),
                                ));
                            } else {
                                input.update_at(Access::of(&event, &policy), epoch, 1);
                                max_epoch = max_epoch.max(Some(epoch));
                                events += 1;
                            }
                        }
                        Err(letter) => dead.push(letter),
                    }
                }
                let epoch = *input.time();
                if !dead.is_empty()
                    && reports
                        .send(WorkerReport::DeadLetters {
                            worker: index,
                            epoch,
                            letters: dead,
                        })
                        .is_err()
                {
                    break;
                }
                if let Some(progress) = batch.progress_ms {
                    let watermark = progress.saturating_sub(options.lateness_ms) / tick;
                    if watermark > *input.time() {
                        input.advance_to(watermark);
                    }
                    furthest.fetch_max(watermark, Ordering::Relaxed);
                }
                if batch.idle {
                    let others = furthest.load(Ordering::Relaxed);
                    if others > *input.time() {
                        input.advance_to(others);
                    }
                }
                if batch.finished {
                    finished = true;
                    finish_line.finish(max_epoch.map(|e| e + 1).unwrap_or(0).max(*input.time()));
                }
                input.flush();
            }
            if index == 0 {
                let wanted = prefetch_budget.load(Ordering::Relaxed);
                if budget_row != Some(wanted) {
                    if let Some(old) = budget_row {
                        budget_input.update(old, -1);
                    }
                    budget_input.update(wanted, 1);
                    budget_row = Some(wanted);
                }
            }
            // The budget input follows the event input's epoch, so it never holds the frontier back.
            if budget_input.time() < input.time() {
                budget_input.advance_to(*input.time());
            }
            budget_input.flush();
            if finished && end.is_none() {
                // Close every epoch that holds data on any worker, but keep the input open so the
                // final window stays visible instead of sliding out to nothing.
                if let Some(last) = finish_line.end() {
                    if last > *input.time() {
                        input.advance_to(last);
                        input.flush();
                    }
                    end = Some(last);
                }
            }
            let park = Some(Duration::from_millis(if idle { 2 } else { 0 }));
            // A panicking operator would leave the other workers waiting forever for this worker's
            // progress: report it, stop every worker, and let the job fail with the message.
            let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                worker.step_or_park(park);
            }));
            if let Err(panic) = stepped {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                stop.store(true, Ordering::Relaxed);
                let _ = reports.send(WorkerReport::Failed {
                    worker: index,
                    error: format!("an operator panicked: {message}"),
                });
                return;
            }

            let changes = std::mem::take(&mut *captured.borrow_mut());
            if !changes.is_empty()
                && reports
                    .send(WorkerReport::Changes {
                        worker: index,
                        changes,
                    })
                    .is_err()
            {
                break;
            }
            let frontier = probe.with_frontier(|f| f.first().copied());
            if reported != Some(frontier) || events >= reported_events + 100_000 {
                let report = WorkerReport::Progress {
                    worker: index,
                    frontier,
                    events,
                    late,
                };
                if reports.send(report).is_err() {
                    break;
                }
                reported = Some(frontier);
                reported_events = events;
            }
            if let Some(last) = end {
                if options.exit_when_finished && !arrived && frontier.is_none_or(|f| f >= last) {
                    finish_line.arrive();
                    arrived = true;
                }
                if arrived && finish_line.all_arrived() {
                    break;
                }
            }
        }
        let _ = reports.send(WorkerReport::Progress {
            worker: index,
            frontier: probe.with_frontier(|f| f.first().copied()),
            events,
            late,
        });
        // The remaining window retractions are of no interest once we stop.
        worker.drop_dataflow(dataflow);
    })?;
    for result in guards.join() {
        result.map_err(|e| format!("worker failed: {e}"))?;
    }
    Ok(())
}
