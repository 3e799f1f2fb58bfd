//! A throwaway in-memory stand-in for the service, used only by tests (loadgen's accounting in
//! `lab/tests/accounting.rs`, the chaos harness's load) to check the client's accounting end to
//! end (it is not a test of the real service). It implements the publish, `/stats`, `/drain`
//! and `/events` routes (topic, `since`/`until`, keyset pages), with switchable faults and bugs,
//! optionally under a path prefix and over TLS (offering HTTP/2 and HTTP/1.1 through ALPN).

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Which faults the mock injects; `Some(n)` means "every n-th publish request (or event)".
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer `503` without storing anything.
    pub reject_every: Option<u64>,
    /// Answer `422` without storing anything.
    pub unprocessable_every: Option<u64>,
    /// Queue the events and answer `202`; `/drain` stores them.
    pub queue_every: Option<u64>,
    /// Store the events, then answer `500`.
    pub fail_after_store_every: Option<u64>,
    /// Store the events, then answer after 600 ms (past the tests' client timeout).
    pub slow_every: Option<u64>,
    /// Bug: every n-th new event is remembered as seen but neither stored nor counted.
    pub lose_every: Option<u64>,
    /// Bug: every n-th new event is stored as two rows.
    pub store_twice_every: Option<u64>,
    /// Bug: every n-th event is counted twice in `received`.
    pub count_twice_every: Option<u64>,
    /// Delay of every publish answer.
    pub delay: Option<Duration>,
    /// Have no `/drain` route (`404`), so queued events stay queued.
    pub no_drain: bool,
    /// Disappear (close the listener and every connection) after this many publish requests,
    /// like a service killed mid-run.
    pub vanish_after: Option<u64>,
}

#[derive(Default)]
struct State {
    faults: Faults,
    publishes: u64,
    events_seen: u64,
    new_events: u64,
    received: u64,
    unique: u64,
    duplicates: u64,
    queue: Vec<Value>,
    seen: HashSet<(String, String)>,
    rows: Vec<(u64, Value)>,
    gone: Option<tokio::sync::watch::Sender<bool>>,
}

fn hits(every: Option<u64>, n: u64) -> bool {
    every.is_some_and(|k| n.is_multiple_of(k))
}

impl State {
    /// Stores one event; returns whether it was new.
    fn store(&mut self, e: Value, count_received: bool) -> bool {
        self.events_seen += 1;
        if count_received {
            self.received += 1;
            if hits(self.faults.count_twice_every, self.events_seen) {
                self.received += 1;
            }
        }
        let key = (
            e["topic"].as_str().unwrap_or_default().to_string(),
            e["event_id"].as_str().unwrap_or_default().to_string(),
        );
        if !self.seen.insert(key) {
            self.duplicates += 1;
            return false;
        }
        self.new_events += 1;
        if hits(self.faults.lose_every, self.new_events) {
            return true;
        }
        self.unique += 1;
        let copies = if hits(self.faults.store_twice_every, self.new_events) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let id = self.rows.len() as u64 + 1;
            let mut row = e.clone();
            row["id"] = json!(id);
            row["processed_at"] = json!("2030-01-01T00:00:00Z");
            self.rows.push((id, row));
        }
        true
    }
}

/// How the mock is reached, beyond its faults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve the routes under this path prefix (e.g. `/edge/logs`); anything else is `404`.
    pub prefix: Option<String>,
    /// Serve HTTPS with this PEM certificate chain and PEM private key, offering `h2` and
    /// `http/1.1` through ALPN.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running mock service on a loopback port; stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    scheme: &'static str,
    prefix: String,
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockServer {
    /// Starts the mock with the given faults on 127.0.0.1 and an ephemeral port.
    pub async fn start(faults: Faults) -> MockServer {
        MockServer::start_with(faults, Options::default()).await
    }

    /// [`MockServer::start`] under a prefix and/or over TLS.
    pub async fn start_with(faults: Faults, options: Options) -> MockServer {
        let tls = options.tls.as_ref().map(|(cert, key)| {
            let certs = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            TlsAcceptor::from(Arc::new(config))
        });
        let prefix = options.prefix.unwrap_or_default();
        let route_prefix = prefix.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (gone_tx, gone) = tokio::sync::watch::channel(false);
        let state = Arc::new(Mutex::new(State {
            faults,
            gone: Some(gone_tx),
            ..State::default()
        }));
        let task = tokio::spawn(async move {
            loop {
                let mut vanish = gone.clone();
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = vanish.wait_for(|g| *g) => return,
                };
                let Ok((stream, _)) = accepted else {
                    return;
                };
                let state = Arc::clone(&state);
                let prefix = route_prefix.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc =
                        service_fn(move |req| handle(Arc::clone(&state), prefix.clone(), req));
                    let serve = auto::Builder::new(TokioExecutor::new());
                    let conn = async {
                        match tls {
                            Some(tls) => {
                                let Ok(stream) = tls.accept(stream).await else {
                                    return;
                                };
                                let _ = serve.serve_connection(TokioIo::new(stream), svc).await;
                            }
                            None => {
                                let _ = serve.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    };
                    tokio::select! {
                        _ = conn => {}
                        _ = vanish.wait_for(|g| *g) => {}
                    }
                });
            }
        });
        MockServer {
            addr,
            task,
            scheme: if options.tls.is_some() {
                "https"
            } else {
                "http"
            },
            prefix,
        }
    }

    /// Base URL of the mock (with its prefix).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.addr, self.prefix)
    }
}

fn reply(status: u16, body: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

/// A query parameter, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn handle(
    state: Arc<Mutex<State>>,
    prefix: String,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let Some(path) = req.uri().path().strip_prefix(prefix.as_str()) else {
        return reply(404, json!({"error": "outside the prefix"}));
    };
    let path = path.to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    match (method, path.as_str()) {
        (Method::POST, "/publish" | "/publish/batch") => {
            let Ok(v) = serde_json::from_slice::<Value>(&body) else {
                return reply(400, json!({"error": "malformed JSON"}));
            };
            let events = match v {
                Value::Object(ref o) if o.contains_key("events") => {
                    v["events"].as_array().cloned().unwrap_or_default()
                }
                Value::Array(a) => a,
                other => vec![other],
            };
            let n = events.len() as u64;
            let (delay, slow, answer) = {
                let mut s = state.lock().unwrap();
                s.publishes += 1;
                let p = s.publishes;
                let f = s.faults.clone();
                if f.vanish_after.is_some_and(|n| p > n) {
                    if let Some(gone) = &s.gone {
                        let _ = gone.send(true);
                    }
                    return reply(503, json!({"error": "going away"}));
                }
                if hits(f.reject_every, p) {
                    return reply(503, json!({"error": "busy"}));
                }
                if hits(f.unprocessable_every, p) {
                    return reply(422, json!({"errors": [{"field": "events[0].topic"}]}));
                }
                if hits(f.queue_every, p) {
                    s.received += n;
                    s.queue.extend(events);
                    return reply(202, json!({"received": n, "queued": n}));
                }
                let processed = events
                    .into_iter()
                    .filter(|e| s.store(e.clone(), true))
                    .count();
                let answer = json!({
                    "received": n,
                    "processed": processed,
                    "duplicates": n - processed as u64,
                });
                if hits(f.fail_after_store_every, p) {
                    return reply(500, json!({"error": "oops"}));
                }
                (f.delay, hits(f.slow_every, p), answer)
            };
            if slow {
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            reply(200, answer)
        }
        (Method::POST, "/drain") => {
            let mut s = state.lock().unwrap();
            if s.faults.no_drain {
                return reply(404, json!({"error": "not found"}));
            }
            let queued = std::mem::take(&mut s.queue);
            let n = queued.len();
            for e in queued {
                s.store(e, false);
            }
            reply(200, json!({"drained": n}))
        }
        (Method::GET, "/stats") => {
            let s = state.lock().unwrap();
            reply(
                200,
                json!({
                    "received": s.received,
                    "unique_processed": s.unique,
                    "duplicate_dropped": s.duplicates,
                    "queued": s.queue.len(),
                    "topics": [],
                    "uptime_seconds": 1,
                }),
            )
        }
        (Method::GET, "/events") => {
            let topic = query_param(&query, "topic").unwrap_or_default();
            // Timestamps are all written the same way, so text order is time order.
            let since = query_param(&query, "since").unwrap_or_default();
            let until = query_param(&query, "until");
            let limit: usize = query_param(&query, "limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .min(250); // smaller pages than asked for, so read-back has to page
            let before: u64 = query_param(&query, "before")
                .and_then(|b| b.parse().ok())
                .unwrap_or(u64::MAX);
            let s = state.lock().unwrap();
            let page: Vec<&(u64, Value)> = s
                .rows
                .iter()
                .rev()
                .filter(|(id, row)| {
                    let ts = row["timestamp"].as_str().unwrap_or_default();
                    *id < before
                        && row["topic"] == topic.as_str()
                        && ts >= since.as_str()
                        && until.as_deref().is_none_or(|u| ts < u)
                })
                .take(limit)
                .collect();
            let next = (page.len() == limit).then(|| page.last().unwrap().0.to_string());
            let events: Vec<&Value> = page.iter().map(|(_, r)| r).collect();
            reply(
                200,
                json!({"events": events, "count": events.len(), "topic": topic, "next_cursor": next}),
            )
        }
        _ => reply(404, json!({"error": "not found"})),
    }
}
