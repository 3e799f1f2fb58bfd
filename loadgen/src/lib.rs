//! `loadgen`: an at-least-once load generator and verifier for the edge log aggregator.
//!
//! It sends a seeded plan of events (with exact replays and whole-batch resends) to the
//! service's publish routes, retries like a real publisher, and then checks that `/stats` moved
//! by exactly what the service acknowledged and that acknowledged events read back unchanged.
//! [`run`] does one whole run; [`raw`] measures the database's own limit, [`ping`] the host's
//! floor with a trivial component, and [`bench`] runs all of them and compares; [`chaos`]
//! breaks the service on purpose (kills, a Redis blip, a backlog, hostile input) and checks
//! that nothing acknowledged is lost or stored twice.

pub mod bench;
pub mod chaos;
pub mod client;
pub mod config;
pub mod ledger;
pub mod measure;
pub mod ping;
pub mod plan;
pub mod raw;
pub mod report;
pub mod run;
pub mod verify;

#[cfg(test)]
mod mock;

pub use config::{Config, Mode};
pub use report::Report;
pub use run::{run, run_async};
