//! `lab`: edgelog's test bench, built on `loadgen`'s library (never the other way round).
//!
//! [`bench`] runs the whole benchmark (edgelog on both backends, verified, beside the raw
//! database limits from [`raw`] and the host's floor from `loadgen ping`); [`chaos`] breaks the
//! service on purpose (kills, a Redis blip, a backlog, hostile input) and checks that nothing
//! acknowledged is lost or stored twice; [`mock`] is an in-process fake service whose faults
//! test loadgen's accounting; [`terminator`] puts a real TLS front (openssl certificates,
//! socat) before a service for the HTTPS tests. The `lab` binary adds `scale` (reads at 10
//! million events) and `slow-clients` (edge-host's admission limits).

pub mod bench;
pub mod chaos;
pub mod drain;
pub mod mock;
pub mod plan;
pub mod raw;
pub mod terminator;
