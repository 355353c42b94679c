//! Running a dataflow over events already in memory: the baseline side of `shardcast bench`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::input::Input;
use shardcast_operators::PartitionPolicy;
use shardcast_sources::Event;

use crate::{access_of, affinity_family, AccessTuple, FinishLine};

/// Which dataflow to run over in-memory events.
#[derive(Clone, Debug)]
pub enum InMemoryDataflow {
    /// A bare differential `count()` by key: the floor any keyed pipeline pays.
    BareCount,
    /// The first decision family, without a source or sinks.
    AffinityFamily {
        /// Window in epochs.
        window: u64,
        /// Partition policy.
        policy: PartitionPolicy,
    },
}

/// Runs `dataflow` over `events` (sorted by time) on `workers` threads, event `i` on worker
/// `i % workers`, epochs of `tick_ms`. Returns the wall time and the number of output changes, or
/// why a worker failed.
pub fn run_in_memory(
    events: Arc<Vec<Event>>,
    workers: usize,
    tick_ms: u64,
    dataflow: InMemoryDataflow,
) -> Result<(Duration, u64), String> {
    let outputs = Arc::new(AtomicU64::new(0));
    let counter = outputs.clone();
    let started = Instant::now();
    let finish_line = FinishLine::new(workers);
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let finish_line = finish_line.clone();
        let dataflow_index = worker.next_dataflow_index();
        let counter = counter.clone();
        let dataflow = dataflow.clone();
        let policy = match &dataflow {
            InMemoryDataflow::AffinityFamily { policy, .. } => policy.clone(),
            InMemoryDataflow::BareCount => PartitionPolicy::default(),
        };
        let (mut input, probe) = worker.dataflow::<u64, _, _>(move |scope| {
            let (input, accesses) = scope.new_collection::<AccessTuple, isize>();
            let probe = match dataflow {
                InMemoryDataflow::BareCount => {
                    accesses
                        .map(|(key, _, _, _)| key)
                        .count()
                        .inspect(move |_| {
                            counter.fetch_add(1, Ordering::Relaxed);
                        })
                        .probe()
                        .0
                }
                InMemoryDataflow::AffinityFamily { window, policy } => {
                    affinity_family(accesses, window, policy)
                        .inspect(move |_| {
                            counter.fetch_add(1, Ordering::Relaxed);
                        })
                        .probe()
                        .0
                }
            };
            (input, probe)
        });
        let mut last = 0;
        for event in events.iter().skip(index).step_by(peers) {
            let epoch = event.epoch(tick_ms);
            if epoch > *input.time() {
                // Close epochs as time moves, as the sources do, so work is spread over the run.
                input.advance_to(epoch);
                worker.step();
            }
            input.update_at(access_of(event, &policy), epoch.max(*input.time()), 1);
            last = last.max(epoch);
        }
        finish_line.finish((last + 1).max(*input.time()));
        let end = loop {
            if let Some(end) = finish_line.end() {
                break end;
            }
            worker.step();
        };
        input.advance_to(end);
        input.flush();
        worker.step_while(|| probe.less_than(&end));
        finish_line.arrive();
        worker.step_while(|| !finish_line.all_arrived());
        // Leave without sliding the window out: that work is not part of what is measured.
        worker.drop_dataflow(dataflow_index);
    });
    for result in guards?.join() {
        result.map_err(|e| format!("worker failed: {e}"))?;
    }
    Ok((started.elapsed(), outputs.load(Ordering::Relaxed)))
}
