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
    L: for<'s> FnOnce(VecCollection<'s, u64, D>) -> VecCollection<'s, u64, D2> + Send + 'static,
{
    let changes: Arc<Mutex<Vec<(D2, u64, isize)>>> = Arc::default();
    let sink = changes.clone();
    // `execute_directly` wants a `Sync` closure; the mutexes make the captured data shareable.
    let inserts = Mutex::new(inserts);
    let logic = Mutex::new(Some(logic));
    timely::execute_directly(move |worker| {
        let logic = logic.lock().unwrap().take().expect("runs once");
        let (mut input, probe) = worker.dataflow::<u64, _, _>(move |scope| {
            let (input, collection) = scope.new_collection::<D, isize>();
            let sink = sink.clone();
            let probe = logic(collection)
                .inspect(move |(d, t, r)| sink.lock().unwrap().push((d.clone(), *t, *r)))
                .probe()
                .0;
            (input, probe)
        });
        for (datum, epoch) in std::mem::take(&mut *inserts.lock().unwrap()) {
            input.update_at(datum, epoch, 1);
        }
        input.advance_to(last + 1);
        input.flush();
        worker.step_while(|| probe.less_than(&(last + 1)));
    });
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
