//! The hostile-input corpus: malformed and abusive requests an edge URL receives (broken JSON,
//! numbers no store can hold, deep nesting, NUL escapes, wrong types, oversized bodies, bad
//! query strings, unknown routes, odd methods). Every answer must be below `500` and carry a
//! JSON body (HEAD and bodiless answers excepted), and afterwards the service must still take a
//! normal publish and drain to zero — no request may wedge it. The ingest protocols' own
//! hostile bodies (OTLP, Loki, NDJSON, decompression bombs) are in [`super::foreign`], sent by
//! [`run`] after these, each with its exact `4xx`, its error shape and unmoved counters.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;

use loadgen::client::{Client, snippet};

/// One hostile request.
struct Case {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
}

/// What the corpus did to the service.
#[derive(Debug, Default)]
pub(super) struct HostileOutcome {
    /// Requests sent.
    pub requests: u64,
    /// Answers `>= 500`.
    pub server_errors: u64,
    /// Longest request.
    pub longest: Duration,
    /// Every broken rule, one line each (5xx, non-JSON answers, no answer, wedged afterwards).
    pub problems: Vec<String>,
}

fn ev(topic: &str, id: &str, extra: &str) -> String {
    format!(
        r#"{{"topic":"{topic}","event_id":"{id}","timestamp":"2024-05-01T12:00:00Z","source":"chaos"{extra}}}"#
    )
}

fn corpus(topic: &str, max_body: usize) -> Vec<Case> {
    let json = Some("application/json");
    let post = |path: &str, body: String| Case {
        method: Method::POST,
        path: path.into(),
        content_type: json,
        body: Some(body.into_bytes()),
    };
    let get = |path: &str| Case {
        method: Method::GET,
        path: path.into(),
        content_type: None,
        body: None,
    };
    let deep_arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_payload = format!(
        r#",{}"payload":{}{}{}"#,
        "",
        r#"{"a":"#.repeat(300),
        "1",
        "}".repeat(300)
    );
    let mut cases = vec![
        post("/publish", "{".into()),
        post("/publish", r#"{"topic":"#.into()),
        post("/publish", "".into()),
        post("/publish", "null".into()),
        post("/publish", "123".into()),
        post("/publish", r#""a string""#.into()),
        post("/publish", "[]".into()),
        post("/publish/batch", r#"{"events":[]}"#.into()),
        post("/publish/batch", r#"{"events":{}}"#.into()),
        post("/publish/batch", r#"{"events":null}"#.into()),
        post("/publish", deep_arrays.clone()),
        post("/publish/batch", deep_arrays),
        post("/publish", ev(topic, "deep", &deep_payload)),
        post(
            "/publish",
            ev(topic, "big1", r#","payload":{"n":1e999999}"#),
        ),
        post("/publish", ev(topic, "big2", r#","payload":[1e-20000]"#)),
        post(
            "/publish",
            ev(topic, "big3", r#","payload":{"n":-1e131071}"#),
        ),
        post(
            "/publish",
            ev(
                topic,
                "big4",
                r#","payload":{"n":123456789012345678901234567890}"#,
            ),
        ),
        post("/publish", ev(topic, "nan", r#","payload":{"n":NaN}"#)),
        post("/publish", ev(topic, "nul\\u0000id", "")),
        post(
            "/publish",
            ev(topic, "nulpayload", r#","payload":{"k\u0000":"v\u0000"}"#),
        ),
        post("/publish", ev(&format!("{topic}\\u0000"), "nultopic", "")),
        post("/publish", ev(topic, "surrogate", r#","payload":"\ud800""#)),
        post("/publish", ev(topic, "payloadstring", r#","payload":"x""#)),
        post(
            "/publish",
            r#"{"topic":5,"event_id":true,"timestamp":[],"source":{}}"#.into(),
        ),
        post(
            "/publish",
            r#"{"topic":"t","event_id":"e","timestamp":1714564800,"source":"s"}"#.into(),
        ),
        post(
            "/publish",
            ev(topic, "dupkeys", r#","topic":"other","event_id":"again""#),
        ),
        post("/publish", ev(&"t".repeat(100_000), "longtopic", "")),
        post("/publish", ev(topic, &"e".repeat(100_000), "")),
        post(
            "/publish",
            ev(topic, "ts", "").replace("2024-05-01T12:00:00Z", "+275760-09-13T00:00:00Z"),
        ),
        post(
            "/publish",
            ev(topic, "ts2", "").replace("2024-05-01T12:00:00Z", "2024-02-30T25:61:61Z"),
        ),
        post(
            "/publish",
            ev(topic, "ts3", "").replace("2024-05-01T12:00:00Z", "0000-00-00T00:00:00Z"),
        ),
        post("/publish", format!("\u{feff}{}", ev(topic, "bom", ""))),
        post("/drain", "not json".into()),
        post("/maintenance", r#"{"retention_days":-1}"#.into()),
        post("/maintenance", "[[[[".into()),
        post("/dead-letters/%00/retry", "{}".into()),
        post("/dead-letters/..%2F..%2Fetc/retry", "{}".into()),
    ];
    // Invalid UTF-8 inside a string.
    let mut bad_utf8 = ev(topic, "utf8", "").into_bytes();
    bad_utf8.splice(20..20, [0xff, 0xfe, 0xc3]);
    cases.push(Case {
        method: Method::POST,
        path: "/publish".into(),
        content_type: json,
        body: Some(bad_utf8),
    });
    // Over the body limit.
    cases.push(Case {
        method: Method::POST,
        path: "/publish/batch".into(),
        content_type: json,
        body: Some(vec![b' '; max_body + 1]),
    });
    // Wrong content types.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin1",
        "application/jsonx",
    ] {
        cases.push(Case {
            method: Method::POST,
            path: "/publish".into(),
            content_type: Some(ct),
            body: Some(ev(topic, "ct", "").into_bytes()),
        });
    }
    for q in [
        "topic=%00",
        "topic=%00%00&limit=1",
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=abc",
        "limit=99999999999999999999999",
        "offset=-5",
        "offset=1e9",
        "offset=999999999999",
        "before=abc",
        "before=-1",
        "before=99999999999999999999999",
        "before=%00",
        "topic=",
        "topic=%ZZ",
        "topic=%FF%FE",
        "topic=a&topic=b",
        "from=yesterday",
        "since=2024-13-45",
        "until=%00",
        "source=%00",
        "limit=10&limit=20",
        "&&&==&",
    ] {
        cases.push(get(&format!("/events?{q}")));
    }
    cases.push(get(&format!("/events?topic={}", "x".repeat(20_000))));
    for path in [
        "/stats?x=%FF",
        "/health?%00",
        "/metrics?format=%00",
        "/nope",
        "/publish/",
        "/events/1",
        "/PUBLISH",
        "/%00",
        "/..%2F..%2Fetc%2Fpasswd",
        "/dead-letters?limit=-1",
        "/dead-letters/%00",
        "/dead-letters/does-not-exist",
    ] {
        cases.push(get(path));
    }
    for (m, path) in [
        ("HEAD", "/events"),
        ("HEAD", "/stats"),
        ("HEAD", "/health"),
        ("HEAD", "/publish"),
        ("OPTIONS", "/publish"),
        ("OPTIONS", "/events"),
        ("OPTIONS", "/"),
        ("PUT", "/publish"),
        ("DELETE", "/events"),
        ("DELETE", "/dead-letters/does-not-exist"),
        ("PATCH", "/stats"),
        ("TRACE", "/health"),
        ("BREW", "/publish"),
        ("GET", "/publish"),
        ("GET", "/drain"),
        ("POST", "/events"),
        ("POST", "/stats"),
    ] {
        cases.push(Case {
            method: Method::from_bytes(m.as_bytes()).expect("static method"),
            path: path.into(),
            content_type: None,
            body: None,
        });
    }
    cases
}

/// Sends the corpus, then checks the service still publishes and drains.
pub(super) async fn run(client: &Client, topic: &str, max_body: usize) -> HostileOutcome {
    let mut out = HostileOutcome::default();
    for case in corpus(topic, max_body) {
        let headers: Vec<(&str, &str)> = case
            .content_type
            .map(|ct| vec![("content-type", ct)])
            .unwrap_or_default();
        let oversized = case.body.as_ref().is_some_and(|b| b.len() > max_body);
        let what = format!("{} {}", case.method, shorten(&case.path));
        let head = case.method == Method::HEAD;
        // /metrics answers Prometheus text; every other answer, and every error, is JSON.
        let metrics = case.path.starts_with("/metrics");
        let t0 = Instant::now();
        let a = client
            .attempt_with(
                case.method,
                &case.path,
                &headers,
                case.body.map(Bytes::from),
            )
            .await;
        out.requests += 1;
        out.longest = out.longest.max(t0.elapsed());
        match a {
            Ok(ans) => {
                let must_be_json = ans.status >= 400 || !metrics;
                if ans.status >= 500 {
                    out.server_errors += 1;
                    out.problems.push(format!(
                        "{what} answered {}: {}",
                        ans.status,
                        snippet(&ans.body)
                    ));
                } else if !head && !ans.body.is_empty() && !is_json(&ans.body) && must_be_json {
                    out.problems.push(format!(
                        "{what} answered {} with a body that is not JSON: {}",
                        ans.status,
                        snippet(&ans.body)
                    ));
                } else if !head && ans.body.is_empty() && ans.status >= 400 {
                    out.problems
                        .push(format!("{what} answered {} with no body", ans.status));
                }
            }
            // A server may close the connection on an oversized body before reading it all.
            Err(_) if oversized => {}
            Err(f) => out.problems.push(format!("{what}: no answer ({f})")),
        }
    }
    super::foreign::run(client, &format!("{topic}.foreign"), &mut out).await;
    // Not wedged: a normal publish is acknowledged and everything queued drains.
    let body = format!("[{}]", ev(topic, "after-corpus", ""));
    match client
        .attempt(Method::POST, "/publish", Some(Bytes::from(body)))
        .await
    {
        Ok(a) if a.status == 200 || a.status == 202 => {}
        Ok(a) => out.problems.push(format!(
            "a normal publish after the corpus answered {}: {}",
            a.status,
            snippet(&a.body)
        )),
        Err(f) => out
            .problems
            .push(format!("a normal publish after the corpus failed: {f}")),
    }
    let d = crate::drain::drain(client, Duration::from_secs(30)).await;
    out.requests += d.requests;
    out.server_errors += d.server_errors;
    out.longest = out.longest.max(d.longest);
    if !d.emptied {
        out.problems
            .push("after the corpus the queue did not drain to 0 within 30 s".into());
    }
    out
}

/// JSON by the grammar: numbers are only scanned, so `1e999999` (valid JSON that no f64 holds)
/// passes.
fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

fn shorten(p: &str) -> String {
    if p.len() > 60 {
        format!("{}…", p.chars().take(60).collect::<String>())
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_check_follows_the_grammar_not_f64() {
        assert!(is_json(br#"{"n":1e999999,"m":[1e-20000]}"#));
        assert!(!is_json(b"{"));
        assert!(!is_json(b"# HELP x"));
        assert!(!is_json(br#"{"n":NaN}"#));
    }

    #[test]
    fn corpus_covers_the_issue_cases() {
        let c = corpus("t.hostile", 1024);
        let has = |p: &str| c.iter().any(|k| k.path == p);
        assert!(has("/events?topic=%00") && has("/events?limit=-1") && has("/nope"));
        assert!(c.iter().any(|k| k.method == Method::HEAD));
        assert!(c.iter().any(|k| k.method == Method::OPTIONS));
        assert!(
            c.iter()
                .any(|k| k.body.as_ref().is_some_and(|b| b.len() > 1024))
        );
        let body = |needle: &str| {
            c.iter().any(|k| {
                k.body
                    .as_ref()
                    .is_some_and(|b| String::from_utf8_lossy(b).contains(needle))
            })
        };
        assert!(body("1e999999") && body("\\u0000") && body("[[[[[[[["));
    }
}
