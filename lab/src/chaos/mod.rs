//! `lab chaos`: the harness that keeps "never loses, never stores twice, cannot be wedged"
//! true. Bounded by `--seconds`, it runs on the embedded default (SQLite queue and store, one
//! edge-host) and on PostgreSQL + Redis with several edge-hosts sharing one Redis database and
//! one PostgreSQL database (both created for the run and removed after):
//!
//! - a SIGKILL loop under at-least-once load (a host killed and restarted in place, again and
//!   again, while workers retry on the next host);
//! - a backlog drain (async publishes, then `POST /drain` in a loop while it says `more`);
//! - the hostile-input corpus ([`hostile`], and [`foreign`] for the OTLP, Loki and NDJSON
//!   routes: broken protobuf, deep nesting, decompression bombs, each a `4xx` that stores nothing);
//! - a dependency blip: a `redis-server` of its own killed and restarted mid-load.
//!
//! Every scenario keeps the client-side ledger of acknowledged `(topic, event_id)` and reads all
//! of it back at the end. The result is one table (scenario, kills, requests, acknowledged keys,
//! lost, stored twice, 5xx, longest request); [`ChaosReport::passed`] is false when lost, stored
//! twice or 5xx (outside the windows where the harness had something down) is not zero, or
//! any other rule broke (a hostile answer that is not JSON, a queue that does not drain).

mod bodies;
mod foreign;
mod hostile;
mod load;
mod procs;
mod readback;
mod scenarios;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::RngExt;
use serde::Serialize;

use crate::bench::fresh_dir;
use crate::bench::services::Cleanup;
use procs::{HostSpec, KillableHost};
use scenarios::{Harness, say};

/// Everything the harness needs; paths may be relative to the current directory.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// The `edge-host` binary.
    pub host: PathBuf,
    /// The edgelog manifest.
    pub manifest: PathBuf,
    /// Time budget of the load phases, all scenarios together (set-up and read-back come on
    /// top).
    pub seconds: f64,
    /// PostgreSQL server without a database (one is created and dropped); `None` skips the
    /// PostgreSQL + Redis scenarios.
    pub postgres: Option<String>,
    /// Shared Redis server, without a database number.
    pub redis: String,
    /// Redis database number the harness owns (flushed before and after).
    pub redis_db: u32,
    /// edge-host processes sharing the PostgreSQL + Redis stores.
    pub hosts: usize,
    /// Concurrent publishing workers.
    pub concurrency: usize,
    /// Directory for state and logs.
    pub out: PathBuf,
    /// Seed of plans and kill timings; random when absent.
    pub seed: Option<u64>,
    /// The service's body limit (`max_body_bytes`), for the oversized-body case.
    pub max_body_bytes: usize,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            host: "target/release/edge-host".into(),
            manifest: "spin.toml".into(),
            seconds: 120.0,
            postgres: Some("postgres://postgres@127.0.0.1:5432".into()),
            redis: "redis://127.0.0.1:6379".into(),
            redis_db: 14,
            hosts: 3,
            concurrency: 8,
            out: "target/chaos".into(),
            seed: None,
            max_body_bytes: 10 * 1024 * 1024,
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenarioRow {
    /// What was done, on which stores.
    pub scenario: String,
    /// Processes SIGKILLed (edge-hosts, or Redis for the blip).
    pub kills: u64,
    /// HTTP requests made (attempts, drains and reads of the checks excluded).
    pub requests: u64,
    /// Distinct `(topic, event_id)` acknowledged (`200`/`202`) at least once.
    pub acknowledged: u64,
    /// Acknowledged keys that did not read back.
    pub lost: u64,
    /// Keys that read back more than once.
    pub stored_twice: u64,
    /// `5xx` answers outside the windows where the harness had something down.
    pub server_errors: u64,
    /// Longest request, in milliseconds.
    pub longest_ms: f64,
    /// Observations that do not fail the run.
    pub notes: Vec<String>,
    /// Broken rules besides the counted ones; any fails the run.
    pub problems: Vec<String>,
}

impl ScenarioRow {
    /// Whether this scenario kept every rule.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.stored_twice == 0
            && self.server_errors == 0
            && self.problems.is_empty()
    }
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    /// Seed of plans and kill timings.
    pub seed: u64,
    /// The load-phase budget.
    pub seconds: f64,
    /// Wall time of the whole run.
    pub elapsed_secs: f64,
    /// One row per scenario.
    pub rows: Vec<ScenarioRow>,
}

impl ChaosReport {
    /// Whether every scenario kept every rule.
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(ScenarioRow::passed)
    }

    /// The table (markdown), then notes and problems per scenario.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n### Chaos (seed {}, {:.0} s of load, {:.0} s in all)\n",
            self.seed, self.seconds, self.elapsed_secs
        );
        let _ = writeln!(
            s,
            "| scenario | kills | requests | acknowledged keys | lost | stored twice | 5xx | \
             longest request (ms) |"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                r.scenario,
                r.kills,
                r.requests,
                r.acknowledged,
                r.lost,
                r.stored_twice,
                r.server_errors,
                r.longest_ms
            );
        }
        for r in &self.rows {
            for n in &r.notes {
                let _ = writeln!(s, "\n- {}: {n}", r.scenario);
            }
        }
        let problems: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| {
                r.problems
                    .iter()
                    .map(move |p| format!("{}: {p}", r.scenario))
            })
            .collect();
        if !problems.is_empty() {
            let _ = writeln!(s, "\n### FAILED\n");
            for p in problems {
                let _ = writeln!(s, "- {p}");
            }
        }
        s
    }
}

/// Runs every scenario and returns the table; `Err` only when the harness could not set up.
pub fn chaos(cfg: &ChaosConfig) -> Result<ChaosReport> {
    for p in [&cfg.host, &cfg.manifest] {
        if !p.exists() {
            anyhow::bail!(
                "{} does not exist (build first: scripts/chaos.sh)",
                p.display()
            );
        }
    }
    std::fs::create_dir_all(&cfg.out)?;
    let out = cfg.out.canonicalize()?;
    let seed = cfg.seed.unwrap_or_else(|| rand::rng().random());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let started = Instant::now();
    let budget = |share: f64| Duration::from_secs_f64((cfg.seconds * share).max(2.0));
    let h = Harness { cfg, rt: &rt, seed };
    let mut rows = Vec::new();

    say(&format!("chaos: seed {seed}, {:.0} s of load", cfg.seconds));
    let spec = HostSpec {
        bin: cfg.host.clone(),
        manifest: cfg.manifest.clone(),
        state_dir: fresh_dir(&out.join("sqlite-state"))?,
        runtime_config: None,
        env: Vec::new(),
        log_stem: out.join("edge-host-sqlite"),
    };
    let mut hosts = vec![KillableHost::start(spec)?];
    rows.push(h.kill_loop(
        "SIGKILL loop, SQLite, 1 edge-host",
        &mut hosts,
        budget(0.22),
    )?);
    rows.push(h.backlog("backlog drain, SQLite", &hosts, budget(0.08))?);
    rows.push(h.hostile("hostile input, SQLite", &hosts)?);
    for host in &mut hosts {
        host.stop()?;
    }

    if let Some(server) = &cfg.postgres {
        let mut cleanup = Cleanup::default();
        let result = h.postgres_scenarios(
            server,
            &out,
            &mut cleanup,
            budget(0.22),
            budget(0.08),
            budget(0.2),
        );
        cleanup.run(&rt);
        rows.extend(result?);
    }
    Ok(ChaosReport {
        seed,
        seconds: cfg.seconds,
        elapsed_secs: started.elapsed().as_secs_f64(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::load::{self, LoadOutcome, LoadSpec, Windows};
    use super::*;
    use crate::mock::{Faults, MockServer};
    use crate::plan::Plan;
    use loadgen::client::Client;
    use loadgen::config::Mode;
    use loadgen::plan::PlanParams;

    async fn run_against(faults: Faults, windows: Arc<Windows>) -> (readback::Tally, LoadOutcome) {
        let mock = MockServer::start(faults).await;
        let plan = Arc::new(
            Plan::generate(&PlanParams {
                run_id: "chaosunit".into(),
                events: Some(2_000),
                duplicate_rate: 0.3,
                batch_size: 20,
                topics: 3,
                mode: Mode::Mixed,
                seed: 3,
                base_time: Utc::now(),
            })
            .unwrap(),
        );
        let client = Client::new(&mock.url(), Duration::from_secs(2), 4).unwrap();
        let spec = LoadSpec {
            clients: vec![client.clone()],
            concurrency: 4,
            deadline: Instant::now() + Duration::from_secs(3),
            async_every: 3,
            resend_queued: true,
            seed: 1,
        };
        let load = load::send(&plan, &spec, &windows).await;
        assert!(
            crate::drain::drain(&client, Duration::from_secs(10))
                .await
                .emptied
        );
        let tally = readback::compare(&client, &plan, &load.ledger)
            .await
            .unwrap();
        // Paced over 3 s: (nearly) the whole plan goes out, every issued event is acknowledged.
        assert_eq!(tally.acknowledged, load.ledger.issued_distinct);
        assert!(tally.acknowledged * 2 > plan.events.len() as u64);
        (tally, load)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_read_back_catches_lost_and_twice_stored_events() {
        let (t, load) = run_against(Faults::default(), Arc::default()).await;
        assert_eq!((t.lost, t.stored_twice, load.server_errors), (0, 0, 0));

        let (t, _) = run_against(
            Faults {
                lose_every: Some(37),
                ..Faults::default()
            },
            Arc::default(),
        )
        .await;
        assert!(t.lost > 0 && t.stored_twice == 0, "{t:?}");

        let (t, _) = run_against(
            Faults {
                store_twice_every: Some(41),
                queue_every: Some(5),
                ..Faults::default()
            },
            Arc::default(),
        )
        .await;
        assert!(t.lost == 0 && t.stored_twice > 0, "{t:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_5xx_counts_unless_the_harness_had_something_down() {
        let faults = Faults {
            reject_every: Some(9),
            ..Faults::default()
        };
        let (t, load) = run_against(faults.clone(), Arc::default()).await;
        assert_eq!(t.lost, 0, "503s are retried until acknowledged");
        assert!(load.server_errors > 0 && load.excused_server_errors == 0);

        let windows = Arc::new(Windows::default());
        windows.open();
        let (_, load) = run_against(faults, windows).await;
        assert!(load.server_errors == 0 && load.excused_server_errors > 0);
    }

    #[test]
    fn a_row_fails_on_any_count_or_problem() {
        let ok = ScenarioRow::default();
        assert!(ok.passed());
        for bad in [
            ScenarioRow {
                lost: 1,
                ..ScenarioRow::default()
            },
            ScenarioRow {
                stored_twice: 1,
                ..ScenarioRow::default()
            },
            ScenarioRow {
                server_errors: 1,
                ..ScenarioRow::default()
            },
            ScenarioRow {
                problems: vec!["x".into()],
                ..ScenarioRow::default()
            },
        ] {
            assert!(!bad.passed());
            let report = ChaosReport {
                seed: 1,
                seconds: 1.0,
                elapsed_secs: 1.0,
                rows: vec![ok.clone(), bad],
            };
            assert!(!report.passed());
        }
    }
}
