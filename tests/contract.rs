//! The API contract, `docs/openapi.json`, against the live service: the real `edgelog.wasm` on
//! `edge-host`, over real HTTP, with real SQLite files, PostgreSQL and Redis.
//!
//! Five kinds of check, none of which lists the routes or statuses by hand:
//! - the document is valid OpenAPI 3.1 (`openapi-spec-validator`) and is what `/openapi.json`
//!   serves (its security requirements fitted to the configured tokens);
//! - routes: the paths in `src/lib.rs`'s `Route::of` and the methods the service names in `Allow`
//!   equal the document's paths and methods (plus OPTIONS, the CORS preflight on any path);
//! - statuses: a probe matrix (valid, invalid, oversized, wrong method, unknown path, no / wrong
//!   token, slow body, store down, queue down, broken configuration, a dead letter that cannot be
//!   read, one the store refuses and later accepts) against six live hosts; every answer's
//!   status must be documented for its operation and its body and headers must validate
//!   against the documented schemas (`jsonschema`), and every documented status
//!   must have been seen, except the few only edge-host's own failures can produce (listed
//!   with the reason in [`unprobed`]);
//! - security: `/openapi.json` declares a token only where the running service asks for one
//!   (`contract/security.rs`);
//! - and Schemathesis with `--checks all`, property-based, from the served document, on both
//!   backends, open and with tokens (`contract/schemathesis.rs`).
//!
//! Helpers: `contract/document.rs` (the document and schema validation), `contract/wire.rs`
//! (requests and answers), `contract/probe.rs` (the matrix's bookkeeping), `contract/hosts.rs`
//! (hosts, tokens, queue injection).
//!
//! `CONTRACT_MAX_EXAMPLES` sets Schemathesis's examples per operation (default 25);
//! `scripts/contract.sh --max-examples 500` is the long run.

mod support;

#[path = "contract/document.rs"]
mod document;
#[path = "contract/hosts.rs"]
mod hosts;
#[path = "contract/probe.rs"]
mod probe;
#[path = "contract/schemathesis.rs"]
mod schemathesis;
#[path = "contract/security.rs"]
mod security;
#[path = "contract/wire.rs"]
mod wire;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::json;

use document::Contract;
use hosts::{
    ADMIN_TOKEN, App, Backend, CLOSED_PORT, PUBLISH_TOKEN, READ_TOKEN, concrete, event,
    inject_unreadable_entry, start, with_tokens,
};
use probe::{Probe, unprobed};
use support::{Host, HostConfig, root, temp_dir};
use wire::{Req, stalled_body};

/// Methods probed on every path; OPTIONS is probed separately (it is the preflight everywhere).
const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

// ---------------------------------------------------------------------------------------------
// The tests

/// The document is valid OpenAPI 3.1 (by a well-kept validator), and every schema in it compiles.
#[test]
fn document_is_valid_openapi_3_1() {
    let out = Command::new(root().join("scripts/contract.sh"))
        .args(["validate", "docs/openapi.json"])
        .output()
        .expect("run scripts/contract.sh validate");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused docs/openapi.json:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let contract = Contract::load();
    assert_eq!(contract.doc["openapi"], "3.1.0");
    for name in contract.doc["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        contract.validator(&format!("/components/schemas/{name}"));
    }
    // Every operation's responses resolve and their schemas compile.
    for (path, method) in contract.operations() {
        for status in contract.statuses(&path, &method) {
            let doc = contract.response(&path, &method, status).unwrap();
            for media in doc.response["content"]
                .as_object()
                .into_iter()
                .flat_map(|c| c.keys())
            {
                contract.validator(&format!(
                    "{}/content/{}/schema",
                    doc.pointer,
                    Contract::escape(media)
                ));
            }
        }
    }
}

/// The paths of `Route::of` in `src/lib.rs`, as concrete paths (`{id}` segments filled with `x`).
fn source_paths() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let start = src.find("pub fn of(").expect("src/lib.rs has Route::of");
    let body = &src[start..];
    let body = &body[..body.find("\n    }\n").expect("end of Route::of")];
    let literals = |marker: &str| -> Vec<String> {
        body.match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &body[at + marker.len()..];
                rest.split('"').next().map(str::to_owned)
            })
            .collect()
    };
    let mut paths: BTreeSet<String> = body
        .lines()
        .filter(|l| l.contains("=> Some(Route::"))
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect();
    for prefix in literals("strip_prefix(\"") {
        paths.insert(format!("{prefix}x"));
        for suffix in literals("strip_suffix(\"") {
            paths.insert(format!("{prefix}x{suffix}"));
        }
    }
    assert!(
        paths.len() >= 5,
        "could not read the routes of src/lib.rs: {paths:?}"
    );
    paths
}

/// Route for route: the source's paths are the document's, and on each the methods the service
/// accepts (its `Allow` on a 405) are the document's methods (plus OPTIONS, the preflight).
#[test]
fn routes_and_methods_match_the_document() {
    let contract = Contract::load();
    let app = start(Backend::Sqlite, HostConfig::default());
    let host = &app.host;
    let source = source_paths();
    let documented: BTreeSet<String> = contract.paths().keys().map(|t| concrete(t, "x")).collect();
    assert_eq!(
        source, documented,
        "paths of src/lib.rs Route::of (left) differ from docs/openapi.json (right)"
    );
    let mut failures = Vec::new();
    for template in contract.paths().keys() {
        let path = concrete(template, "x");
        // PATCH is no route's method: the 405's Allow lists what the path accepts.
        let answer = Req::new("PATCH", &path).send(host);
        if answer.status != 405 {
            failures.push(format!(
                "PATCH {path}: {} (expected 405: does the route exist?)",
                answer.status
            ));
            continue;
        }
        let allow: BTreeSet<String> = answer
            .header("allow")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .chain(["OPTIONS".to_owned()])
            .collect();
        if allow != contract.methods(template) {
            failures.push(format!(
                "{template}: the service accepts {allow:?}, the document has {:?}",
                contract.methods(template)
            ));
        }
        // And every method it does not accept is refused (nothing served beyond Allow).
        for method in METHODS {
            let answer = Req::new(method, &path).send(host);
            let accepted = answer.status != 405;
            if accepted != allow.contains(method) {
                failures.push(format!(
                    "{method} {path}: {} but Allow is {allow:?}",
                    answer.status
                ));
            }
        }
        let preflight = Req::new("OPTIONS", &path).send(host);
        if preflight.status != 204 {
            failures.push(format!("OPTIONS {path}: {}", preflight.status));
        }
    }
    // Near-misses of every path are not routes.
    for template in contract.paths().keys() {
        let path = concrete(template, "x");
        // (Not `{path}/`: edge-host's router ignores one trailing slash.)
        for near in [
            format!("{path}x"),
            format!("{path}/extra"),
            path.to_ascii_uppercase(),
        ] {
            if near == "/" || documented.contains(&near) {
                continue;
            }
            let answer = Req::new("GET", &near).send(host);
            if answer.status != 404 {
                failures.push(format!("GET {near}: {} (expected 404)", answer.status));
            }
        }
    }
    // The document the service serves is the file, with no security on this open host (see
    // `security.rs` for hosts with tokens).
    let served = Req::new("GET", "/openapi.json").send(host);
    assert_eq!(served.status, 200);
    assert_eq!(
        served.json(),
        contract.served(&[]),
        "/openapi.json differs from docs/openapi.json without its security requirements"
    );
    assert!(
        failures.is_empty(),
        "route table vs document:\n{}",
        failures.join("\n")
    );
}

/// Status for status: every answer of the probe matrix is documented for its operation and valid
/// against its schema; every documented status is seen (except [`unprobed`]'s).
#[test]
fn every_status_is_documented_and_every_documented_status_is_seen() {
    let contract = Contract::load();
    let mut probe = Probe::new(&contract);

    // A: open, small limits, a short body idle timeout.
    let a = start(
        Backend::Sqlite,
        HostConfig {
            // edge-host's own flag (Spin has no body idle timeout: no 408 probe there).
            args: if support::on_spin() {
                Vec::new()
            } else {
                vec!["--body-idle-timeout-secs".into(), "1".into()]
            },
            ..HostConfig::default()
        }
        .env("SPIN_VARIABLE_MAX_BATCH_EVENTS", "3")
        .env("SPIN_VARIABLE_MAX_PAYLOAD_BYTES", "64")
        .env("SPIN_VARIABLE_MAX_BODY_BYTES", "4096"),
    );
    probe_open_host(&mut probe, &contract, &a);

    // B: access control on.
    let b = start(Backend::Sqlite, with_tokens(HostConfig::default()));
    probe_tokens(&mut probe, &contract, &b.host);

    // C: the store is down (PostgreSQL at a closed port), the queue (SQLite) is up.
    let c = start(
        Backend::Sqlite,
        HostConfig::default()
            .env("SPIN_VARIABLE_STORE", "postgres")
            .env(
                "SPIN_VARIABLE_DATABASE_URL",
                &format!("postgres://postgres@127.0.0.1:{}/none", CLOSED_PORT),
            )
            .env("SPIN_VARIABLE_DB_HOST", "127.0.0.1:*"),
    );
    probe_everything_plain(&mut probe, &contract, &c.host);

    // D: the queue is down (Redis at a closed port), the store (SQLite) is up. Not on Spin
    // 4.0.2: opening a Redis store that refuses connections retries for minutes there (its
    // redis client's back-off), so every request hangs instead of answering.
    if !support::skip_on_spin("the queue-down probes (Spin's Redis open retries for minutes)") {
        let rc = temp_dir("contract-rc-").join("dead-redis.toml");
        std::fs::write(
            &rc,
            format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{}/0\"\n",
                CLOSED_PORT
            ),
        )
        .unwrap();
        let d = start(
            Backend::Sqlite,
            HostConfig {
                runtime_config: Some(rc),
                ..HostConfig::default()
            },
        );
        probe_everything_plain(&mut probe, &contract, &d.host);
    }

    // E: a Spin variable is wrong.
    let e = start(
        Backend::Sqlite,
        HostConfig::default().env("SPIN_VARIABLE_STORE", "mysql"),
    );
    probe_everything_plain(&mut probe, &contract, &e.host);

    // F: PostgreSQL + Redis, with a dead letter the store refused for good and then accepts.
    let f = start(Backend::PostgresRedis, HostConfig::default());
    probe_everything_plain(&mut probe, &contract, &f.host);
    probe_refused_batch(&mut probe, &f);

    let mut missing = Vec::new();
    for (template, method) in contract.operations() {
        for status in contract.statuses(&template, &method) {
            if !probe
                .seen
                .contains(&(template.clone(), method.clone(), status))
                && unprobed(&template, &method, status).is_none()
            {
                missing.push(format!("{method} {template} {status}"));
            }
        }
    }
    let mut report = probe.failures.clone();
    if !missing.is_empty() {
        report.push(format!(
            "documented but never seen (document the truth, or probe it): {}",
            missing.join(", ")
        ));
    }
    assert!(
        report.is_empty(),
        "document vs service:\n{}",
        report.join("\n")
    );
}

/// Every operation once, without tokens and with a valid body where one is needed.
fn probe_everything_plain(probe: &mut Probe, contract: &Contract, host: &Host) {
    for (template, method) in contract.operations() {
        let path = concrete(&template, "x");
        let req = match method.as_str() {
            "HEAD" => continue, // sent with its GET
            "GET" => {
                probe.get(host, Req::new("GET", &path));
                // Each value of each enumerated query parameter (e.g. /health?probe=ready).
                for query in contract.enum_queries(&template, "GET") {
                    probe.get(host, Req::new("GET", format!("{path}?{query}")));
                }
                continue;
            }
            "POST" if matches!(template.as_str(), "/v1/logs" | "/loki/api/v1/push") => {
                for req in ingest_probes(&path) {
                    probe.send(host, req);
                }
                continue;
            }
            "POST" if template.starts_with("/publish") => {
                probe.send(host, Req::new("POST", &path).json(&json!([event("plain")])));
                Req::new("POST", format!("{path}?async=true")).json(&json!([event("plain-async")]))
            }
            m => Req::new(
                match m {
                    "POST" => "POST",
                    "DELETE" => "DELETE",
                    _ => "OPTIONS",
                },
                &path,
            ),
        };
        probe.send(host, req);
    }
}

/// The protocol routes (OTLP, Loki push): a valid JSON request, the same queued (`?async=true`),
/// a body that is not the protocol's message, a text content type, and 5,000 bytes of junk (over
/// host A's body limit). Their protobuf bodies are covered by `tests/ingest_*.rs` with real
/// clients; the property-based tester cannot generate them.
fn ingest_probes(path: &str) -> Vec<Req> {
    let valid = if path == "/v1/logs" {
        json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "contract"}}]},
            "scopeLogs": [{"logRecords": [{"timeUnixNano": "1795428000000000000",
                                           "body": {"stringValue": "contract"}}]}]
        }]})
    } else {
        json!({"streams": [{"stream": {"job": "contract"},
                            "values": [["1795428000000000000", "contract"]]}]})
    };
    vec![
        Req::new("POST", path).json(&valid),
        Req::new("POST", format!("{path}?async=true")).json(&valid),
        Req::new("POST", path).raw(
            "application/json",
            br#"{"resourceLogs": 5, "streams": 5}"#.to_vec(),
        ),
        Req::new("POST", path).raw("text/plain", b"{}".to_vec()),
        Req::new("POST", path).raw("application/x-protobuf", vec![0xff; 5000]),
    ]
}

/// Host A: valid and invalid requests on every operation, limits, wrong methods, unknown paths,
/// a slow body, and a dead letter's life.
fn probe_open_host(probe: &mut Probe, contract: &Contract, app: &App) {
    let host = &app.host;
    probe_everything_plain(probe, contract, host);

    // Publishing: every body shape, async, and every way to be refused.
    for path in ["/publish", "/publish/batch"] {
        let ok = |r: Req| r;
        probe.send(
            host,
            ok(Req::new("POST", path).json(&json!([event("a"), event("b")]))),
        );
        probe.send(
            host,
            Req::new("POST", path).json(&json!({"events": [event("a"), event("c")]})),
        );
        probe.send(
            host,
            Req::new("POST", path)
                .header("prefer", "respond-async")
                .json(&json!([event("d")])),
        );
        probe.send(
            host,
            Req::new("POST", format!("{path}?async=maybe")).json(&json!([event("e")])),
        );
        probe.send(
            host,
            Req::new("POST", path).raw("application/json", b"{not json".to_vec()),
        );
        probe.send(
            host,
            Req::new("POST", path).raw("text/plain", b"[]".to_vec()),
        );
        probe.send(host, Req::new("POST", path).json(&json!([])));
        probe.send(
            host,
            Req::new("POST", path)
                .json(&json!([{"topic": "", "event_id": 3, "timestamp": "yesterday"}])),
        );
        probe.send(
            host,
            Req::new("POST", path).json(&json!([event("1"), event("2"), event("3"), event("4")])),
        );
        let mut big = event("big");
        big["payload"] = json!({"text": "x".repeat(100)});
        probe.send(host, Req::new("POST", path).json(&json!([big])));
        probe.send(
            host,
            Req::new("POST", path).json(&json!([{"padding": "x".repeat(5000)}])),
        );
    }
    probe.send(host, Req::new("POST", "/publish").json(&event("single")));
    probe.send(
        host,
        Req::new("POST", "/publish/batch").json(&event("single-on-batch")),
    );

    // Reading: every parameter, in and out of range.
    for query in [
        "topic=contract&limit=2",
        "topic=contract&source=contract-test&since=2026-11-23T00:00:00Z&until=2026-11-24T00:00:00Z",
        "limit=1&offset=1",
        "before=1000",
        "limit=0",
        "limit=1001",
        "offset=10001",
        "before=0",
        "topic=",
        "since=yesterday",
        "since=2026-11-24T00:00:00Z&until=2026-11-23T00:00:00Z",
        "q=contract%20-nothing&level=warn,error&order=time",
        "level=info&order=stored&limit=2",
        "after=0-0&wait=0&topic=contract",
        "after=0-0&wait=1&q=no-such-text-anywhere",
        "q=%20",
        "level=loud",
        "order=newest",
        "after=1",
        "wait=2",
        "after=0-0&wait=26",
        "after=0-0&before=5",
    ] {
        probe.get(host, Req::new("GET", format!("/events?{query}")));
    }
    for query in [
        "since=2026-11-23T00:00:00Z&until=2026-11-24T00:00:00Z&step=1h",
        "step=5m&topic=contract&level=warn",
        "source=contract-test&q=contract&step=300",
        "since=2026-11-24T00:00:00Z&until=2026-11-23T00:00:00Z",
        "step=7s",
        "since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z&step=1m",
        "level=loud",
        "q=",
        "until=later",
    ] {
        probe.get(host, Req::new("GET", format!("/volume?{query}")));
    }
    probe.get(host, Req::new("GET", "/health?probe=sideways"));
    for query in ["topic=contract", "topic=", "topic=nothing-here"] {
        probe.get(host, Req::new("GET", format!("/stats?{query}")));
    }
    for query in ["limit=5", "limit=0", "after=-1", "after=abc"] {
        probe.get(host, Req::new("GET", format!("/dead-letters?{query}")));
    }
    for query in [
        "lane=1&lanes=4",
        "lane=5&lanes=4",
        "lane=3",
        "lanes=0",
        "lane=64&lanes=64",
        "lane=x&lanes=2",
    ] {
        probe.send(host, Req::new("POST", format!("/drain?{query}")));
    }
    probe.get(host, Req::new("GET", "/").header("accept", "text/html"));
    probe.get(
        host,
        Req::new("GET", "/").header("accept", "application/json"),
    );

    // Wrong methods and unknown paths.
    for template in contract.paths().keys() {
        let path = concrete(template, "nope");
        for method in METHODS {
            if !contract.methods(template).contains(method) {
                probe.send(host, Req::new(method, &path));
            }
        }
    }
    for path in [
        "/nope",
        "/publish/x",
        "/events/1",
        "/dead-letters//retry",
        "/dead-letters/a/b",
    ] {
        probe.send(host, Req::new("GET", path));
        probe.send(host, Req::new("POST", path).json(&json!([])));
    }

    // A dead letter: an unreadable queue entry, drained aside; read, retried, discarded.
    inject_unreadable_entry(app);
    let drained = probe.send(host, Req::new("POST", "/drain"));
    assert_eq!(
        drained.status,
        200,
        "{}",
        String::from_utf8_lossy(&drained.body)
    );
    let page = probe
        .get(host, Req::new("GET", "/dead-letters?limit=10"))
        .json();
    let id = page["dead_letters"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the unreadable entry did not become a dead letter: {page}"))
        .to_owned();
    probe.get(host, Req::new("GET", format!("/dead-letters/{id}")));
    probe.send(host, Req::new("POST", format!("/dead-letters/{id}/retry")));
    probe.send(host, Req::new("DELETE", format!("/dead-letters/{id}")));
    probe.send(host, Req::new("POST", format!("/dead-letters/{id}/retry")));
    probe.send(host, Req::new("POST", "/maintenance"));

    // Slow bodies: 408 from edge-host (Spin waits for the body as long as the client takes).
    if support::skip_on_spin("the slow-body 408 probes (edge-host's --body-idle-timeout-secs)") {
        return;
    }
    for (method, path) in [("POST", "/publish"), ("GET", "/events")] {
        let answer = stalled_body(host, method, path);
        probe.record_raw(if method == "POST" { "POST" } else { "GET" }, path, &answer);
    }
}

/// A readable batch that PostgreSQL refuses for good (a trigger raises `check_violation`) becomes
/// a dead letter; retried while refused (409), then accepted (200); an applied letter can be
/// neither discarded nor retried (409).
fn probe_refused_batch(probe: &mut Probe, app: &App) {
    let host = &app.host;
    let mut db = app.db.as_ref().unwrap().connect();
    // A first publish runs the migrations, so the table exists for the trigger.
    let first = probe.send(
        host,
        Req::new("POST", "/publish").json(&event("before-trigger")),
    );
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    db.batch_execute(
        "CREATE FUNCTION contract_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.topic = 'refused' THEN
             RAISE EXCEPTION 'refused by the contract test' USING ERRCODE = 'check_violation';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER contract_refuse BEFORE INSERT ON events
           FOR EACH ROW EXECUTE FUNCTION contract_refuse();",
    )
    .unwrap();
    let mut refused = event("refused-1");
    refused["topic"] = json!("refused");
    let queued = probe.send(host, Req::new("POST", "/publish?async=true").json(&refused));
    assert_eq!(queued.status, 202);
    let drained = probe.send(host, Req::new("POST", "/drain"));
    assert_eq!(
        drained.status,
        200,
        "{}",
        String::from_utf8_lossy(&drained.body)
    );
    let page = probe.get(host, Req::new("GET", "/dead-letters")).json();
    let id = page["dead_letters"]
        .as_array()
        .and_then(|l| l.iter().find(|d| d["status"] == "pending"))
        .and_then(|d| d["id"].as_str())
        .unwrap_or_else(|| panic!("the refused batch did not become a dead letter: {page}"))
        .to_owned();
    probe.get(host, Req::new("GET", format!("/dead-letters/{id}")));
    let still = probe.send(host, Req::new("POST", format!("/dead-letters/{id}/retry")));
    assert_eq!(
        still.status,
        409,
        "{}",
        String::from_utf8_lossy(&still.body)
    );
    db.batch_execute("DROP TRIGGER contract_refuse ON events")
        .unwrap();
    let applied = probe.send(host, Req::new("POST", format!("/dead-letters/{id}/retry")));
    assert_eq!(
        applied.status,
        200,
        "{}",
        String::from_utf8_lossy(&applied.body)
    );
    probe.send(host, Req::new("DELETE", format!("/dead-letters/{id}")));
    probe.send(host, Req::new("POST", format!("/dead-letters/{id}/retry")));
}

/// Host B: each protected operation without a token, with an unknown token, with another
/// group's token, and with its own.
fn probe_tokens(probe: &mut Probe, contract: &Contract, host: &Host) {
    for (template, method) in contract.operations() {
        if method == "HEAD" || method == "OPTIONS" {
            continue;
        }
        let path = concrete(&template, "x");
        let method: &'static str = METHODS.iter().find(|m| **m == method).unwrap();
        let base = || {
            let r = Req::new(method, &path);
            if template.starts_with("/publish") {
                r.json(&json!([event("auth")]))
            } else {
                r
            }
        };
        let mut send = |r: Req| {
            if method == "GET" {
                probe.get(host, r);
            } else {
                probe.send(host, r);
            }
        };
        send(base());
        send(base().token("unknown-token"));
        send(base().header("authorization", "Basic abc"));
        for token in [PUBLISH_TOKEN, READ_TOKEN, ADMIN_TOKEN] {
            send(base().token(token));
        }
    }
}
