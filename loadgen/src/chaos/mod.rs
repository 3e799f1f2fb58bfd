//! `loadgen chaos`: the harness that keeps "never loses, never stores twice, cannot be wedged"
//! true. Bounded by `--seconds`, it runs on the embedded default (SQLite queue and store, one
//! edge-host) and on PostgreSQL + Redis with several edge-hosts sharing one Redis database and
//! one PostgreSQL database (both created for the run and removed after):
//!
//! - a SIGKILL loop under at-least-once load (a host killed and restarted in place, again and
//!   again, while workers retry on the next host);
//! - a backlog drain (async publishes, then `POST /drain` in a loop while it says `more`);
//! - the hostile-input corpus ([`hostile`]);
//! - a dependency blip: a `redis-server` of its own killed and restarted mid-load.
//!
//! Every scenario keeps the client-side ledger of acknowledged `(topic, event_id)` and reads all
//! of it back at the end. The result is one table (scenario, kills, requests, acknowledged keys,
//! lost, stored twice, 5xx, longest request); [`ChaosReport::passed`] is false when lost, stored
//! twice or 5xx (outside the windows where the harness had something down) is not zero, or
//! any other rule broke (a hostile answer that is not JSON, a queue that does not drain).

mod hostile;
mod load;
mod procs;
mod readback;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::bench::services::{Cleanup, host_port, pg_admin, redis_flush};
use crate::bench::{fresh_dir, say_as};
use crate::client::Client;
use crate::config::Mode;
use crate::plan::{Plan, PlanParams};
use load::{LoadOutcome, LoadSpec, Windows};
use procs::{HostSpec, KillableHost, OwnRedis};

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

/// Progress on stderr, so stdout keeps only the table.
fn say(msg: &str) {
    say_as("chaos", msg);
}

struct Harness<'a> {
    cfg: &'a ChaosConfig,
    rt: &'a tokio::runtime::Runtime,
    seed: u64,
}

impl Harness<'_> {
    fn postgres_scenarios(
        &self,
        server: &str,
        out: &std::path::Path,
        cleanup: &mut Cleanup,
        kill_budget: Duration,
        backlog_budget: Duration,
        blip_budget: Duration,
    ) -> Result<Vec<ScenarioRow>> {
        let server = server.trim_end_matches('/');
        let db = format!("edgelog_chaos_{}", std::process::id());
        self.rt
            .block_on(pg_admin(server, &format!("DROP DATABASE IF EXISTS {db}")))?;
        self.rt
            .block_on(pg_admin(server, &format!("CREATE DATABASE {db}")))?;
        cleanup.databases.push((server.to_string(), db.clone()));
        redis_flush(&self.cfg.redis, self.cfg.redis_db)?;
        cleanup.redis = Some((self.cfg.redis.clone(), self.cfg.redis_db));
        let env = vec![
            ("SPIN_VARIABLE_STORE", "postgres".to_string()),
            ("SPIN_VARIABLE_DATABASE_URL", format!("{server}/{db}")),
            ("SPIN_VARIABLE_DB_HOST", host_port(server)),
        ];
        let shared_rc = out.join("runtime-config-chaos.toml");
        write_runtime_config(
            &shared_rc,
            &format!(
                "{}/{}",
                self.cfg.redis.trim_end_matches('/'),
                self.cfg.redis_db
            ),
        )?;
        let mut rows = Vec::new();
        let n = self.cfg.hosts.max(1);
        let mut hosts = Vec::with_capacity(n);
        for i in 0..n {
            hosts.push(KillableHost::start(HostSpec {
                bin: self.cfg.host.clone(),
                manifest: self.cfg.manifest.clone(),
                state_dir: fresh_dir(&out.join(format!("pg-state-{i}")))?,
                runtime_config: Some(shared_rc.clone()),
                env: env.clone(),
                log_stem: out.join(format!("edge-host-pg-{i}")),
            })?);
        }
        let label = format!("SIGKILL loop, PostgreSQL + Redis, {n} edge-hosts");
        rows.push(self.kill_loop(&label, &mut hosts, kill_budget)?);
        rows.push(self.backlog("backlog drain, PostgreSQL + Redis", &hosts, backlog_budget)?);
        rows.push(self.hostile("hostile input, PostgreSQL + Redis", &hosts)?);
        for host in &mut hosts {
            host.stop()?;
        }

        // The blip: the queue in a Redis of our own, killed and restarted mid-load.
        let mut redis = OwnRedis::start(&fresh_dir(&out.join("own-redis"))?)?;
        let blip_rc = out.join("runtime-config-chaos-blip.toml");
        write_runtime_config(&blip_rc, &redis.url())?;
        let mut host = KillableHost::start(HostSpec {
            bin: self.cfg.host.clone(),
            manifest: self.cfg.manifest.clone(),
            state_dir: fresh_dir(&out.join("blip-state"))?,
            runtime_config: Some(blip_rc),
            env,
            log_stem: out.join("edge-host-blip"),
        })?;
        rows.push(self.blip(&host, &mut redis, blip_budget)?);
        host.stop()?;
        Ok(rows)
    }

    fn plan(&self, tag: &str, load: Duration, mode: Mode, cap: u64) -> Result<Arc<Plan>> {
        // Enough events for the budget at a few thousand events/s, bounded for memory.
        let events = ((load.as_secs_f64() * 6_000.0) as u64).clamp(2_000, cap);
        Ok(Arc::new(Plan::generate(&PlanParams {
            run_id: format!("{}{tag}", crate::run::random_run_id()),
            events,
            duplicate_rate: 0.3,
            batch_size: 20,
            topics: 4,
            mode,
            seed: self.seed ^ tag.len() as u64,
            base_time: Utc::now(),
        })?))
    }

    fn clients(&self, hosts: &[&str]) -> Result<Vec<Client>> {
        hosts
            .iter()
            .map(|u| Client::new(u, Duration::from_secs(10), self.cfg.concurrency))
            .collect()
    }

    fn load_spec(&self, clients: Vec<Client>, budget: Duration, async_every: usize) -> LoadSpec {
        LoadSpec {
            clients,
            concurrency: self.cfg.concurrency,
            deadline: Instant::now() + budget,
            async_every,
            // A backlog is filled without cautious resends (they would be stored at once).
            resend_queued: async_every != 1,
            seed: self.seed,
        }
    }

    /// Drains, reads everything back and fills in a row from a finished load.
    fn settle_and_count(
        &self,
        scenario: &str,
        client: &Client,
        plan: &Plan,
        load: &LoadOutcome,
    ) -> Result<ScenarioRow> {
        let drain = self
            .rt
            .block_on(crate::verify::drain(client, Duration::from_secs(120)));
        let first = self
            .rt
            .block_on(readback::compare(client, plan, &load.ledger))
            .with_context(|| format!("{scenario}: reading everything back"))?;
        // Missing keys after a drain that said "empty" may still come (an entry held by a
        // killed host until its lease ends): look again for up to 60 s, so "lost" means lost,
        // and report the late ones (the queue claimed to be empty while they were pending).
        let mut tally = first;
        let waited = Instant::now();
        while tally.lost > 0 && waited.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_secs(5));
            self.rt
                .block_on(crate::verify::drain(client, Duration::from_secs(30)));
            tally = self
                .rt
                .block_on(readback::compare(client, plan, &load.ledger))
                .with_context(|| format!("{scenario}: reading everything back again"))?;
        }
        let l = &load.ledger;
        let mut row = ScenarioRow {
            scenario: scenario.to_string(),
            requests: l.attempts,
            acknowledged: tally.acknowledged,
            lost: tally.lost,
            stored_twice: tally.stored_twice,
            server_errors: load.server_errors + drain.server_errors,
            longest_ms: load.longest.as_secs_f64() * 1000.0,
            ..ScenarioRow::default()
        };
        row.notes.push(format!(
            "{} events in {} requests ({} retries, {} resends after 202, {} attempts with unknown \
             outcome); {} rows read back",
            l.issued_events,
            l.issued_requests,
            l.retries,
            l.queued_resends,
            l.ambiguous_attempts,
            tally.rows
        ));
        if load.excused_server_errors > 0 {
            row.notes.push(format!(
                "{} 5xx while the harness had something down (not counted)",
                load.excused_server_errors
            ));
        }
        if !drain.emptied {
            row.problems
                .push("the queue did not drain to 0 within 120 s of POST /drain".into());
        }
        if first.lost > tally.lost {
            row.problems.push(format!(
                "{} acknowledged keys were not readable when POST /drain answered that nothing \
                 was left; they appeared {:.0} s later",
                first.lost - tally.lost,
                waited.elapsed().as_secs_f64()
            ));
        }
        row.problems.extend(l.errors.iter().take(5).cloned());
        if l.error_count > 5 {
            row.problems.push(format!(
                "… and {} more client-side errors",
                l.error_count - 5
            ));
        }
        say(&format!(
            "  {scenario}: {} acknowledged keys, {} lost, {} stored twice, {} 5xx",
            row.acknowledged, row.lost, row.stored_twice, row.server_errors
        ));
        Ok(row)
    }

    /// SIGKILLs one host at a time (at random, every 0.7–2 s) while the load runs.
    fn kill_loop(
        &self,
        scenario: &str,
        hosts: &mut [KillableHost],
        budget: Duration,
    ) -> Result<ScenarioRow> {
        say(&format!("{scenario}: {:.0} s", budget.as_secs_f64()));
        let plan = self.plan(".kill", budget, Mode::Mixed, 200_000)?;
        let urls: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
        let clients = self.clients(&urls.iter().map(String::as_str).collect::<Vec<_>>())?;
        let spec = self.load_spec(clients.clone(), budget, 4);
        let windows = Arc::new(Windows::default());
        let done = AtomicBool::new(false);
        let deadline = spec.deadline;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (load, kills) = std::thread::scope(|sc| {
            let killer = sc.spawn(|| -> Result<u64> {
                let mut kills = 0;
                loop {
                    let pause = Duration::from_millis(rng.random_range(700..2_000));
                    if Instant::now() + pause + Duration::from_millis(500) >= deadline
                        || done.load(Ordering::Relaxed)
                    {
                        return Ok(kills);
                    }
                    std::thread::sleep(pause);
                    let i = rng.random_range(0..hosts.len());
                    let w = windows.open();
                    hosts[i].kill()?;
                    kills += 1;
                    std::thread::sleep(Duration::from_millis(300));
                    let restarted = hosts[i].restart();
                    windows.close(w, Duration::ZERO);
                    restarted?;
                }
            });
            let load = self.rt.block_on(load::send(&plan, &spec, &windows));
            done.store(true, Ordering::Relaxed);
            let kills = killer
                .join()
                .map_err(|_| anyhow!("the kill loop panicked"))?;
            Ok::<_, anyhow::Error>((load, kills?))
        })?;
        for h in hosts.iter_mut() {
            h.restart()?;
        }
        let mut row = self.settle_and_count(scenario, &clients[0], &plan, &load)?;
        row.kills = kills;
        Ok(row)
    }

    /// Many async publishes, then `POST /drain` in a loop.
    fn backlog(
        &self,
        scenario: &str,
        hosts: &[KillableHost],
        budget: Duration,
    ) -> Result<ScenarioRow> {
        say(&format!(
            "{scenario}: {:.0} s of async publishes",
            budget.as_secs_f64()
        ));
        let plan = self.plan(".backlog", budget, Mode::Batch, 500_000)?;
        let urls: Vec<&str> = hosts.iter().map(|h| h.url.as_str()).collect();
        let clients = self.clients(&urls)?;
        let spec = self.load_spec(clients.clone(), budget, 1);
        let windows = Arc::new(Windows::default());
        let load = self.rt.block_on(load::send(&plan, &spec, &windows));
        // What is still queued when the drain starts (the service may consume some on its own).
        let backlog = self
            .rt
            .block_on(crate::verify::stats(&clients[0]))
            .ok()
            .and_then(|s| s.queued)
            .unwrap_or(0);
        let t0 = Instant::now();
        let drain = self
            .rt
            .block_on(crate::verify::drain(&clients[0], Duration::from_secs(300)));
        let secs = t0.elapsed().as_secs_f64();
        let mut row = self.settle_and_count(scenario, &clients[0], &plan, &load)?;
        row.requests += drain.requests;
        row.server_errors += drain.server_errors;
        row.longest_ms = row.longest_ms.max(drain.longest.as_secs_f64() * 1000.0);
        row.notes.push(format!(
            "{} async publishes ({} answered 202) left {backlog} events queued, drained by {} \
             POST /drain in {secs:.1} s ({:.0} events/s), longest /drain {:.0} ms",
            load.ledger.issued_requests,
            load.ledger.accepted_responses,
            drain.requests,
            backlog as f64 / secs.max(1e-9),
            drain.longest.as_secs_f64() * 1000.0
        ));
        if !drain.emptied {
            row.problems
                .push("the backlog did not drain to 0 within 300 s of POST /drain".into());
        }
        Ok(row)
    }

    /// The hostile corpus against the first host.
    fn hostile(&self, scenario: &str, hosts: &[KillableHost]) -> Result<ScenarioRow> {
        say(scenario);
        let client = Client::new(&hosts[0].url, Duration::from_secs(30), 1)?;
        let topic = format!("{}.hostile", crate::run::random_run_id());
        let o = self
            .rt
            .block_on(hostile::run(&client, &topic, self.cfg.max_body_bytes));
        // The 5xx are counted in their column; their lines go with the notes.
        let (fivexx, problems): (Vec<String>, Vec<String>) = o
            .problems
            .into_iter()
            .partition(|p| p.contains(" answered 5"));
        Ok(ScenarioRow {
            scenario: scenario.to_string(),
            requests: o.requests,
            server_errors: o.server_errors,
            longest_ms: o.longest.as_secs_f64() * 1000.0,
            notes: fivexx,
            problems,
            ..ScenarioRow::default()
        })
    }

    /// Load while the queue's Redis is SIGKILLed and restarted 2 s later.
    fn blip(
        &self,
        host: &KillableHost,
        redis: &mut OwnRedis,
        budget: Duration,
    ) -> Result<ScenarioRow> {
        let scenario = "Redis blip (own redis-server killed 2 s), PostgreSQL";
        say(&format!("{scenario}: {:.0} s", budget.as_secs_f64()));
        let plan = self.plan(".blip", budget, Mode::Mixed, 200_000)?;
        let clients = self.clients(&[host.url.as_str()])?;
        let spec = self.load_spec(clients.clone(), budget, 2);
        let windows = Arc::new(Windows::default());
        let load = std::thread::scope(|sc| {
            let blipper = sc.spawn(|| -> Result<()> {
                std::thread::sleep(budget / 3);
                let w = windows.open();
                redis.kill()?;
                std::thread::sleep(Duration::from_secs(2));
                let back = redis.restart();
                // The service has ~1 s to notice Redis is back; 3 s of slack.
                windows.close(w, Duration::from_secs(3));
                back
            });
            let load = self.rt.block_on(load::send(&plan, &spec, &windows));
            let blipped = blipper
                .join()
                .map_err(|_| anyhow!("the blip thread panicked"))?;
            blipped.map(|()| load)
        })?;
        let mut row = self.settle_and_count(scenario, &clients[0], &plan, &load)?;
        row.kills = 1;
        Ok(row)
    }
}

fn write_runtime_config(path: &std::path::Path, redis_url: &str) -> Result<()> {
    std::fs::write(
        path,
        format!(
            "# Written by loadgen chaos.\n[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis_url}\"\n"
        ),
    )
    .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::{Faults, MockServer};

    async fn run_against(faults: Faults, windows: Arc<Windows>) -> (readback::Tally, LoadOutcome) {
        let mock = MockServer::start(faults).await;
        let plan = Arc::new(
            Plan::generate(&PlanParams {
                run_id: "chaosunit".into(),
                events: 2_000,
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
            crate::verify::drain(&client, Duration::from_secs(10))
                .await
                .emptied
        );
        let tally = readback::compare(&client, &plan, &load.ledger)
            .await
            .unwrap();
        // Paced over 3 s: (nearly) the whole plan goes out, every issued event is acknowledged.
        assert_eq!(tally.acknowledged, load.ledger.issued.count());
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
