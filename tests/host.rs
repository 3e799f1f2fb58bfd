//! Integration tests of `edge-host`: the `kitchen-sink` fixture component
//! (`tests/fixtures/kitchen-sink`) is served by the real `edge-host` binary and driven over real
//! HTTP, against real SQLite files, the PostgreSQL server on 127.0.0.1:5432 and the Redis server
//! on 127.0.0.1:6379. Every interface edge-host provides is exercised: key-value (Spin and
//! wasi:keyvalue, SQLite and Redis backends, across two processes), SQLite (v3 and v2),
//! PostgreSQL v4 (every mapped type) and v3, variables and wasi:config, routing, streaming bodies,
//! guest output, graceful shutdown and start-up errors.
//!
//! One test binary, its tests by concept in `host/`: `key_value.rs`, `sqlite.rs`, `postgres.rs`,
//! `variables.rs`, `routing.rs`, `serving.rs` (bodies, guest output, shutdown, limits),
//! `startup.rs` (start-up errors) and `memory.rs` (the app's linear memory). This file holds what
//! several of them share: starting the fixture, runtime configs, requests, and running the binary
//! to its exit.

mod support;

#[path = "host/key_value.rs"]
mod key_value;
#[path = "host/memory.rs"]
mod memory;
#[path = "host/postgres.rs"]
mod postgres;
#[path = "host/routing.rs"]
mod routing;
#[path = "host/serving.rs"]
mod serving;
#[path = "host/sqlite.rs"]
mod sqlite;
#[path = "host/startup.rs"]
mod startup;
#[path = "host/variables.rs"]
mod variables;

use serde_json::{Value as Json, json};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::{Host, HostConfig, client, root, temp_dir};

/// Value given to the fixture's required variable `region`.
const REGION: &str = "eu-test-1";

/// The fixture's directory, where its manifests are (`routing.rs` uses another of them).
fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures/kitchen-sink")
}

/// The fixture's usual manifest (tests that run the binary themselves pass it to `up`).
fn fixture_manifest() -> PathBuf {
    fixture_dir().join("spin.toml")
}

/// A runtime config declaring the fixture's `other` store (a SQLite file beside the config: a
/// `spin` store without `path` is in memory on Spin, which edge-host refuses), followed by `extra`.
fn runtime_config(extra: &str) -> PathBuf {
    let path = temp_dir("edge-rc-").join("runtime-config.toml");
    std::fs::write(
        &path,
        format!("[key_value_store.other]\ntype = \"spin\"\npath = \"other.db\"\n{extra}"),
    )
    .unwrap();
    path
}

/// The fixture's host settings: `runtime_config`, and the `region` it requires, set.
fn fixture_config(runtime_config: PathBuf) -> HostConfig {
    HostConfig {
        manifest: Some(fixture_manifest()),
        runtime_config: Some(runtime_config),
        ..Default::default()
    }
    .env("SPIN_VARIABLE_REGION", REGION)
}

/// The fixture on its own edge-host with the plain runtime config, as most tests need it.
fn start_fixture() -> Host {
    Host::start(fixture_config(runtime_config("")))
}

/// POSTs `body` as JSON and returns the JSON answer, asserting a 200.
fn post_json(host: &Host, path: &str, body: &Json) -> Json {
    let resp = client()
        .post(host.at(path))
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = resp.status();
    let text = resp.text().unwrap();
    assert_eq!(status, 200, "POST {path} {body}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"))
}

/// Runs key-value operations and returns their results (panics if the store does not open).
fn kv(host: &Host, api: &str, store: &str, ops: Json) -> Vec<Json> {
    let answer = post_json(
        host,
        "/kv",
        &json!({ "api": api, "store": store, "ops": ops }),
    );
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{api} key-value store `{store}`: {answer}"))
        .clone()
}

/// The rows of a successful statement, or a panic showing its error.
fn ok_rows(result: &Json) -> &Vec<Json> {
    result["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("statement failed: {result}"))
}

/// Runs the edge-host binary to completion (it must exit within two minutes) and returns its
/// exit status and everything it printed.
fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String) {
    support::build_components();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-host"));
    cmd.args(args)
        .env_remove("SPIN_VARIABLE_REGION")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start edge-host");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "edge-host {args:?} did not exit; output:\n{}{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, out.join().unwrap() + &err.join().unwrap())
}
