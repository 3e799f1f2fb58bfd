//! Statuses: a probe matrix against six live hosts (open with small limits, with tokens, the
//! store down, the queue down, a wrong Spin variable, PostgreSQL + Redis with a dead letter the
//! store refuses and later accepts). Every answer must be documented for its operation and valid
//! against its schemas, and every documented status must be seen, except [`unprobed`]'s.

use serde_json::json;

use crate::METHODS;
use crate::document::Contract;
use crate::hosts::{
    ADMIN_TOKEN, App, Backend, CLOSED_PORT, PUBLISH_TOKEN, READ_TOKEN, concrete, event,
    inject_unreadable_entry, start, with_tokens,
};
use crate::probe::{Probe, unprobed};
use crate::support::{self, Host, HostConfig, temp_dir};
use crate::wire::{Req, stalled_body};

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
