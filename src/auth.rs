//! Access control: which bearer tokens may call which group of routes.
//!
//! Three secret Spin variables hold the tokens: `publish_tokens` (POST /publish, /publish/batch),
//! `read_tokens` (GET /events, /stats, /metrics) and `admin_tokens` (drain, maintenance, dead
//! letters; also accepted on read routes, since an operator reads too). Each is a comma-separated
//! list so a token can be rotated: add the new one, move the clients, remove the old one. An empty
//! (or undefined) variable leaves its group OPEN, which is what local development wants and what
//! the README warns about. `/`, `/openapi.json` and `/health` are always open.
//!
//! A request sends `Authorization: Bearer <token>`. No token, a malformed header or an unknown
//! token is `401` with `WWW-Authenticate: Bearer realm="edgelog"` (plus RFC 6750's `error=` where
//! it applies); a token that is valid for another group is `403`. Tokens are compared as SHA-256
//! digests with `subtle`'s constant-time equality, against every configured token without an
//! early exit, so neither the content, the length nor the position of a token leaks through
//! timing. Only the variable of the route's group is read on the success path (one host call per
//! protected request); the other groups are read only to tell a `403` from a `401`. Nothing here
//! logs, and no message repeats a token.
//!
//! CORS, the other thing a public URL needs for browser clients, is in `cors`.

mod cors;

pub use cors::Cors;

use sha2::{Digest, Sha256};
use spin_sdk::variables;
use subtle::{Choice, ConstantTimeEq};

use crate::Group;
use crate::error::ApiError;
use crate::http::Headers;

/// Lets a request through, or says why not (`401`, `403`, or `500` for an unusable variable).
pub fn check(group: Group, headers: &Headers) -> Result<(), ApiError> {
    if group == Group::Open {
        return Ok(());
    }
    let authorization = headers.all("authorization");
    decide(group, &authorization, |set| {
        TokenSet::parse(set.variable(), &read_variable(set.variable())?)
    })
}

/// Whether a group's routes ask for a token now, so the served contract can say so. An unusable
/// variable counts as protected: its routes let nobody through until it is fixed.
pub fn is_protected(group: Group) -> bool {
    Kind::of(group).is_some_and(|kind| {
        !read_variable(kind.variable())
            .and_then(|value| TokenSet::parse(kind.variable(), &value))
            .is_ok_and(|set| set.is_open())
    })
}

/// The three token variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Publish,
    Read,
    Admin,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Publish, Kind::Read, Kind::Admin];

    fn variable(self) -> &'static str {
        match self {
            Kind::Publish => "publish_tokens",
            Kind::Read => "read_tokens",
            Kind::Admin => "admin_tokens",
        }
    }

    fn routes(self) -> &'static str {
        match self {
            Kind::Publish => "publish",
            Kind::Read => "read",
            Kind::Admin => "admin",
        }
    }

    /// The variable that decides whether a group is protected at all.
    fn of(group: Group) -> Option<Kind> {
        match group {
            Group::Open => None,
            Group::Publish => Some(Kind::Publish),
            Group::Read => Some(Kind::Read),
            Group::Admin => Some(Kind::Admin),
        }
    }

    /// Token sets accepted on a group besides its own (admin tokens on read routes).
    fn also_accepted(self) -> &'static [Kind] {
        match self {
            Kind::Read => &[Kind::Admin],
            Kind::Publish | Kind::Admin => &[],
        }
    }
}

/// An undefined variable (a manifest that does not declare it) counts as empty: the group is open.
fn read_variable(name: &str) -> Result<String, ApiError> {
    match variables::get(name) {
        Ok(value) => Ok(value),
        Err(variables::Error::Undefined(_)) => Ok(String::new()),
        Err(e) => Err(ApiError::config(name, e)),
    }
}

/// One group's configured tokens, kept only as SHA-256 digests so comparisons are fixed-length.
#[derive(Debug, Default)]
struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl TokenSet {
    /// Parses a comma-separated list: items trimmed, empty items ignored. An item that could never
    /// arrive in a bearer header (inner whitespace, non-ASCII, control characters) is an operator
    /// error (`500` naming the variable and the item's position, never its text).
    fn parse(variable: &str, value: &str) -> Result<TokenSet, ApiError> {
        let mut digests = Vec::new();
        for (position, item) in value.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                continue;
            }
            if !is_token(item) {
                return Err(ApiError::config(
                    variable,
                    format!(
                        "item {} is not usable as a bearer token: use visible ASCII without \
                         spaces or commas (e.g. `openssl rand -hex 32`)",
                        position + 1
                    ),
                ));
            }
            digests.push(digest(item));
        }
        Ok(TokenSet { digests })
    }

    /// No tokens configured: the group is open.
    fn is_open(&self) -> bool {
        self.digests.is_empty()
    }

    /// Compares against every configured token in constant time (no early exit).
    fn contains(&self, presented: &[u8; 32]) -> bool {
        let found = self
            .digests
            .iter()
            .fold(Choice::from(0), |found, d| found | d.ct_eq(presented));
        found.into()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Visible ASCII without spaces or commas: a superset of RFC 6750's `b64token` that still fits a
/// header value and a comma-separated list.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// What the `Authorization` header carried.
#[derive(Debug, PartialEq)]
enum Credential {
    Missing,
    Malformed(&'static str),
    Bearer([u8; 32]),
}

/// Reads the `Authorization` header values (all of them: two headers are malformed).
fn credential(values: &[Vec<u8>]) -> Credential {
    let value = match values {
        [] => return Credential::Missing,
        [one] => one,
        _ => return Credential::Malformed("send exactly one Authorization header"),
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return Credential::Malformed("the Authorization header is not ASCII");
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::Malformed("use the Bearer scheme: Authorization: Bearer <token>");
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Credential::Malformed("the Bearer token is empty");
    }
    if !is_token(token) {
        return Credential::Malformed("the Bearer token contains characters a token cannot have");
    }
    Credential::Bearer(digest(token))
}

/// The decision, with the variable reads injected so it is testable without a host.
fn decide(
    group: Group,
    authorization: &[Vec<u8>],
    mut load: impl FnMut(Kind) -> Result<TokenSet, ApiError>,
) -> Result<(), ApiError> {
    let Some(own) = Kind::of(group) else {
        return Ok(());
    };
    let tokens = load(own)?;
    if tokens.is_open() {
        return Ok(());
    }
    let presented = match credential(authorization) {
        Credential::Bearer(d) => d,
        Credential::Missing => {
            return Err(ApiError::unauthorized(format!(
                "{} routes need a token: send Authorization: Bearer <token>",
                own.routes()
            )));
        }
        Credential::Malformed(why) => return Err(bearer_error(why, "invalid_request")),
    };
    if tokens.contains(&presented) {
        return Ok(());
    }
    for &also in own.also_accepted() {
        if load(also)?.contains(&presented) {
            return Ok(());
        }
    }
    // Refused either way; read the other groups only to say 403 rather than 401. A variable that
    // cannot be read here is reported on its own routes, not on this one.
    let elsewhere = Kind::ALL
        .into_iter()
        .filter(|k| *k != own && !own.also_accepted().contains(k))
        .any(|k| load(k).is_ok_and(|set| set.contains(&presented)));
    if elsewhere {
        let mut e = ApiError::forbidden(format!(
            "this token belongs to another group; it is not valid for {} routes",
            own.routes()
        ));
        e.headers.push((
            "www-authenticate",
            "Bearer realm=\"edgelog\", error=\"insufficient_scope\"".to_owned(),
        ));
        return Err(e);
    }
    Err(bearer_error("the token is not known", "invalid_token"))
}

/// A `401` carrying RFC 6750's `error=` code, so OAuth-style clients can tell a bad token apart.
fn bearer_error(message: &str, code: &str) -> ApiError {
    let mut e = ApiError::unauthorized(message);
    e.headers.retain(|(name, _)| *name != "www-authenticate");
    e.headers.push((
        "www-authenticate",
        format!("Bearer realm=\"edgelog\", error=\"{code}\""),
    ));
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> Vec<Vec<u8>> {
        vec![v.as_bytes().to_vec()]
    }

    /// publish: p1,p2 · read: r1 · admin: a1 (or whatever the caller configures).
    fn vars(
        publish: &str,
        read: &str,
        admin: &str,
    ) -> impl FnMut(Kind) -> Result<TokenSet, ApiError> {
        let (publish, read, admin) = (publish.to_owned(), read.to_owned(), admin.to_owned());
        move |k| {
            let value = match k {
                Kind::Publish => &publish,
                Kind::Read => &read,
                Kind::Admin => &admin,
            };
            TokenSet::parse(k.variable(), value)
        }
    }

    fn status(r: Result<(), ApiError>) -> u16 {
        r.map_or_else(|e| e.status, |()| 200)
    }

    #[test]
    fn parse_lists() {
        let set = TokenSet::parse("publish_tokens", " p1 ,, p2,\t, ").unwrap();
        assert_eq!(set.digests.len(), 2);
        assert!(set.contains(&digest("p1")));
        assert!(set.contains(&digest("p2")));
        assert!(!set.contains(&digest("p3")));
        assert!(!set.contains(&digest(" p1 ")));
        assert!(TokenSet::parse("read_tokens", "").unwrap().is_open());
        assert!(TokenSet::parse("read_tokens", " , ,").unwrap().is_open());
        let e = TokenSet::parse("admin_tokens", "good, has space, x").unwrap_err();
        assert_eq!((e.status, e.code), (500, "config_error"));
        assert!(e.message.contains("admin_tokens") && e.message.contains("item 2"));
        assert!(!e.message.contains("has space"), "never repeat a token");
        assert!(TokenSet::parse("admin_tokens", "tökén").is_err());
    }

    #[test]
    fn constant_time_compare_has_no_prefix_or_length_shortcut() {
        let set = TokenSet::parse("x", "secret-token").unwrap();
        for other in ["secret-toke", "secret-tokenn", "", "secret-tokeN"] {
            assert!(!set.contains(&digest(other)), "{other}");
        }
        assert!(set.contains(&digest("secret-token")));
    }

    #[test]
    fn header_parsing() {
        assert_eq!(credential(&[]), Credential::Missing);
        assert_eq!(
            credential(&header("Bearer abc")),
            Credential::Bearer(digest("abc"))
        );
        assert_eq!(
            credential(&header("bearer   abc ")),
            Credential::Bearer(digest("abc"))
        );
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "abc",
            "",
        ] {
            assert!(
                matches!(credential(&header(bad)), Credential::Malformed(_)),
                "{bad:?}"
            );
        }
        let two = vec![b"Bearer a".to_vec(), b"Bearer b".to_vec()];
        assert!(matches!(credential(&two), Credential::Malformed(_)));
        assert!(matches!(
            credential(&[vec![0xff, 0xfe]]),
            Credential::Malformed(_)
        ));
    }

    #[test]
    fn decisions() {
        let all = || vars("p1,p2", "r1", "a1");
        let table: [(Group, &str, u16); 20] = [
            (Group::Open, "", 200),
            (Group::Open, "Bearer nope", 200),
            (Group::Publish, "", 401),
            (Group::Publish, "Bearer p1", 200),
            (Group::Publish, "Bearer p2", 200),
            (Group::Publish, "Bearer r1", 403),
            (Group::Publish, "Bearer a1", 403),
            (Group::Publish, "Bearer zz", 401),
            (Group::Publish, "Basic p1", 401),
            (Group::Read, "", 401),
            (Group::Read, "Bearer r1", 200),
            (Group::Read, "Bearer a1", 200),
            (Group::Read, "Bearer p1", 403),
            (Group::Read, "Bearer zz", 401),
            (Group::Admin, "", 401),
            (Group::Admin, "Bearer a1", 200),
            (Group::Admin, "Bearer r1", 403),
            (Group::Admin, "Bearer p2", 403),
            (Group::Admin, "Bearer zz", 401),
            (Group::Admin, "Token a1", 401),
        ];
        for (group, auth, want) in table {
            let h = if auth.is_empty() {
                vec![]
            } else {
                header(auth)
            };
            assert_eq!(status(decide(group, &h, all())), want, "{group:?} {auth:?}");
        }
    }

    #[test]
    fn empty_variables_leave_their_group_open() {
        // Only publishing protected: reads and admin stay open even with a wrong token.
        assert_eq!(status(decide(Group::Read, &[], vars("p1", "", ""))), 200);
        assert_eq!(status(decide(Group::Admin, &[], vars("p1", "", ""))), 200);
        assert_eq!(status(decide(Group::Publish, &[], vars("p1", "", ""))), 401);
        // Read open even though admin tokens exist (each variable decides for its own group).
        assert_eq!(status(decide(Group::Read, &[], vars("", "", "a1"))), 200);
    }

    #[test]
    fn success_reads_only_the_needed_variable() {
        let mut seen = Vec::new();
        let mut load = vars("p1", "r1", "a1");
        let counting = |k| {
            seen.push(k);
            load(k)
        };
        assert!(decide(Group::Publish, &header("Bearer p1"), counting).is_ok());
        assert_eq!(seen, [Kind::Publish]);
        let mut seen = Vec::new();
        let counting = |k| {
            seen.push(k);
            vars("", "", "")(k)
        };
        assert!(decide(Group::Open, &[], counting).is_ok());
        assert!(seen.is_empty(), "open routes read no variable");
    }

    #[test]
    fn error_shapes() {
        let e = decide(Group::Publish, &[], vars("p1", "", "")).unwrap_err();
        assert_eq!(e.code, "unauthorized");
        assert!(
            e.headers
                .contains(&("www-authenticate", "Bearer realm=\"edgelog\"".to_owned()))
        );
        let e = decide(Group::Publish, &header("Bearer zz"), vars("p1", "", "")).unwrap_err();
        let www: Vec<_> = e
            .headers
            .iter()
            .filter(|(n, _)| *n == "www-authenticate")
            .collect();
        assert_eq!(www.len(), 1);
        assert_eq!(
            www[0].1,
            "Bearer realm=\"edgelog\", error=\"invalid_token\""
        );
        let e = decide(Group::Admin, &header("Bearer r1"), vars("", "r1", "a1")).unwrap_err();
        assert_eq!((e.status, e.code), (403, "forbidden"));
        // A broken variable of the route's own group is an operator error...
        let e = decide(Group::Admin, &[], vars("", "", "a b")).unwrap_err();
        assert_eq!(e.status, 500);
        // ...but a broken variable of another group does not turn a refusal into a 500.
        let e = decide(Group::Publish, &header("Bearer zz"), vars("p1", "", "a b")).unwrap_err();
        assert_eq!(e.status, 401);
    }
}
