//! The `lab` command line: edgelog's test bench (the user's tool is `loadgen`). Subcommands:
//! `bench` (the whole benchmark in one table), `chaos` (the chaos harness), `scale` (reads at 10
//! million events), `slow-clients` (publish latency while connections dribble), `raw` (the
//! database's own insert limit) and `ingest-bench` (the ingest protocols against native JSON).
//!
//! Exit codes: 0 passed; 1 a run failed its checks; 2 the run could not take place (bad flags,
//! a service or database that could not be set up).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use lab::bench::BenchConfig;
use lab::raw::{Database, RawConfig, Statement};
use loadgen::Mode;
use loadgen::measure::Measurement;

mod scale;
mod slow;

/// edgelog's test bench: benchmark, chaos harness, scale and slow-client checks, raw limits.
///
/// The load generator users run against their edge URL is `loadgen`; this binary holds what
/// the project measures itself with.
#[derive(Debug, Parser)]
#[command(name = "lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// The limit: insert the same rows straight into the database from a native client (no
    /// HTTP, no Wasm, no queue), same schema, same INSERT … ON CONFLICT statement shape.
    Raw(RawArgs),
    /// The whole benchmark: edgelog on SQLite and on PostgreSQL + Redis (verified), the raw
    /// limits and the host's floor, in one markdown table (see scripts/bench.sh).
    Bench(BenchArgs),
    /// Normal publish latency while many connections dribble request bodies (baseline first,
    /// same run): the slow-client check of edge-host's admission limits.
    SlowClients(slow::SlowArgs),
    /// The chaos harness: SIGKILL loops under at-least-once load (SQLite; PostgreSQL + Redis
    /// with several hosts), a Redis blip, a backlog drain and hostile input, then everything
    /// read back; one table, exit 1 when anything was lost, stored twice or answered 5xx.
    Chaos(ChaosArgs),
    /// Reads at scale (issue 10): the six requests on an empty store and after bulk-loading
    /// `--events` (10 million) events, on PostgreSQL + Redis and SQLite; see scripts/scale-bench.sh.
    Scale(scale::ScaleArgs),
    /// Ingest protocols (OTLP, Loki, NDJSON, gzip) against native JSON on PostgreSQL + Redis:
    /// events/s and edge-host CPU per event, alternating rounds (see scripts/ingest-bench.sh).
    IngestBench(lab::bench::ingest::IngestArgs),
}

/// Shape of the generated events, shared by the subcommands.
#[derive(Debug, clap::Args)]
struct Shape {
    /// Total events, replays included.
    #[arg(long, default_value_t = 25_000)]
    events: u64,
    /// Fraction of the events that are exact replays of earlier ones, in [0, 1).
    #[arg(long, default_value_t = 0.35)]
    duplicate_rate: f64,
    /// Events per batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Number of topics.
    #[arg(long, default_value_t = 8)]
    topics: u32,
    /// batch: one transaction/request per batch; single: one per event.
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    mode: Mode,
    /// Seed of the plan; random when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl Shape {
    /// The library's shape of these flags.
    fn to_shape(&self) -> loadgen::plan::Shape {
        loadgen::plan::Shape {
            events: self.events,
            duplicate_rate: self.duplicate_rate,
            batch_size: self.batch_size,
            concurrency: self.concurrency,
            topics: self.topics,
            mode: self.mode,
            seed: self.seed,
        }
    }
}

#[derive(Debug, clap::Args)]
struct RawArgs {
    /// postgres://user@host:port/database (must exist) or sqlite:PATH.
    #[arg(long)]
    database_url: String,
    /// plain: only the event insert (the limit); service: the service's own per-entry
    /// transaction, exactly-once marker included.
    #[arg(long, value_enum, default_value_t = Statement::Plain)]
    statement: Statement,
    /// Do not apply the service's schema (migrations/) first.
    #[arg(long)]
    no_migrate: bool,
    #[command(flatten)]
    shape: Shape,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The edge-host binary.
    #[arg(long, default_value = "target/release/edge-host")]
    host: PathBuf,
    /// The edgelog manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// The trivial component's manifest.
    #[arg(long, default_value = "lab/fixtures/hello/spin.toml")]
    hello_manifest: PathBuf,
    /// The trivial component (for `wasmtime serve`).
    #[arg(
        long,
        default_value = "target/bench-hello/wasm32-wasip2/release/bench_hello.wasm"
    )]
    hello_wasm: PathBuf,
    /// Events per batch-mode run (a few seconds each; fewer makes start-up effects show).
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per single-event run.
    #[arg(long, default_value_t = 20_000)]
    single_events: u64,
    /// Events per batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent connections of every run.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Number of topics.
    #[arg(long, default_value_t = 8)]
    topics: u32,
    /// Fraction of replays.
    #[arg(long, default_value_t = 0.35)]
    duplicate_rate: f64,
    /// Seed of every plan; random (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    servers: Servers,
    /// Redis database number the benchmark owns (FLUSHDB before and after).
    #[arg(long, default_value_t = 15)]
    redis_db: u32,
    /// Directory for state, logs and results.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Seconds before one service request counts as timed out.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
    /// Async 20-event publishes of the backlog phase, drained with POST /drain (0 skips it).
    #[arg(long, default_value_t = 25_000)]
    backlog_publishes: u64,
    /// Run one phase alone: `backlog` (the drains, 1 caller and parallel lanes, beside the raw
    /// plain batched insert of each store) or `single-postgres` (single publishes on PostgreSQL
    /// with edge-host's statement cache and with Spin-like statements, beside the raw service
    /// statement).
    #[arg(long, value_enum)]
    only: Option<lab::bench::Only>,
}

/// The PostgreSQL and Redis servers `bench` and `chaos` set their own databases up on.
#[derive(Debug, clap::Args)]
struct Servers {
    /// PostgreSQL server, without a database: a database is created for the run and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Skip the PostgreSQL + Redis part.
    #[arg(long)]
    no_postgres: bool,
    /// Redis server, without a database number.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
}

#[derive(Debug, clap::Args)]
struct ChaosArgs {
    /// Seconds of load, all scenarios together (set-up, drains and read-back come on top).
    #[arg(long, default_value_t = 120.0)]
    seconds: f64,
    /// The edge-host binary.
    #[arg(long, default_value = "target/release/edge-host")]
    host: PathBuf,
    /// The edgelog manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    #[command(flatten)]
    servers: Servers,
    /// Redis database number the harness owns (FLUSHDB before and after).
    #[arg(long, default_value_t = 14)]
    redis_db: u32,
    /// edge-host processes sharing PostgreSQL + Redis.
    #[arg(long, default_value_t = 3)]
    hosts: usize,
    /// Concurrent publishing workers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seed of plans and kill timings; random (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Directory for state and logs.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn seconds(flag: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag} must be a positive number of seconds, got {v}"))
}

fn print_measurement(m: &Measurement, json: bool) -> ExitCode {
    if json {
        println!("{}", m.to_json());
    } else {
        print!("{}", m.render_human());
    }
    if m.passed {
        ExitCode::SUCCESS
    } else {
        eprintln!("FAILED:");
        for e in &m.errors {
            eprintln!("  - {e}");
        }
        ExitCode::from(1)
    }
}

fn raw_main(a: RawArgs) -> ExitCode {
    let database = match Database::parse(&a.database_url) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lab raw: {e}");
            return ExitCode::from(2);
        }
    };
    let config = RawConfig {
        database,
        shape: a.shape.to_shape(),
        statement: a.statement,
        run_id: None,
        migrate: !a.no_migrate,
    };
    match lab::raw::raw(&config) {
        Ok(m) => print_measurement(&m, a.shape.json),
        Err(e) => {
            eprintln!("lab raw: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn bench_main(a: BenchArgs) -> ExitCode {
    let timeout = match seconds("--timeout", a.timeout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("lab bench: {e}");
            return ExitCode::from(2);
        }
    };
    let config = BenchConfig {
        host: a.host,
        manifest: a.manifest,
        hello_manifest: a.hello_manifest,
        hello_wasm: a.hello_wasm,
        events: a.events,
        single_events: a.single_events,
        batch_size: a.batch_size,
        concurrency: a.concurrency,
        topics: a.topics,
        duplicate_rate: a.duplicate_rate,
        seed: a.seed,
        postgres: (!a.servers.no_postgres).then_some(a.servers.postgres),
        redis: a.servers.redis,
        redis_db: a.redis_db,
        out: a.out,
        request_timeout: timeout,
        backlog_publishes: a.backlog_publishes,
        only: a.only,
    };
    match lab::bench::bench(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("lab bench: FAILED (see the table)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("lab bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn chaos_main(a: ChaosArgs) -> ExitCode {
    if !a.seconds.is_finite() || a.seconds <= 0.0 || a.hosts == 0 || a.concurrency == 0 {
        eprintln!("lab chaos: --seconds, --hosts and --concurrency must be positive");
        return ExitCode::from(2);
    }
    let config = lab::chaos::ChaosConfig {
        host: a.host,
        manifest: a.manifest,
        seconds: a.seconds,
        postgres: (!a.servers.no_postgres).then_some(a.servers.postgres),
        redis: a.servers.redis,
        redis_db: a.redis_db,
        hosts: a.hosts,
        concurrency: a.concurrency,
        out: a.out,
        seed: a.seed,
        ..Default::default()
    };
    match lab::chaos::chaos(&config) {
        Ok(report) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serializes")
                );
            } else {
                print!("{}", report.render());
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                eprintln!("lab chaos: FAILED (see the table)");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("lab chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Sub::Raw(a) => raw_main(a),
        Sub::Bench(a) => bench_main(a),
        Sub::SlowClients(a) => slow::main(a),
        Sub::Chaos(a) => chaos_main(a),
        Sub::Scale(a) => scale::main(a),
        Sub::IngestBench(a) => lab::bench::ingest::main(a),
    }
}
