//! Access control and CORS (`auth/cors.rs`), end to end: the real `edgelog.wasm` served by `edge-host` over real
//! HTTP, with the token and origin variables set through `SPIN_VARIABLE_*` (the variable path
//! both edge-host and `spin up` implement) or left at spin.toml's empty defaults.
//!
//! The route × credential table drives every route with no token, each group's token (the
//! publish group with both items of a rotated list), an unknown token and malformed headers, and
//! checks 2xx / 401 / 403 with the contract's headers and bodies. Afterwards the host's whole log
//! (request lines, guest output, and edge-host at trace level) must not contain any token.

mod support;

#[path = "auth/cors.rs"]
mod cors;

use reqwest::blocking::Response;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use support::{Host, HostConfig, client};

// Distinctive values, so a leak into the log cannot hide behind a common word.
const PUBLISH_OLD: &str = "tok-publish-old-41b7e2";
const PUBLISH_NEW: &str = "tok-publish-new-9c2e55";
const READ: &str = "tok-read-5d1f08";
const ADMIN: &str = "tok-admin-e803aa";
const UNKNOWN: &str = "tok-unknown-aa11c4";

const ALLOWED_ORIGIN: &str = "https://app.example.com";
const OTHER_ALLOWED_ORIGIN: &str = "https://ops.example.com";
const REFUSED_ORIGIN: &str = "https://evil.example.net";

/// Who may call a route, as the contract (docs API table) says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Group {
    Open,
    Publish,
    Read,
    Admin,
}

/// One route of the API.
struct Route {
    method: &'static str,
    path: &'static str,
    group: Group,
    /// The status an authorised call gets here (fresh store, nothing queued); `None` while the
    /// handler is still being built: then any status but 401/403 counts as let through.
    authorised: Option<u16>,
}

const fn route(
    method: &'static str,
    path: &'static str,
    group: Group,
    authorised: Option<u16>,
) -> Route {
    Route {
        method,
        path,
        group,
        authorised,
    }
}

const ROUTES: &[Route] = &[
    route("GET", "/", Group::Open, Some(200)),
    route("GET", "/openapi.json", Group::Open, Some(200)),
    route("GET", "/health", Group::Open, Some(200)),
    route("HEAD", "/health", Group::Open, Some(200)),
    route("POST", "/publish", Group::Publish, Some(200)),
    route("POST", "/publish/batch", Group::Publish, Some(200)),
    route("GET", "/events", Group::Read, Some(200)),
    route("HEAD", "/events", Group::Read, Some(200)),
    route("GET", "/stats", Group::Read, Some(200)),
    route("GET", "/metrics", Group::Read, Some(200)),
    route("POST", "/drain", Group::Admin, Some(200)),
    route("POST", "/maintenance", Group::Admin, Some(200)),
    route("GET", "/dead-letters", Group::Admin, Some(200)),
    route("GET", "/dead-letters/no-such-id", Group::Admin, Some(404)),
    route(
        "DELETE",
        "/dead-letters/no-such-id",
        Group::Admin,
        Some(404),
    ),
    route(
        "POST",
        "/dead-letters/no-such-id/retry",
        Group::Admin,
        Some(404),
    ),
];

/// What a request carries in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Credential {
    None,
    PublishOld,
    PublishNew,
    Read,
    Admin,
    Unknown,
    /// The admin token under the wrong scheme: the scheme matters, not just the secret.
    WrongScheme,
    /// `Bearer` without a token.
    EmptyBearer,
    /// Two tokens in one header.
    TwoWords,
}

const CREDENTIALS: [Credential; 9] = [
    Credential::None,
    Credential::PublishOld,
    Credential::PublishNew,
    Credential::Read,
    Credential::Admin,
    Credential::Unknown,
    Credential::WrongScheme,
    Credential::EmptyBearer,
    Credential::TwoWords,
];

impl Credential {
    fn header(self) -> Option<String> {
        match self {
            Credential::None => None,
            Credential::PublishOld => Some(format!("Bearer {PUBLISH_OLD}")),
            Credential::PublishNew => Some(format!("bearer {PUBLISH_NEW}")),
            Credential::Read => Some(format!("Bearer {READ}")),
            Credential::Admin => Some(format!("Bearer {ADMIN}")),
            Credential::Unknown => Some(format!("Bearer {UNKNOWN}")),
            Credential::WrongScheme => Some(format!("Basic {ADMIN}")),
            Credential::EmptyBearer => Some("Bearer ".to_owned()),
            Credential::TwoWords => Some(format!("Bearer {READ} {ADMIN}")),
        }
    }

    /// The group this credential's token belongs to, if it is a well-formed known token.
    fn group(self) -> Option<Group> {
        match self {
            Credential::PublishOld | Credential::PublishNew => Some(Group::Publish),
            Credential::Read => Some(Group::Read),
            Credential::Admin => Some(Group::Admin),
            _ => None,
        }
    }
}

/// The contract's answer for `credential` on a route of `group` when every group has tokens.
#[derive(Debug, PartialEq)]
enum Expect {
    Through,
    Unauthorized,
    Forbidden,
}

fn expected(group: Group, credential: Credential) -> Expect {
    match (group, credential.group()) {
        (Group::Open, _) => Expect::Through,
        (_, None) => Expect::Unauthorized,
        (want, Some(have)) if want == have => Expect::Through,
        (Group::Read, Some(Group::Admin)) => Expect::Through,
        _ => Expect::Forbidden,
    }
}

static NEXT_EVENT: AtomicU32 = AtomicU32::new(0);

/// A valid body for the route (a fresh event for publishes), `None` for routes without one.
fn body_for(path: &str) -> Option<String> {
    let n = NEXT_EVENT.fetch_add(1, Ordering::SeqCst);
    let event = json!({"topic": "auth", "event_id": format!("e-{n}"),
        "timestamp": "2026-11-23T10:00:00Z", "source": "auth-test"});
    match path {
        "/publish" => Some(event.to_string()),
        "/publish/batch" => Some(json!({ "events": [event] }).to_string()),
        _ => None,
    }
}

/// Sends one request the way a client would.
fn send(
    host: &Host,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    origin: Option<&str>,
) -> Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, host.at(path));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(body) = body_for(path) {
        req = req.header("content-type", "application/json").body(body);
    }
    req.send().unwrap()
}

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Asserts the contract's 401: status, `WWW-Authenticate: Bearer realm="edgelog"…`, JSON body.
fn assert_unauthorized(resp: Response, what: &str) {
    assert_eq!(resp.status().as_u16(), 401, "{what}");
    let www = header(&resp, "www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Bearer realm=\"edgelog\""),
        "{what}: WWW-Authenticate {www:?}"
    );
    if !what.starts_with("HEAD") {
        let body: Value = resp.json().unwrap_or(Value::Null);
        assert_eq!(body["error"], "unauthorized", "{what}: {body}");
        assert!(
            body["message"].is_string() && body["details"].is_array(),
            "{what}: {body}"
        );
    }
}

fn assert_forbidden(resp: Response, what: &str) {
    assert_eq!(resp.status().as_u16(), 403, "{what}");
    if !what.starts_with("HEAD") {
        let body: Value = resp.json().unwrap_or(Value::Null);
        assert_eq!(body["error"], "forbidden", "{what}: {body}");
    }
}

fn assert_through(resp: Response, route: &Route, what: &str) {
    let status = resp.status().as_u16();
    match route.authorised {
        Some(want) => assert_eq!(status, want, "{what}: {}", resp.text().unwrap_or_default()),
        None => assert!(
            !matches!(status, 401 | 403),
            "{what}: refused with {status}"
        ),
    }
}

/// Every token variable set, the publish list with two items (a rotation in progress) and the
/// messy spacing and empty items an operator's hand produces.
fn protected() -> HostConfig {
    HostConfig::default()
        .env(
            "SPIN_VARIABLE_PUBLISH_TOKENS",
            &format!(" {PUBLISH_OLD} ,, {PUBLISH_NEW} , "),
        )
        .env("SPIN_VARIABLE_READ_TOKENS", READ)
        .env("SPIN_VARIABLE_ADMIN_TOKENS", &format!("{ADMIN},"))
        // The most the host logs: request lines, guest output, and edge-host's own debug lines.
        .env("RUST_LOG", "info,edge_host=trace")
}

#[test]
fn every_route_with_every_credential() {
    let host = Host::start(protected());
    for route in ROUTES {
        for credential in CREDENTIALS {
            let what = format!("{} {} with {credential:?}", route.method, route.path);
            let auth = credential.header();
            let resp = send(&host, route.method, route.path, auth.as_deref(), None);
            match expected(route.group, credential) {
                Expect::Through => assert_through(resp, route, &what),
                Expect::Unauthorized => assert_unauthorized(resp, &what),
                Expect::Forbidden => assert_forbidden(resp, &what),
            }
        }
    }
    // Two Authorization headers are malformed, even when both carry a good token.
    let mut two = reqwest::header::HeaderMap::new();
    for _ in 0..2 {
        two.append("authorization", format!("Bearer {ADMIN}").parse().unwrap());
    }
    let resp = client()
        .post(host.at("/drain"))
        .headers(two)
        .send()
        .unwrap();
    assert_unauthorized(resp, "drain with two Authorization headers");

    // What was published with the rotated tokens really was stored, and reads back with the
    // read token (publish = 2 routes × 2 publish tokens, one event each).
    let resp = send(
        &host,
        "GET",
        "/stats",
        Some(&format!("Bearer {READ}")),
        None,
    );
    let stats: Value = resp.json().unwrap();
    assert_eq!(stats["received"], 4, "{stats}");

    let logs = host.logs();
    // Spin logs no request lines: there the check is only that no token appears below.
    assert!(
        support::on_spin() || logs.contains("POST /publish 401"),
        "the request lines are there"
    );
    for token in [PUBLISH_OLD, PUBLISH_NEW, READ, ADMIN, UNKNOWN] {
        assert!(!logs.contains(token), "token {token} appears in the log");
    }
}

#[test]
fn unset_variables_leave_their_groups_open() {
    // Publishing and admin protected, reading left open (read_tokens unset on purpose).
    let host = Host::start(
        HostConfig::default()
            .env("SPIN_VARIABLE_PUBLISH_TOKENS", PUBLISH_NEW)
            .env("SPIN_VARIABLE_ADMIN_TOKENS", ADMIN),
    );
    assert_unauthorized(
        send(&host, "POST", "/publish", None, None),
        "publish, no token",
    );
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(
        send(&host, "POST", "/publish", Some(&bearer(PUBLISH_NEW)), None).status(),
        200
    );
    for path in ["/events", "/stats", "/metrics"] {
        for auth in [None, Some(bearer(UNKNOWN)), Some(bearer(PUBLISH_NEW))] {
            let resp = send(&host, "GET", path, auth.as_deref(), None);
            assert_eq!(resp.status(), 200, "{path} with {auth:?} on an open group");
        }
    }
    // Admin tokens exist, but they do not close the read group: each variable rules its own.
    assert_unauthorized(send(&host, "POST", "/drain", None, None), "drain");
    assert_forbidden(
        send(&host, "POST", "/drain", Some(&bearer(PUBLISH_NEW)), None),
        "drain with publish token",
    );
    assert_eq!(
        send(&host, "POST", "/drain", Some(&bearer(ADMIN)), None).status(),
        200
    );
}

#[test]
fn spin_toml_defaults_leave_everything_open_and_send_no_cors_headers() {
    let host = Host::start(HostConfig::default());
    for route in ROUTES {
        let resp = send(&host, route.method, route.path, None, Some(ALLOWED_ORIGIN));
        let what = format!("{} {} without tokens configured", route.method, route.path);
        assert!(
            header(&resp, "access-control-allow-origin").is_none(),
            "{what}"
        );
        assert!(
            header(&resp, "vary").is_none_or(|v| !v.contains("Origin")),
            "{what}"
        );
        assert_through(resp, route, &what);
    }
    let resp = send(&host, "OPTIONS", "/publish", None, Some(ALLOWED_ORIGIN));
    assert_eq!(resp.status(), 204);
    assert!(
        resp.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        resp.headers()
    );
}

#[test]
fn an_unusable_token_list_is_a_config_error_that_names_the_variable_not_the_token() {
    let host = Host::start(
        HostConfig::default()
            .env("SPIN_VARIABLE_PUBLISH_TOKENS", PUBLISH_OLD)
            .env(
                "SPIN_VARIABLE_ADMIN_TOKENS",
                &format!("{ADMIN}, half {UNKNOWN}"),
            ),
    );
    let resp = send(
        &host,
        "POST",
        "/drain",
        Some(&format!("Bearer {ADMIN}")),
        None,
    );
    assert_eq!(resp.status(), 500);
    let text = resp.text().unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "config_error", "{body}");
    assert!(body["message"].as_str().unwrap().contains("admin_tokens"));
    assert!(!text.contains(UNKNOWN) && !text.contains(ADMIN), "{text}");
    // The other groups are unaffected: a refused publish stays a 401, not a 500.
    assert_unauthorized(
        send(
            &host,
            "POST",
            "/publish",
            Some(&format!("Bearer {UNKNOWN}")),
            None,
        ),
        "publish with an unknown token",
    );
    assert_eq!(
        send(
            &host,
            "POST",
            "/publish",
            Some(&format!("Bearer {PUBLISH_OLD}")),
            None
        )
        .status(),
        200
    );
    let logs = host.logs();
    assert!(!logs.contains(UNKNOWN) && !logs.contains(ADMIN));
}
