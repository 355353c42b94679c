//! Reading the real normalized traces kept beside the project checkout (see the traces README there).

use std::collections::HashSet;
use std::path::PathBuf;

use shardcast_sources::{FileFormat, FileOptions, FileSource, Source, TraceReader, TsUnit};

const NASA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/traces/nasa_http_19950801/nasa_19950801.normalized.csv.gz"
);
const CLOUDPHYSICS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/traces/cloudphysics_libcachesim/cloudPhysicsIO.normalized.csv.gz"
);

fn trace(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "trace {} is missing: the shared traces folder must sit beside the project checkout",
        path.display()
    );
    path
}

#[test]
fn nasa_trace_reads_completely() {
    let reader = TraceReader::open(&trace(NASA), TsUnit::Seconds).unwrap();
    assert_eq!(reader.format(), FileFormat::Csv);
    let (mut events, mut dead, mut keys) = (0, 0, HashSet::new());
    let mut last_ts = 0;
    for record in reader {
        match record.unwrap() {
            Ok(e) => {
                events += 1;
                // 1995-08-01, in milliseconds.
                assert!(
                    (807_235_200_000..807_321_600_000).contains(&e.ts),
                    "{}",
                    e.ts
                );
                assert!(e.ts >= last_ts, "trace is in time order");
                last_ts = e.ts;
                assert!(!e.client.is_empty());
                keys.insert(e.key);
            }
            Err(_) => dead += 1,
        }
    }
    assert_eq!(events + dead, 30_969);
    assert_eq!(dead, 0);
    assert_eq!(keys.len(), 2_088);
}

#[test]
fn cloudphysics_trace_splits_over_workers() {
    let path = trace(CLOUDPHYSICS);
    let workers = 3;
    let mut total = 0;
    let mut writes = 0;
    for worker_index in 0..workers {
        let options = FileOptions {
            ts_unit: TsUnit::Seconds,
            speed: None,
            worker_index,
            workers,
        };
        let mut source = FileSource::open(&path, options).unwrap();
        loop {
            let batch = source.poll(4096).unwrap();
            for record in batch.records {
                let event = record.unwrap();
                writes += usize::from(event.op == "write");
                total += 1;
            }
            if batch.finished {
                assert!(batch.progress_ms.is_some());
                break;
            }
        }
    }
    assert_eq!(total, 113_872);
    assert!(writes > 0 && writes < total);
}
