//! Reading the real traces kept beside the project checkout (see the traces README there), in every
//! format they come in. Counts are the README's and each folder's PROVENANCE.txt.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use shardcast_sources::{
    DeadLetter, Event, FileFormat, FileOptions, FileSource, Source, TraceFile, TraceFormat,
    TraceReader, TsUnit,
};

const NASA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/traces/nasa_http_19950801/nasa_19950801.normalized.csv.gz"
);
const CLOUDPHYSICS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/traces/cloudphysics_libcachesim/cloudPhysicsIO.normalized.csv.gz"
);

/// The shared traces folder.
const TRACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces");

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

/// What reading one whole trace found.
struct Summary {
    events: Vec<Event>,
    dead: Vec<DeadLetter>,
}

impl Summary {
    fn requests(&self) -> usize {
        self.events.len() + self.dead.len()
    }

    fn unique_keys(&self) -> usize {
        self.events
            .iter()
            .map(|e| &e.key)
            .collect::<HashSet<_>>()
            .len()
    }

    fn count_op(&self, op: &str) -> usize {
        self.events.iter().filter(|e| e.op == op).count()
    }
}

/// Reads the trace at `relative` (inside the traces folder) completely, checking that detection picks
/// `format`.
fn read_all(relative: &str, format: TraceFormat) -> Summary {
    let path = trace(&format!("{TRACES}/{relative}"));
    assert_eq!(TraceFormat::detect(&path).unwrap(), format, "{relative}");
    read_path(&path, format)
}

fn read_path(path: &Path, format: TraceFormat) -> Summary {
    let file = TraceFile::open(path, None).unwrap();
    assert_eq!(file.format(), format);
    let (mut events, mut dead) = (Vec::new(), Vec::new());
    for record in file {
        match record.unwrap() {
            Ok(e) => events.push(e),
            Err(d) => dead.push(d),
        }
    }
    Summary { events, dead }
}

/// Asserts that events are in time order and, for order-only traces, one per millisecond from 0.
fn assert_time(summary: &Summary, format: TraceFormat) {
    assert!(
        summary.events.windows(2).all(|w| w[0].ts <= w[1].ts),
        "{format}: events out of time order"
    );
    if !format.has_timestamps() {
        assert!(
            summary
                .events
                .iter()
                .enumerate()
                .all(|(i, e)| e.ts == i as u64),
            "{format}: synthetic time is not one request per millisecond"
        );
    }
}

#[test]
fn nasa_tsv_matches_the_normalized_trace() {
    let tsv = read_all("nasa_http_19950801/nasa_19950801.tsv", TraceFormat::NasaTsv);
    assert!(tsv.dead.is_empty(), "{:?}", tsv.dead.first());
    assert_eq!((tsv.requests(), tsv.unique_keys()), (30_969, 2_088));
    assert_time(&tsv, TraceFormat::NasaTsv);
    assert_eq!(tsv.count_op("GET"), 30_873);
    let clients: HashSet<_> = tsv.events.iter().map(|e| &e.client).collect();
    assert_eq!(clients.len(), 2_365);
    let bare_ip = tsv.events.iter().filter(|e| e.region.is_empty()).count();
    assert_eq!(bare_ip, 9_960);

    let normalized = read_path(&trace(NASA), TraceFormat::Normalized);
    assert!(normalized.dead.is_empty());
    assert_eq!(
        (normalized.requests(), normalized.unique_keys()),
        (30_969, 2_088)
    );
    // The normalized file was derived from the TSV with the same field mapping, so every event agrees.
    let first_difference = tsv
        .events
        .iter()
        .zip(&normalized.events)
        .position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "TSV and normalized events differ");
}

#[test]
fn cloudphysics_reads_the_same_in_every_format() {
    let dir = "cloudphysics_libcachesim";
    let csv = read_all(
        &format!("{dir}/cloudPhysicsIO.csv"),
        TraceFormat::LibCacheSimCsv,
    );
    let oracle = read_all(
        &format!("{dir}/cloudPhysicsIO.oracleGeneral.bin"),
        TraceFormat::OracleGeneral,
    );
    let normalized = read_path(&trace(CLOUDPHYSICS), TraceFormat::Normalized);
    for (name, summary, format) in [
        ("csv", &csv, TraceFormat::LibCacheSimCsv),
        ("oracleGeneral", &oracle, TraceFormat::OracleGeneral),
        ("normalized", &normalized, TraceFormat::Normalized),
    ] {
        assert!(
            summary.dead.is_empty(),
            "{name}: {:?}",
            summary.dead.first()
        );
        assert_eq!(
            (summary.requests(), summary.unique_keys()),
            (113_872, 48_974),
            "{name}"
        );
        assert_time(summary, format);
        let first = summary.events.first().map(|e| e.ts);
        let last = summary.events.last().map(|e| e.ts);
        assert_eq!(
            (first, last),
            (Some(5_633_898_000), Some(5_641_098_000)),
            "{name}"
        );
    }
    assert_eq!(
        (csv.count_op("read"), csv.count_op("write")),
        (46_974, 66_898)
    );
    assert_eq!(
        csv.events, normalized.events,
        "csv and normalized events differ"
    );
    // oracleGeneral carries no opcode, and libCacheSim gave each object one size when it converted the
    // trace (the CSV's request sizes vary per request): time and block agree request by request, and
    // the byte totals are the CSV's and the one libCacheSim's own tests report for this file.
    let time_and_key = |e: &Event| (e.ts, e.key.clone());
    assert!(
        csv.events
            .iter()
            .map(time_and_key)
            .eq(oracle.events.iter().map(time_and_key)),
        "csv and oracleGeneral disagree on time or block"
    );
    let total = |s: &Summary| s.events.iter().map(|e| e.bytes).sum::<u64>();
    assert_eq!(total(&csv), 4_205_978_112);
    assert_eq!(total(&oracle), 4_368_040_448);
    let mut sizes = std::collections::HashMap::new();
    for e in &oracle.events {
        assert_eq!(
            *sizes.entry(&e.key).or_insert(e.bytes),
            e.bytes,
            "key {}",
            e.key
        );
    }
}

#[test]
fn arc_oltp_expands_to_the_papers_page_count() {
    let arc = read_all("arc_OLTP/OLTP.lis.zst", TraceFormat::ArcLis);
    assert!(arc.dead.is_empty(), "{:?}", arc.dead.first());
    // ARC paper, Table III.
    assert_eq!((arc.requests(), arc.unique_keys()), (914_145, 186_880));
    assert_time(&arc, TraceFormat::ArcLis);
}

#[test]
fn cache2k_orm_busy_reads_quickly() {
    let started = Instant::now();
    let path = trace(&format!(
        "{TRACES}/cache2k_orm_busy/trace-mt-db-20160419-busy.trc.bin.bz2"
    ));
    let file = TraceFile::open(&path, None).unwrap();
    assert_eq!(file.format(), TraceFormat::Cache2kTrc);
    // Count without keeping 5 million events: only the distinct keys.
    let (mut requests, mut keys, mut last_ts) = (0u64, HashSet::new(), None);
    for record in file {
        let event = record.unwrap().unwrap();
        assert_eq!(event.ts, requests, "synthetic time");
        last_ts = Some(event.ts);
        requests += 1;
        keys.insert(event.key);
    }
    eprintln!(
        "cache2k orm busy: {requests} requests read in {:.2?}",
        started.elapsed()
    );
    assert_eq!((requests, keys.len()), (5_000_000, 76_349));
    assert_eq!(last_ts, Some(4_999_999));
}

#[test]
fn lirs_traces_read_without_dead_letters() {
    // (file, requests, unique keys) from the folder's PROVENANCE.txt.
    let expected = [
        ("cpp", 9_047, 1_223),
        ("cs", 6_781, 1_409),
        ("gli", 6_015, 2_529),
        ("multi1", 15_858, 2_606),
        ("multi2", 26_311, 5_684),
        ("multi3", 30_241, 7_454),
        ("ps", 10_448, 3_083),
        ("sprite", 133_996, 7_075),
    ];
    for (name, requests, unique) in expected {
        let lirs = read_all(&format!("lirs_classic/{name}.trace.gz"), TraceFormat::Lirs);
        assert!(lirs.dead.is_empty(), "{name}: {:?}", lirs.dead.first());
        assert_eq!(
            (lirs.requests(), lirs.unique_keys()),
            (requests, unique),
            "{name}"
        );
        assert_time(&lirs, TraceFormat::Lirs);
    }
}

#[test]
fn cachelib_samples_read_without_dead_letters() {
    // (file, format, rows, unique keys, distinct clients) from the folder's PROVENANCE.txt.
    let expected = [
        ("kv_traces_1.csv", TraceFormat::CacheLibKv, 99, 52, 11),
        ("kv_traces_2.csv", TraceFormat::CacheLibKv, 99, 62, 17),
        (
            "block_traces_1.csv",
            TraceFormat::CacheLibBlock,
            999,
            625,
            7,
        ),
        (
            "block_traces_2.csv",
            TraceFormat::CacheLibBlock,
            999,
            646,
            8,
        ),
    ];
    for (name, format, rows, unique, clients) in expected {
        let sample = read_all(&format!("meta_cachelib_samples/{name}"), format);
        assert!(sample.dead.is_empty(), "{name}: {:?}", sample.dead.first());
        assert_eq!(
            (sample.requests(), sample.unique_keys()),
            (rows, unique),
            "{name}"
        );
        let distinct: HashSet<_> = sample.events.iter().map(|e| &e.client).collect();
        assert_eq!(distinct.len(), clients, "{name}: clients");
        assert!(sample.events.iter().all(|e| e.ts > 0 && !e.op.is_empty()));
        if format == TraceFormat::CacheLibBlock {
            let shards: HashSet<_> = sample.events.iter().map(|e| &e.attrs["shard"]).collect();
            assert_eq!(shards.len(), 16, "{name}: shards");
            assert!(sample.count_op("read") > 0 && sample.count_op("write") > 0);
        }
    }
}

#[test]
fn file_source_replays_a_binary_trace_over_workers() {
    let path = trace(&format!(
        "{TRACES}/cloudphysics_libcachesim/cloudPhysicsIO.oracleGeneral.bin"
    ));
    let mut total = 0;
    for worker_index in 0..2 {
        let options = FileOptions {
            worker_index,
            workers: 2,
            ..FileOptions::default()
        };
        let mut source = FileSource::open(&path, options).unwrap();
        loop {
            let batch = source.poll(8192).unwrap();
            total += batch.records.iter().filter(|r| r.is_ok()).count();
            if batch.finished {
                assert_eq!(batch.progress_ms, Some(5_641_098_000));
                break;
            }
        }
    }
    assert_eq!(total, 113_872);
}
