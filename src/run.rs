//! `shardcast run`: one pipeline, its sinks, its SQL endpoint and a live status line.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use shardcast_dataflows::{load_pipeline, run_job, JobOptions, PipelineConfig, SourceSpec};
use shardcast_queries::{spawn_pg_server_thread, SnapshotStore};
use shardcast_shardmap::ShardMap;
use shardcast_sinks::migration::Throttle;
use shardcast_sinks::routing::{RoutingServer, RoutingState};
use shardcast_sinks::{
    Fanout, JsonLinesSink, KafkaChangelogSink, PrefetchExecutor, PrefetchExecutorConfig,
    RedisTableSink, RetryPolicy, Sink,
};
use shardcast_sources::parse_kafka_url;

use crate::collector::Collector;
use crate::migration::JobMigration;
use crate::routing::RoutingPublisher;
use crate::tables::TableRow;

/// Worker reports that may wait for the collector before the workers block (backpressure from sinks).
pub const REPORTS_IN_FLIGHT: usize = 256;

/// Arguments of `shardcast run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipelines file (default: the embedded `pipelines.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Pipeline to run.
    #[arg(long, default_value = "default")]
    pipeline: String,
    /// Source URL over the config: `generator:`, `file:PATH`, `kafka://HOST:PORT/TOPIC`.
    #[arg(long)]
    source: Option<String>,
    /// SQL (PostgreSQL wire) address over the config, or `off`.
    #[arg(long)]
    sql_listen: Option<String>,
    /// Routing API (HTTP) address over the config's `shards.listen`, or `off`.
    #[arg(long)]
    routing_listen: Option<String>,
    /// Worker threads over the config.
    #[arg(long)]
    workers: Option<usize>,
    /// File sources: replay at this many times real time, paced to the timestamps (0: as fast as
    /// possible). Over the config's `file.speed`.
    #[arg(long)]
    speed: Option<f64>,
    /// Exit once a finite source (file, generator with a limit) is done, instead of serving its final
    /// state until Ctrl-C.
    #[arg(long)]
    exit_at_end: bool,
    /// No status line on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Runs the pipeline until Ctrl-C (or the end of a finite source with `--exit-at-end`).
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut pipeline = load_pipeline(args.config.as_deref(), &args.pipeline)?;
    if let Some(source) = &args.source {
        pipeline.source = source.clone();
    }
    if let Some(listen) = &args.sql_listen {
        pipeline.sql.get_mut().listen = listen.clone();
    }
    if let Some(listen) = &args.routing_listen {
        if listen != "off" && listen.parse::<std::net::SocketAddr>().is_err() {
            bail!("--routing-listen {listen:?}: use an address such as 127.0.0.1:7070, or off");
        }
        pipeline.shards.get_mut().listen = listen.clone();
    }
    if let Some(speed) = args.speed {
        if !speed.is_finite() || speed < 0.0 || (speed > 0.0 && speed < 1e-3) {
            bail!("--speed must be 0 (as fast as possible) or at least 0.001");
        }
        pipeline.file.get_mut().speed = speed;
    }
    if let Some(workers) = args.workers {
        if workers == 0 {
            bail!("--workers must be at least 1");
        }
        *pipeline.workers.get_mut() = workers;
    }
    let source = SourceSpec::parse(&pipeline.source, &pipeline).context("--source")?;
    if let SourceSpec::Kafka(k) = &source {
        // A missing topic is created with one partition per worker; the source waits for it otherwise.
        let partitions = *pipeline.workers.get_ref() as i32;
        if let Err(e) = shardcast_sources::ensure_topic(&k.brokers, &k.topic, partitions) {
            tracing::warn!(topic = %k.topic, "could not make sure the topic exists (the source will wait for it): {e}");
        }
    }
    let sink = build_sinks(&pipeline)?;
    let store = SnapshotStore::new(TableRow::schemas()?);
    let _server = if pipeline.sql.get_ref().listen != "off" {
        let addr =
            pipeline.sql.get_ref().listen.parse().with_context(|| {
                format!("sql listen address {:?}", pipeline.sql.get_ref().listen)
            })?;
        let server = spawn_pg_server_thread(store.clone(), addr)?;
        eprintln!(
            "shardcast: SQL on {} (psql -h {} -p {} -c \"SELECT * FROM assignments LIMIT 5\")",
            server.local_addr(),
            server.local_addr().ip(),
            server.local_addr().port()
        );
        Some(server)
    } else {
        None
    };
    eprintln!(
        "shardcast: pipeline {:?} from {} | tick {} window {} | {} workers",
        args.pipeline,
        source.describe(),
        pipeline.tick.get_ref(),
        pipeline.window.get_ref(),
        pipeline.workers.get_ref()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let ctrlc_stop = stop.clone();
    ctrlc::set_handler(move || ctrlc_stop.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;

    let mut options = job_options(&pipeline, source, args.exit_at_end);
    // With nodes to migrate between, the balancer starts from the map the nodes serve.
    let (migration, served_map) = start_migration(&pipeline, &mut options)?;
    let copy_rate = migration.as_ref().map(JobMigration::throttle);
    if let Some((_, kind, model, season)) = &options.forecast {
        // Say once, before the workers start, which forecaster runs.
        let (forecaster, warning) =
            shardcast_operators::forecast::forecaster_from_config(kind, model.as_deref(), *season);
        match warning {
            Some(w) => eprintln!("shardcast: warning: {w}"),
            None => eprintln!("shardcast: forecasts by {}", forecaster.name()),
        }
    }
    let budget = options.prefetch_budget.clone();
    let workers = options.workers;
    let (tx, rx) = mpsc::sync_channel(REPORTS_IN_FLIGHT);
    let job_stop = stop.clone();
    let job = std::thread::Builder::new()
        .name("timely".into())
        .spawn(move || run_job(options, tx, job_stop))?;
    let collector = Collector::new(workers, Some(sink), Some(store), !args.quiet);
    let (collector, _routing_server) = start_routing(collector, &pipeline, served_map, migration)?;
    let mut collector = collector;
    if let Some(executor) = build_prefetcher(&pipeline)? {
        collector = collector.with_prefetcher(executor);
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .context("installing the SIGHUP handler")?;
    let reloader = Reloader {
        flag: reload,
        config: args.config.clone(),
        pipeline: args.pipeline.clone(),
        budget: budget.clone(),
        copy_rate,
    };
    let collected = collect(&mut collector, &rx, &reloader);
    if collected.is_err() || collector.failure().is_some() {
        // Stop the workers (a sink gave up, or a worker failed), then report why.
        stop.store(true, Ordering::Relaxed);
        drop(rx);
    }
    let finished = collected.and_then(|()| collector.finish());
    if let Some(stats) = collector.stop_prefetcher(Duration::from_secs(5)) {
        for (region, r) in &stats.regions {
            eprintln!(
                "shardcast: prefetch {region}: {} submitted, {} copied ({} bytes), {} already present, {} missing in primary, {} shed, {} abandoned, {} pending",
                r.submitted, r.copied, r.bytes_copied, r.already_present, r.missing_in_primary, r.shed, r.abandoned, r.pending
            );
        }
        if stats.rejected_unknown_region > 0 {
            eprintln!(
                "shardcast: prefetch: {} orders for regions without a cache in prefetch.caches",
                stats.rejected_unknown_region
            );
        }
    }
    if let Err(e) = finished {
        let _ = job.join();
        return Err(
            e.context("the job stopped: epochs not yet written to the sinks were not written")
        );
    }
    job.join()
        .map_err(|_| anyhow::anyhow!("the dataflow thread panicked"))?
        .map_err(anyhow::Error::msg)?;
    if let Some(failure) = collector.failure() {
        bail!("{failure}");
    }
    for line in collector.observer_summaries() {
        eprintln!("shardcast: {line}");
    }
    let stats = collector.stats();
    eprintln!(
        "shardcast: stopped at epoch {} after {} events, {} dead letters ({} late), {} changes",
        stats.completed.map_or("-".into(), |e| e.to_string()),
        stats.events,
        stats.dead_letters,
        stats.late,
        stats.changes
    );
    Ok(())
}

/// Starts the migration executor when `shards.stores` names the nodes' Redis servers, and makes the
/// shard family start from the map they serve. Returns the executor and the map to serve.
fn start_migration(
    pipeline: &PipelineConfig,
    options: &mut JobOptions,
) -> anyhow::Result<(Option<JobMigration>, Option<ShardMap>)> {
    let section = pipeline.shards.get_ref();
    let Some((config, ..)) = options.shards.as_mut() else {
        return Ok((None, None));
    };
    let initial = config
        .initial_map()
        .context("the initial shard map (shards.initial, shards.nodes)")?;
    if section.stores.is_empty() {
        return Ok((None, Some(initial)));
    }
    let (migration, served) = JobMigration::start(section, &initial)?;
    eprintln!(
        "shardcast: migration executor over {} nodes, map version {} ({} shards)",
        section.stores.len(),
        served.version(),
        served.shards().count()
    );
    config.start = Some(served.clone());
    Ok((Some(migration), Some(served)))
}

/// Starts the routing API when the shard family runs and `shards.listen` is an address, and hands the
/// balancer's actions to the migration executor when there is one; the collector keeps both current.
fn start_routing(
    collector: Collector,
    pipeline: &PipelineConfig,
    map: Option<ShardMap>,
    migration: Option<JobMigration>,
) -> anyhow::Result<(Collector, Option<RoutingServer>)> {
    let section = pipeline.shards.get_ref();
    let Some(map) = map else {
        return Ok((collector, None));
    };
    if section.listen == "off" && migration.is_none() {
        return Ok((collector, None));
    }
    let state = RoutingState::new(map);
    let server = if section.listen == "off" {
        None
    } else {
        let server = RoutingServer::start(section.listen.as_str(), state.clone())
            .with_context(|| format!("starting the routing API on {}", section.listen))?;
        eprintln!(
            "shardcast: routing API on {} (curl {}/v1/route/KEY)",
            server.local_addr(),
            server.url()
        );
        Some(server)
    };
    let mut publisher = RoutingPublisher::new(state, pipeline.policy());
    if let Some(migration) = migration {
        publisher = publisher.with_migration(migration);
    }
    Ok((collector.with_observer(Box::new(publisher)), server))
}

/// Re-reads the changeable settings of the pipeline when SIGHUP arrives.
struct Reloader {
    flag: Arc<AtomicBool>,
    config: Option<PathBuf>,
    pipeline: String,
    budget: Arc<AtomicU64>,
    /// The migration executor's copy rate, when it runs.
    copy_rate: Option<Throttle>,
}

impl Reloader {
    /// Applies `prefetch.budget_bytes` and `shards.copy_bytes_per_second` from the config file if a reload was asked for. A config that no
    /// longer parses is reported and the running settings are kept.
    fn poll(&self) {
        if !self.flag.swap(false, Ordering::Relaxed) {
            return;
        }
        match load_pipeline(self.config.as_deref(), &self.pipeline) {
            Ok(p) => {
                let budget = p.prefetch.get_ref().budget_bytes;
                let old = self.budget.swap(budget, Ordering::Relaxed);
                eprintln!("shardcast: reloaded: prefetch.budget_bytes {old} -> {budget}");
                if let Some(throttle) = &self.copy_rate {
                    let rate = p.shards.get_ref().copy_bytes_per_second;
                    let old = throttle.rate();
                    throttle.set(rate);
                    eprintln!("shardcast: reloaded: shards.copy_bytes_per_second {old} -> {rate}");
                }
            }
            Err(e) => eprintln!("shardcast: reload rejected, settings unchanged: {e}"),
        }
    }
}

/// Feeds reports to the collector until every worker has gone, or a sink fails.
fn collect(
    collector: &mut Collector,
    rx: &mpsc::Receiver<shardcast_dataflows::WorkerReport>,
    reloader: &Reloader,
) -> anyhow::Result<()> {
    loop {
        reloader.poll();
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(report) => collector.handle(report)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        collector.tick(false)?;
        if collector.failure().is_some() {
            return Ok(());
        }
    }
}

/// The job options of a pipeline.
pub fn job_options(
    pipeline: &PipelineConfig,
    source: SourceSpec,
    exit_when_finished: bool,
) -> JobOptions {
    JobOptions {
        source,
        workers: *pipeline.workers.get_ref(),
        tick_ms: pipeline.tick_ms(),
        window_epochs: pipeline.window_epochs(),
        lateness_ms: pipeline.allowed_lateness.0,
        policy: pipeline.policy(),
        prediction: pipeline.prediction(),
        forecast: pipeline.forecast().map(|config| {
            let f = pipeline.forecast.get_ref();
            (
                config,
                f.model.clone(),
                f.onnx_model.as_ref().map(PathBuf::from),
                f.season,
            )
        }),
        shards: pipeline.shards().map(|config| {
            let f = pipeline.forecast.get_ref();
            (
                config,
                f.model.clone(),
                f.onnx_model.as_ref().map(PathBuf::from),
                f.season,
            )
        }),
        prefetch_budget: Arc::new(AtomicU64::new(pipeline.prefetch.get_ref().budget_bytes)),
        exit_when_finished,
    }
}

/// The prefetch executor of the pipeline, when `prefetch.primary` names a store to copy from.
fn build_prefetcher(pipeline: &PipelineConfig) -> anyhow::Result<Option<PrefetchExecutor>> {
    let p = pipeline.prefetch.get_ref();
    let (Some(primary), true) = (&p.primary, p.enabled) else {
        return Ok(None);
    };
    let executor = PrefetchExecutor::start(PrefetchExecutorConfig {
        primary: primary.clone(),
        regions: p.caches.clone(),
        ttl: Duration::from_millis(p.ttl.0),
        key_prefix: p.key_prefix.clone(),
        queue_capacity: 10_000,
        retry: RetryPolicy::default(),
    })
    .context("starting the prefetch executor (prefetch.primary / prefetch.caches)")?;
    Ok(Some(executor))
}

fn build_sinks(pipeline: &PipelineConfig) -> anyhow::Result<Box<dyn Sink>> {
    let s = pipeline.sinks.get_ref();
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if s.stdout {
        sinks.push(Box::new(JsonLinesSink::stdout()));
    }
    if let Some(path) = &s.jsonl {
        sinks.push(Box::new(
            JsonLinesSink::file(path).with_context(|| format!("sinks.jsonl {path}"))?,
        ));
    }
    if let Some(url) = &s.kafka {
        let (brokers, topic) = parse_kafka_url(url).context("sinks.kafka")?;
        sinks.push(Box::new(
            KafkaChangelogSink::new(&brokers, &topic).context("sinks.kafka")?,
        ));
    }
    if let Some(url) = &s.redis {
        let prefix = s.redis_prefix.clone().unwrap_or_else(|| "shardcast".into());
        let tables = s
            .redis_tables
            .clone()
            .unwrap_or_else(|| vec!["assignments".into()]);
        sinks.push(Box::new(
            RedisTableSink::new(url, &prefix, tables).context("sinks.redis")?,
        ));
    }
    Ok(Box::new(Fanout::new(sinks)))
}
