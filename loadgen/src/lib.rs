//! `loadgen`: an at-least-once load generator and verifier for the edge log aggregator.
//!
//! It sends a seeded, lazily generated plan of events (with exact replays and whole-batch
//! resends) to the service's publish routes, or as OTLP, Loki or NDJSON ([`protocol`]), over
//! HTTP or HTTPS (HTTP/2 where offered), with bearer tokens, at a concurrency or an open-loop
//! rate, retries like a real publisher, and then checks that `/stats` moved by exactly what the
//! service acknowledged and that a sample of acknowledged events reads back unchanged. Memory
//! does not grow with the run's length beyond the ledger's two bits per distinct event.
//! [`run`] does one whole run; [`ping`] measures the host's floor with a trivial component.
//! The project's test bench (benchmark, chaos, scale) is the `lab` crate, built on this one.

pub mod auth;
pub mod client;
pub mod config;
pub mod events;
pub mod ledger;
pub mod measure;
pub mod ping;
pub mod plan;
pub mod protocol;
pub mod readback;
pub mod report;
pub mod run;
pub mod send;
pub mod tls;
pub mod verify;

pub use config::{Config, Mode};
pub use protocol::Protocol;
pub use report::Report;
pub use run::{run, run_async};
