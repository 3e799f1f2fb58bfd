//! The `loadgen` command line: parses flags into a [`loadgen::Config`], runs the load, prints
//! the report (human or `--json`) and exits 0 only when the run passed. Subcommands: `raw` (the
//! database's own insert limit), `ping` (the HTTP floor against any handler), `bench` (all of
//! it, compared in one table), `slow-clients`, `chaos` (the chaos harness) and `scale` (reads at 10 million events).
//!
//! Exit codes: 0 passed (and verified, unless `--no-verify`); 1 the run had errors or a check
//! failed; 2 the run could not take place (bad flags, service unreachable for the baseline).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::bench::BenchConfig;
use loadgen::measure::Measurement;
use loadgen::ping::PingConfig;
use loadgen::raw::{Database, RawConfig, Statement};
use loadgen::{Config, Mode};

mod scale;
mod slow;

/// At-least-once load generator and verifier for the edge log aggregator.
///
/// Without a subcommand: one load run against --url. Verification compares /stats before and
/// after the run, so it is exact only when nothing else writes to the service during the run.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// The limit: insert the same rows straight into the database from a native client (no
    /// HTTP, no Wasm, no queue), same schema, same INSERT … ON CONFLICT statement shape.
    Raw(RawArgs),
    /// The HTTP floor: post the same bodies to any URL once each, expect 200, no verification.
    Ping(PingArgs),
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
struct PingArgs {
    /// Base URL of the handler.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Seconds before one request counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
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
    #[arg(long, default_value = "loadgen/fixtures/hello/spin.toml")]
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

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Base URL of the service (plain http).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Total events to send, replays included (retries come on top).
    #[arg(long, default_value_t = 25_000)]
    events: u64,
    /// Fraction of the events that are exact replays of earlier ones, in [0, 1).
    #[arg(long, default_value_t = 0.35)]
    duplicate_rate: f64,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent workers (keep-alive connections).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Number of topics (`<run-id>.t<k>`).
    #[arg(long, default_value_t = 8)]
    topics: u32,
    /// Publish route(s): batch → /publish/batch, single → /publish, mixed → seeded coin.
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    mode: Mode,
    /// Stop issuing new requests after this many seconds (in-flight ones finish).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Seed of the plan; random (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Skip the /stats and read-back checks.
    #[arg(long)]
    no_verify: bool,
    /// Topic prefix; random by default so runs never collide with stored data.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// Seconds before one HTTP attempt counts as timed out (and is retried).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
    /// Attempts per request, first one included, on timeouts, connection errors and 5xx.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// Do not resend a request once after a 202 (by default loadgen does, like a cautious
    /// client, which adds duplicates).
    #[arg(long)]
    no_resend_queued: bool,
    /// Acknowledged events to read back through GET /events.
    #[arg(long, default_value_t = 20)]
    sample: usize,
}

fn seconds(flag: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag} must be a positive number of seconds, got {v}"))
}

impl RunArgs {
    fn into_config(self) -> Result<(Config, bool), String> {
        let duration = match self.duration {
            Some(d) => Some(seconds("--duration", d)?),
            None => None,
        };
        let config = Config {
            url: self.url,
            events: self.events,
            duplicate_rate: self.duplicate_rate,
            batch_size: self.batch_size,
            concurrency: self.concurrency,
            topics: self.topics,
            mode: self.mode,
            duration,
            seed: self.seed,
            verify: !self.no_verify,
            run_id: self.run_id,
            request_timeout: seconds("--timeout", self.timeout)?,
            max_attempts: self.max_attempts,
            resend_queued: !self.no_resend_queued,
            progress: std::io::stderr().is_terminal(),
            sample: self.sample,
            ..Config::default()
        };
        Ok((config, self.json))
    }
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
            eprintln!("loadgen raw: {e}");
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
    match loadgen::raw::raw(&config) {
        Ok(m) => print_measurement(&m, a.shape.json),
        Err(e) => {
            eprintln!("loadgen raw: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn ping_main(a: PingArgs) -> ExitCode {
    let timeout = match seconds("--timeout", a.timeout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen ping: {e}");
            return ExitCode::from(2);
        }
    };
    let config = PingConfig {
        url: a.url,
        shape: a.shape.to_shape(),
        request_timeout: timeout,
    };
    match loadgen::ping::ping(&config) {
        Ok(m) => print_measurement(&m, a.shape.json),
        Err(e) => {
            eprintln!("loadgen ping: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn bench_main(a: BenchArgs) -> ExitCode {
    let timeout = match seconds("--timeout", a.timeout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen bench: {e}");
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
    };
    match loadgen::bench::bench(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen bench: FAILED (see the table)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("loadgen bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn chaos_main(a: ChaosArgs) -> ExitCode {
    if !a.seconds.is_finite() || a.seconds <= 0.0 || a.hosts == 0 || a.concurrency == 0 {
        eprintln!("loadgen chaos: --seconds, --hosts and --concurrency must be positive");
        return ExitCode::from(2);
    }
    let config = loadgen::chaos::ChaosConfig {
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
    match loadgen::chaos::chaos(&config) {
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
                eprintln!("loadgen chaos: FAILED (see the table)");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("loadgen chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Sub::Raw(a)) => return raw_main(a),
        Some(Sub::Ping(a)) => return ping_main(a),
        Some(Sub::Bench(a)) => return bench_main(a),
        Some(Sub::SlowClients(a)) => return slow::main(a),
        Some(Sub::Chaos(a)) => return chaos_main(a),
        Some(Sub::Scale(a)) => return scale::main(a),
        None => {}
    }
    let (config, json) = match cli.run.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match loadgen::run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            return ExitCode::from(2);
        }
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_human());
    }
    if report.passed() {
        let line = report
            .verified_line()
            .unwrap_or_else(|| "passed (not verified: --no-verify)".into());
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        ExitCode::SUCCESS
    } else {
        eprintln!("FAILED:");
        for l in report.failure_lines() {
            eprintln!("  - {l}");
        }
        ExitCode::from(1)
    }
}
