//! The scenarios of the chaos harness, each ending in one [`ScenarioRow`]: the SIGKILL loop
//! (hosts killed and restarted in place under load), the backlog drain, the hostile corpus and
//! the Redis blip, plus the PostgreSQL + Redis set-up they share (a database and a Redis
//! database number of the run's own, removed by the caller's [`Cleanup`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::load::{self, LoadOutcome, LoadSpec, Windows};
use super::procs::{HostSpec, KillableHost, OwnRedis};
use super::{ChaosConfig, ScenarioRow, hostile, readback};
use crate::bench::services::{Cleanup, host_port, pg_admin, redis_flush};
use crate::bench::{fresh_dir, say_as};
use crate::plan::Plan;
use loadgen::client::Client;
use loadgen::config::Mode;
use loadgen::plan::PlanParams;

/// Progress on stderr, so stdout keeps only the table.
pub(super) fn say(msg: &str) {
    say_as("chaos", msg);
}

/// What every scenario needs: the settings, the runtime and the run's seed.
pub(super) struct Harness<'a> {
    pub cfg: &'a ChaosConfig,
    pub rt: &'a tokio::runtime::Runtime,
    pub seed: u64,
}

impl Harness<'_> {
    pub(super) fn postgres_scenarios(
        &self,
        server: &str,
        out: &Path,
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
            run_id: format!("{}{tag}", loadgen::run::random_run_id()),
            events: Some(events),
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
            .block_on(crate::drain::drain(client, Duration::from_secs(120)));
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
                .block_on(crate::drain::drain(client, Duration::from_secs(30)));
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
    pub(super) fn kill_loop(
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
    pub(super) fn backlog(
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
        // What is still queued when the drain starts (the service may consume some on its own),
        // from `/health`: `/stats` would consume the backlog itself before `/drain` saw it.
        let backlog = self
            .rt
            .block_on(crate::drain::queue_size(&clients[0]))
            .unwrap_or(0);
        let t0 = Instant::now();
        let drain = self
            .rt
            .block_on(crate::drain::drain(&clients[0], Duration::from_secs(300)));
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
    pub(super) fn hostile(&self, scenario: &str, hosts: &[KillableHost]) -> Result<ScenarioRow> {
        say(scenario);
        let client = Client::new(&hosts[0].url, Duration::from_secs(30), 1)?;
        let topic = format!("{}.hostile", loadgen::run::random_run_id());
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

fn write_runtime_config(path: &Path, redis_url: &str) -> Result<()> {
    std::fs::write(
        path,
        format!(
            "# Written by lab chaos.\n[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis_url}\"\n"
        ),
    )
    .with_context(|| format!("writing {}", path.display()))
}
