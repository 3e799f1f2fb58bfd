//! The `loadgen` command line: parses flags into a [`loadgen::Config`], runs the load, prints
//! the report (human or `--json`) and exits 0 only when the run passed. `loadgen ping` measures
//! the HTTP floor against any handler. The project's own test bench (benchmark, chaos, scale)
//! is the separate `lab` binary.
//!
//! Exit codes: 0 passed (and verified, unless `--no-verify`); 1 the run had errors or a check
//! failed; 2 the run could not take place (bad flags, service unreachable for the baseline, a
//! token missing or refused).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadgen::auth::{Secret, Tokens};
use loadgen::measure::Measurement;
use loadgen::ping::PingConfig;
use loadgen::tls::TlsOptions;
use loadgen::{Config, Mode, Protocol};

/// At-least-once load generator and verifier for the edge log aggregator.
///
/// Without a subcommand: one load run against --url (http or https, with a path prefix if the
/// service is mounted under one). Verification compares /stats before and after the run, so it
/// is exact only when nothing else writes to the service during the run.
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
    /// The HTTP floor: post the same bodies to any URL once each, expect 200, no verification.
    Ping(PingArgs),
}

/// Where the service is and how to reach it.
#[derive(Debug, clap::Args)]
struct Target {
    /// Base URL of the service: http:// or https://, optionally with a path prefix
    /// (https://host/prefix → https://host/prefix/publish).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Bearer token for POST /publish and /publish/batch.
    #[arg(long, env = "EDGELOG_PUBLISH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Trust only the CA certificates in this PEM file (default: the system's CAs).
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Accept any server certificate: for self-signed test setups only.
    #[arg(long, conflicts_with = "ca_cert")]
    insecure: bool,
    /// Seconds before one HTTP attempt counts as timed out (and is retried).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,
}

impl Target {
    fn tls(&self) -> TlsOptions {
        TlsOptions {
            ca_cert: self.ca_cert.clone(),
            insecure: self.insecure,
        }
    }
}

/// How the load is shaped, shared by the run and `ping`.
#[derive(Debug, clap::Args)]
struct Load {
    /// Fraction of the events that are exact replays of earlier ones, in [0, 1).
    #[arg(long, default_value_t = 0.35)]
    duplicate_rate: f64,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Concurrent workers (keep-alive connections; with --rate, the most requests in flight).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Number of topics (`<run-id>.t<k>`).
    #[arg(long, default_value_t = 8)]
    topics: u32,
    /// Publish route(s): batch → /publish/batch, single → /publish, mixed → seeded coin.
    #[arg(long, value_enum, default_value_t = Mode::Batch)]
    mode: Mode,
    /// Seed of the plan; random (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct PingArgs {
    #[command(flatten)]
    target: Target,
    /// Total events, replays included.
    #[arg(long, default_value_t = 25_000)]
    events: u64,
    #[command(flatten)]
    load: Load,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    target: Target,
    /// Bearer token for the verification reads (GET /stats, /events); an admin token also
    /// lets loadgen call POST /drain.
    #[arg(long, env = "EDGELOG_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// Total events to send, replays included (retries come on top) [default: 25000, or no
    /// limit with --duration].
    #[arg(long)]
    events: Option<u64>,
    /// Stop after this many seconds: no new request starts (with --rate: none is scheduled)
    /// at or after it; in-flight ones finish.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Open loop: send this many events per second on a fixed schedule and count latency from
    /// each request's intended send time (without it, each worker sends when answered).
    #[arg(long, value_name = "EVENTS_PER_SEC")]
    rate: Option<f64>,
    #[command(flatten)]
    load: Load,
    /// How requests are encoded, and so which ingest route they go to (--mode single sends
    /// one-record requests in any of them).
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    protocol: Protocol,
    /// Compress every request body with gzip (Content-Encoding: gzip).
    #[arg(long)]
    gzip: bool,
    /// Skip the /stats and read-back checks.
    #[arg(long)]
    no_verify: bool,
    /// Topic prefix; random by default so runs never collide with stored data.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// Attempts per request, first one included, on timeouts, connection errors and 5xx
    /// (never on 4xx: a 401 or 403 stops the run).
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// Do not resend a request once after a 202 (by default loadgen does, like a cautious
    /// client, which adds duplicates).
    #[arg(long)]
    no_resend_queued: bool,
    /// Acknowledged events to read back through GET /events (a seeded sample of the whole run).
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
        let events = match (self.events, duration) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(25_000),
        };
        let config = Config {
            tls: self.target.tls(),
            tokens: Tokens {
                publish: self.target.token.and_then(Secret::new),
                read: self.read_token.and_then(Secret::new),
            },
            url: self.target.url,
            events,
            rate: self.rate,
            duplicate_rate: self.load.duplicate_rate,
            batch_size: self.load.batch_size,
            concurrency: self.load.concurrency,
            topics: self.load.topics,
            mode: self.load.mode,
            protocol: self.protocol,
            gzip: self.gzip,
            duration,
            seed: self.load.seed,
            verify: !self.no_verify,
            run_id: self.run_id,
            request_timeout: seconds("--timeout", self.target.timeout)?,
            max_attempts: self.max_attempts,
            resend_queued: !self.no_resend_queued,
            progress: std::io::stderr().is_terminal(),
            sample: self.sample,
            ..Config::default()
        };
        Ok((config, self.load.json))
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

fn ping_main(a: PingArgs) -> ExitCode {
    let timeout = match seconds("--timeout", a.target.timeout) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("loadgen ping: {e}");
            return ExitCode::from(2);
        }
    };
    let config = PingConfig {
        tls: a.target.tls(),
        token: a.target.token.and_then(Secret::new),
        url: a.target.url,
        shape: loadgen::plan::Shape {
            events: a.events,
            duplicate_rate: a.load.duplicate_rate,
            batch_size: a.load.batch_size,
            concurrency: a.load.concurrency,
            topics: a.load.topics,
            mode: a.load.mode,
            seed: a.load.seed,
        },
        request_timeout: timeout,
    };
    match loadgen::ping::ping(&config) {
        Ok(m) => print_measurement(&m, a.load.json),
        Err(e) => {
            eprintln!("loadgen ping: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Sub::Ping(a)) => return ping_main(a),
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
