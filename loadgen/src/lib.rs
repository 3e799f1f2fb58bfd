//! `loadgen`: an at-least-once load generator and verifier for the edge log aggregator.
//!
//! It sends a seeded plan of events (with exact replays and whole-batch resends) to the
//! service's publish routes, retries like a real publisher, and then checks that `/stats` moved
//! by exactly what the service acknowledged and that acknowledged events read back unchanged.
//! [`run`] does one whole run; [`ping`] measures the host's floor with a trivial component.
//! The project's test bench (benchmark, chaos, scale) is the `lab` crate, built on this one.

pub mod client;
pub mod config;
pub mod ledger;
pub mod measure;
pub mod ping;
pub mod plan;
pub mod report;
pub mod run;
pub mod verify;

pub use config::{Config, Mode};
pub use report::Report;
pub use run::{run, run_async};
