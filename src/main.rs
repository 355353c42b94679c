//! `shardcast`: predict where data will be wanted and act before the load arrives.

mod bench;
mod collector;
mod migration;
mod produce;
mod replay;
mod routing;
mod run;
mod tables;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// shardcast: a stream processor that computes placement and prefetch decisions (loads, affinities,
/// partitions, forecasts, next-access predictions) from access events and serves them as changelogs and SQL.
#[derive(Parser, Debug)]
#[command(name = "shardcast", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pipeline (with no flags: the embedded default on the generator, SQL on 127.0.0.1:5433).
    Run(run::RunArgs),
    /// Write events to a Kafka topic, from a trace file or the generator.
    Produce(produce::ProduceArgs),
    /// Run a SQL query against a running job.
    Sql {
        /// The query, e.g. "SELECT customer, partition FROM assignments ORDER BY 1 LIMIT 5".
        query: String,
        /// The job's SQL address (its `--sql-listen`).
        #[arg(long, default_value = "127.0.0.1:5433")]
        addr: String,
    },
    /// Replay a trace: LRU, LRU + shardcast's prefetches and Belady on the same cache, prefetch accuracy,
    /// coverage and timeliness, and forecast WAPE/MASE.
    Replay(replay::ReplayArgs),
    /// Measure events/s of the pipeline against a bare differential count on the same events.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,shardcast=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Produce(args) => produce::produce(args),
        Command::Sql { query, addr } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let text = runtime.block_on(shardcast_queries::run_remote_query(&addr, &query))?;
            print!("{text}");
            Ok(())
        }
        Command::Replay(args) => replay::replay(args),
        Command::Bench(args) => bench::bench(args),
    }
}

/// A config path given on the command line.
pub type ConfigPath = Option<PathBuf>;
