//! `shardcast produce`: write events to a Kafka topic, or to a JSON-lines file, from a trace file or the
//! generator.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use shardcast_sources::{
    encode_json, ensure_topic, parse_kafka_url, FileOptions, FileSource, Generator,
    GeneratorConfig, KafkaEventProducer, Source, TsUnit,
};

/// Arguments of `shardcast produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Destination: `kafka://HOST:PORT/TOPIC` (created if missing) or `file:PATH` (JSON lines, one event
    /// per line, `ts` in milliseconds; the format `shardcast run --source file:PATH` reads back).
    #[arg(long)]
    to: String,
    /// Trace file to send (normalized CSV, gzip or not, or JSON lines).
    #[arg(
        long,
        conflicts_with = "generator",
        required_unless_present = "generator"
    )]
    trace: Option<PathBuf>,
    /// Send the generator's workload.
    #[arg(long)]
    generator: bool,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many events (default for the generator: 100000; for a trace: all).
    #[arg(long)]
    limit: Option<u64>,
    /// Unit of the trace's `ts` column.
    #[arg(long, default_value = "s")]
    ts_unit: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 2)]
    partitions: i32,
}

/// Where produced events go.
enum Destination {
    /// A Kafka topic; events are keyed by client so one client's events stay in order on one partition.
    Kafka(KafkaEventProducer),
    /// A JSON-lines file.
    File(BufWriter<File>),
}

impl Destination {
    fn open(to: &str, partitions: i32) -> anyhow::Result<Self> {
        if let Some(path) = to.strip_prefix("file:") {
            let file = File::create(path).with_context(|| format!("creating {path}"))?;
            return Ok(Destination::File(BufWriter::new(file)));
        }
        let (brokers, topic) = parse_kafka_url(to)?;
        ensure_topic(&brokers, &topic, partitions)
            .with_context(|| format!("creating topic {topic}"))?;
        let producer =
            KafkaEventProducer::new(&brokers, &topic).context("creating the producer")?;
        Ok(Destination::Kafka(producer))
    }

    fn send(&mut self, event: &shardcast_sources::Event) -> anyhow::Result<()> {
        let payload = encode_json(event);
        match self {
            Destination::Kafka(producer) => producer.send(&event.client, &payload)?,
            Destination::File(file) => {
                file.write_all(&payload)?;
                file.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Destination::Kafka(producer) => producer
                .flush(Duration::from_secs(60))
                .context("flushing the producer")?,
            Destination::File(mut file) => file.flush().context("writing the file")?,
        }
        Ok(())
    }
}

/// Sends the events from the trace or the generator to the destination.
pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let mut destination = Destination::open(&args.to, args.partitions)?;
    let mut source: Box<dyn Source> = match (&args.trace, args.generator) {
        (Some(path), _) => {
            let ts_unit: TsUnit = args
                .ts_unit
                .parse()
                .map_err(|_| anyhow::anyhow!("--ts-unit: use s, ms or us"))?;
            Box::new(FileSource::open(
                path,
                FileOptions {
                    ts_unit,
                    speed: None,
                    worker_index: 0,
                    workers: 1,
                },
            )?)
        }
        (None, true) => {
            let config = GeneratorConfig {
                seed: args.seed,
                limit: Some(args.limit.unwrap_or(100_000)),
                ..Default::default()
            };
            Box::new(Generator::new(config, 0, 1)?)
        }
        (None, false) => bail!("give --trace FILE or --generator"),
    };
    let (mut sent, mut skipped) = (0u64, 0u64);
    let limit = args.limit.unwrap_or(u64::MAX);
    'outer: loop {
        let batch = source.poll(4096)?;
        for record in batch.records {
            match record {
                Ok(event) => {
                    destination.send(&event)?;
                    sent += 1;
                    if sent >= limit {
                        break 'outer;
                    }
                }
                Err(letter) => {
                    skipped += 1;
                    tracing::warn!(origin = %letter.origin, reason = %letter.reason, "not sent");
                }
            }
        }
        if batch.finished {
            break;
        }
    }
    destination.finish()?;
    eprintln!(
        "shardcast: sent {sent} events to {} ({skipped} unreadable records not sent)",
        args.to
    );
    Ok(())
}
