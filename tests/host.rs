//! Integration tests of `edge-host`: the `kitchen-sink` fixture component
//! (`tests/fixtures/kitchen-sink`) is served by the real `edge-host` binary and driven over real
//! HTTP, against real SQLite files, the PostgreSQL server on 127.0.0.1:5432 and the Redis server
//! on 127.0.0.1:6379. Every interface edge-host provides is exercised: key-value (Spin and
//! wasi:keyvalue, SQLite and Redis backends, across two processes), SQLite (v3 and v2),
//! PostgreSQL v4 (every mapped type) and v3, variables and wasi:config, routing, streaming bodies,
//! guest output, graceful shutdown and start-up errors.

mod support;

use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};
use support::{Host, HostConfig, TestDatabase, TestRedis, client, root, temp_dir};

/// Value given to the fixture's required variable `region`.
const REGION: &str = "eu-test-1";
/// Default of the fixture's secret variable `api_token`.
const SECRET: &str = "s3cr3t-t0ken";

fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures/kitchen-sink")
}

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

/// A runtime config that puts the `default` store in `redis` (written by the harness) and
/// declares the fixture's `other` store.
fn redis_runtime_config(redis: &TestRedis) -> PathBuf {
    let path = redis.runtime_config(&temp_dir("edge-rc-"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[key_value_store.other]\ntype = \"spin\"\npath = \"other.db\"\n");
    std::fs::write(&path, text).unwrap();
    path
}

fn fixture_config(runtime_config: PathBuf) -> HostConfig {
    HostConfig {
        manifest: Some(fixture_manifest()),
        runtime_config: Some(runtime_config),
        ..Default::default()
    }
    .env("SPIN_VARIABLE_REGION", REGION)
}

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

/// Runs SQLite statements and returns their results (panics if the database does not open).
fn sqlite(host: &Host, api: &str, ops: Json) -> Vec<Json> {
    let answer = post_json(
        host,
        "/sqlite",
        &json!({ "api": api, "db": "default", "ops": ops }),
    );
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("sqlite {api}: {answer}"))
        .clone()
}

/// Runs Postgres operations against `url` and returns their results.
fn pg(host: &Host, url: &str, ops: Json) -> Vec<Json> {
    let answer = post_json(host, "/pg", &json!({ "url": url, "ops": ops }));
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("postgres: {answer}"))
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

// ---------------------------------------------------------------------------------------------
// Key-value

#[test]
fn spin_key_value_api_on_a_named_store() {
    let host = start_fixture();
    let r = kv(
        &host,
        "spin",
        "other",
        json!([
            ["get", "alpha"],
            ["exists", "alpha"],
            ["set", "alpha", "one"],
            ["set", "beta", "two"],
            ["set", "bin", { "hex": "00ff7f80" }],
            ["get", "alpha"],
            ["get", "bin"],
            ["exists", "alpha"],
            ["keys"],
            ["set", "alpha", "uno"],
            ["get", "alpha"],
            ["delete", "alpha"],
            ["delete", "never-existed"],
            ["get", "alpha"],
            ["exists", "alpha"],
            ["keys"],
        ]),
    );
    let expected = json!([
        null,
        false,
        null,
        null,
        null,
        "one",
        { "hex": "00ff7f80" },
        true,
        ["alpha", "beta", "bin"],
        null,
        "uno",
        null,
        null,
        null,
        false,
        ["beta", "bin"],
    ]);
    assert_eq!(Json::Array(r), expected);

    // Stores are isolated from each other, and the data is there for the next request.
    let r = kv(&host, "spin", "default", json!([["keys"], ["get", "beta"]]));
    assert_eq!(Json::Array(r), json!([[], null]));
    let r = kv(&host, "spin", "other", json!([["get", "beta"]]));
    assert_eq!(Json::Array(r), json!(["two"]));
}

#[test]
fn wasi_keyvalue_store_increment_and_batch() {
    let host = start_fixture();
    let r = kv(
        &host,
        "wasi",
        "default",
        json!([
            ["set", "k1", "v1"],
            ["get", "k1"],
            ["get", "missing"],
            ["exists", "k1"],
            ["exists", "missing"],
            ["keys"],
            ["delete", "k1"],
            ["exists", "k1"],
            ["increment", "hits", 5],
            ["increment", "hits", -2],
            ["increment", "hits", 0],
            ["increment", "fresh", 0],
            ["set", "text", "not a number"],
            ["increment", "text", 1],
            ["get", "text"],
        ]),
    );
    // Incrementing something that is not a counter is an error and changes nothing.
    assert!(r[13]["error"]["other"].is_string(), "{}", r[13]);
    assert_eq!(r[14], json!("not a number"));
    kv(&host, "wasi", "default", json!([["delete", "text"]]));
    assert_eq!(
        Json::Array(r[..13].to_vec()),
        json!([
            null,
            "v1",
            null,
            true,
            false,
            ["k1"],
            null,
            false,
            5,
            3,
            3,
            0,
            null
        ])
    );

    let r = kv(
        &host,
        "wasi",
        "default",
        json!([
            ["set_many", [["a", "1"], ["b", "2"], ["c", { "hex": "00ff" }]]],
            ["get_many", ["c", "a", "b", "nope", "a"]],
            ["delete_many", ["a", "c", "nope"]],
            ["get_many", ["a", "b", "c"]],
            ["keys"],
        ]),
    );
    // get-many as Spin 4.0.2 answers on a SQLite store: the keys found, each once, in key order.
    assert_eq!(
        Json::Array(r),
        json!([
            null,
            [["a", "1"], ["b", "2"], ["c", { "hex": "00ff" }]],
            null,
            [["b", "2"]],
            ["b", "fresh", "hits"],
        ])
    );
    // The Spin API sees what wasi:keyvalue wrote (same store).
    let r = kv(
        &host,
        "spin",
        "default",
        json!([["get", "b"], ["get", "hits"]]),
    );
    assert_eq!(Json::Array(r), json!(["2", "3"]));
}

#[test]
fn undeclared_stores_and_databases_are_denied() {
    let host = start_fixture();
    for api in ["spin", "wasi"] {
        let answer = post_json(
            &host,
            "/kv",
            &json!({ "api": api, "store": "undeclared", "ops": [["get", "x"]] }),
        );
        assert_eq!(answer, json!({ "open_error": "access-denied" }), "{api}");
    }
    for api in ["v3", "v2"] {
        let answer = post_json(
            &host,
            "/sqlite",
            &json!({ "api": api, "db": "undeclared", "ops": [{ "sql": "SELECT 1" }] }),
        );
        assert_eq!(answer, json!({ "open_error": "access-denied" }), "{api}");
    }
}

/// Fires `per_host` concurrent requests at each host (all released at once by a barrier) and
/// returns every answer.
fn hammer(hosts: &[&Host], per_host: usize, body: &Json) -> Vec<Json> {
    let total = hosts.len() * per_host;
    let barrier = Barrier::new(total);
    let http = client();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..total)
            .map(|i| {
                let host = hosts[i % hosts.len()];
                let (barrier, http) = (&barrier, &http);
                s.spawn(move || {
                    barrier.wait();
                    let resp = http.post(host.at("/kv")).json(body).send().unwrap();
                    let status = resp.status();
                    let text = resp.text().unwrap();
                    assert_eq!(status, 200, "{text}");
                    serde_json::from_str::<Json>(&text).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Two hosts sharing one state directory and the same runtime config.
fn two_hosts(runtime_config: PathBuf) -> (Host, Host) {
    let state = temp_dir("edge-shared-state-");
    let config = HostConfig {
        state_dir: Some(state),
        ..fixture_config(runtime_config)
    };
    (Host::start(config.clone()), Host::start(config))
}

fn increments_are_exact_across_two_hosts(a: &Host, b: &Host) {
    let body = json!({ "api": "wasi", "store": "default", "ops": [["increment", "counter", 1]] });
    let answers = hammer(&[a, b], 16, &body);
    let seen: BTreeSet<i64> = answers
        .iter()
        .map(|a| a["results"][0].as_i64().unwrap_or_else(|| panic!("{a}")))
        .collect();
    // Every increment saw a different value: none was lost or applied twice.
    assert_eq!(seen, (1..=32).collect::<BTreeSet<i64>>());
    for host in [a, b] {
        let r = kv(
            host,
            "wasi",
            "default",
            json!([["increment", "counter", 0]]),
        );
        assert_eq!(r, vec![json!(32)]);
    }
}

#[test]
fn increment_is_atomic_across_two_hosts_sharing_a_sqlite_state_dir() {
    let (a, b) = two_hosts(runtime_config(""));
    increments_are_exact_across_two_hosts(&a, &b);
}

#[test]
fn increment_is_atomic_across_two_hosts_sharing_redis() {
    let redis = TestRedis::reserve();
    let (a, b) = two_hosts(redis_runtime_config(&redis));
    increments_are_exact_across_two_hosts(&a, &b);
    // The counter really lives in Redis.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: String = redis::cmd("GET").arg("counter").query(&mut conn).unwrap();
    assert_eq!(stored, "32");
}

/// 2 hosts × 16 threads, each request doing two CAS-loop increments: the counter ends exact
/// and every successful swap produced a distinct value.
fn cas_loops_are_exact_across_two_hosts(a: &Host, b: &Host) {
    let body = json!({
        "api": "wasi",
        "store": "default",
        "ops": [["cas_incr", "cas-counter"], ["cas_incr", "cas-counter"]],
    });
    let answers = hammer(&[a, b], 16, &body);
    let mut seen = BTreeSet::new();
    for answer in &answers {
        for r in answer["results"].as_array().unwrap() {
            let v = r["value"].as_i64().unwrap_or_else(|| panic!("{answer}"));
            assert!(seen.insert(v), "value {v} produced twice: {answers:?}");
        }
    }
    assert_eq!(seen, (1..=64).collect::<BTreeSet<i64>>());
    let r = kv(a, "wasi", "default", json!([["get", "cas-counter"]]));
    assert_eq!(r, vec![json!("64")]);
}

fn cas_conflicts_are_detected(host: &Host) {
    let r = kv(
        host,
        "wasi",
        "default",
        json!([
            ["cas_race", "race", "present"],
            ["cas_race", "race-absent", "absent"]
        ]),
    );
    assert_eq!(
        r[0],
        json!({
            "seen": "original",
            "outcome": { "conflict_detected": true, "current_after_conflict": "overwritten" },
            "final": "overwritten",
        })
    );
    assert_eq!(
        r[1],
        json!({
            "seen": null,
            "outcome": { "conflict_detected": true, "current_after_conflict": "overwritten" },
            "final": "overwritten",
        })
    );
    // Without interference the swap goes through, including on an absent key.
    let r = kv(
        host,
        "wasi",
        "default",
        json!([["cas_incr", "solo"], ["cas_incr", "solo"]]),
    );
    assert_eq!(
        Json::Array(r),
        json!([{ "value": 1, "retries": 0 }, { "value": 2, "retries": 0 }])
    );
}

#[test]
fn cas_loops_and_conflicts_with_sqlite_store() {
    let (a, b) = two_hosts(runtime_config(""));
    cas_conflicts_are_detected(&a);
    cas_loops_are_exact_across_two_hosts(&a, &b);
}

#[test]
fn cas_loops_and_conflicts_with_redis_store() {
    let redis = TestRedis::reserve();
    let (a, b) = two_hosts(redis_runtime_config(&redis));
    cas_conflicts_are_detected(&a);
    cas_loops_are_exact_across_two_hosts(&a, &b);
}

#[test]
fn spin_key_value_api_against_redis() {
    let redis = TestRedis::reserve();
    let host = Host::start(fixture_config(redis_runtime_config(&redis)));
    let r = kv(
        &host,
        "spin",
        "default",
        json!([
            ["set", "x", "1"],
            ["set", "bin", { "hex": "00ff" }],
            ["get", "x"],
            ["get", "bin"],
            ["exists", "x"],
            ["keys"],
            ["delete", "x"],
            ["exists", "x"],
        ]),
    );
    assert_eq!(
        Json::Array(r),
        json!([null, null, "1", { "hex": "00ff" }, true, ["bin", "x"], null, false])
    );
    let r = kv(
        &host,
        "wasi",
        "default",
        json!([
            ["set_many", [["m1", "a"], ["m2", "b"]]],
            ["get_many", ["m1", "m2", "m3"]],
            ["get_many", ["m3"]],
            ["get_many", []],
            ["delete_many", ["m2"]],
            ["keys"],
        ]),
    );
    // get-many as Spin 4.0.2 serves it on Redis (`KEYS k1 k2 …`): two keys or more are Redis's
    // error, one key that does not exist an empty list.
    assert!(
        r[1]["error"]["other"]
            .as_str()
            .is_some_and(|e| e.contains("wrong number of arguments")),
        "{}",
        r[1]
    );
    assert_eq!(
        Json::Array(r.clone()),
        json!([null, r[1], [], [], null, ["bin", "m1"]])
    );
    // One key that exists panics Spin's host: the request fails.
    let resp = client()
        .post(host.at("/kv"))
        .json(&json!({ "api": "wasi", "store": "default", "ops": [["get_many", ["m1"]]] }))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
}

// ---------------------------------------------------------------------------------------------
// SQLite

#[test]
fn sqlite_parameters_round_trip_every_value_type() {
    let host = start_fixture();
    let row = json!([
        { "integer": i64::MIN },
        { "real": -0.1 },
        { "text": "ünïcödé ✓ 'quoted' \"double\"" },
        { "blob": [0, 255, 1, 254, 0] },
        "null",
    ]);
    for (api, table) in [("v3", "vals3"), ("v2", "vals2")] {
        let r = sqlite(
            &host,
            api,
            json!([
                { "sql": format!("CREATE TABLE {table} (i INTEGER, r REAL, t TEXT, b BLOB, n)") },
                { "sql": format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?)"), "params": row },
                { "sql": format!("INSERT INTO {table} (i) VALUES (?)"), "params": [{ "integer": i64::MAX }] },
                { "sql": format!("SELECT i, r, t, b, n FROM {table} WHERE i = ?"), "params": [{ "integer": i64::MIN }] },
                { "sql": format!("SELECT typeof(i), typeof(r), typeof(t), typeof(b), typeof(n) FROM {table} WHERE i < 0") },
                { "sql": format!("SELECT count(*) AS c, max(i) AS m FROM {table}") },
                { "sql": "SELECT * FROM no_such_table" },
            ]),
        );
        assert_eq!(r.len(), 7, "{api}: {r:?}");
        for (i, res) in r.iter().enumerate().take(6) {
            assert!(res.get("error").is_none(), "{api} statement {i}: {res}");
        }
        assert_eq!(r[3]["columns"], json!(["i", "r", "t", "b", "n"]), "{api}");
        assert_eq!(r[3]["rows"], json!([row]), "{api}");
        assert_eq!(
            r[4]["rows"],
            json!([[{ "text": "integer" }, { "text": "real" }, { "text": "text" }, { "text": "blob" }, { "text": "null" }]]),
            "{api}"
        );
        assert_eq!(r[5]["columns"], json!(["c", "m"]), "{api}");
        assert_eq!(
            r[5]["rows"],
            json!([[{ "integer": 2 }, { "integer": i64::MAX }]]),
            "{api}"
        );
        let err = r[6]["error"]["io"]
            .as_str()
            .unwrap_or_else(|| panic!("{api}: {}", r[6]));
        assert!(err.contains("no such table"), "{api}: {err}");
        if api == "v3" {
            assert_eq!(r[1]["changes"], json!(1));
            assert_eq!(r[2]["last_insert_rowid"], json!(2));
        }
    }
}

#[test]
fn sqlite_transactions_commit_roll_back_and_never_leak() {
    let host = start_fixture();
    let count = json!({ "sql": "SELECT count(*) FROM t" });
    let r = sqlite(
        &host,
        "v3",
        json!([
            { "sql": "CREATE TABLE t (v TEXT)" },
            { "sql": "BEGIN" },
            { "sql": "INSERT INTO t VALUES (?)", "params": [{ "text": "rolled back" }] },
            count,
            { "sql": "ROLLBACK" },
            count,
            { "sql": "BEGIN" },
            { "sql": "INSERT INTO t VALUES (?)", "params": [{ "text": "committed" }] },
            { "sql": "COMMIT" },
            count,
        ]),
    );
    let counts: Vec<&Json> = [3, 5, 9].iter().map(|i| &ok_rows(&r[*i])[0][0]).collect();
    assert_eq!(
        counts,
        [
            &json!({ "integer": 1 }),
            &json!({ "integer": 0 }),
            &json!({ "integer": 1 })
        ],
        "{r:?}"
    );

    // A request that leaves a transaction open: its write is rolled back when the request ends
    // and the write lock is released for the next request. Whether the transaction began with
    // a plain BEGIN (the guest's own connection) or BEGIN IMMEDIATE (edge-host's writer).
    for begin in ["BEGIN", "BEGIN IMMEDIATE"] {
        let r = sqlite(
            &host,
            "v3",
            json!([{ "sql": begin }, { "sql": "INSERT INTO t VALUES ('left open')" }]),
        );
        assert!(r.iter().all(|x| x.get("error").is_none()), "{r:?}");
    }
    let r = sqlite(
        &host,
        "v2",
        json!([
            { "sql": "INSERT INTO t VALUES ('next request')" },
            { "sql": "SELECT v FROM t ORDER BY rowid" },
        ]),
    );
    assert_eq!(
        r[1]["rows"],
        json!([[{ "text": "committed" }], [{ "text": "next request" }]]),
        "{r:?}"
    );
}

#[test]
fn sqlite_changes_and_rowid_answer_for_the_guests_connection() {
    // edge-host runs a write outside a transaction on the file's writer connection and the rest
    // on the guest's own pooled one; `changes` and `last_insert_rowid` must still answer as one
    // connection that Spin has just opened would: 0 before the guest's first change, then the
    // guest's last INSERT, UPDATE or DELETE, whichever connection ran it.
    let host = start_fixture();
    let last = |r: &Json| (r["changes"].clone(), r["last_insert_rowid"].clone());
    let r = sqlite(
        &host,
        "v3",
        json!([
            { "sql": "CREATE TABLE w (v INTEGER)" },
            { "sql": "INSERT INTO w VALUES (1), (2), (3)" },
            { "sql": "SELECT count(*) FROM w" },
            { "sql": "UPDATE w SET v = v WHERE 0" },
            { "sql": "BEGIN IMMEDIATE" },
            { "sql": "SELECT max(v) FROM w" },
            { "sql": "INSERT INTO w VALUES (4)" },
            { "sql": "COMMIT" },
            { "sql": "BEGIN" },
            { "sql": "DELETE FROM w WHERE v < 3" },
            { "sql": "COMMIT" },
            { "sql": "WITH n(x) AS (VALUES (5)) INSERT INTO w SELECT x FROM n" },
            { "sql": "INSERT INTO w SELECT 9 WHERE 0" },
            { "sql": "SELECT * FROM no_such_table" },
        ]),
    );
    let got: Vec<_> = r.iter().take(13).map(last).collect();
    let want: Vec<_> = [
        (0, 0),
        (3, 3),
        (3, 3),
        (0, 3),
        (0, 3),
        (0, 3),
        (1, 4),
        (1, 4),
        (1, 4),
        (2, 4),
        (2, 4),
        (1, 5),
        (0, 5),
    ]
    .iter()
    .map(|&(c, id)| (json!(c), json!(id)))
    .collect();
    assert_eq!(got, want, "{r:?}");
    assert!(r[13].get("error").is_some(), "{r:?}");

    // A later request's connection has made no change yet, though the pooled and writer
    // connections behind it have.
    for _ in 0..3 {
        let r = sqlite(&host, "v3", json!([{ "sql": "SELECT count(*) FROM w" }]));
        assert_eq!(last(&r[0]), (json!(0), json!(0)), "{r:?}");
    }
}

#[test]
fn sqlite_connection_settings_and_temp_tables_hold_for_the_guests_writes() {
    // A guest that sets up its connection (a PRAGMA, a TEMP table) must find that set-up in
    // every later statement, writes included, though edge-host runs other guests' writes on the
    // file's writer connection; and the next guest must not inherit it. (Foreign keys are
    // enforced by default in the SQLite that Spin and edge-host bundle.)
    let host = start_fixture();
    let r = sqlite(
        &host,
        "v3",
        json!([
            { "sql": "CREATE TABLE parent (id INTEGER PRIMARY KEY)" },
            { "sql": "CREATE TABLE child (p INTEGER REFERENCES parent (id))" },
            { "sql": "PRAGMA foreign_keys = OFF" },
            { "sql": "INSERT INTO child VALUES (42)" },
            { "sql": "CREATE TEMP TABLE scratch (v)" },
            { "sql": "INSERT INTO scratch VALUES (1), (2)" },
            { "sql": "SELECT count(*) FROM scratch" },
        ]),
    );
    assert!(r.iter().all(|x| x.get("error").is_none()), "{r:?}");
    assert_eq!(ok_rows(&r[6])[0], json!([{ "integer": 2 }]), "{r:?}");
    for _ in 0..3 {
        let r = sqlite(
            &host,
            "v3",
            json!([
                { "sql": "INSERT INTO child VALUES (43)" },
                { "sql": "SELECT count(*) FROM child" },
                { "sql": "SELECT count(*) FROM temp.sqlite_master" },
            ]),
        );
        let err = r[0]["error"]["io"]
            .as_str()
            .unwrap_or_else(|| panic!("{r:?}"));
        assert!(err.contains("FOREIGN KEY"), "{err}");
        assert_eq!(ok_rows(&r[1])[0], json!([{ "integer": 1 }]), "{r:?}");
        assert_eq!(ok_rows(&r[2])[0], json!([{ "integer": 0 }]), "{r:?}");
    }
}

#[test]
fn concurrent_sqlite_write_transactions_all_commit_exactly() {
    // 24 requests at once, each a write transaction (deferred BEGIN, or BEGIN IMMEDIATE with a
    // read before the write) plus an autocommit insert: none may fail with
    // "database is locked" or deadlock, and the counter must count every one exactly once.
    let host = start_fixture();
    sqlite(
        &host,
        "v3",
        json!([
            { "sql": "CREATE TABLE c (n INTEGER NOT NULL)" },
            { "sql": "INSERT INTO c VALUES (0)" },
            { "sql": "CREATE TABLE log (who INTEGER NOT NULL)" },
        ]),
    );
    let barrier = Barrier::new(24);
    std::thread::scope(|s| {
        for i in 0..24 {
            let (barrier, host) = (&barrier, &host);
            s.spawn(move || {
                // A deferred BEGIN must write first: reading first would make its later write
                // fail with SQLITE_BUSY_SNAPSHOT under any host, as SQLite intends.
                let tx = if i % 2 == 0 {
                    json!([{ "sql": "BEGIN" }, { "sql": "UPDATE c SET n = n + 1" }])
                } else {
                    json!([
                        { "sql": "BEGIN IMMEDIATE" },
                        { "sql": "SELECT n FROM c" },
                        { "sql": "UPDATE c SET n = n + 1" },
                    ])
                };
                let mut ops = tx.as_array().unwrap().clone();
                ops.push(json!({ "sql": "COMMIT" }));
                ops.push(
                    json!({ "sql": "INSERT INTO log VALUES (?)", "params": [{ "integer": i }] }),
                );
                barrier.wait();
                let r = sqlite(host, if i % 3 == 0 { "v2" } else { "v3" }, json!(ops));
                assert!(
                    r.iter().all(|x| x.get("error").is_none()),
                    "request {i}: {r:?}"
                );
            });
        }
    });
    let r = sqlite(
        &host,
        "v3",
        json!([{ "sql": "SELECT n, (SELECT count(DISTINCT who) FROM log) FROM c" }]),
    );
    assert_eq!(
        ok_rows(&r[0])[0],
        json!([{ "integer": 24 }, { "integer": 24 }]),
        "{r:?}"
    );
}

#[test]
fn state_survives_a_restart() {
    let mut host = start_fixture();
    kv(&host, "spin", "other", json!([["set", "persist", "yes"]]));
    kv(&host, "wasi", "default", json!([["increment", "n", 7]]));
    sqlite(
        &host,
        "v3",
        json!([{ "sql": "CREATE TABLE p (v)" }, { "sql": "INSERT INTO p VALUES (42)" }]),
    );
    host.kill();
    host.spawn();
    assert_eq!(
        kv(&host, "spin", "other", json!([["get", "persist"]])),
        vec![json!("yes")]
    );
    assert_eq!(
        kv(&host, "wasi", "default", json!([["increment", "n", 0]])),
        vec![json!(7)]
    );
    let r = sqlite(&host, "v3", json!([{ "sql": "SELECT v FROM p" }]));
    assert_eq!(r[0]["rows"], json!([[{ "integer": 42 }]]));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

const PG_CREATE: &str = "CREATE TABLE every_type (
    id int4 PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, t text,
    vc varchar(40), by bytea, d date, tm time, ts timestamp, tstz timestamptz, u uuid, j jsonb,
    ai4 int4[], ai8 int8[], at text[], iv interval)";

#[test]
fn postgres_round_trips_every_mapped_type() {
    let db = TestDatabase::create("edge_host_pg_types");
    // A session time zone far from UTC: `timestamptz` must still round-trip as UTC.
    db.connect()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET timezone TO 'Asia/Kolkata'",
            db.name
        ))
        .unwrap();
    let host = start_fixture();

    let row = json!([
        { "int32": 1 },
        { "boolean": true },
        { "int16": -32768 },
        { "int32": 2147483647 },
        { "int64": i64::MIN },
        { "floating32": 1.5 },
        { "floating64": -1234.5678e-9 },
        { "str": "héllo, wörld ✓ 'q'" },
        { "str": "varchar value" },
        { "binary": [0, 1, 2, 127, 128, 255] },
        { "date": [2024, 2, 29] },
        { "time": [23, 59, 58, 123456000] },
        { "datetime": [2024, 3, 5, 6, 7, 8, 123456000] },
        { "datetime": [2024, 3, 5, 6, 7, 8, 123456000] },
        { "uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
        { "jsonb": { "a": [1, 2.5, null], "b": { "c": "d" } } },
        { "array-int32": [1, null, -3] },
        { "array-int64": [i64::MAX, null, 0] },
        { "array-str": ["a", null, "c,d \"q\" {}"] },
        { "interval": { "micros": 3_723_000_456i64, "days": 4, "months": 14 } },
    ]);
    let placeholders: Vec<String> = (1..=20).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO every_type VALUES ({})",
        placeholders.join(", ")
    );
    let mut nulls = vec![json!({ "int32": 2 })];
    nulls.extend(std::iter::repeat_n(json!("db-null"), 19));

    let r = pg(
        &host,
        &db.url,
        json!([
            { "op": "execute", "sql": PG_CREATE },
            { "op": "execute", "sql": insert, "params": row },
            { "op": "execute", "sql": insert, "params": nulls },
            { "op": "query", "sql": "SELECT * FROM every_type ORDER BY id" },
            {
                "op": "query",
                "sql": "SELECT id, t FROM every_type WHERE u = $1 AND tstz = $2 AND ts = $3 AND ai4 = $4",
                "params": [
                    { "uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
                    { "datetime": [2024, 3, 5, 6, 7, 8, 123456000] },
                    { "datetime": [2024, 3, 5, 6, 7, 8, 123456000] },
                    { "array-int32": [1, null, -3] },
                ],
            },
            { "op": "execute", "sql": "UPDATE every_type SET i2 = 7" },
            { "op": "execute", "sql": "DELETE FROM every_type WHERE id = $1", "params": [{ "int32": 2 }] },
        ]),
    );
    assert_eq!(r[0], json!({ "rows_affected": 0 }), "{r:?}");
    assert_eq!(r[1], json!({ "rows_affected": 1 }), "{r:?}");
    assert_eq!(r[2], json!({ "rows_affected": 1 }), "{r:?}");

    let columns = json!([
        ["id", "int32"],
        ["b", "boolean"],
        ["i2", "int16"],
        ["i4", "int32"],
        ["i8", "int64"],
        ["f4", "floating32"],
        ["f8", "floating64"],
        ["t", "str"],
        ["vc", "str"],
        ["by", "binary"],
        ["d", "date"],
        ["tm", "time"],
        ["ts", "datetime"],
        ["tstz", "datetime"],
        ["u", "uuid"],
        ["j", "jsonb"],
        ["ai4", "array-int32"],
        ["ai8", "array-int64"],
        ["at", "array-str"],
        ["iv", "interval"],
    ]);
    assert_eq!(r[3]["columns"], columns, "{}", r[3]);
    let rows = ok_rows(&r[3]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let mut got = rows[0].as_array().unwrap().clone();
    // jsonb comes back as text; compare it as JSON.
    let jsonb_text = got[15]["jsonb"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", got[15]))
        .to_string();
    let jsonb: Json = serde_json::from_str(&jsonb_text).unwrap();
    got[15] = json!({ "jsonb": jsonb });
    assert_eq!(Json::Array(got), row);
    assert_eq!(
        Json::Array(rows[1].as_array().unwrap().clone()),
        Json::Array(nulls)
    );

    assert_eq!(
        ok_rows(&r[4]),
        &vec![json!([{ "int32": 1 }, { "str": "héllo, wörld ✓ 'q'" }])]
    );
    // `execute` reports affected rows with and without parameters.
    assert_eq!(r[5], json!({ "rows_affected": 2 }), "{r:?}");
    assert_eq!(r[6], json!({ "rows_affected": 1 }), "{r:?}");

    // Checked independently of edge-host: the stored instants are the UTC ones sent.
    let mut client = db.connect();
    let check = client
        .query_one(
            "SELECT tstz = '2024-03-05 06:07:08.123456+00'::timestamptz,
                    ts = '2024-03-05 06:07:08.123456'::timestamp,
                    iv = '14 mons 4 days 01:02:03.000456'::interval,
                    j = '{\"a\": [1, 2.5, null], \"b\": {\"c\": \"d\"}}'::jsonb,
                    i2
             FROM every_type WHERE id = 1",
            &[],
        )
        .unwrap();
    assert!(
        check.get::<_, bool>(0),
        "timestamptz stored as another instant"
    );
    assert!(check.get::<_, bool>(1), "timestamp stored differently");
    assert!(check.get::<_, bool>(2), "interval stored differently");
    assert!(check.get::<_, bool>(3), "jsonb stored differently");
    assert_eq!(check.get::<_, i16>(4), 7);
}

#[test]
fn postgres_errors_keep_their_sqlstate() {
    let db = TestDatabase::create("edge_host_pg_errors");
    let host = start_fixture();
    let r = pg(
        &host,
        &db.url,
        json!([
            { "op": "query", "sql": "SELECT * FROM no_such_table" },
            { "op": "query", "sql": "SELEC 1" },
            { "op": "execute", "sql": "CREATE TABLE u (k int4 PRIMARY KEY)" },
            { "op": "execute", "sql": "INSERT INTO u VALUES ($1)", "params": [{ "int32": 1 }] },
            { "op": "execute", "sql": "INSERT INTO u VALUES ($1)", "params": [{ "int32": 1 }] },
            { "op": "execute", "sql": "INSERT INTO no_such_table VALUES (1)" },
            { "op": "query", "sql": "SELECT $1::int4", "params": [{ "str": "not an int" }] },
            { "op": "query", "sql": "SELECT 41 + 1 AS answer" },
            { "op": "query", "sql": "INSERT INTO u VALUES (1) RETURNING k" },
        ]),
    );
    let db_error = |i: usize| -> &Json {
        let e = &r[i]["error"]["query-failed"]["db-error"];
        assert!(e.is_object(), "statement {i}: {}", r[i]);
        e
    };
    assert_eq!(db_error(0)["code"], "42P01");
    assert_eq!(db_error(0)["severity"], "ERROR");
    assert!(
        db_error(0)["message"]
            .as_str()
            .unwrap()
            .contains("no_such_table")
    );
    assert_eq!(db_error(1)["code"], "42601");
    assert_eq!(r[3], json!({ "rows_affected": 1 }));
    let dup = db_error(4);
    assert_eq!(dup["code"], "23505");
    assert_eq!(dup["extras"]["constraint"], "u_pkey");
    assert_eq!(dup["extras"]["table"], "u");
    assert_eq!(dup["detail"], "Key (k)=(1) already exists.");
    assert_eq!(db_error(5)["code"], "42P01");
    // A parameter of the wrong type is refused before it reaches the server.
    assert!(r[6]["error"].is_object(), "{}", r[6]);
    assert!(
        r[6]["error"]["query-failed"]["db-error"].is_null(),
        "{}",
        r[6]
    );
    // The connection is still usable after the errors.
    assert_eq!(ok_rows(&r[7]), &vec![json!([{ "int32": 42 }])]);
    // An error raised while the statement runs (after the server accepted it) reaches a query
    // as Spin 4.0.2 reports it: flattened to text, the SQLSTATE only in the words.
    let text = r[8]["error"]["query-failed"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r[8]));
    assert!(
        text.starts_with("Error::QueryFailed(QueryError::DbError(DbError {")
            && text.contains("code: \"23505\""),
        "{text}"
    );
}

#[test]
fn postgres_transactions_commit_roll_back_and_never_leak() {
    let db = TestDatabase::create("edge_host_pg_tx");
    db.connect()
        .batch_execute("CREATE TABLE t (v text)")
        .unwrap();
    let host = start_fixture();
    let count = json!({ "op": "query", "sql": "SELECT count(*)::int4 FROM t" });
    let insert = |v: &str| json!({ "op": "execute", "sql": "INSERT INTO t VALUES ($1)", "params": [{ "str": v }] });
    let r = pg(
        &host,
        &db.url,
        json!([
            { "op": "execute", "sql": "BEGIN" },
            insert("rolled back"),
            count,
            { "op": "execute", "sql": "ROLLBACK" },
            count,
            { "op": "execute", "sql": "BEGIN" },
            insert("committed"),
            { "op": "execute", "sql": "COMMIT" },
            count,
        ]),
    );
    let counts: Vec<&Json> = [2, 4, 8].iter().map(|i| &ok_rows(&r[*i])[0][0]).collect();
    assert_eq!(
        counts,
        [
            &json!({ "int32": 1 }),
            &json!({ "int32": 0 }),
            &json!({ "int32": 1 })
        ],
        "{r:?}"
    );

    // A request that leaves its transaction open: the write never becomes visible, and the
    // next requests (which may reuse pooled connections) are not inside that transaction.
    let r = pg(
        &host,
        &db.url,
        json!([{ "op": "execute", "sql": "BEGIN" }, insert("left open")]),
    );
    assert_eq!(r[1], json!({ "rows_affected": 1 }), "{r:?}");
    for i in 0..3 {
        let r = pg(&host, &db.url, json!([insert(&format!("after {i}"))]));
        assert_eq!(r[0], json!({ "rows_affected": 1 }), "{r:?}");
    }
    let mut client = db.connect();
    let rows: Vec<String> = client
        .query("SELECT v FROM t ORDER BY v", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(rows, ["after 0", "after 1", "after 2", "committed"]);
}

#[test]
fn postgres_hosts_outside_allowed_outbound_hosts_are_refused() {
    let host = start_fixture();
    for url in [
        "postgres://postgres@10.255.255.1:5432/postgres",
        "postgres://postgres@127.0.0.1:5433/postgres",
        "postgres://postgres@localhost:5432/postgres",
    ] {
        let answer = post_json(&host, "/pg", &json!({ "url": url, "ops": [] }));
        let msg = answer["open_error"]["connection-failed"]
            .as_str()
            .unwrap_or_else(|| panic!("{url}: {answer}"));
        assert!(msg.contains("not permitted"), "{url}: {msg}");
    }
    let answer = post_json(&host, "/pg", &json!({ "url": "not a url", "ops": [] }));
    assert!(
        answer["open_error"]["connection-failed"].is_string(),
        "{answer}"
    );
    // The allowed address itself works.
    let r = pg(
        &host,
        &support::pg_url("postgres"),
        json!([{ "sql": "SELECT 1::int8" }]),
    );
    assert_eq!(ok_rows(&r[0]), &vec![json!([{ "int64": 1 }])]);
}

#[test]
fn a_postgres_query_with_no_row_fails_the_request_as_it_never_returns_on_spin() {
    // Spin 4.0.2's host never answers a query whose result is empty: the request hangs there.
    // edge-host fails it at once, so an app that relies on one fails here too.
    let host = start_fixture();
    let url = support::pg_url("postgres");
    for (path, body) in [
        (
            "/pg",
            json!({ "url": url, "ops": [{ "sql": "SELECT 1 WHERE false" }] }),
        ),
        (
            "/pg3",
            json!({ "url": url, "op": "query", "sql": "SELECT 1 WHERE false", "params": [] }),
        ),
    ] {
        let resp = client().post(host.at(path)).json(&body).send().unwrap();
        assert_eq!(resp.status().as_u16(), 500, "{path}");
    }
    assert!(
        host.logs().contains("Spin 4.0.2 never answers"),
        "{}",
        host.logs()
    );
    // Execute has no result set: fine with no row, as on Spin.
    let r = pg(
        &host,
        &url,
        json!([{ "op": "execute", "sql": "SELECT 1 WHERE false" }]),
    );
    assert!(r[0].get("error").is_none(), "{}", r[0]);
}

/// Runs one statement through `spin:postgres/postgres@3.0.0` (the fixture's `/pg3`).
fn pg3(host: &Host, url: &str, op: &str, sql: &str, params: Json) -> Json {
    post_json(
        host,
        "/pg3",
        &json!({ "url": url, "op": op, "sql": sql, "params": params }),
    )
}

#[test]
fn postgres_v3_interface_round_trips() {
    let db = TestDatabase::create("edge_host_pg_v3");
    let host = start_fixture();
    let url = &db.url;
    let created = pg3(
        &host,
        url,
        "execute",
        "CREATE TABLE v3 (id int4 PRIMARY KEY, t text, b bool, f float8, ts timestamp, u uuid)",
        json!([]),
    );
    assert_eq!(created, json!({ "rows_affected": 0 }));
    let insert = "INSERT INTO v3 (id, t, b, f, ts) VALUES ($1, $2, $3, $4, $5)";
    let row = json!([
        { "int32": 1 },
        { "str": "héllo, wörld ✓ 'q'" },
        { "boolean": true },
        { "floating64": -1234.5678e-9 },
        { "datetime": [2024, 3, 5, 6, 7, 8, 123456000] },
    ]);
    assert_eq!(
        pg3(&host, url, "execute", insert, row.clone()),
        json!({ "rows_affected": 1 })
    );
    // A Unix timestamp binds to `timestamp` as the same UTC instant.
    let second = json!([
        { "int32": 2 },
        "db-null",
        { "boolean": false },
        "db-null",
        { "timestamp": 1_709_618_828 },
    ]);
    assert_eq!(
        pg3(&host, url, "execute", insert, second),
        json!({ "rows_affected": 1 })
    );
    db.connect()
        .batch_execute("UPDATE v3 SET u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' WHERE id = 1")
        .unwrap();

    let r = pg3(
        &host,
        url,
        "query",
        "SELECT * FROM v3 ORDER BY id",
        json!([]),
    );
    // `uuid` is not a 3.0.0 type: its column is `other` and its values `unsupported`.
    assert_eq!(
        r["columns"],
        json!([
            ["id", "int32"],
            ["t", "str"],
            ["b", "boolean"],
            ["f", "floating64"],
            ["ts", "datetime"],
            ["u", "other"],
        ]),
        "{r}"
    );
    let mut first = row.as_array().unwrap().clone();
    first.push(json!("unsupported"));
    assert_eq!(
        ok_rows(&r),
        &vec![
            Json::Array(first),
            json!([
                { "int32": 2 },
                "db-null",
                { "boolean": false },
                "db-null",
                { "datetime": [2024, 3, 5, 6, 7, 8, 0] },
                "db-null",
            ]),
        ]
    );
    let r = pg3(
        &host,
        url,
        "query",
        "SELECT id FROM v3 WHERE t = $1 AND ts = $2",
        json!([{ "str": "héllo, wörld ✓ 'q'" }, { "datetime": [2024, 3, 5, 6, 7, 8, 123456000] }]),
    );
    assert_eq!(ok_rows(&r), &vec![json!([{ "int32": 1 }])]);

    // A Postgres error reaches a 3.0.0 guest as text: the flattened error, as on Spin 4.0.2.
    let r = pg3(
        &host,
        url,
        "query",
        "SELECT * FROM no_such_table",
        json!([]),
    );
    let msg = r["error"]["query-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        msg.contains("no_such_table") && msg.contains("SqlState(E42P01)"),
        "{msg}"
    );
    let r = pg3(&host, url, "execute", insert, row);
    let msg = r["error"]["query-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(msg.contains("duplicate key value"), "{msg}");
    assert!(msg.contains("Key (id)=(1) already exists."), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Variables

fn variables(host: &Host) -> Json {
    post_json(
        host,
        "/vars",
        &json!({ "names": ["greeting", "region", "api_token", "composite", "undefined_one", "Bad-Name"] }),
    )
}

#[test]
fn variables_defaults_env_overrides_and_errors() {
    let host = start_fixture();
    let v = variables(&host);
    assert_eq!(v["spin"]["greeting"], json!({ "ok": "hello" }), "{v}");
    assert_eq!(v["spin"]["region"], json!({ "ok": REGION }), "{v}");
    assert_eq!(v["spin"]["api_token"], json!({ "ok": SECRET }), "{v}");
    assert_eq!(
        v["spin"]["composite"],
        json!({ "ok": format!("hello, {REGION}!") }),
        "{v}"
    );
    assert!(
        v["spin"]["undefined_one"]["error"]["undefined"].is_string(),
        "{v}"
    );
    assert!(
        v["spin"]["Bad-Name"]["error"]["invalid-name"].is_string(),
        "{v}"
    );
    // wasi:config: defined keys have values, unknown ones are absent.
    assert_eq!(v["wasi"]["greeting"], json!({ "ok": "hello" }), "{v}");
    assert_eq!(v["wasi"]["undefined_one"], json!({ "ok": null }), "{v}");
    assert_eq!(
        v["wasi_all"],
        json!([
            ["api_token", SECRET],
            ["composite", format!("hello, {REGION}!")],
            ["greeting", "hello"],
            ["region", REGION],
        ]),
        "{v}"
    );

    let overridden = Host::start(
        fixture_config(runtime_config(""))
            .env("SPIN_VARIABLE_GREETING", "howdy")
            .env("SPIN_VARIABLE_API_TOKEN", "other-secret"),
    );
    let v = variables(&overridden);
    assert_eq!(v["spin"]["greeting"], json!({ "ok": "howdy" }), "{v}");
    assert_eq!(
        v["spin"]["api_token"],
        json!({ "ok": "other-secret" }),
        "{v}"
    );
    assert_eq!(
        v["spin"]["composite"],
        json!({ "ok": format!("howdy, {REGION}!") }),
        "{v}"
    );
    assert_eq!(v["wasi"]["greeting"], json!({ "ok": "howdy" }), "{v}");

    // Secrets never reach the logs.
    for h in [&host, &overridden] {
        let logs = h.logs();
        assert!(
            !logs.contains(SECRET) && !logs.contains("other-secret"),
            "{logs}"
        );
    }
}

#[test]
fn component_environment_is_the_manifests_not_the_hosts() {
    let host = start_fixture();
    let get = |name: &str| -> Json {
        let resp = client()
            .get(host.at(&format!("/env?name={name}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    };
    assert_eq!(get("KITCHEN_SINK_ENV"), json!("from-manifest"));
    assert_eq!(get("SPIN_VARIABLE_REGION"), Json::Null);
    assert_eq!(get("PATH"), Json::Null);
}

#[test]
fn missing_required_variable_fails_start_up_naming_it() {
    let rc = runtime_config("");
    let (status, output) = run_to_exit(
        &[
            "up",
            "--from",
            fixture_manifest().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--runtime-config-file",
            rc.to_str().unwrap(),
            "--state-dir",
            temp_dir("edge-state-").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("`region`"), "{output}");
    assert!(output.contains("SPIN_VARIABLE_REGION"), "{output}");
    assert!(!output.contains("Serving"), "{output}");
}

// ---------------------------------------------------------------------------------------------
// Routing

fn route_info(host: &Host, path: &str) -> (u16, Json, Option<String>) {
    let resp = client().get(host.at(path)).send().unwrap();
    let status = resp.status().as_u16();
    let matched = resp
        .headers()
        .get("x-spin-matched-route")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
        matched,
    )
}

#[test]
fn most_specific_route_wins_and_spin_headers_describe_the_match() {
    let host = start_fixture();
    let cases = [
        // (path, matched route, component route, path info)
        ("/exact", "/exact", "/exact", ""),
        ("/exact/more", "/...", "", "/exact/more"),
        ("/exactly", "/...", "", "/exactly"),
        ("/", "/...", "", "/"),
        ("/api", "/api/...", "/api", ""),
        ("/api/things/1", "/api/...", "/api", "/things/1"),
        ("/api/exact", "/api/exact", "/api/exact", ""),
        ("/api/exact/sub", "/api/...", "/api", "/exact/sub"),
        ("/api/v2/x/y", "/api/v2/...", "/api/v2", "/x/y"),
        ("/api/v2", "/api/v2/...", "/api/v2", ""),
        ("/api/v22", "/api/...", "/api", "/v22"),
        ("/apix", "/...", "", "/apix"),
    ];
    for (path, route, component_route, path_info) in cases {
        let (status, info, header) = route_info(&host, path);
        assert_eq!(status, 200, "{path}: {info}");
        let spin = &info["spin"];
        assert_eq!(spin["spin-matched-route"], route, "{path}: {info}");
        assert_eq!(spin["spin-raw-component-route"], route, "{path}: {info}");
        assert_eq!(
            spin["spin-component-route"], component_route,
            "{path}: {info}"
        );
        assert_eq!(spin["spin-path-info"], path_info, "{path}: {info}");
        assert_eq!(header.as_deref(), Some(route), "{path}");
    }
    let (_, info, _) = route_info(&host, "/api/things?q=1&r=two");
    let spin = &info["spin"];
    assert_eq!(
        spin["spin-full-url"],
        format!("{}/api/things?q=1&r=two", host.url),
        "{info}"
    );
    assert_eq!(spin["spin-base-path"], "/", "{info}");
    assert!(
        spin["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{info}"
    );
    assert_eq!(info["query"], "q=1&r=two", "{info}");
}

#[test]
fn unmatched_paths_get_404_without_a_catch_all_route() {
    let host = Host::start(HostConfig {
        manifest: Some(fixture_dir().join("no-catch-all.toml")),
        ..Default::default()
    });
    for path in ["/exact", "/api", "/api/anything/below"] {
        let (status, info, _) = route_info(&host, path);
        assert_eq!(status, 200, "{path}: {info}");
    }
    for path in ["/", "/nope", "/exactly", "/exact/sub", "/apix"] {
        let (status, body, header) = route_info(&host, path);
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(header, None, "{path}: answered by the component");
    }
    let resp = client().post(host.at("/nope")).body("x").send().unwrap();
    assert_eq!(resp.status(), 404);
}

// ---------------------------------------------------------------------------------------------
// Bodies, output, shutdown

fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn assert_same_bytes(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "echoed length differs");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("echoed body differs first at byte {i}");
    }
}

#[test]
fn an_8_mib_body_is_streamed_back_byte_identical() {
    let host = start_fixture();
    let data = pseudo_random_bytes(8 * 1024 * 1024);
    // With a Content-Length…
    let resp = client()
        .post(host.at("/echo"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-spin-matched-route"], "/...");
    assert_same_bytes(&resp.bytes().unwrap(), &data);
    // …and chunked, of unknown length.
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(data.clone()));
    let resp = client().post(host.at("/echo")).body(body).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_same_bytes(&resp.bytes().unwrap(), &data);
}

#[test]
fn guest_stdout_and_stderr_are_forwarded_with_the_component_name() {
    let host = start_fixture();
    let marker = format!("marker-{}-{:?}", std::process::id(), Instant::now());
    let resp = client()
        .post(host.at("/print"))
        .body(format!("{marker}\nsecond line"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    for line in [
        format!("[kitchen-sink] stdout: {marker}"),
        format!("[kitchen-sink] stderr: {marker}"),
        "[kitchen-sink] stdout: second line".to_string(),
        "[kitchen-sink] stderr: second line".to_string(),
    ] {
        assert!(
            host.wait_for_log(&line, Duration::from_secs(30)),
            "missing `{line}` in:\n{}",
            host.logs()
        );
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let mut host = start_fixture();
    let url = host.at("/sleep?ms=3000&tag=in-flight");
    let request = std::thread::spawn(move || {
        let resp = client().get(url).send()?;
        let status = resp.status().as_u16();
        Ok::<_, reqwest::Error>((status, resp.text()?))
    });
    assert!(
        host.wait_for_log(
            "[kitchen-sink] sleep-start in-flight",
            Duration::from_secs(60)
        ),
        "the slow request never started:\n{}",
        host.logs()
    );
    let status = host.stop();
    let answer = request.join().unwrap();
    let logs = host.logs();
    let (code, body) = answer.unwrap_or_else(|e| panic!("in-flight request failed: {e}\n{logs}"));
    assert_eq!(code, 200, "{logs}");
    assert_eq!(body, "slept in-flight");
    assert!(
        logs.contains("[kitchen-sink] sleep-end in-flight"),
        "{logs}"
    );
    assert!(
        status.success(),
        "edge-host exited with {status:?}:\n{logs}"
    );
}

#[test]
fn traps_timeouts_and_memory_limits_answer_500_and_the_host_keeps_serving() {
    let host = Host::start(HostConfig {
        args: ["--request-timeout-secs", "3", "--max-memory-mib", "64"]
            .map(String::from)
            .to_vec(),
        ..fixture_config(runtime_config(""))
    });
    let get = |path: &str| -> (u16, String, Duration) {
        let start = Instant::now();
        let resp = client().get(host.at(path)).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().unwrap(), start.elapsed())
    };
    let (status, body, _) = get("/panic");
    assert_eq!(status, 500, "{body}");
    // A guest spinning on the CPU and a guest waiting are both cut off by the time limit
    // (generous bounds: the limit is 3 s, the guests want 60 s).
    for path in ["/busy?ms=60000", "/sleep?ms=60000&tag=timeout"] {
        let (status, body, took) = get(path);
        assert_eq!(status, 500, "{path}: {body}");
        assert!(took < Duration::from_secs(45), "{path} took {took:?}");
    }
    let (status, body, _) = get("/alloc?mib=16");
    assert_eq!(
        (status, body.as_str()),
        (200, "allocated 16 MiB, 4096 pages")
    );
    let (status, body, _) = get("/alloc?mib=128");
    assert_eq!(status, 500, "{body}");
    // Still serving, and guest failures are logged.
    let (status, body, _) = get("/exact");
    assert_eq!(status, 200, "{body}");
    let logs = host.logs();
    assert!(logs.contains("exceeded the request timeout"), "{logs}");
    assert!(logs.contains("deliberate panic"), "{logs}");
}

#[test]
fn sigterm_right_after_start_up_is_a_clean_exit() {
    let mut host = start_fixture();
    for _ in 0..3 {
        // As soon as the banner is out, SIGTERM means a graceful stop.
        let status = host.stop();
        assert!(status.success(), "exited with {status:?}:\n{}", host.logs());
        host.spawn();
    }
    let resp = client().get(host.at("/exact")).send().unwrap();
    assert_eq!(resp.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// Start-up errors

fn up_args<'a>(manifest: &'a str, state: &'a str, listen: &'a str) -> Vec<&'a str> {
    vec![
        "up",
        "--from",
        manifest,
        "--listen",
        listen,
        "--state-dir",
        state,
    ]
}

fn write_manifest(dir: &Path, text: &str) -> String {
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const MINIMAL_MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "broken"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "SOURCE"
"#;

#[test]
fn missing_manifest_is_a_clear_start_up_error() {
    let dir = temp_dir("edge-bad-");
    let manifest = dir.join("nowhere/spin.toml");
    let state = dir.to_str().unwrap();
    let (status, output) = run_to_exit(
        &up_args(manifest.to_str().unwrap(), state, "127.0.0.1:0"),
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("cannot read manifest"), "{output}");
    assert!(output.contains("nowhere/spin.toml"), "{output}");
}

#[test]
fn invalid_manifests_are_clear_start_up_errors() {
    let dir = temp_dir("edge-bad-");
    let state = dir.to_str().unwrap().to_string();
    let cases = [
        ("this is = not [toml", "invalid manifest"),
        (
            &*MINIMAL_MANIFEST.replace("[component.c]", "[component.c]\nkey_value_storez = []"),
            "key_value_storez",
        ),
        (
            &*MINIMAL_MANIFEST.replace("= 2", "= 1"),
            "spin_manifest_version",
        ),
        (
            &*MINIMAL_MANIFEST.replace("component = \"c\"", "component = \"d\""),
            "unknown component `d`",
        ),
    ];
    for (text, expected) in cases {
        let manifest = write_manifest(&dir, text);
        let (status, output) = run_to_exit(&up_args(&manifest, &state, "127.0.0.1:0"), &[]);
        assert!(!status.success(), "{text}: {output}");
        assert!(output.contains("invalid manifest"), "{text}: {output}");
        assert!(output.contains(expected), "{text}: {output}");
    }
}

#[test]
fn missing_wasm_is_a_clear_start_up_error() {
    let dir = temp_dir("edge-bad-");
    let manifest = write_manifest(
        &dir,
        &MINIMAL_MANIFEST.replace("SOURCE", "target/missing.wasm"),
    );
    let state = dir.join("state");
    let (status, output) = run_to_exit(
        &up_args(&manifest, state.to_str().unwrap(), "127.0.0.1:0"),
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("missing.wasm"), "{output}");
    assert!(output.contains("does not exist"), "{output}");
}

#[test]
fn unprovided_import_fails_at_start_up_naming_it() {
    let dir = temp_dir("edge-bad-");
    let manifest = write_manifest(&dir, &MINIMAL_MANIFEST.replace("SOURCE", "c.wat"));
    // wasmtime reads a component in WAT text as well as in binary form. An import only has to be
    // provided if the component uses it, so this one is lowered into a core instance.
    let wat = r#"(component
        (import "fermyon:spin/mqtt@2.0.0" (instance $mqtt (export "publish" (func))))
        (core func $publish (canon lower (func $mqtt "publish")))
        (core module $m (import "mqtt" "publish" (func)))
        (core instance (instantiate $m (with "mqtt" (instance (export "publish" (func $publish))))))
    )"#;
    std::fs::write(dir.join("c.wat"), wat).unwrap();
    let state = dir.join("state");
    let (status, output) = run_to_exit(
        &up_args(&manifest, state.to_str().unwrap(), "127.0.0.1:0"),
        &[],
    );
    assert!(!status.success(), "{output}");
    assert!(output.contains("fermyon:spin/mqtt@2.0.0"), "{output}");
    assert!(output.contains("does not provide"), "{output}");
    assert!(!output.contains("Serving"), "{output}");
}

#[test]
fn port_in_use_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let rc = runtime_config("");
    let state = temp_dir("edge-state-");
    let mut args = up_args(
        fixture_manifest().to_str().unwrap(),
        state.to_str().unwrap(),
        &addr,
    )
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    args.extend([
        "--runtime-config-file".to_string(),
        rc.to_str().unwrap().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, output) = run_to_exit(&args, &[("SPIN_VARIABLE_REGION", REGION)]);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(&format!("cannot listen on {addr}")),
        "{output}"
    );
    drop(taken);
}

#[test]
fn build_runs_component_build_commands_and_reports_failures() {
    let dir = temp_dir("edge-build-");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let manifest = write_manifest(
        &dir,
        &format!(
            "{}\n[component.c.build]\ncommand = [\"echo first > built.txt\", \"echo second >> built.txt\"]\nworkdir = \"sub\"\n",
            MINIMAL_MANIFEST.replace("SOURCE", "c.wasm")
        ),
    );
    let (status, output) = run_to_exit(&["build", "--from", &manifest], &[]);
    assert!(status.success(), "{output}");
    assert!(output.contains("Building component c"), "{output}");
    assert_eq!(
        std::fs::read_to_string(dir.join("sub/built.txt")).unwrap(),
        "first\nsecond\n"
    );

    let manifest = write_manifest(
        &dir,
        &format!(
            "{}\n[component.c.build]\ncommand = \"echo failing; exit 3\"\n",
            MINIMAL_MANIFEST.replace("SOURCE", "c.wasm")
        ),
    );
    let state = dir.join("state");
    let mut args = up_args(&manifest, state.to_str().unwrap(), "127.0.0.1:0");
    args.push("--build");
    let (status, output) = run_to_exit(&args, &[]);
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("build command of component `c` failed"),
        "{output}"
    );
    assert!(!output.contains("Serving"), "{output}");
}

/// Linear memory at the end of each request so far, from edge-host's per-request profile lines
/// (`EDGE_HOST_PROFILE_CALLS=1`).
fn memory_per_request(host: &Host) -> Vec<u64> {
    host.logs()
        .lines()
        .filter(|l| l.contains("edge_host::calls"))
        .filter_map(|l| {
            l.split(" memory ")
                .nth(1)?
                .strip_suffix("KiB")?
                .parse()
                .ok()
        })
        .collect()
}

/// A 100-event publish fits in the heap the component starts with (build.rs, `HEAP_BYTES`), so
/// it does not grow linear memory: growing costs the host two `mprotect` calls per request. With
/// an empty initial heap (the linker's default) the batch grew the instance by 64 KiB.
#[test]
fn a_hundred_event_publish_does_not_grow_linear_memory() {
    let host = Host::start(HostConfig::default().env("EDGE_HOST_PROFILE_CALLS", "1"));
    let event = |i: usize| {
        json!({
            "topic": "memory", "event_id": format!("run-{i:08}"),
            "timestamp": "2026-12-07T10:00:00.000001Z", "source": "loadgen",
            "payload": {"seq": i, "run": "run", "level": "info",
                        "msg": format!("loadgen event {i}"), "n": 123_456}
        })
    };
    // The first request's figure is the memory an instance starts with.
    post_json(&host, "/publish", &event(0));
    let events: Vec<Json> = (1..=100).map(event).collect();
    let answer = post_json(&host, "/publish/batch", &json!({ "events": events }));
    assert_eq!(answer["processed"], 100, "{answer}");
    assert!(
        host.wait_for_log(" memory ", Duration::from_secs(10)),
        "no profile lines:\n{}",
        host.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while memory_per_request(&host).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    let memory = memory_per_request(&host);
    assert_eq!(memory.len(), 2, "{}", host.logs());
    assert_eq!(
        memory[1], memory[0],
        "a 100-event publish grew linear memory from {} KiB",
        memory[0]
    );
}
