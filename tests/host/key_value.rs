//! Key-value through the kitchen-sink fixture: the Spin API and wasi:keyvalue (get/set, atomic
//! increment, compare-and-swap, batch) on SQLite files and on Redis, undeclared stores and
//! databases denied, and increments and compare-and-swap loops exact across two edge-host
//! processes sharing a state directory or a Redis.

use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Barrier;

use crate::support::{Host, HostConfig, TestRedis, client, temp_dir};
use crate::{fixture_config, kv, post_json, runtime_config, start_fixture};

/// A runtime config that puts the `default` store in `redis` (written by the harness) and
/// declares the fixture's `other` store.
fn redis_runtime_config(redis: &TestRedis) -> PathBuf {
    let path = redis.runtime_config(&temp_dir("edge-rc-"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[key_value_store.other]\ntype = \"spin\"\npath = \"other.db\"\n");
    std::fs::write(&path, text).unwrap();
    path
}

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
