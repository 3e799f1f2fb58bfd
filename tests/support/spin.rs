//! Real Spin in the loop: with `EDGELOG_SPIN=/path/to/spin` set, [`super::Host`] starts
//! `spin up` (Spin 4.0.2) instead of edge-host, with the same manifest, runtime config, state
//! directory and environment (Spin variables as `SPIN_VARIABLE_*`). Without it nothing changes.
//!
//! What differs, and why:
//! - `spin up` runs the app in a child process (`spin trigger http`); both live in their own
//!   process group, so a SIGKILL reaches both (killing `spin up` alone would leave the trigger
//!   serving and holding the files).
//! - Spin verifies the certificate of any PostgreSQL server that offers TLS (the local one has a
//!   self-signed certificate), so a `SPIN_VARIABLE_DATABASE_URL` without `sslmode` gets
//!   `sslmode=disable` (see `docs/TESTING.md`).
//! - edge-host's own flags have no Spin equivalent: a test that needs one calls
//!   [`skip_on_spin`] first; a test that forgets gets a panic naming the flag, not a silent run
//!   without it.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The Spin CLI the suites run on, if `EDGELOG_SPIN` names one.
pub fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("EDGELOG_SPIN").filter(|p| !p.is_empty())?;
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "EDGELOG_SPIN={} is not a file (the Spin CLI to test on)",
        path.display()
    );
    Some(path)
}

/// Whether the suites run on real Spin (`EDGELOG_SPIN` is set).
pub fn on_spin() -> bool {
    binary().is_some()
}

/// Skips a test that needs something only edge-host has: on Spin, prints why and returns
/// true (the test then returns at once); on edge-host, returns false.
pub fn skip_on_spin(why: &str) -> bool {
    if on_spin() {
        eprintln!("SKIPPED on Spin: {why}");
        true
    } else {
        false
    }
}

/// `spin up`'s command, before the arguments both hosts share; `env` as the test gave it.
pub fn command(spin: &Path, edge_host_args: &[String], env: &[(String, String)]) -> Command {
    assert!(
        edge_host_args.is_empty(),
        "edge-host flags {edge_host_args:?} have no `spin up` equivalent: this test must call \
         support::skip_on_spin first"
    );
    let mut cmd = Command::new(spin);
    // `spin up` keeps the locked app in a temporary directory; one under the tests' own base is
    // removed with the rest even when the process is killed.
    cmd.arg("up")
        .arg("--temp")
        .arg(super::temp_dir("spin-up-"))
        .process_group(0);
    cmd.env("SPIN_PLUGINS_SUPPRESS_COMPATIBILITY_WARNINGS", "1");
    for (k, v) in env {
        let v = match k.as_str() {
            "SPIN_VARIABLE_DATABASE_URL" => without_tls(v),
            _ => v.clone(),
        };
        cmd.env(k, v);
    }
    cmd
}

/// A PostgreSQL URL with `sslmode=disable` unless it already names a mode.
fn without_tls(url: &str) -> String {
    if !url.starts_with("postgres") || url.contains("sslmode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// SIGKILL for the host: the whole process group under Spin (`spin up` and its trigger).
pub fn kill_all(child: &mut Child) {
    if on_spin() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Removes the ANSI colour sequences Spin may put around "Serving".
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
