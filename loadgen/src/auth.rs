//! Bearer tokens: the publish token for `/publish` and `/publish/batch`, the read token for the
//! verification reads (`/stats`, `/events`; `POST /drain` is tried with it too, which works when
//! it is an admin token). A `401` or `403` is never retried: it is a configuration error, and the
//! message names the token, its flag and environment variable, and the route that refused it.

use std::fmt;

/// A token value that never shows up in `Debug` output, logs or reports.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token; empty or blank values count as no token.
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let v = value.into().trim().to_string();
        (!v.is_empty()).then_some(Secret(v))
    }

    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which token a request carries, so that a refusal can say which setting to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// The publish group's token.
    Publish,
    /// The read group's token (an admin token works too).
    Read,
}

impl TokenKind {
    /// How the user sets this token.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Publish => "publish token (--token / EDGELOG_PUBLISH_TOKEN)",
            TokenKind::Read => "read token (--read-token / EDGELOG_READ_TOKEN)",
        }
    }
}

/// The tokens of one run.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    /// Sent with every publish.
    pub publish: Option<Secret>,
    /// Sent with every verification read.
    pub read: Option<Secret>,
}

/// The message for a `401`/`403` from `method path`, given which token was sent (if any).
pub fn refusal(kind: TokenKind, sent: bool, method: &str, path: &str, status: u16) -> String {
    let route = path.split('?').next().unwrap_or(path);
    let what = kind.describe();
    match (status, sent) {
        (401, false) => format!(
            "{method} {route} answered 401: the service requires a token and no {what} was given"
        ),
        (401, true) => format!(
            "{method} {route} answered 401: the {what} was refused (unknown or malformed token)"
        ),
        (_, false) => format!("{method} {route} answered {status}: no {what} was given"),
        (_, true) => format!(
            "{method} {route} answered {status}: the {what} is valid but not for this route's \
             group (403 insufficient scope)"
        ),
    }
}

/// Whether an HTTP status means the credentials, not the request, were wrong.
pub fn is_refusal(status: u16) -> bool {
    status == 401 || status == 403
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_and_blank_is_none() {
        let s = Secret::new(" tok-123 ").unwrap();
        assert_eq!(s.bearer(), "Bearer tok-123");
        assert!(!format!("{s:?}").contains("tok-123"));
        assert!(Secret::new("  ").is_none());
        let t = Tokens {
            publish: Some(s),
            read: None,
        };
        assert!(!format!("{t:?}").contains("tok-123"));
    }

    #[test]
    fn refusals_name_the_token_and_the_route() {
        let m = refusal(TokenKind::Publish, false, "POST", "/publish/batch", 401);
        assert!(m.contains("POST /publish/batch") && m.contains("no publish token"));
        assert!(m.contains("--token / EDGELOG_PUBLISH_TOKEN"));
        let m = refusal(TokenKind::Read, true, "GET", "/events?topic=a", 401);
        assert!(m.contains("GET /events answered 401") && m.contains("read token"));
        assert!(m.contains("refused"));
        let m = refusal(TokenKind::Read, true, "GET", "/stats", 403);
        assert!(m.contains("not for this route's group"));
    }
}
