//! `lab scale`: do reads stay flat when the store holds months of history (issue 10)?
//!
//! For each backend (PostgreSQL + Redis, then SQLite on edge-host's defaults) it starts two
//! edge-hosts with the real component on two fresh stores and seeds both with the same 3,100
//! events in one publish (which makes the component create its schema). It bulk-loads
//! `--events` events into one of them through the service's own schema with SQL (a skewed
//! mix of 1,000 topics, 50 sources, 30 days of event time, 100–300-byte JSON payloads), plus
//! the `topic_counters` those publishes would have left (5 % duplicates) and markers inside
//! and past the marker horizon, then `ANALYZE`s. It times six requests on both stores,
//! alternating request by request so both see the same machine (`/stats`, `/metrics`, the
//! first `/events` page, a topic page behind deep cursors, one-hour time windows, single
//! `POST /publish`), calls `POST /maintenance` until it has nothing left, and prints one
//! markdown table per backend, storage per event, marker counts, and the plans of the
//! component's statements (text copied from `src/store/*.rs`).
//!
//! Modules: `requests` (what is timed), `host` (edge-host and Redis), `pg` and `lite` (loading,
//! storage and plans per backend), `sql` (the component's listing statements), `report`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::{DateTime, TimeDelta, Utc};

mod host;
mod lite;
mod pg;
mod report;
mod requests;
mod sql;

use host::{redis_claim, redis_flush};
use lab::bench::services::HostProc;
use report::{Outcome, ratio_ok, render};
use requests::{KINDS, Plan, RARE, maintain, phase, seed_store, topic_name};
use sql::{Param, listing_sql};

/// Flags of `lab scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Events to bulk-load (10 million is the figure; 200000 is a quick check).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Timed requests of each kind, per phase (after `--warmup` untimed ones).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Untimed requests of each kind before the timed ones.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Markers younger than the 1 h horizon (kept by maintenance); default `events / 10`.
    #[arg(long)]
    recent_markers: Option<u64>,
    /// Markers older than the horizon (compacted by maintenance); default `events / 10`.
    #[arg(long)]
    old_markers: Option<u64>,
    /// The edge-host binary.
    #[arg(long, default_value = "target/release/edge-host")]
    host: PathBuf,
    /// The edgelog manifest.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// PostgreSQL server, without a database: the run creates and drops its own.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Skip PostgreSQL + Redis.
    #[arg(long)]
    no_postgres: bool,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
    /// Redis server, without a database number.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Redis database number the run owns (must be empty; FLUSHDB before and after). Not 14:
    /// `lab chaos` uses that one by default, and the two may run at once.
    #[arg(long, default_value_t = 13)]
    redis_db: u32,
    /// Directory for state, logs, plans and results.
    #[arg(long, default_value = "target/scale")]
    out: PathBuf,
    /// Keep the loaded database and state (to profile afterwards); dropped by default.
    #[arg(long)]
    keep: bool,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 10)]
    seed: u64,
}

/// Topics in the mix (log-uniform popularity: the first has ~10 %, the 20th ~0.7 %).
const TOPICS: u32 = 1000;
/// Days of event time covered by the load, ending at the start of the run.
const DAYS: i64 = 30;
/// Share of received events that were duplicates (dropped), for the counters.
const DUP_RATE: f64 = 0.05;
/// Topic whose pages the cursor request walks (rank 20: ~0.7 % of the events).
const CURSOR_TOPIC: u32 = 20;
/// Words of the generated log messages (no quotes, no backslashes: valid inside JSON text).
const LOREM: &str = "request served from cache after upstream timeout while the client retried \
     the connection pool was resized because latency rose above the objective for this route \
     and the scheduler moved two workers to the other zone before the deploy finished cleanly";

fn say(s: &str) {
    eprintln!("[scale] {s}");
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn fresh_dir(p: &Path) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(p);
    std::fs::create_dir_all(p)?;
    Ok(p.canonicalize()?)
}

fn markers(a: &ScaleArgs) -> (u64, u64) {
    (
        a.recent_markers.unwrap_or(a.events / 10),
        a.old_markers.unwrap_or(a.events / 10),
    )
}

/// One store of a backend: the empty one or the one to load.
struct Side {
    state: PathBuf,
    db: String,
    env: Vec<(&'static str, String)>,
    log: PathBuf,
}

fn run_backend(
    a: &ScaleArgs,
    rt: &tokio::runtime::Runtime,
    plan: &Plan,
    pg_backend: bool,
) -> Result<Outcome> {
    let store = if pg_backend {
        "PostgreSQL + Redis"
    } else {
        "SQLite (edge-host defaults)"
    };
    let tag = if pg_backend { "pg" } else { "sqlite" };
    let server = a.postgres.trim_end_matches('/').to_string();
    let authority = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
    let hostport = authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string();
    let hostport = if hostport.contains(':') {
        hostport
    } else {
        format!("{hostport}:5432")
    };
    let mut sides = Vec::new();
    for which in ["empty", "loaded"] {
        let db = format!("edgelog_scale_{}_{which}", std::process::id());
        let env = if pg_backend {
            vec![
                ("SPIN_VARIABLE_STORE", "postgres".to_string()),
                ("SPIN_VARIABLE_DATABASE_URL", format!("{server}/{db}")),
                ("SPIN_VARIABLE_DB_HOST", hostport.clone()),
            ]
        } else {
            vec![]
        };
        sides.push(Side {
            state: fresh_dir(&a.out.join(format!("{tag}-{which}-state")))?,
            db,
            env,
            log: a.out.join(format!("edge-host-{tag}-{which}.log")),
        });
    }
    let mut rc = None;
    if pg_backend {
        redis_claim(&a.redis, a.redis_db)?;
        let path = a.out.join("runtime-config-scale.toml");
        let url = format!("{}/{}", a.redis.trim_end_matches('/'), a.redis_db);
        std::fs::write(
            &path,
            format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
        )?;
        rc = Some(path);
    }
    let result = (|| -> Result<Outcome> {
        let start = |s: &Side| {
            HostProc::start(
                &a.host,
                &a.manifest,
                "127.0.0.1:0",
                &s.state,
                rc.as_deref(),
                &s.env,
                &s.log,
            )
        };
        if pg_backend {
            for s in &sides {
                rt.block_on(pg::admin(
                    &server,
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", s.db),
                ))?;
                rt.block_on(pg::admin(&server, &format!("CREATE DATABASE {}", s.db)))?;
            }
        }
        let empty_host = start(&sides[0])?;
        rt.block_on(seed_store(&empty_host.url, plan))?;
        let host = start(&sides[1])?;
        rt.block_on(seed_store(&host.url, plan))?;
        let _ = host.stop();
        say(&format!(
            "{store}: both stores seeded; loading {} events; load average {}",
            a.events,
            loadavg()
        ));
        let (recent, old) = markers(a);
        let started = Instant::now();
        let db_url = format!("{server}/{}", sides[1].db);
        let sqlite_file = sides[1].state.join("sqlite_db.db");
        let load = if pg_backend {
            rt.block_on(pg::load(&db_url, a.events, recent, old, plan, a.seed))?
        } else {
            lite::load(&sqlite_file, a.events, recent, old, plan, a.seed)?
        };
        let load_secs = started.elapsed().as_secs_f64();
        say(&format!(
            "{store}: loaded in {load_secs:.0} s; load average {}",
            loadavg()
        ));
        let host = start(&sides[1])?;
        let (empty, full) = rt.block_on(phase(&empty_host.url, &host.url, plan, a))?;
        let _ = empty_host.stop();
        let count = || -> Result<u64> {
            if pg_backend {
                rt.block_on(pg::markers(&db_url))
            } else {
                lite::markers(&sqlite_file)
            }
        };
        let markers_before = count()?;
        let maintenance = rt.block_on(maintain(&host.url))?;
        let markers_after = count()?;
        let _ = host.stop();
        let (storage, plans) = if pg_backend {
            (
                rt.block_on(pg::storage(&db_url))?,
                rt.block_on(pg::plans(&db_url, plan, plan.cursor))?,
            )
        } else {
            (
                lite::storage(&sqlite_file)?,
                lite::plans(&sqlite_file, plan, plan.cursor)?,
            )
        };
        Ok(Outcome {
            store,
            empty,
            full,
            loaded: a.events,
            load_secs,
            storage,
            markers_before,
            markers_after,
            maintenance,
            plans,
            load,
        })
    })();
    for s in &sides {
        if a.keep {
            say(&format!(
                "kept {} {} (--keep)",
                s.state.display(),
                if pg_backend { &s.db } else { "" }
            ));
            continue;
        }
        if pg_backend
            && let Err(e) = rt.block_on(pg::admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", s.db),
            ))
        {
            say(&format!("cleanup: {e:#}"));
        }
        let _ = std::fs::remove_dir_all(&s.state);
    }
    if pg_backend
        && !a.keep
        && let Err(e) = redis_flush(&a.redis, a.redis_db)
    {
        say(&format!("cleanup: {e:#}"));
    }
    result
}

/// Runs the scale benchmark; exit 0 when every target was met, 1 when one was missed, 2 on error.
pub fn main(a: ScaleArgs) -> ExitCode {
    match run(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("lab scale: a target was missed (see the tables and plans)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("lab scale: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(a: &ScaleArgs) -> Result<bool> {
    if a.requests == 0 || a.events < 1000 {
        bail!("--requests must be positive and --events at least 1000");
    }
    std::fs::create_dir_all(&a.out)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let now = Utc::now();
    let plan = Plan {
        t0: now - TimeDelta::days(DAYS),
        cursor: a.events / 2,
        topic: topic_name(CURSOR_TOPIC),
    };
    let started = Instant::now();
    let mut report = format!(
        "Run {}: `lab scale --events {}`, {} timed requests per kind (after {} warm-up), seed {}; \
         {} CPUs; load average at the start {}.\n\n",
        now.format("%Y-%m-%d %H:%M UTC"),
        a.events,
        a.requests,
        a.warmup,
        a.seed,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let mut all_ok = true;
    let mut plans = String::new();
    for pg_backend in [true, false] {
        if (pg_backend && a.no_postgres) || (!pg_backend && a.no_sqlite) {
            continue;
        }
        let o = run_backend(a, &rt, &plan, pg_backend)?;
        all_ok &= o
            .empty
            .iter()
            .zip(&o.full)
            .enumerate()
            .all(|(k, (e, f))| ratio_ok(k, e, f).1);
        report.push_str(&render(&o, a.events));
        report.push('\n');
        let _ = writeln!(plans, "## {}\n\n{}", o.store, o.plans);
    }
    let _ = writeln!(
        report,
        "Whole run {:.0} s; load average at the end {}.",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    print!("{report}");
    std::fs::write(a.out.join("results.md"), &report)?;
    std::fs::write(a.out.join("plans.md"), &plans)?;
    say(&format!(
        "plans of the listing statements: {}",
        a.out.join("plans.md").display()
    ));
    Ok(all_ok)
}
