//! CORS for browser publishers: which web origins may call the API from a page.
//!
//! `cors_allowed_origins` is a comma-separated list of origins (`https://app.example.com`), or
//! `*` for any. Empty (the default) means no CORS headers at all: browsers then refuse
//! cross-origin calls, and non-browser clients are unaffected either way. The variable is read
//! only when the request carries an `Origin` header, so server-to-server publishers pay no host
//! call for CORS.
//!
//! - Preflight (`OPTIONS`, any path, never needs a token): `204` with `Access-Control-Allow-Origin`
//!   (the request's origin, or `*` when `*` is configured), `-Allow-Methods`, `-Allow-Headers`
//!   (`authorization, content-encoding, content-type, prefer`: a page may gzip what it sends) and
//!   `-Max-Age`. A disallowed origin gets the `204` without them, so the browser blocks the call.
//! - Actual responses (errors included, so a page can read a `401` or `422`) get
//!   `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers: retry-after,
//!   www-authenticate` when the origin is allowed.
//! - Whenever CORS is configured and an `Origin` was sent, `Vary: Origin` is added (merged with
//!   any `Vary` the handler set), so a cache never hands one origin's answer to another.
//!
//! No `Access-Control-Allow-Credentials`: the API authenticates with an explicit bearer header,
//! not cookies, so pages never need the browser to attach ambient credentials.

use spin_sdk::http::Response;
use spin_sdk::variables;

use crate::log::logln;

/// Methods the API serves, announced to browsers in a preflight.
const ALLOW_METHODS: &str = "GET, HEAD, POST, DELETE, OPTIONS";
/// Request headers a page may send: the token, the body's type and coding (a page may gzip an
/// OTLP export), and `Prefer: respond-async`.
const ALLOW_HEADERS: &str = "authorization, content-encoding, content-type, prefer";
/// Response headers a page may read beyond the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "retry-after, www-authenticate";
/// How long a browser may cache a preflight (2 h, Chromium's cap): saves browser publishers one
/// round trip per publish. Tokens, not CORS, are the access control.
const MAX_AGE_SECONDS: &str = "7200";

/// The CORS policy for one request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cors {
    /// `Access-Control-Allow-Origin` to send, when the origin is allowed.
    allow_origin: Option<String>,
    /// Whether the answer depends on `Origin` (CORS configured and an origin sent).
    vary: bool,
}

impl Cors {
    /// Reads `cors_allowed_origins`, only when the request is a cross-origin one (has `Origin`).
    pub fn load(origin: Option<&str>) -> Cors {
        let Some(origin) = origin else {
            return Cors::default();
        };
        let configured = match variables::get("cors_allowed_origins") {
            Ok(value) => value,
            Err(variables::Error::Undefined(_)) => String::new(),
            Err(e) => {
                // CORS cannot fail a request; without a readable policy, browsers are refused.
                logln!("cors_allowed_origins could not be read ({e}); sending no CORS headers");
                String::new()
            }
        };
        Cors::decide(&configured, origin)
    }

    /// The policy for `origin` under the configured list (pure, so it is unit-tested).
    fn decide(configured: &str, origin: &str) -> Cors {
        let mut items = configured
            .split(',')
            .map(|item| item.trim().trim_end_matches('/'))
            .filter(|item| !item.is_empty())
            .peekable();
        if items.peek().is_none() {
            return Cors::default();
        }
        let mut allow_origin = None;
        for item in items {
            if item == "*" {
                allow_origin = Some("*".to_owned());
                break;
            }
            if item.eq_ignore_ascii_case(origin) {
                allow_origin = Some(origin.to_owned());
            }
        }
        Cors {
            allow_origin,
            vary: true,
        }
    }

    /// Answers an `OPTIONS` preflight (on any path, without a token).
    pub fn preflight(&self) -> Response {
        let mut response = Response::builder().status(204).build();
        if let Some(origin) = &self.allow_origin {
            response.set_header("access-control-allow-origin", origin.as_str());
            response.set_header("access-control-allow-methods", ALLOW_METHODS);
            response.set_header("access-control-allow-headers", ALLOW_HEADERS);
            response.set_header("access-control-max-age", MAX_AGE_SECONDS);
        }
        self.add_vary(&mut response);
        response
    }

    /// Adds CORS headers to an actual answer (success or error).
    pub fn decorate(&self, mut response: Response) -> Response {
        if let Some(origin) = &self.allow_origin {
            response.set_header("access-control-allow-origin", origin.as_str());
            response.set_header("access-control-expose-headers", EXPOSE_HEADERS);
        }
        self.add_vary(&mut response);
        response
    }

    fn add_vary(&self, response: &mut Response) {
        if !self.vary {
            return;
        }
        let existing = response
            .header("vary")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let merged = merge_vary(existing.as_deref());
        response.set_header("vary", merged);
    }
}

/// Adds `Origin` to a `Vary` value unless it is already there (or `*`).
fn merge_vary(existing: Option<&str>) -> String {
    match existing.map(str::trim).filter(|v| !v.is_empty()) {
        None => "Origin".to_owned(),
        Some(v)
            if v.split(',')
                .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("origin")) =>
        {
            v.to_owned()
        }
        Some(v) => format!("{v}, Origin"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfigured_sends_nothing() {
        for configured in ["", " , ", ","] {
            assert_eq!(
                Cors::decide(configured, "https://a.example"),
                Cors::default()
            );
        }
    }

    #[test]
    fn listed_origins() {
        let list = " https://a.example , https://b.example:8443/ ,";
        let a = Cors::decide(list, "https://a.example");
        assert_eq!(a.allow_origin.as_deref(), Some("https://a.example"));
        assert!(a.vary);
        let b = Cors::decide(list, "https://b.example:8443");
        assert_eq!(b.allow_origin.as_deref(), Some("https://b.example:8443"));
        let upper = Cors::decide(list, "HTTPS://A.EXAMPLE");
        assert_eq!(upper.allow_origin.as_deref(), Some("HTTPS://A.EXAMPLE"));
        for refused in [
            "https://c.example",
            "http://a.example",
            "https://a.example.evil",
            "null",
        ] {
            let c = Cors::decide(list, refused);
            assert_eq!(c.allow_origin, None, "{refused}");
            assert!(c.vary, "the refusal also depends on Origin");
        }
    }

    #[test]
    fn wildcard() {
        let any = Cors::decide("https://a.example, *", "https://zzz.example");
        assert_eq!(any.allow_origin.as_deref(), Some("*"));
    }

    #[test]
    fn vary_merging() {
        assert_eq!(merge_vary(None), "Origin");
        assert_eq!(merge_vary(Some("")), "Origin");
        assert_eq!(merge_vary(Some("Accept")), "Accept, Origin");
        assert_eq!(merge_vary(Some("accept, origin")), "accept, origin");
        assert_eq!(merge_vary(Some("*")), "*");
    }
}
