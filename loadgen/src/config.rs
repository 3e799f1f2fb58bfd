//! The settings of one load run, independent of how they were given (CLI today, a `bench`
//! subcommand or a test tomorrow), and their validation.

use std::time::Duration;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::auth::Tokens;
use crate::protocol::Protocol;
use crate::tls::TlsOptions;

/// How events are carried to the service, so a run can exercise either publish route or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every request is `{"events": [...]}` to `/publish/batch`.
    Batch,
    /// Every request is one event object to `/publish`.
    Single,
    /// Each request picks batch or single by a seeded coin.
    Mixed,
}

/// Everything one run needs, so `run` can be called without a command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// Base URL of the service (`http://` or `https://`, optional path prefix).
    pub url: String,
    /// Bearer tokens for publishing and for the verification reads.
    pub tokens: Tokens,
    /// Certificate checks for `https://`.
    pub tls: TlsOptions,
    /// Total events to send, replays included (retries come on top); `None`: until
    /// `duration` ends.
    pub events: Option<u64>,
    /// Open loop: send this many events per second, each request at its intended time, and
    /// measure latency from that time; `None`: closed loop (each worker sends when answered).
    pub rate: Option<f64>,
    /// Fraction of `events` that are exact replays of earlier events.
    pub duplicate_rate: f64,
    /// Events per batch request.
    pub batch_size: usize,
    /// Number of concurrent workers (and keep-alive connections).
    pub concurrency: usize,
    /// Number of topics the events are spread over.
    pub topics: u32,
    /// Which publish route(s) to use.
    pub mode: Mode,
    /// The wire protocol of every request (and so the ingest route).
    pub protocol: Protocol,
    /// Send every body gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Stop issuing new requests after this long (in-flight ones finish); with `rate`, no
    /// request is scheduled at or after this time.
    pub duration: Option<Duration>,
    /// Seed for the plan and sampling; random (and reported) when absent.
    pub seed: Option<u64>,
    /// Whether to check `/stats` deltas and read events back after the run.
    pub verify: bool,
    /// Prefix of every topic; random when absent so runs never collide.
    pub run_id: Option<String>,
    /// Time limit of one HTTP attempt before it counts as a timeout.
    pub request_timeout: Duration,
    /// Attempts per request (first try included) before giving up.
    pub max_attempts: u32,
    /// Resend a request once after a `202`, as a cautious client does.
    pub resend_queued: bool,
    /// Draw a progress bar on stderr (callers pass "stderr is a TTY").
    pub progress: bool,
    /// How many acknowledged events to read back through `GET /events`.
    pub sample: usize,
    /// How long to wait for `queued` to reach 0 around the run.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: "http://127.0.0.1:3000".into(),
            tokens: Tokens::default(),
            tls: TlsOptions::default(),
            events: Some(25_000),
            rate: None,
            duplicate_rate: 0.35,
            batch_size: 100,
            concurrency: 16,
            topics: 8,
            mode: Mode::Batch,
            protocol: Protocol::Native,
            gzip: false,
            duration: None,
            seed: None,
            verify: true,
            run_id: None,
            request_timeout: Duration::from_secs(10),
            max_attempts: 5,
            resend_queued: true,
            progress: false,
            sample: 20,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Rejects settings that would make the plan or the accounting meaningless.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.duplicate_rate) {
            bail!(
                "--duplicate-rate must be in [0, 1), got {}",
                self.duplicate_rate
            );
        }
        match (self.events, self.duration) {
            (Some(0), _) => bail!("--events must be at least 1"),
            (None, None) => bail!("give --events or --duration (or both: whichever ends first)"),
            _ => {}
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            bail!("--rate must be a positive number of events per second, got {r}");
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            bail!("--batch-size must be in 1..=10000 (the service's default batch limit)");
        }
        if self.concurrency == 0 {
            bail!("--concurrency must be at least 1");
        }
        if self.topics == 0 {
            bail!("--topics must be at least 1");
        }
        if self.max_attempts == 0 {
            bail!("--max-attempts must be at least 1");
        }
        if self.request_timeout.is_zero() {
            bail!("--timeout must be positive");
        }
        if let Some(id) = &self.run_id {
            validate_run_id(id)?;
        }
        Ok(())
    }
}

/// Keeps run ids short and URL-safe, so topics stay valid and need no escaping.
pub fn validate_run_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 64 {
        bail!("--run-id must be 1-64 characters, got {:?}", id);
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("--run-id may only contain ASCII letters, digits, '-' and '_', got {id:?}");
    }
    Ok(())
}
