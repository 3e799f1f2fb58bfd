//! `lab bench`: the whole benchmark in one run on one machine, every figure beside the raw
//! limit of the same database measured in the same run.
//!
//! 1. edgelog on edge-host with the default stores (SQLite queue and SQLite events): a verified
//!    batch run and a verified single-event run; then the backlog phase (`backlog.rs`): async
//!    20-event publishes, drained with `POST /drain` in a loop.
//! 2. The raw SQLite limit (`lab raw`): the same rows straight into a fresh file with the
//!    service's schema, with the bare insert (`plain`) and with the service's own statements.
//! 3. The same two steps on PostgreSQL (a database created for the run) with the queue in Redis
//!    (a database number of its own, flushed before and after); then the single run again on
//!    a database of its own with edge-host `--postgres-statements spin`, statements prepared
//!    on every call as on Spin 4.0.2: the component's figures without edge-host's statement
//!    cache (issue 17 item 3).
//! 4. The host's own floor: the same bodies posted to a trivial component
//!    (`lab/fixtures/hello`) on edge-host, and on `wasmtime serve` when it is installed.
//!
//! `--only backlog` ([`Only::Backlog`]) runs the backlog phase alone on both stores, beside the
//! one raw figure its ratio needs (the plain batched insert); a few minutes instead of the whole.
//! `--only single-postgres` ([`Only::SinglePostgres`]) runs the PostgreSQL single publishes
//! alone: edge-host's statement cache, Spin-like statements, and the raw service statement.
//!
//! Around every measurement it samples CPU time (machine, edge-host, this process, PostgreSQL,
//! Redis) from `/proc`, and afterwards reads edge-host's per-request log lines, so the report
//! can say where the time went. It prints a markdown table and writes everything as JSON.
//! Exit status: 0 when every run passed its checks, 1 when one failed (a service run failing
//! verification included), 2 when the benchmark could not be set up.

mod backlog;
mod cpu;
/// `lab ingest-bench`: the ingest protocols against native JSON on PostgreSQL + Redis.
pub mod ingest;
mod report;
mod runs;
/// Child processes and database administration, shared with `lab chaos`.
pub mod services;
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::raw::Database;
use backlog::backlog_runs;
use loadgen::config::Mode;
use report::{Kind, Row, attach_host_times, machine_line, render_markdown};
use runs::{
    SPIN_STATEMENTS, hello_one_at_a_time_run, hello_runs, raw_runs, service_runs,
    spin_statements_run,
};
use services::{
    Cleanup, HostProc, WasmtimeServe, host_port, pg_admin, redis_flush, service_db_url, which,
};

/// `--listen` address meaning "a free port" (the banner says which).
const ANY_PORT: &str = "127.0.0.1:0";

/// Everything the benchmark needs; paths may be relative to the current directory.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The `edge-host` binary.
    pub host: PathBuf,
    /// The edgelog manifest.
    pub manifest: PathBuf,
    /// The hello fixture's manifest.
    pub hello_manifest: PathBuf,
    /// The hello fixture's component, for `wasmtime serve`.
    pub hello_wasm: PathBuf,
    /// Events per batch-mode run.
    pub events: u64,
    /// Events per single-mode run.
    pub single_events: u64,
    /// Events per batch.
    pub batch_size: usize,
    /// Concurrent connections of every run.
    pub concurrency: usize,
    /// Topics.
    pub topics: u32,
    /// Replay fraction.
    pub duplicate_rate: f64,
    /// Seed of every plan; random when absent.
    pub seed: Option<u64>,
    /// PostgreSQL server (`postgres://user@host:port`, no database); `None` skips PostgreSQL.
    pub postgres: Option<String>,
    /// Redis server (`redis://host:port`, no database number).
    pub redis: String,
    /// Redis database number the benchmark owns (flushed before and after).
    pub redis_db: u32,
    /// Directory for state, logs and results (its bench files are replaced).
    pub out: PathBuf,
    /// Per-request timeout of the service runs.
    pub request_timeout: Duration,
    /// Async 20-event publishes of the backlog phase (0 skips it).
    pub backlog_publishes: u64,
    /// Run one phase alone (and what its figures are compared with); `None`: everything.
    pub only: Option<Only>,
}

/// A phase `lab bench --only` runs alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// The backlog drains (one caller, parallel lanes) and the raw plain batched insert.
    Backlog,
    /// Single publishes on PostgreSQL: cached statements, Spin-like statements and the raw
    /// service statement (how the apply statement's cost moves, in minutes).
    SinglePostgres,
}

/// Runs the benchmark, prints the table, writes `results.json` and `results.md` under `out`;
/// returns whether every run passed.
pub fn bench(cfg: &BenchConfig) -> Result<bool> {
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("cannot create {}", cfg.out.display()))?;
    let out = cfg
        .out
        .canonicalize()
        .context("resolving the output directory")?;
    for p in [&cfg.host, &cfg.manifest, &cfg.hello_manifest] {
        if !p.exists() {
            bail!(
                "{} does not exist (build first: scripts/bench.sh)",
                p.display()
            );
        }
    }
    let seed = cfg
        .seed
        .unwrap_or_else(|| rand::RngExt::random(&mut rand::rng()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut cleanup = Cleanup::default();
    let result = (|| -> Result<()> {
        say(&machine_line("at the start"));
        say(&format!(
            "seed {seed}; {} events per batch run, {} per single run, batch {}, concurrency {}",
            cfg.events, cfg.single_events, cfg.batch_size, cfg.concurrency
        ));

        let whole = cfg.only.is_none();
        let single_pg = cfg.only == Some(Only::SinglePostgres);
        let backlog = cfg.backlog_publishes > 0 && !single_pg;
        let both_modes: &[Mode] = &[Mode::Batch, Mode::Single];

        if !single_pg {
            // 1. SQLite service.
            let state = fresh_dir(&out.join("sqlite-state"))?;
            let host = HostProc::start(
                &cfg.host,
                &cfg.manifest,
                ANY_PORT,
                &state,
                None,
                &[],
                &out.join("edge-host-sqlite.log"),
            )?;
            if whole {
                rows.extend(service_runs(&rt, cfg, seed, &host, "sqlite", both_modes)?);
            }
            if backlog {
                rows.extend(backlog_runs(&rt, cfg, &host, "sqlite")?);
            }
            host.stop()?;
            attach_host_times(&mut rows, "sqlite", &out.join("edge-host-sqlite.log"));

            // 2. Raw SQLite.
            let raw_db = out.join("raw-sqlite.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", raw_db.display()));
            }
            rows.extend(raw_runs(
                &rt,
                cfg,
                seed,
                &Database::Sqlite(raw_db),
                "sqlite",
            )?);
        }

        // 3 and 4. PostgreSQL + Redis.
        match &cfg.postgres {
            None => {
                for (label, kind) in [
                    ("edgelog on edge-host", Kind::Service),
                    ("raw native client, service SQL", Kind::RawService),
                    ("raw native client, plain INSERT (limit)", Kind::RawPlain),
                ] {
                    for mode in [Mode::Batch, Mode::Single] {
                        rows.push(Row::empty(label, "postgres", kind, mode, "skipped"));
                    }
                }
                rows.push(Row::empty(
                    SPIN_STATEMENTS,
                    "postgres",
                    Kind::ServiceSpinStatements,
                    Mode::Single,
                    "skipped",
                ));
            }
            Some(server) => {
                let server = server.trim_end_matches('/');
                let tag = format!("edgelog_bench_{}", std::process::id());
                let svc_db = format!("{tag}_svc");
                let raw_db = format!("{tag}_raw");
                let spin_db = format!("{tag}_spin");
                for db in [&svc_db, &raw_db, &spin_db] {
                    rt.block_on(pg_admin(server, &format!("DROP DATABASE IF EXISTS {db}")))?;
                    rt.block_on(pg_admin(server, &format!("CREATE DATABASE {db}")))?;
                    cleanup.databases.push((server.to_string(), db.clone()));
                }
                redis_flush(&cfg.redis, cfg.redis_db)?;
                cleanup.redis = Some((cfg.redis.clone(), cfg.redis_db));
                let rc = out.join("runtime-config-bench.toml");
                std::fs::write(
                    &rc,
                    format!(
                        "# Written by lab bench.\n[key_value_store.default]\ntype = \"redis\"\n\
                         url = \"{}/{}\"\n",
                        cfg.redis.trim_end_matches('/'),
                        cfg.redis_db
                    ),
                )?;
                let state = fresh_dir(&out.join("pg-state"))?;
                let env = |db: &str| {
                    [
                        ("SPIN_VARIABLE_STORE", "postgres".to_string()),
                        ("SPIN_VARIABLE_DATABASE_URL", service_db_url(server, db)),
                        ("SPIN_VARIABLE_DB_HOST", host_port(server)),
                    ]
                };
                let host = HostProc::start(
                    &cfg.host,
                    &cfg.manifest,
                    ANY_PORT,
                    &state,
                    Some(&rc),
                    &env(&svc_db),
                    &out.join("edge-host-postgres.log"),
                )?;
                if whole || single_pg {
                    let modes = if whole { both_modes } else { &[Mode::Single] };
                    rows.extend(service_runs(&rt, cfg, seed, &host, "postgres", modes)?);
                }
                if backlog {
                    rows.extend(backlog_runs(&rt, cfg, &host, "postgres")?);
                }
                host.stop()?;
                attach_host_times(&mut rows, "postgres", &out.join("edge-host-postgres.log"));
                if whole || single_pg {
                    // The same single run without edge-host's statement cache, on a fresh
                    // database and queue.
                    redis_flush(&cfg.redis, cfg.redis_db)?;
                    let state = fresh_dir(&out.join("pg-spin-state"))?;
                    let log = out.join("edge-host-postgres-spin.log");
                    let host = HostProc::start_with_args(
                        &cfg.host,
                        &cfg.manifest,
                        ANY_PORT,
                        &state,
                        Some(&rc),
                        &env(&spin_db),
                        &log,
                        &["--postgres-statements", "spin"],
                    )?;
                    let first = rows.len();
                    rows.push(spin_statements_run(&rt, cfg, seed, &host)?);
                    host.stop()?;
                    attach_host_times(&mut rows[first..], "postgres", &log);
                }
                let raw_url = format!("{server}/{raw_db}");
                rows.extend(raw_runs(
                    &rt,
                    cfg,
                    seed,
                    &Database::Postgres(raw_url),
                    "postgres",
                )?);
            }
        }

        if !whole {
            return Ok(());
        }

        // 5. The host's floor: the trivial component, then the same one request at a time on
        // a host of its own (its own request log).
        let hello_host = |name: &str| -> Result<HostProc> {
            HostProc::start(
                &cfg.host,
                &cfg.hello_manifest,
                ANY_PORT,
                &fresh_dir(&out.join(format!("{name}-state")))?,
                None,
                &[],
                &out.join(format!("edge-host-{name}.log")),
            )
        };
        let host = hello_host("hello")?;
        rows.extend(hello_runs(
            &rt,
            cfg,
            seed,
            &host.url,
            host.pid(),
            Kind::HelloEdgeHost,
        )?);
        host.stop()?;
        attach_host_times(&mut rows, "none", &out.join("edge-host-hello.log"));
        let host = hello_host("hello-one")?;
        rows.push(hello_one_at_a_time_run(
            &rt,
            cfg,
            seed,
            &host.url,
            host.pid(),
        )?);
        host.stop()?;

        // 6. The same on wasmtime serve, when installed.
        match which("wasmtime") {
            None => {
                for mode in [Mode::Batch, Mode::Single] {
                    let mut row = Row::empty(
                        "trivial component on `wasmtime serve`",
                        "none",
                        Kind::HelloWasmtime,
                        mode,
                        "not installed",
                    );
                    row.note = Some("`wasmtime` is not on PATH".into());
                    rows.push(row);
                }
            }
            Some(bin) => {
                let ws = WasmtimeServe::start(&bin, &cfg.hello_wasm, &out.join("wasmtime.log"))?;
                rows.extend(hello_runs(
                    &rt,
                    cfg,
                    seed,
                    &ws.url,
                    ws.pid(),
                    Kind::HelloWasmtime,
                )?);
                ws.stop();
            }
        }
        Ok(())
    })();
    cleanup.run(&rt);
    if let Err(e) = result {
        if !rows.is_empty() {
            print!("{}", render_markdown(cfg, seed, &rows, started.elapsed()));
        }
        return Err(e);
    }

    let markdown = render_markdown(cfg, seed, &rows, started.elapsed());
    print!("{markdown}");
    std::fs::write(out.join("results.md"), &markdown)?;
    let json = json!({
        "seed": seed,
        "events": cfg.events,
        "single_events": cfg.single_events,
        "batch_size": cfg.batch_size,
        "concurrency": cfg.concurrency,
        "duplicate_rate": cfg.duplicate_rate,
        "elapsed_secs": started.elapsed().as_secs_f64(),
        "rows": rows,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    say(&format!(
        "results: {} and {}",
        out.join("results.md").display(),
        out.join("results.json").display()
    ));
    Ok(rows.iter().all(|r| r.status != "FAILED"))
}

/// Progress lines on stderr, so stdout keeps only the table.
pub(crate) fn say(msg: &str) {
    say_as("bench", msg);
}

/// [`say`] under another subcommand's name (`chaos`).
pub(crate) fn say_as(tag: &str, msg: &str) {
    eprintln!("[{tag}] {msg}");
}

/// An empty directory at `p` (its old contents removed), for state that must start fresh.
pub(crate) fn fresh_dir(p: &Path) -> Result<PathBuf> {
    if p.exists() {
        std::fs::remove_dir_all(p).with_context(|| format!("cannot clear {}", p.display()))?;
    }
    std::fs::create_dir_all(p)?;
    Ok(p.to_path_buf())
}
