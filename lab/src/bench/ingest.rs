//! `lab ingest-bench`: what each ingest protocol costs against edgelog's own JSON, on
//! PostgreSQL + Redis (issue 15).
//!
//! One release edge-host with the real component on a database created for the run (dropped
//! after) and a Redis database number of its own (flushed before and after). After a warm-up,
//! every round runs each variant (a protocol, with or without gzip) once with the same plan
//! (same seed, event count, batch size and concurrency; verification on), starting each round at
//! the next variant so no protocol always runs first. Around each sending phase it samples
//! edge-host's and PostgreSQL's CPU time from `/proc`. The table gives events/s, the ratio to
//! native in the same round, edge-host CPU seconds per 1,000 events and the difference to
//! native in µs per event: the decode cost per record.
//! Exit status: 0 when every run verified and OTLP protobuf reached `--target` × native, 1 when
//! not, 2 when the benchmark could not be set up.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use loadgen::plan::{Generator, PlanParams};
use loadgen::{Config, Mode, Protocol, protocol};
use serde_json::json;

use super::cpu::{Usage, sample, usage_between};
use super::services::{Cleanup, HostProc, host_port, pg_admin, redis_flush, service_db_url};
use super::{fresh_dir, say_as};

/// The command line of `lab ingest-bench`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The edge-host binary (a release build: scripts/ingest-bench.sh builds it).
    #[arg(long, default_value = "target/release/edge-host")]
    host: PathBuf,
    /// The edgelog manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Events per run, replays included.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Rounds: each runs every variant once.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Records per request.
    #[arg(long, default_value_t = 512)]
    batch_size: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Topics (OTLP resources, Loki streams) per run.
    #[arg(long, default_value_t = 8)]
    topics: u32,
    /// Fraction of replays.
    #[arg(long, default_value_t = 0.35)]
    duplicate_rate: f64,
    /// Variants, comma-separated: a protocol, `+gzip` for compressed bodies.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "native,otlp-proto,otlp-proto+gzip,otlp-json,loki,loki-json,ndjson,native+gzip"
    )]
    variants: Vec<String>,
    /// The ratio otlp-proto must reach against native.
    #[arg(long, default_value_t = 0.8)]
    target: f64,
    /// Seed of the plans; random (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// PostgreSQL server, without a database: one is created for the run and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Redis server, without a database number.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Redis database number the benchmark owns (FLUSHDB before and after; 13-15 are the
    /// other benchmarks').
    #[arg(long, default_value_t = 12)]
    redis_db: u32,
    /// Directory for state, logs and results.
    #[arg(long, default_value = "target/ingest-bench")]
    out: PathBuf,
}

/// One variant's runs.
struct Runs {
    protocol: Protocol,
    gzip: bool,
    /// `(events/s, usage, events sent)` per round.
    rounds: Vec<(f64, Usage, u64)>,
    /// Request body bytes per event (the plan's first request).
    bytes_per_event: f64,
    failures: Vec<String>,
}

impl Runs {
    fn name(&self) -> String {
        let p = self
            .protocol
            .to_possible_value()
            .expect("no skipped values");
        format!("{}{}", p.get_name(), if self.gzip { "+gzip" } else { "" })
    }

    fn per_event(&self, f: impl Fn(&Usage) -> f64) -> f64 {
        let events: u64 = self.rounds.iter().map(|r| r.2).sum();
        self.rounds.iter().map(|r| f(&r.1)).sum::<f64>() / events.max(1) as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn say(msg: &str) {
    say_as("ingest-bench", msg);
}

fn parse_variant(s: &str) -> Result<(Protocol, bool)> {
    let (name, gzip) = match s.trim().strip_suffix("+gzip") {
        Some(n) => (n, true),
        None => (s.trim(), false),
    };
    let p = Protocol::from_str(name, true)
        .map_err(|_| anyhow::anyhow!("unknown variant {s:?} (a --protocol of loadgen, +gzip)"))?;
    Ok((p, gzip))
}

/// Runs `lab ingest-bench`.
pub fn main(a: IngestArgs) -> ExitCode {
    match run(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("lab ingest-bench: FAILED (see the table)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("lab ingest-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(a: &IngestArgs) -> Result<bool> {
    let mut variants = Vec::new();
    for v in &a.variants {
        let (protocol, gzip) = parse_variant(v)?;
        variants.push(Runs {
            protocol,
            gzip,
            rounds: Vec::new(),
            bytes_per_event: 0.0,
            failures: Vec::new(),
        });
    }
    if variants.first().map(|v| (v.protocol, v.gzip)) != Some((Protocol::Native, false)) {
        bail!("the first variant must be native (the baseline)");
    }
    if !a.host.exists() {
        bail!(
            "{} does not exist: build it (scripts/ingest-bench.sh)",
            a.host.display()
        );
    }
    std::fs::create_dir_all(&a.out)?;
    let out = a.out.canonicalize()?;
    let seed = a
        .seed
        .unwrap_or_else(|| rand::RngExt::random(&mut rand::rng()));
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let server = a.postgres.trim_end_matches('/');
    let db = format!("edgelog_ingest_{}", std::process::id());
    let mut cleanup = Cleanup::default();
    let started = Instant::now();
    let result = (|| -> Result<()> {
        rt.block_on(pg_admin(server, &format!("CREATE DATABASE {db}")))?;
        cleanup.databases.push((server.to_string(), db.clone()));
        redis_flush(&a.redis, a.redis_db)?;
        cleanup.redis = Some((a.redis.clone(), a.redis_db));
        let rc = out.join("runtime-config.toml");
        std::fs::write(
            &rc,
            format!(
                "# Written by lab ingest-bench.\n[key_value_store.default]\ntype = \"redis\"\n\
                 url = \"{}/{}\"\n",
                a.redis.trim_end_matches('/'),
                a.redis_db
            ),
        )?;
        let env = [
            ("SPIN_VARIABLE_STORE", "postgres".to_string()),
            ("SPIN_VARIABLE_DATABASE_URL", service_db_url(server, &db)),
            ("SPIN_VARIABLE_DB_HOST", host_port(server)),
        ];
        let state = fresh_dir(&out.join("state"))?;
        let host = HostProc::start(
            &a.host,
            &a.manifest,
            "127.0.0.1:0",
            &state,
            Some(&rc),
            &env,
            &out.join("edge-host.log"),
        )?;
        let config = |protocol, gzip, events, seed| Config {
            url: host.url.clone(),
            events: Some(events),
            duplicate_rate: a.duplicate_rate,
            batch_size: a.batch_size,
            concurrency: a.concurrency,
            topics: a.topics,
            mode: Mode::Batch,
            protocol,
            gzip,
            seed: Some(seed),
            request_timeout: Duration::from_secs(30),
            ..Config::default()
        };
        say(&format!(
            "seed {seed}; {} events per run, batch {}, concurrency {}, {} rounds; warming up",
            a.events, a.batch_size, a.concurrency, a.rounds
        ));
        for protocol in [Protocol::Native, Protocol::OtlpProto] {
            let warm = rt.block_on(loadgen::run_async(&config(
                protocol,
                false,
                a.events.min(20_000),
                seed,
            )))?;
            if !warm.passed() {
                bail!("the warm-up failed: {}", warm.failure_lines().join("; "));
            }
        }
        for v in variants.iter_mut() {
            let p = PlanParams {
                run_id: "bytes".into(),
                events: Some(a.events),
                duplicate_rate: a.duplicate_rate,
                batch_size: a.batch_size,
                topics: a.topics,
                mode: Mode::Batch,
                seed,
                base_time: chrono::Utc::now(),
            };
            let mut plan = Generator::new(&p);
            let first = plan.next().expect("a plan has a request");
            let body = protocol::encode(plan.events(), &first, v.protocol, v.gzip).body;
            v.bytes_per_event = body.len() as f64 / first.events.len() as f64;
        }
        let n = variants.len();
        for round in 0..a.rounds as usize {
            for k in 0..n {
                let v = &mut variants[(round + k) % n];
                let cfg = config(
                    v.protocol,
                    v.gzip,
                    a.events,
                    seed.wrapping_add(round as u64),
                );
                let pid = Some(host.pid());
                let mut samples = Vec::with_capacity(2);
                let report = rt.block_on(loadgen::run::run_with_probe(&cfg, &mut |_| {
                    samples.push((sample(pid), Instant::now()));
                }))?;
                let usage = match samples.as_slice() {
                    [(s0, t0), (s1, t1)] => usage_between(s0, s1, t1.duration_since(*t0)),
                    _ => Usage::default(),
                };
                let name = v.name();
                say(&format!(
                    "round {} {name}: {:.0} events/s, edge-host {:.1} CPU s, {}",
                    round + 1,
                    report.events_per_sec,
                    usage.host_cpu_secs,
                    if report.passed() {
                        "verified"
                    } else {
                        "FAILED"
                    }
                ));
                if !report.passed() {
                    v.failures.extend(report.failure_lines());
                }
                v.rounds
                    .push((report.events_per_sec, usage, report.events_sent));
            }
        }
        host.stop()?;
        Ok(())
    })();
    cleanup.run(&rt);
    result?;

    let (markdown, met) = render(a, seed, &variants, started.elapsed());
    print!("{markdown}");
    std::fs::write(out.join("results.md"), &markdown)?;
    let rows: Vec<_> = variants
        .iter()
        .map(|v| {
            let cpu = |f: fn(&Usage) -> f64| v.rounds.iter().map(|r| f(&r.1)).collect::<Vec<_>>();
            json!({
                "variant": v.name(),
                "events_per_sec": v.rounds.iter().map(|r| r.0).collect::<Vec<_>>(),
                "host_cpu_secs": cpu(|u| u.host_cpu_secs),
                "postgres_cpu_secs": cpu(|u| u.postgres_cpu_secs),
                "loadgen_cpu_secs": cpu(|u| u.client_cpu_secs),
                "events": v.rounds.iter().map(|r| r.2).collect::<Vec<_>>(),
                "bytes_per_event": v.bytes_per_event,
                "failures": v.failures,
            })
        })
        .collect();
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json!({"seed": seed, "events": a.events,
            "batch_size": a.batch_size, "concurrency": a.concurrency, "rows": rows}))?,
    )?;
    Ok(met && variants.iter().all(|v| v.failures.is_empty()))
}

/// The markdown table, and whether otlp-proto met the target.
fn render(a: &IngestArgs, seed: u64, variants: &[Runs], took: Duration) -> (String, bool) {
    let native = &variants[0];
    let native_cpu = native.per_event(|u| u.host_cpu_secs);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n| variant | events/s (median) | events/s per round | ratio to native (median of \
         rounds) | body bytes/event | edge-host CPU s / 1k events | vs native, µs/event | \
         PostgreSQL CPU s / 1k events | loadgen CPU s / 1k events | verified |\n| --- | ---: | \
         --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    let mut met = false;
    for v in variants {
        let eps: Vec<f64> = v.rounds.iter().map(|r| r.0).collect();
        let ratios: Vec<f64> = v
            .rounds
            .iter()
            .zip(&native.rounds)
            .map(|(r, n)| r.0 / n.0)
            .collect();
        let ratio = median(ratios);
        if v.protocol == Protocol::OtlpProto && !v.gzip {
            met = ratio >= a.target;
        }
        let cpu = v.per_event(|u| u.host_cpu_secs);
        let per_round: Vec<String> = eps.iter().map(|e| format!("{e:.0}")).collect();
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {:.2} | {:.0} | {:.3} | {:+.1} | {:.3} | {:.3} | {} |",
            v.name(),
            median(eps),
            per_round.join(", "),
            ratio,
            v.bytes_per_event,
            cpu * 1000.0,
            (cpu - native_cpu) * 1e6,
            v.per_event(|u| u.postgres_cpu_secs) * 1000.0,
            v.per_event(|u| u.client_cpu_secs) * 1000.0,
            if v.failures.is_empty() {
                "yes"
            } else {
                "**no**"
            },
        );
    }
    let _ = writeln!(
        s,
        "\nseed {seed}; {} events per run ({:.0}% replays), batch {}, concurrency {}, {} rounds, \
         {} topics; took {:.0} s. Target: otlp-proto ≥ {:.2} × native: **{}**.",
        a.events,
        a.duplicate_rate * 100.0,
        a.batch_size,
        a.concurrency,
        a.rounds,
        a.topics,
        took.as_secs_f64(),
        a.target,
        if met { "met" } else { "missed" }
    );
    (s, met)
}
