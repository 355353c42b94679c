//! `shardcast bench`: events/s of the pipeline next to a bare differential `count()` on the same events,
//! measured in the same run, so the ratio does not depend on the machine.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use shardcast_dataflows::{load_pipeline, run_in_memory, run_job, InMemoryDataflow, SourceSpec};
use shardcast_sources::{Event, Source};

use crate::collector::Collector;
use crate::run::{job_options, REPORTS_IN_FLIGHT};

/// Arguments of `shardcast bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Generator events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Trace file for the file-source measurement.
    #[arg(
        long,
        default_value = "../shared/traces/nasa_http_19950801/nasa_19950801.normalized.csv.gz"
    )]
    trace: PathBuf,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Repetitions; the best of each is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

/// Runs the measurements and prints a table.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.workers >= 1, "--workers must be at least 1");
    anyhow::ensure!(args.events >= 1, "--events must be at least 1");
    let mut default = load_pipeline(None, "default")?;
    *default.workers.get_mut() = args.workers;
    // The limit is the total over all workers.
    default.generator.get_mut().limit = Some(args.events);
    let generator = SourceSpec::parse("generator:", &default)?;
    let mut nasa = load_pipeline(None, "nasa")?;
    *nasa.workers.get_mut() = args.workers;
    let file = SourceSpec::parse(&format!("file:{}", args.trace.display()), &nasa)?;

    println!(
        "{:<20} {:>9} {:>14} {:>14} {:>12} {:>13} {:>10} {:>10}",
        "source",
        "events",
        "foundation ev/s",
        "predicting ev/s",
        "family ev/s",
        "count() ev/s",
        "found./cnt",
        "pred./cnt"
    );
    for (name, pipeline, spec) in [
        ("generator", &default, generator),
        ("file (NASA)", &nasa, file),
    ] {
        let events = Arc::new(
            collect_events(&spec, args.workers).with_context(|| format!("reading {name}"))?,
        );
        let n = events.len() as u64;
        let tick = pipeline.tick_ms();
        let family = InMemoryDataflow::AffinityFamily {
            window: pipeline.window_epochs(),
            policy: pipeline.policy(),
        };
        // The foundation's pipeline: the affinity family only; the predicting one adds the prediction
        // and forecast families, as `shardcast run` does by default.
        let mut foundation = pipeline.clone();
        foundation.prefetch.get_mut().enabled = false;
        foundation.forecast.get_mut().enabled = false;
        let (mut best_pipeline, mut best_predicting, mut best_family, mut best_count) =
            (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
        for _ in 0..args.repeat.max(1) {
            best_pipeline = best_pipeline.min(run_pipeline(&foundation, spec.clone())?);
            best_predicting = best_predicting.min(run_pipeline(pipeline, spec.clone())?);
            let family_run = run_in_memory(events.clone(), args.workers, tick, family.clone());
            best_family = best_family.min(family_run.map_err(anyhow::Error::msg)?.0);
            let count = InMemoryDataflow::BareCount;
            let count_run = run_in_memory(events.clone(), args.workers, tick, count);
            best_count = best_count.min(count_run.map_err(anyhow::Error::msg)?.0);
        }
        let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
        println!(
            "{:<20} {:>9} {:>14.0} {:>14.0} {:>12.0} {:>13.0} {:>10.3} {:>10.3}",
            name,
            n,
            rate(best_pipeline),
            rate(best_predicting),
            rate(best_family),
            rate(best_count),
            rate(best_pipeline) / rate(best_count),
            rate(best_predicting) / rate(best_count)
        );
    }
    println!("foundation: source + decode + affinity family + collector; predicting: the same plus the prediction");
    println!("and forecast families (what `shardcast run` runs); family: the affinity dataflow alone on in-memory");
    println!("events; count(): a bare differential count by key on the same events; ratios against count().");
    Ok(())
}

/// The events a source yields, all workers' shares together, sorted by time.
fn collect_events(spec: &SourceSpec, workers: usize) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    for index in 0..workers {
        let mut source: Box<dyn Source> = spec.open(index, workers)?;
        loop {
            let batch = source.poll(65_536)?;
            events.extend(batch.records.into_iter().filter_map(Result::ok));
            if batch.finished {
                break;
            }
        }
    }
    events.sort_by_key(|e| e.ts);
    Ok(events)
}

/// The full pipeline to the end of the source, with the collector but no sinks.
fn run_pipeline(
    pipeline: &shardcast_dataflows::PipelineConfig,
    spec: SourceSpec,
) -> anyhow::Result<Duration> {
    let options = job_options(pipeline, spec, true);
    let mut collector = Collector::new(options.workers, None, None, false);
    let (tx, rx) = mpsc::sync_channel(REPORTS_IN_FLIGHT);
    let started = Instant::now();
    let job = std::thread::spawn(move || run_job(options, tx, Arc::new(AtomicBool::new(false))));
    for report in rx {
        collector.handle(report)?;
    }
    job.join()
        .map_err(|_| anyhow::anyhow!("dataflow thread panicked"))?
        .map_err(anyhow::Error::msg)?;
    if let Some(failure) = collector.failure() {
        anyhow::bail!("{failure}");
    }
    Ok(started.elapsed())
}
