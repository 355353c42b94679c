//! A sink that writes every version to several sinks, counting what each one received.

use crate::{Change, Sink, SinkError};

/// Rows written to one sink of a [`Fanout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkStats {
    /// The sink's [`Sink::name`].
    pub name: String,
    /// Changes handed to the sink in successful `write_version` calls.
    pub rows: u64,
    /// Versions the sink wrote successfully.
    pub versions: u64,
    /// Failed `write_version` calls.
    pub failures: u64,
}

/// Writes each version to every sink, in order.
///
/// Guarantees: a failing sink does not stop the others from receiving the version; the call then
/// returns [`SinkError::Fanout`] naming the first failure. When the caller retries that version,
/// sinks that already wrote it are not called again (and not counted twice).
pub struct Fanout {
    /// The sinks, written in this order.
    pub sinks: Vec<Box<dyn Sink>>,
    stats: Vec<SinkStats>,
    done: Vec<Option<u64>>,
}

impl Fanout {
    /// A fanout over `sinks`.
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        let mut fanout = Fanout {
            sinks,
            stats: Vec::new(),
            done: Vec::new(),
        };
        fanout.sync_bookkeeping();
        fanout
    }

    /// Per sink, in order: rows and versions written and failures so far.
    pub fn stats(&self) -> Vec<SinkStats> {
        let mut stats = self.stats.clone();
        // Sinks pushed onto the public vector after construction have no entry yet.
        stats.extend(self.sinks[stats.len()..].iter().map(|s| fresh(s.as_ref())));
        stats
    }

    /// Keeps the bookkeeping vectors as long as `sinks`, which is public and may have grown.
    fn sync_bookkeeping(&mut self) {
        let n = self.sinks.len();
        for sink in &self.sinks[self.stats.len().min(n)..] {
            self.stats.push(fresh(sink.as_ref()));
        }
        self.stats.truncate(n);
        self.done.resize(n, None);
    }
}

fn fresh(sink: &dyn Sink) -> SinkStats {
    SinkStats {
        name: sink.name().to_string(),
        rows: 0,
        versions: 0,
        failures: 0,
    }
}

impl Sink for Fanout {
    fn name(&self) -> &str {
        "fanout"
    }

    fn write_version(&mut self, version: u64, changes: &[Change]) -> Result<(), SinkError> {
        self.sync_bookkeeping();
        let mut failed: Vec<(String, SinkError)> = Vec::new();
        for (i, sink) in self.sinks.iter_mut().enumerate() {
            if self.done[i].is_some_and(|last| version <= last) {
                continue;
            }
            match sink.write_version(version, changes) {
                Ok(()) => {
                    self.done[i] = Some(version);
                    self.stats[i].rows += changes.len() as u64;
                    self.stats[i].versions += 1;
                }
                Err(err) => {
                    self.stats[i].failures += 1;
                    tracing::warn!(sink = sink.name(), version, error = %err, "sink failed");
                    failed.push((sink.name().to_string(), err));
                }
            }
        }
        first_failure(failed)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let mut failed = Vec::new();
        for sink in &mut self.sinks {
            if let Err(err) = sink.flush() {
                failed.push((sink.name().to_string(), err));
            }
        }
        first_failure(failed)
    }
}

fn first_failure(failed: Vec<(String, SinkError)>) -> Result<(), SinkError> {
    let count = failed.len();
    match failed.into_iter().next() {
        None => Ok(()),
        Some((sink, first)) => Err(SinkError::Fanout {
            failed: count,
            sink,
            first: Box::new(first),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records calls; fails the first `fail_times` writes.
    struct Probe {
        name: String,
        calls: Arc<Mutex<Vec<u64>>>,
        fail_times: usize,
    }

    impl Sink for Probe {
        fn name(&self) -> &str {
            &self.name
        }
        fn write_version(&mut self, version: u64, _: &[Change]) -> Result<(), SinkError> {
            self.calls.lock().unwrap().push(version);
            if self.fail_times > 0 {
                self.fail_times -= 1;
                return Err(SinkError::Invalid("probe failure".into()));
            }
            Ok(())
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn probe(name: &str, fail_times: usize) -> (Box<dyn Sink>, Arc<Mutex<Vec<u64>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = Probe {
            name: name.into(),
            calls: calls.clone(),
            fail_times,
        };
        (Box::new(sink), calls)
    }

    fn changes(n: usize) -> Vec<Change> {
        (0..n)
            .map(|i| Change {
                table: "t".into(),
                key: i.to_string(),
                row: serde_json::json!({}),
                diff: 1,
                version: 0,
            })
            .collect()
    }

    #[test]
    fn writes_all_sinks_and_counts_rows() {
        let (a, a_calls) = probe("a", 0);
        let (b, b_calls) = probe("b", 0);
        let mut fanout = Fanout::new(vec![a, b]);
        fanout.write_version(1, &changes(3)).unwrap();
        fanout.write_version(2, &[]).unwrap();
        fanout.write_version(3, &changes(2)).unwrap();
        assert_eq!(*a_calls.lock().unwrap(), [1, 2, 3]);
        assert_eq!(*b_calls.lock().unwrap(), [1, 2, 3]);
        let stats = fanout.stats();
        assert_eq!(stats[0].name, "a");
        assert_eq!((stats[0].rows, stats[0].versions), (5, 3));
        assert_eq!((stats[1].rows, stats[1].versions), (5, 3));
    }

    #[test]
    fn failure_still_writes_others_and_retry_skips_done_sinks() {
        let (a, a_calls) = probe("a", 1);
        let (b, b_calls) = probe("b", 0);
        let mut fanout = Fanout::new(vec![a, b]);
        match fanout.write_version(1, &changes(2)) {
            Err(SinkError::Fanout { failed, sink, .. }) => {
                assert_eq!((failed, sink.as_str()), (1, "a"))
            }
            other => panic!("expected a fanout error, got {other:?}"),
        }
        fanout.write_version(1, &changes(2)).unwrap();
        assert_eq!(*a_calls.lock().unwrap(), [1, 1]);
        assert_eq!(*b_calls.lock().unwrap(), [1]);
        let stats = fanout.stats();
        assert_eq!((stats[0].rows, stats[0].failures), (2, 1));
        assert_eq!((stats[1].rows, stats[1].failures), (2, 0));
    }
}
