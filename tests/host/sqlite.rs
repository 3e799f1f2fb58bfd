//! SQLite through the kitchen-sink fixture (`spin:sqlite/sqlite@3.0.0` and
//! `fermyon:spin/sqlite@2.0.0`): parameters of every value type, transactions that commit, roll
//! back and never leak into the next request, `changes` and `last-insert-rowid` per guest
//! connection, a guest's connection settings and temp tables, concurrent write transactions, and
//! key-value and SQLite state surviving a restart.

use serde_json::{Value as Json, json};
use std::sync::Barrier;

use crate::support::Host;
use crate::{kv, ok_rows, post_json, start_fixture};

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
