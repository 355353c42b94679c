//! Holding capabilities for the epochs an operator may still produce output at.

use timely::dataflow::operators::CapabilitySet;

/// Downgrades `caps` to hold `lower` (the earliest epoch that may still produce output; `None`: none),
/// but never below the earliest capability held.
///
/// Why: operators that keep the capabilities of the data they buffer may hold only later epochs than
/// their input frontier (data at epoch 5 arrived while the frontier is still at 3). Downgrading such a
/// set to the frontier would ask for an earlier capability than it holds, which timely rejects with a
/// panic; the held capability at 5 is already the right one.
pub fn hold_from(caps: &mut CapabilitySet<u64>, lower: Option<u64>) {
    let Some(least) = caps.iter().map(|c| *c.time()).min() else {
        return;
    };
    match lower {
        Some(t) => caps.downgrade([t.max(least)]),
        None => caps.downgrade([] as [u64; 0]),
    }
}
