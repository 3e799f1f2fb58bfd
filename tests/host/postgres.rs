//! PostgreSQL through the kitchen-sink fixture, against the server on 127.0.0.1:5432:
//! `spin:postgres` v4 with every mapped type, errors that keep their SQLSTATE, transactions,
//! hosts outside `allowed_outbound_hosts` refused, a query with no row failing the request (it
//! never returns on Spin); and the v3 interface.

use serde_json::{Value as Json, json};

use crate::support::{self, Host, TestDatabase, client};
use crate::{ok_rows, post_json, start_fixture};

/// Runs Postgres operations against `url` and returns their results.
fn pg(host: &Host, url: &str, ops: Json) -> Vec<Json> {
    let answer = post_json(host, "/pg", &json!({ "url": url, "ops": ops }));
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("postgres: {answer}"))
        .clone()
}

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
