//! Loading the real traces kept beside the project checkout (see the traces README there).

#![allow(dead_code)] // each test binary uses its own part of these helpers

use std::path::{Path, PathBuf};

use shardcast_replay::{Trace, TraceBuilder};
use shardcast_sources::{TraceReader, TsUnit};

/// The NASA KSC web log of 1995-08-01, normalized.
pub const NASA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/traces/nasa_http_19950801/nasa_19950801.normalized.csv.gz"
);

/// The CloudPhysics block I/O sample of libCacheSim, normalized.
pub const CLOUDPHYSICS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/traces/cloudphysics_libcachesim/cloudPhysicsIO.normalized.csv.gz"
);

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

/// Reads a normalized trace (`ts` in seconds) into requests, one region per region name.
pub fn load_normalized(path: &str) -> Trace {
    let path = trace_path(path);
    let reader = TraceReader::open(Path::new(&path), TsUnit::Seconds)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let mut builder = TraceBuilder::new();
    for record in reader {
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
    builder.finish()
}
