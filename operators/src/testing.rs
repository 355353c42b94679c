//! Test support: run an operator over a list of timed inserts and read the collection at every epoch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use differential_dataflow::input::Input;
use differential_dataflow::VecCollection;

/// Runs `logic` on one worker over `inserts` (each `(datum, epoch)` is a `+1` at that epoch) and returns
/// the accumulated output collection at each epoch `0..=last` as sorted `(datum, count)` lists.
///
/// Reference implementations compare against this, as differential's own `reduce` tests do.
pub fn run_collection<D, D2, L>(
    inserts: Vec<(D, u64)>,
    last: u64,
    logic: L,
) -> BTreeMap<u64, Vec<(D2, isize)>>
where
    D: differential_dataflow::ExchangeData,
    D2: differential_dataflow::ExchangeData,
    L: for<'s> Fn(VecCollection<'s, u64, D>) -> VecCollection<'s, u64, D2> + Send + Sync + 'static,
{
    run_collection_on(1, inserts, last, logic)
}

/// As [`run_collection`] on `workers` worker threads: insert `i` goes to worker `i % workers`, so data
/// crosses workers wherever the operator exchanges or broadcasts it.
pub fn run_collection_on<D, D2, L>(
    workers: usize,
    inserts: Vec<(D, u64)>,
    last: u64,
    logic: L,
) -> BTreeMap<u64, Vec<(D2, isize)>>
where
    D: differential_dataflow::ExchangeData,
    D2: differential_dataflow::ExchangeData,
    L: for<'s> Fn(VecCollection<'s, u64, D>) -> VecCollection<'s, u64, D2> + Send + Sync + 'static,
{
    let changes: Arc<Mutex<Vec<(D2, u64, isize)>>> = Arc::default();
    let sink = changes.clone();
    // The workers share the inserts; the mutex makes them `Sync` without requiring it of `D`.
    let inserts = Arc::new(Mutex::new(inserts));
    let logic = Arc::new(logic);
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let mine: Vec<(D, u64)> = inserts
            .lock()
            .unwrap()
            .iter()
            .skip(index)
            .step_by(peers)
            .cloned()
            .collect();
        let (logic, sink) = (logic.clone(), sink.clone());
        let (mut input, probe) = worker.dataflow::<u64, _, _>(move |scope| {
            let (input, collection) = scope.new_collection::<D, isize>();
            let probe = logic(collection)
                .inspect(move |(d, t, r)| sink.lock().unwrap().push((d.clone(), *t, *r)))
                .probe()
                .0;
            (input, probe)
        });
        for (datum, epoch) in mine {
            input.update_at(datum, epoch, 1);
        }
        input.advance_to(last + 1);
        input.flush();
        worker.step_while(|| probe.less_than(&(last + 1)));
    })
    .expect("starting timely");
    for result in guards.join() {
        result.expect("a worker panicked");
    }
    let changes = changes.lock().unwrap();
    let mut states = BTreeMap::new();
    for epoch in 0..=last {
        let mut state: BTreeMap<D2, isize> = BTreeMap::new();
        for (d, t, r) in changes.iter() {
            if *t <= epoch {
                *state.entry(d.clone()).or_default() += r;
            }
        }
        states.insert(epoch, state.into_iter().filter(|(_, r)| *r != 0).collect());
    }
    states
}
