//! edge-host's outbound PostgreSQL against clusters these tests set up themselves (initdb into a
//! temporary directory, a free port, `ssl = on` with a CA and server certificate made by the
//! `openssl` CLI, TLS-only `pg_hba.conf`), driven through the kitchen-sink fixture over real
//! HTTP: every `sslmode`, certificate failures, errors that name their cause, unreachable
//! addresses that fail within seconds, service that resumes as soon as the database is back.
//! Also `--sqlite-mode spin`: the files really are in rollback-journal mode, and data round-trips.

#[path = "host_pg/cluster.rs"]
mod cluster;
mod support;

use cluster::{Cluster, PASSWORD, free_port};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Host, HostConfig, client, root, temp_dir};

/// Value for the fixture's required variable `region`.
const REGION: &str = "eu-test-1";
/// The fixture's manifest, copied with an allow-list that admits the test clusters' ports and
/// `localhost`.
fn manifest() -> PathBuf {
    let fixture = root().join("tests/fixtures/kitchen-sink");
    let text = std::fs::read_to_string(fixture.join("spin.toml")).unwrap();
    let wasm = root().join("target/wasm32-wasip2/release/kitchen_sink.wasm");
    let text = text
        .replace(
            "allowed_outbound_hosts = [\"postgres://127.0.0.1:5432\"]",
            "allowed_outbound_hosts = [\"postgres://127.0.0.1:*\", \"postgres://localhost:*\"]",
        )
        .replace(
            "source = \"../../../target/wasm32-wasip2/release/kitchen_sink.wasm\"",
            &format!("source = \"{}\"", wasm.display()),
        )
        .replace(
            "workdir = \"../../..\"",
            &format!("workdir = \"{}\"", root().display()),
        );
    assert!(
        text.contains("postgres://localhost:*"),
        "fixture manifest changed"
    );
    let dir = temp_dir("edge-pg-app-");
    std::fs::write(dir.join("spin.toml"), text).unwrap();
    let rc = "[key_value_store.other]\ntype = \"spin\"\npath = \"other.db\"\n";
    std::fs::write(dir.join("runtime-config.toml"), rc).unwrap();
    dir
}

fn start_host(args: &[&str]) -> Host {
    let dir = manifest();
    Host::start(
        HostConfig {
            manifest: Some(dir.join("spin.toml")),
            runtime_config: Some(dir.join("runtime-config.toml")),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
        .env("SPIN_VARIABLE_REGION", REGION),
    )
}

fn post(host: &Host, path: &str, body: &Json) -> Json {
    let resp = client().post(host.at(path)).json(body).send().unwrap();
    let status = resp.status();
    let text = resp.text().unwrap();
    assert_eq!(status, 200, "POST {path} {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Opens `url` through the fixture and runs `SELECT`s that show the session's TLS state and
/// database: `Ok(ssl)` on success, `Err(connection-failed text)` when the open failed.
fn probe(host: &Host, url: &str) -> Result<bool, String> {
    let answer = post(
        host,
        "/pg",
        &json!({ "url": url, "ops": [{ "op": "query", "sql":
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" }] }),
    );
    if let Some(e) = answer.get("open_error") {
        eprintln!("open {url}: {e}"); // shown with --nocapture, or when a test fails
        return Err(e["connection-failed"]
            .as_str()
            .unwrap_or_else(|| panic!("not connection-failed: {answer}"))
            .to_string());
    }
    let row = &answer["results"][0]["rows"][0][0];
    Ok(row["boolean"]
        .as_bool()
        .unwrap_or_else(|| panic!("{answer}")))
}

#[test]
fn every_sslmode_against_a_cluster_with_its_own_certificate() {
    let cluster = Cluster::start();
    let host = start_host(&[]);
    let ca = cluster.ca();
    let ip = |q: &str| cluster.url("postgres", "127.0.0.1", "edge_tls", q);

    // Encrypted without verification, as libpq: prefer (the default) and require.
    assert_eq!(probe(&host, &ip("")), Ok(true));
    assert_eq!(probe(&host, &ip("sslmode=prefer")), Ok(true));
    assert_eq!(probe(&host, &ip("sslmode=require")), Ok(true));
    // Verified against the given CA; verify-full also checks the address (an IP SAN here).
    assert_eq!(
        probe(&host, &ip(&format!("sslmode=verify-full&sslrootcert={ca}"))),
        Ok(true)
    );
    assert_eq!(
        probe(&host, &ip(&format!("sslmode=verify-ca&sslrootcert={ca}"))),
        Ok(true)
    );
    // require + sslrootcert verifies the chain (libpq): works with the right CA …
    assert_eq!(
        probe(&host, &ip(&format!("sslmode=require&sslrootcert={ca}"))),
        Ok(true)
    );

    // … and the system bundle does not know the test CA.
    for mode in ["verify-full", "verify-ca"] {
        let e = probe(&host, &ip(&format!("sslmode={mode}"))).unwrap_err();
        assert!(
            e.contains("certificate verification failed") && e.contains("UnknownIssuer"),
            "{mode}: {e}"
        );
    }
    // A host name the certificate does not carry: verify-full refuses, verify-ca accepts.
    // (`hostaddr` pins the address, so only the name differs.)
    let by_name = |q: &str| {
        cluster.url(
            "postgres",
            "localhost",
            "edge_tls",
            &format!("hostaddr=127.0.0.1&{q}"),
        )
    };
    let e = probe(
        &host,
        &by_name(&format!("sslmode=verify-full&sslrootcert={ca}")),
    )
    .unwrap_err();
    assert!(
        e.contains("certificate verification failed") && e.contains("localhost"),
        "{e}"
    );
    assert_eq!(
        probe(
            &host,
            &by_name(&format!("sslmode=verify-ca&sslrootcert={ca}"))
        ),
        Ok(true)
    );

    // The server accepts only TLS: sslmode=disable is refused, and the message says why.
    let e = probe(&host, &ip("sslmode=disable")).unwrap_err();
    assert!(
        e.contains("no encryption") && e.contains("28000") && e.contains("sslmode=disable"),
        "{e}"
    );

    // A CA file that is not there is named.
    let e = probe(
        &host,
        &ip("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
    )
    .unwrap_err();
    assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");

    // Root causes, not "db error": a missing database, a wrong password (never echoed).
    let e = probe(
        &host,
        &ip("sslmode=require").replace("/edge_tls", "/edgelog_missing"),
    )
    .unwrap_err();
    assert!(
        e.contains("database \"edgelog_missing\" does not exist") && e.contains("3D000"),
        "{e}"
    );
    let wrong = format!(
        "postgres://pwuser:not-the-password@127.0.0.1:{}/edge_tls",
        cluster.port
    );
    let e = probe(&host, &wrong).unwrap_err();
    assert!(
        e.contains("password authentication failed for user \"pwuser\"") && e.contains("28P01"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
    let right = format!(
        "postgres://pwuser:{PASSWORD}@127.0.0.1:{}/edge_tls",
        cluster.port
    );
    assert_eq!(probe(&host, &right), Ok(true));

    // `--postgres-tls spin`: Spin's meaning. The same URLs that encrypt without verifying above
    // fail verification here (as `spin up` fails against a self-signed server), and the
    // libpq-only options are refused as Spin's `tokio-postgres` refuses them.
    let spin = start_host(&["--postgres-tls", "spin"]);
    for q in ["", "sslmode=prefer", "sslmode=require"] {
        let e = probe(&spin, &ip(q)).unwrap_err();
        assert!(
            e.contains("certificate verification failed") && e.contains("UnknownIssuer"),
            "spin, {q}: {e}"
        );
    }
    for q in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        "sslmode=verify-ca".to_string(),
        format!("sslrootcert={ca}"),
    ] {
        let e = probe(&spin, &ip(&q)).unwrap_err();
        assert!(e.contains("not accepted by Spin"), "spin, {q}: {e}");
    }
    drop(spin);

    // The host log keeps the cause too, without the password.
    let logs = host.logs();
    assert!(logs.contains("does not exist (SQLSTATE 3D000)"), "{logs}");
    assert!(
        logs.contains("pwuser@127.0.0.1") && !logs.contains("not-the-password"),
        "{logs}"
    );
}

#[test]
fn unreachable_addresses_fail_within_seconds_with_their_cause() {
    let host = start_host(&[]);
    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let started = Instant::now();
    let e = probe(&host, &closed).unwrap_err();
    assert!(e.contains("Connection refused"), "{e}");
    // A server that accepts the TCP connection and never answers (a hung database, or a
    // middlebox that black-holes the session): the connection set-up limit answers, within
    // seconds, instead of the request hanging until its own timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started_silent = Instant::now();
    let e = probe(&host, &format!("postgres://postgres@127.0.0.1:{port}/x")).unwrap_err();
    let took = started_silent.elapsed();
    assert!(e.contains("no connection within 5 s"), "silent server: {e}");
    // A functional bound on the timeouts (connect 2 s, connection set-up 5 s), not a benchmark.
    assert!(
        took < Duration::from_secs(15),
        "silent server took {took:?}"
    );
    drop(silent);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn service_resumes_as_soon_as_the_database_returns() {
    let mut cluster = Cluster::start();
    let host = start_host(&[]);
    let url = cluster.url("postgres", "127.0.0.1", "edge_tls", "sslmode=require");
    // Warm the pool with several connections.
    let many: Vec<_> = (0..4)
        .map(|_| {
            let (h, u) = (host.url.clone(), url.clone());
            std::thread::spawn(move || {
                let body =
                    json!({ "url": u, "ops": [{ "op": "query", "sql": "SELECT pg_sleep(0.2)" }] });
                client()
                    .post(format!("{h}/pg"))
                    .json(&body)
                    .send()
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in many {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(probe(&host, &url), Ok(true));

    cluster.stop();
    let e = probe(&host, &url).unwrap_err();
    assert!(e.contains("Connection refused"), "database down: {e}");

    cluster.spawn();
    // The pooled connections died with the server; the next requests must get fresh ones
    // straight away, not fail on stale ones.
    for i in 0..6 {
        assert_eq!(
            probe(&host, &url),
            Ok(true),
            "request {i} after the restart"
        );
    }
}

#[test]
fn a_statement_without_an_answer_is_cut_off_and_the_connection_replaced() {
    let cluster = Cluster::start();
    let host = start_host(&[]);
    let url = cluster.url("postgres", "127.0.0.1", "edge_tls", "sslmode=require");
    let answer = post(
        &host,
        "/pg",
        &json!({ "url": url, "ops": [
            { "op": "query", "sql": "SELECT pg_sleep(60)" },
            { "op": "query", "sql": "SELECT 1::int4" },
        ] }),
    );
    let first = answer["results"][0]["error"]["connection-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        first.contains("no answer from PostgreSQL within"),
        "{first}"
    );
    let second = answer["results"][1]["error"]["connection-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(second.contains("connection closed"), "{second}");
    // The server was asked to cancel the statement: no pg_sleep left running.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running: i64 = cluster
            .admin()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'",
                &[],
            )
            .unwrap()
            .get(0);
        if running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the statement still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(probe(&host, &url), Ok(true));
}

/// `PRAGMA journal_mode` of the file at `path`, read without changing it.
fn journal_mode(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sqlite_mode_spin_keeps_spins_rollback_journal_and_round_trips_data() {
    for (mode, want) in [("spin", "delete"), ("tuned", "wal")] {
        let dir = manifest();
        let state = temp_dir("edge-pg-sqlite-state-");
        let host = Host::start(
            HostConfig {
                manifest: Some(dir.join("spin.toml")),
                runtime_config: Some(dir.join("runtime-config.toml")),
                state_dir: Some(state.clone()),
                args: vec!["--sqlite-mode".into(), mode.into()],
                ..Default::default()
            }
            .env("SPIN_VARIABLE_REGION", REGION),
        );
        let kv = post(
            &host,
            "/kv",
            &json!({ "api": "spin", "store": "default", "ops": [["set", "k", "v1"], ["get", "k"]] }),
        );
        assert_eq!(kv["results"][1], json!("v1"), "{mode}: {kv}");
        let db = post(
            &host,
            "/sqlite",
            &json!({ "api": "v3", "db": "default", "ops": [
                { "sql": "CREATE TABLE t (v)" },
                { "sql": "INSERT INTO t VALUES (?)", "params": [{ "integer": 7 }] },
                { "sql": "SELECT v FROM t" },
            ] }),
        );
        assert_eq!(
            db["results"][2]["rows"],
            json!([[{ "integer": 7 }]]),
            "{mode}: {db}"
        );
        for file in ["sqlite_key_value.db", "sqlite_db.db"] {
            assert_eq!(journal_mode(&state.join(file)), want, "{mode}: {file}");
        }
        if mode == "spin" {
            // The component may still put its database in WAL itself; the mode does not forbid it.
            let wal = post(
                &host,
                "/sqlite",
                &json!({ "api": "v3", "db": "default", "ops": [
                    { "sql": "PRAGMA journal_mode=WAL" },
                    { "sql": "INSERT INTO t VALUES (8)" },
                    { "sql": "SELECT count(*) FROM t" },
                ] }),
            );
            assert_eq!(
                wal["results"][0]["rows"],
                json!([[{ "text": "wal" }]]),
                "{wal}"
            );
            assert_eq!(
                wal["results"][2]["rows"],
                json!([[{ "integer": 2 }]]),
                "{wal}"
            );
            assert_eq!(journal_mode(&state.join("sqlite_db.db")), "wal");
            assert_eq!(journal_mode(&state.join("sqlite_key_value.db")), "delete");
        }
    }
}
