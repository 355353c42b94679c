//! Loading the real traces kept beside the project checkout (see the traces README there).

#![allow(dead_code)] // each test binary uses its own part of these helpers

use std::path::{Path, PathBuf};

use shardcast_replay::{Trace, TraceBuilder};
use shardcast_sources::{TraceFile, TraceFormat};

macro_rules! trace_file {
    ($rest:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces/", $rest)
    };
}

/// The NASA KSC web log of 1995-08-01, normalized.
pub const NASA: &str = trace_file!("nasa_http_19950801/nasa_19950801.normalized.csv.gz");
/// The CloudPhysics block I/O sample of libCacheSim, normalized.
pub const CLOUDPHYSICS: &str =
    trace_file!("cloudphysics_libcachesim/cloudPhysicsIO.normalized.csv.gz");
/// The same CloudPhysics requests in libCacheSim's oracleGeneral binary (one size per object).
pub const CLOUDPHYSICS_ORACLE: &str =
    trace_file!("cloudphysics_libcachesim/cloudPhysicsIO.oracleGeneral.bin");
/// The ARC paper's OLTP trace (order only).
pub const ARC_OLTP: &str = trace_file!("arc_OLTP/OLTP.lis.zst");
/// cache2k's busy ORM trace (order only, 5 million requests).
pub const CACHE2K: &str = trace_file!("cache2k_orm_busy/trace-mt-db-20160419-busy.trc.bin.bz2");

/// The LIRS paper's program traces (order only): name and path.
pub const LIRS: [(&str, &str); 8] = [
    ("cpp", trace_file!("lirs_classic/cpp.trace.gz")),
    ("cs", trace_file!("lirs_classic/cs.trace.gz")),
    ("gli", trace_file!("lirs_classic/gli.trace.gz")),
    ("multi1", trace_file!("lirs_classic/multi1.trace.gz")),
    ("multi2", trace_file!("lirs_classic/multi2.trace.gz")),
    ("multi3", trace_file!("lirs_classic/multi3.trace.gz")),
    ("ps", trace_file!("lirs_classic/ps.trace.gz")),
    ("sprite", trace_file!("lirs_classic/sprite.trace.gz")),
];

/// `path`, failing the test with what to do when the trace is absent.
pub fn trace_path(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "trace {} is missing: the shared traces folder (see its README) must sit beside the \
         project checkout, as ../shared/traces",
        path.display()
    );
    path
}

/// A trace in simulator form, one region per region name, with whether it has real timestamps.
pub struct Loaded {
    pub trace: Trace,
    pub timed: bool,
}

/// Reads any trace the sources crate can read (format detected from the file). A bad record fails the
/// test: the reference traces have none.
pub fn load(path: &str) -> Loaded {
    let path = trace_path(path);
    let file = TraceFile::open(Path::new(&path), None)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let format: TraceFormat = file.format();
    let mut builder = TraceBuilder::new();
    for record in file {
        let record = record.unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let event = record.unwrap_or_else(|d| panic!("bad record in {}: {d:?}", path.display()));
        builder
            .push(
                event.ts,
                &event.key,
                event.bytes,
                &event.client,
                &event.region,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    Loaded {
        trace: builder.finish(),
        timed: format.has_timestamps(),
    }
}

/// [`load`] with every request in one region.
pub fn load_single_region(path: &str) -> Trace {
    load(path).trace.single_region()
}

/// [`load_single_region`] for the normalized traces.
pub fn load_normalized(path: &str) -> Trace {
    load_single_region(path)
}
