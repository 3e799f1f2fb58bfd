//! HTTP to the service: a keep-alive hyper client (HTTP/1.1, or HTTP/2 when the server offers
//! it through ALPN over `https://`) with a per-attempt timeout and an optional bearer token, and
//! the at-least-once retry loop (timeouts, connection errors, 5xx and `429` are retried with
//! backoff; other 4xx, `401`/`403` included, never are).
//!
//! Every attempt is returned to the caller, because each one matters for the accounting: an
//! acknowledged retry is a duplicate the service must count, and an attempt with an unknown
//! outcome (timeout, broken connection, 5xx) may or may not have been received.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri, Version, header};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::RngExt;
use serde_json::Value;

use crate::auth::{self, Secret, TokenKind};
use crate::tls::{self, TlsOptions};

/// How an attempt that produced no HTTP answer failed, because that decides whether the
/// service may have seen it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the timeout: the request may have been processed.
    Timeout,
    /// The connection could not be opened: the request was certainly not sent.
    Connect(String),
    /// The connection broke during the exchange: the request may have been processed.
    Transport(String),
}

impl Failure {
    /// Short label used as a key in the report's status counts.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Connect(_) => "connect_error",
            Failure::Transport(_) => "transport_error",
        }
    }

    /// Whether the service may have received the request despite the failure.
    pub fn maybe_received(&self) -> bool {
        !matches!(self, Failure::Connect(_))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => write!(f, "timeout"),
            Failure::Connect(e) => write!(f, "connection error: {e}"),
            Failure::Transport(e) => write!(f, "transport error: {e}"),
        }
    }
}

/// An HTTP answer with its latency, for the histogram and the accounting.
#[derive(Clone, Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Full response body.
    pub body: Bytes,
    /// Time from sending the request to having the whole body.
    pub latency: Duration,
    /// The HTTP version the exchange used (`HTTP/1.1`, `HTTP/2`).
    pub version: &'static str,
}

/// The result of one attempt.
pub type Attempt = std::result::Result<Answer, Failure>;

/// Whether an attempt should be retried by an at-least-once publisher (`429` too, as OTLP
/// exporters and Loki clients do).
pub fn is_retryable(attempt: &Attempt) -> bool {
    match attempt {
        Ok(a) => a.status >= 500 || a.status == 429,
        Err(_) => true,
    }
}

/// Bounded retries with exponential backoff, so a struggling service is not hammered.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time.
    pub base_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// Backoff before attempt `n + 1` (n ≥ 1), with ±50 % jitter so retries do not align.
    pub fn backoff(&self, n: u32, rng: &mut impl rand::Rng) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(self.max_backoff);
        exp.mul_f64(rng.random_range(0.5..1.5))
    }
}

/// A keep-alive client bound to the service's base URL, optionally carrying one bearer token.
#[derive(Clone)]
pub struct Client {
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    base: String,
    timeout: Duration,
    token: Option<(TokenKind, Option<Secret>)>,
}

impl Client {
    /// A client for `base_url` that trusts the system's CAs, with a pool sized for
    /// `connections` concurrent requests.
    pub fn new(base_url: &str, timeout: Duration, connections: usize) -> Result<Client> {
        Client::with_tls(base_url, timeout, connections, &TlsOptions::default())
    }

    /// A client for `base_url` (`http://` or `https://`, a path prefix is kept: requests go
    /// to `base_url` + route) with the given certificate checks.
    pub fn with_tls(
        base_url: &str,
        timeout: Duration,
        connections: usize,
        tls: &TlsOptions,
    ) -> Result<Client> {
        let base = base_url.trim_end_matches('/').to_string();
        let uri: Uri = base
            .parse()
            .with_context(|| format!("invalid --url {base_url:?}"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => bail!("--url scheme {other:?} is not supported (http or https)"),
            None => bail!("--url {base_url:?} needs a scheme, e.g. https://logs.example.com"),
        }
        if uri.host().is_none() {
            bail!("--url {base_url:?} has no host");
        }
        if uri.query().is_some() {
            bail!("--url {base_url:?} must not have a query string");
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        connector.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(tls)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections.max(1))
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Ok(Client {
            http,
            base,
            timeout,
            token: None,
        })
    }

    /// The same client (same connection pool) sending `token` as the `kind` token; with
    /// `None` it sends none, but a refusal still names `kind`.
    pub fn authorized(&self, kind: TokenKind, token: Option<Secret>) -> Client {
        Client {
            token: Some((kind, token)),
            ..self.clone()
        }
    }

    /// The base URL requests are made against.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The message for a `401`/`403` answered to `method path` by this client's token.
    pub fn refusal(&self, method: &Method, path: &str, status: u16) -> String {
        match &self.token {
            Some((kind, token)) => {
                auth::refusal(*kind, token.is_some(), method.as_str(), path, status)
            }
            None => format!("{method} {path} answered {status}: the service requires a token"),
        }
    }

    /// One attempt: sends the request and reads the whole answer within the timeout.
    pub async fn attempt(&self, method: Method, path: &str, body: Option<Bytes>) -> Attempt {
        let content_type: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        self.attempt_with(method, path, content_type, body).await
    }

    /// [`Client::attempt`] with exactly these extra headers (no implicit content type), for
    /// `Prefer: respond-async` publishes and hostile requests.
    pub async fn attempt_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Attempt {
        let uri = format!("{}{}", self.base, path);
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((_, Some(token))) = &self.token {
            req = req.header(header::AUTHORIZATION, token.bearer());
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Failure::Connect(format!("bad request: {e}")))?;
        let start = Instant::now();
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| {
                if e.is_connect() {
                    Failure::Connect(error_chain(&e))
                } else {
                    Failure::Transport(error_chain(&e))
                }
            })?;
            let status = resp.status().as_u16();
            let version = match resp.version() {
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            };
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Failure::Transport(error_chain(&e)))?
                .to_bytes();
            Ok(Answer {
                status,
                body,
                latency: start.elapsed(),
                version,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Posts `body` with `headers` to `path`, retrying per `policy`; returns every attempt, the last one final.
    pub async fn post_with_retries(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        policy: &RetryPolicy,
        rng: &mut impl rand::Rng,
    ) -> Vec<Attempt> {
        let mut attempts = Vec::with_capacity(1);
        loop {
            let a = self
                .attempt_with(Method::POST, path, headers, Some(body.clone()))
                .await;
            let retry = is_retryable(&a);
            attempts.push(a);
            let n = attempts.len() as u32;
            if !retry || n >= policy.max_attempts {
                return attempts;
            }
            tokio::time::sleep(policy.backoff(n, rng)).await;
        }
    }

    /// GETs `path` and parses a JSON body, failing on anything but `200` (a `401`/`403` with
    /// the message that names the token).
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let a = self
            .attempt(Method::GET, path, None)
            .await
            .map_err(|f| anyhow!("GET {}{path}: {f}", self.base))?;
        if auth::is_refusal(a.status) {
            bail!("{}", self.refusal(&Method::GET, path, a.status));
        }
        if a.status != StatusCode::OK.as_u16() {
            bail!(
                "GET {}{path}: status {} body {}",
                self.base,
                a.status,
                snippet(&a.body)
            );
        }
        serde_json::from_slice(&a.body).with_context(|| {
            format!(
                "GET {}{path}: body is not JSON: {}",
                self.base,
                snippet(&a.body)
            )
        })
    }
}

/// The error and its sources on one line, since hyper's top-level messages are terse.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// At most 200 characters of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters pass through).
pub fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    use super::*;

    #[test]
    fn retry_classification() {
        let ok = |status| {
            Ok(Answer {
                status,
                body: Bytes::new(),
                latency: Duration::ZERO,
                version: "HTTP/1.1",
            })
        };
        assert!(!is_retryable(&ok(200)));
        assert!(!is_retryable(&ok(202)));
        assert!(!is_retryable(&ok(422)));
        assert!(is_retryable(&ok(429)));
        assert!(is_retryable(&ok(500)));
        assert!(is_retryable(&ok(503)));
        assert!(is_retryable(&Err(Failure::Timeout)));
        assert!(is_retryable(&Err(Failure::Connect("x".into()))));
        assert!(!Failure::Connect("x".into()).maybe_received());
        assert!(Failure::Timeout.maybe_received());
        assert!(Failure::Transport("x".into()).maybe_received());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..100 {
            let b1 = p.backoff(1, &mut rng);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(150));
            let b9 = p.backoff(9, &mut rng);
            assert!(b9 >= Duration::from_millis(500) && b9 <= Duration::from_millis(1500));
        }
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode_query_value("abc.t1"), "abc.t1");
        assert_eq!(encode_query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn accepts_http_and_https_base_urls_with_a_prefix() {
        let t = Duration::from_secs(1);
        assert!(Client::new("ftp://example.test", t, 1).is_err());
        assert!(Client::new("127.0.0.1:3000", t, 1).is_err());
        assert!(Client::new("https://example.test/logs?x=1", t, 1).is_err());
        assert!(Client::new("http://127.0.0.1:3000/", t, 1).is_ok());
        let c = Client::new("https://example.test/edge/logs/", t, 1).unwrap();
        assert_eq!(c.base_url(), "https://example.test/edge/logs");
    }
}
