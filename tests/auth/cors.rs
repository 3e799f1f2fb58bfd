//! CORS, end to end: listed origins get the preflight and the response headers a browser needs
//! (a page's gzipped OTLP export among them), a wildcard allows any origin, and a refused
//! origin's request gets no CORS headers — tokens still required.

use super::support::{Host, client};
use super::{
    ALLOWED_ORIGIN, OTHER_ALLOWED_ORIGIN, PUBLISH_NEW, REFUSED_ORIGIN, assert_unauthorized, header,
    protected, send,
};
use reqwest::blocking::Response;
use serde_json::json;

fn cors_host(origins: &str) -> Host {
    Host::start(protected().env("SPIN_VARIABLE_CORS_ALLOWED_ORIGINS", origins))
}

fn assert_preflight_allows(resp: &Response, allow_origin: &str) {
    assert_eq!(resp.status(), 204);
    assert_eq!(
        header(resp, "access-control-allow-origin").as_deref(),
        Some(allow_origin)
    );
    let methods = header(resp, "access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = header(resp, "access-control-allow-headers").unwrap();
    for h in [
        "authorization",
        "content-encoding",
        "content-type",
        "prefer",
    ] {
        assert!(headers.contains(h), "{headers}");
    }
    let max_age: u32 = header(resp, "access-control-max-age")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age > 0);
    assert!(header(resp, "vary").unwrap().contains("Origin"));
}

#[test]
fn cors_for_listed_origins() {
    let host = cors_host(&format!(" {ALLOWED_ORIGIN} , {OTHER_ALLOWED_ORIGIN}/ "));
    // Preflights never need a token, on any path (even one that does not exist).
    for path in ["/publish", "/events", "/dead-letters/x", "/nowhere"] {
        let resp = send(&host, "OPTIONS", path, None, Some(ALLOWED_ORIGIN));
        assert_preflight_allows(&resp, ALLOWED_ORIGIN);
    }
    let resp = send(
        &host,
        "OPTIONS",
        "/publish",
        None,
        Some(OTHER_ALLOWED_ORIGIN),
    );
    assert_preflight_allows(&resp, OTHER_ALLOWED_ORIGIN);

    // A refused origin's preflight is answered without the allow headers: the browser blocks.
    let resp = send(&host, "OPTIONS", "/publish", None, Some(REFUSED_ORIGIN));
    assert_eq!(resp.status(), 204);
    assert!(header(&resp, "access-control-allow-origin").is_none());
    assert!(header(&resp, "access-control-allow-headers").is_none());
    assert!(header(&resp, "vary").unwrap().contains("Origin"));

    // Actual answers: a browser publish with its token, and the 401 a page must be able to read.
    let auth = format!("Bearer {PUBLISH_NEW}");
    let resp = send(&host, "POST", "/publish", Some(&auth), Some(ALLOWED_ORIGIN));
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(ALLOWED_ORIGIN)
    );
    assert!(header(&resp, "vary").unwrap().contains("Origin"));
    let expose = header(&resp, "access-control-expose-headers").unwrap();
    assert!(expose.contains("retry-after"), "{expose}");
    assert!(header(&resp, "access-control-allow-credentials").is_none());
    let resp = send(&host, "POST", "/publish", None, Some(ALLOWED_ORIGIN));
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(ALLOWED_ORIGIN)
    );
    assert_unauthorized(resp, "browser publish without token");

    // Refused origin: the request is still answered (CORS is the browser's rule, tokens are ours),
    // but without the allow header.
    let resp = send(&host, "POST", "/publish", Some(&auth), Some(REFUSED_ORIGIN));
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "access-control-allow-origin").is_none());
    assert!(header(&resp, "vary").unwrap().contains("Origin"));

    // A handler's own Vary (the console answers by Accept) is kept, Origin added.
    let resp = send(&host, "GET", "/", None, Some(ALLOWED_ORIGIN));
    let vary = header(&resp, "vary").unwrap().to_ascii_lowercase();
    assert!(vary.contains("accept") && vary.contains("origin"), "{vary}");

    // No Origin (server-to-server publishers): no CORS headers at all.
    let resp = send(&host, "GET", "/health", None, None);
    assert!(header(&resp, "access-control-allow-origin").is_none());
    assert!(header(&resp, "vary").is_none_or(|v| !v.contains("Origin")));
}

/// The header names a preflight allows, lower-cased.
fn allowed_headers(resp: &Response) -> Vec<String> {
    header(resp, "access-control-allow-headers")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

#[test]
fn a_page_may_send_a_gzipped_otlp_export() {
    use std::io::Write;
    let host = cors_host(ALLOWED_ORIGIN);
    // What a browser asks before a gzip'd OTLP/JSON export: every header it will send must be
    // named in the answer, or the browser never sends the POST.
    let resp = client()
        .request(reqwest::Method::OPTIONS, host.at("/v1/logs"))
        .header("origin", ALLOWED_ORIGIN)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-encoding, content-type",
        )
        .send()
        .unwrap();
    assert_preflight_allows(&resp, ALLOWED_ORIGIN);
    let allowed = allowed_headers(&resp);
    for h in ["content-encoding", "content-type", "authorization"] {
        assert!(allowed.iter().any(|a| a == h), "{h} not in {allowed:?}");
    }
    // The POST itself: gzip'd OTLP/JSON with the page's token, readable by the page.
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "cors.browser"}}
        ]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": "1714564800000000000",
            "body": {"stringValue": "from a web page"}
        }]}]
    }]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let resp = client()
        .post(host.at("/v1/logs"))
        .header("origin", ALLOWED_ORIGIN)
        .header("authorization", format!("Bearer {PUBLISH_NEW}"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .unwrap();
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(ALLOWED_ORIGIN)
    );
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
}

#[test]
fn cors_wildcard_allows_any_origin() {
    let host = cors_host("*");
    let resp = send(
        &host,
        "OPTIONS",
        "/publish/batch",
        None,
        Some(REFUSED_ORIGIN),
    );
    assert_preflight_allows(&resp, "*");
    let resp = send(
        &host,
        "GET",
        "/health",
        None,
        Some("https://anyone.example"),
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    // The token is still required: CORS opens the browser's door, not ours.
    let resp = send(
        &host,
        "GET",
        "/events",
        None,
        Some("https://anyone.example"),
    );
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_unauthorized(resp, "events from any origin without a token");
}
