//! A [`Source`] over a trace file in any [`TraceFormat`], shared by the workers record by record and
//! optionally replayed at the pace of its timestamps.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Batch, DeadLetter, Event, Source, SourceError, TraceFile, TraceFormat, TsUnit};

/// The longest a paced poll waits for the next event to become due before returning what it has.
const MAX_WAIT: Duration = Duration::from_millis(5);

/// How a [`FileSource`] reads its file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FileOptions {
    /// Unit of the normalized CSV's `ts` column (JSON lines always carry milliseconds; the other trace
    /// formats fix their own units).
    pub ts_unit: TsUnit,
    /// `None`: as fast as possible. `Some(x)`: replay at `x` times real time, so 10 s of event time take
    /// 5 s at `Some(2.0)`.
    pub speed: Option<f64>,
    /// This worker's index, `0..workers`.
    pub worker_index: usize,
    /// Number of workers reading the file; worker `i` decodes the records whose position in the file
    /// (0-based, dead letters included) is `i` modulo `workers`.
    pub workers: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            ts_unit: TsUnit::Seconds,
            speed: None,
            worker_index: 0,
            workers: 1,
        }
    }
}

/// Maps event time to the wall-clock instant an event is due when replaying at a given speed.
#[derive(Clone, Copy, Debug)]
struct Pace {
    speed: f64,
    /// The first event's time and the instant it was released; later events are due relative to it.
    anchor: Option<(u64, Instant)>,
}

impl Pace {
    /// When the event at `ts` is due; the first event anchors the replay and is due at once.
    fn due(&mut self, ts: u64) -> Instant {
        let (anchor_ts, anchor_at) = *self.anchor.get_or_insert((ts, Instant::now()));
        let ahead_ms = ts.saturating_sub(anchor_ts) as f64 / self.speed;
        anchor_at + Duration::from_secs_f64(ahead_ms / 1000.0)
    }
}

/// One worker's share of a trace file in any [`TraceFormat`] (see [`TraceFile`]).
///
/// Every worker reads the whole file but decodes only the records whose position is its index modulo
/// the worker count, so `n` workers split the decoding work and together see each record once.
pub struct FileSource {
    reader: TraceFile,
    worker_index: u64,
    workers: u64,
    pace: Option<Pace>,
    /// An event read but not yet due (paced replay only).
    pending: Option<Event>,
    progress_ms: Option<u64>,
    finished: bool,
}

impl FileSource {
    /// Opens `path` for worker `options.worker_index` of `options.workers`, in the format
    /// [`TraceFormat::detect`] finds.
    pub fn open(path: impl AsRef<Path>, options: FileOptions) -> Result<Self, SourceError> {
        Self::open_format(path, None, options)
    }

    /// Opens `path` in `format` (detected when `None`) for worker `options.worker_index` of
    /// `options.workers`.
    pub fn open_format(
        path: impl AsRef<Path>,
        format: Option<TraceFormat>,
        options: FileOptions,
    ) -> Result<Self, SourceError> {
        if options.workers == 0 || options.worker_index >= options.workers {
            return Err(SourceError::Invalid(format!(
                "worker index {} is not below the worker count {}",
                options.worker_index, options.workers
            )));
        }
        let pace = match options.speed {
            None => None,
            Some(speed) if speed.is_finite() && speed > 0.0 => Some(Pace {
                speed,
                anchor: None,
            }),
            Some(speed) => {
                return Err(SourceError::Invalid(format!(
                    "replay speed must be a positive number, got {speed}"
                )))
            }
        };
        Ok(FileSource {
            reader: TraceFile::open_with_unit(path.as_ref(), format, options.ts_unit)?,
            worker_index: options.worker_index as u64,
            workers: options.workers as u64,
            pace,
            pending: None,
            progress_ms: None,
            finished: false,
        })
    }

    /// The next record of this worker's share, or `None` at the end of the file.
    fn next_own_record(&mut self) -> Result<Option<Result<Event, DeadLetter>>, SourceError> {
        while let Some(position) = self.reader.advance()? {
            if position % self.workers == self.worker_index {
                return Ok(Some(self.reader.decode()));
            }
        }
        Ok(None)
    }

    fn emit(&mut self, batch: &mut Batch, record: Result<Event, DeadLetter>) {
        if let Ok(event) = &record {
            self.progress_ms = self.progress_ms.max(Some(event.ts));
        }
        batch.records.push(record);
    }
}

impl Source for FileSource {
    fn poll(&mut self, max: usize) -> Result<Batch, SourceError> {
        let mut batch = Batch::default();
        let started = Instant::now();
        while !self.finished && batch.records.len() < max {
            let record = match self.pending.take() {
                Some(event) => Ok(event),
                None => match self.next_own_record()? {
                    Some(record) => record,
                    None => {
                        self.finished = true;
                        break;
                    }
                },
            };
            let (event, due) = match (record, self.pace.as_mut()) {
                (Ok(event), Some(pace)) => {
                    let due = pace.due(event.ts);
                    (event, due)
                }
                // Unpaced, and dead letters even when paced: they have no time to wait for.
                (record, _) => {
                    self.emit(&mut batch, record);
                    continue;
                }
            };
            let now = Instant::now();
            if due <= now {
                self.emit(&mut batch, Ok(event));
                continue;
            }
            // Not due yet: hand back what is due, or wait a little if that is nothing.
            let waited = now.duration_since(started);
            if batch.records.is_empty() && waited < MAX_WAIT {
                thread::sleep((due - now).min(MAX_WAIT - waited));
                self.pending = Some(event);
                continue;
            }
            self.pending = Some(event);
            break;
        }
        batch.progress_ms = self.progress_ms;
        batch.finished = self.finished;
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;

    /// A CSV file in the system temp directory, removed on drop.
    struct TempTrace(PathBuf);

    impl TempTrace {
        fn new(name: &str, contents: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("shardcast-sources-{}-{name}", std::process::id()));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(contents.as_bytes()))
                .unwrap();
            TempTrace(path)
        }
    }

    impl Drop for TempTrace {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `rows` data rows one second apart, with row 5 malformed.
    fn trace(rows: u64) -> String {
        let mut text = String::from("ts,key,client,size,op,region\n");
        for i in 0..rows {
            if i == 5 {
                text.push_str("bad,row,,,,\n");
            } else {
                text.push_str(&format!("{},k{i},c,10,GET,eu\n", 1000 + i));
            }
        }
        text
    }

    fn drain(source: &mut FileSource) -> (Vec<Event>, Vec<DeadLetter>, Option<u64>) {
        let (mut events, mut dead, mut progress) = (Vec::new(), Vec::new(), None);
        loop {
            let batch = source.poll(7).unwrap();
            assert!(batch.records.len() <= 7);
            for r in batch.records {
                match r {
                    Ok(e) => events.push(e),
                    Err(d) => dead.push(d),
                }
            }
            assert!(batch.progress_ms >= progress, "progress went back");
            progress = batch.progress_ms;
            if batch.finished {
                return (events, dead, progress);
            }
        }
    }

    #[test]
    fn single_worker_reads_everything() {
        let file = TempTrace::new("single.csv", &trace(50));
        let mut source = FileSource::open(&file.0, FileOptions::default()).unwrap();
        let (events, dead, progress) = drain(&mut source);
        assert_eq!(events.len(), 49);
        assert_eq!(dead.len(), 1);
        assert!(
            dead[0].origin.ends_with("single.csv:7"),
            "{}",
            dead[0].origin
        );
        assert_eq!(progress, Some(1049 * 1000));
        let again = source.poll(10).unwrap();
        assert!(again.finished && again.records.is_empty());
    }

    #[test]
    fn workers_split_the_file_exactly() {
        let file = TempTrace::new("split.csv", &trace(101));
        let mut keys = BTreeSet::new();
        let mut total = 0;
        for worker_index in 0..3 {
            let options = FileOptions {
                worker_index,
                workers: 3,
                ..FileOptions::default()
            };
            let (events, dead, _) = drain(&mut FileSource::open(&file.0, options).unwrap());
            total += events.len() + dead.len();
            keys.extend(events.into_iter().map(|e| e.key));
        }
        assert_eq!(total, 101);
        assert_eq!(keys.len(), 100);
    }

    #[test]
    fn paced_replay_follows_event_time() {
        // 11 rows spanning 10 s of event time (minus the bad row) at 20x take about 0.5 s.
        let file = TempTrace::new("paced.csv", &trace(11));
        let options = FileOptions {
            speed: Some(20.0),
            ..FileOptions::default()
        };
        let mut source = FileSource::open(&file.0, options).unwrap();
        let started = Instant::now();
        let mut longest_poll = Duration::ZERO;
        let mut count = 0;
        loop {
            let poll_started = Instant::now();
            let batch = source.poll(100).unwrap();
            longest_poll = longest_poll.max(poll_started.elapsed());
            count += batch.records.len();
            if batch.finished {
                break;
            }
        }
        let took = started.elapsed();
        assert_eq!(count, 11);
        assert!(took >= Duration::from_millis(480), "too fast: {took:?}");
        assert!(took < Duration::from_millis(900), "too slow: {took:?}");
        assert!(longest_poll < Duration::from_millis(50), "{longest_poll:?}");
    }

    #[test]
    fn reads_other_trace_formats_split_over_workers() {
        // An ARC `.lis` trace: 3 lines expanding to 6 page requests, one of them malformed.
        let file = TempTrace::new("pages.lis", "10 3 0 0\n20 x 0 1\n30 2 0 2\n");
        let mut seen = Vec::new();
        for worker_index in 0..2 {
            let options = FileOptions {
                worker_index,
                workers: 2,
                ..FileOptions::default()
            };
            let mut source = FileSource::open(&file.0, options).unwrap();
            let (events, dead, progress) = drain(&mut source);
            // Synthetic time: the i-th record is at i ms, so worker 0 ends at 4 and worker 1 at 5.
            assert_eq!(progress, Some(4 + worker_index as u64));
            assert_eq!(dead.len(), usize::from(worker_index == 1));
            seen.extend(events.into_iter().map(|e| (e.ts, e.key)));
        }
        seen.sort();
        let keys: Vec<&str> = seen.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(keys, ["10", "11", "12", "30", "31"]);
    }

    #[test]
    fn an_explicit_format_overrides_detection() {
        // One integer per line reads as LIRS by default, and as ARC lines when asked (and then fails).
        let file = TempTrace::new("ints.txt", "5\n6\n");
        let (events, _, _) = drain(&mut FileSource::open(&file.0, FileOptions::default()).unwrap());
        assert_eq!(events.len(), 2);
        let mut as_arc =
            FileSource::open_format(&file.0, Some(TraceFormat::ArcLis), FileOptions::default())
                .unwrap();
        let (events, dead, _) = drain(&mut as_arc);
        assert_eq!((events.len(), dead.len()), (0, 2));
        let unknown = TempTrace::new("words.txt", "hello world\n");
        let err = FileSource::open(&unknown.0, FileOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("cannot tell the trace format"), "{err}");
    }

    #[test]
    fn bad_options_are_errors() {
        let file = TempTrace::new("opts.csv", &trace(3));
        let bad_worker = FileOptions {
            worker_index: 2,
            workers: 2,
            ..FileOptions::default()
        };
        assert!(FileSource::open(&file.0, bad_worker).is_err());
        let bad_speed = FileOptions {
            speed: Some(0.0),
            ..FileOptions::default()
        };
        assert!(FileSource::open(&file.0, bad_speed).is_err());
        assert!(matches!(
            FileSource::open(file.0.with_extension("missing"), FileOptions::default()),
            Err(SourceError::Io { .. })
        ));
    }
}
