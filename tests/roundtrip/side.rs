//! The two backends of the round-trip test, side by side: the shared harness's app on SQLite
//! and on PostgreSQL + Redis, driven over HTTP with answers kept as text (a payload must be
//! compared byte for byte, never re-parsed into numbers), and run on both at once.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::support::app::{App, Backend};
use crate::support::{self, client};

/// One backend under test: the shared harness's app, named for messages.
pub struct Side {
    /// `sqlite` or `postgres+redis`.
    pub name: &'static str,
    /// The running app and the resources it owns.
    pub app: App,
}

/// An HTTP answer: status and body text, unparsed (payloads must be compared as text).
#[derive(Debug, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// One page of `GET /events`, with each payload kept as the exact text the service sent.
#[derive(Deserialize)]
struct Page {
    events: Vec<StoredEvent>,
    next_cursor: Option<i64>,
}

/// An event as read back.
#[derive(Deserialize)]
pub struct StoredEvent {
    /// `topic`.
    pub topic: String,
    /// `event_id`.
    pub event_id: String,
    /// `timestamp`.
    pub timestamp: String,
    /// `source`.
    pub source: String,
    /// `payload`, exactly as sent by the service.
    pub payload: Box<RawValue>,
}

impl Side {
    pub fn send(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        let resp = request.send().expect("request to edge-host");
        Reply {
            status: resp.status().as_u16(),
            text: resp.text().expect("response body"),
        }
    }

    pub fn publish(&self, body: &str, respond_async: bool) -> Reply {
        let mut req = client()
            .post(self.app.host.at("/publish"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if respond_async {
            req = req.header("prefer", "respond-async");
        }
        self.send(req)
    }

    pub fn post(&self, path: &str) -> Reply {
        self.send(client().post(self.app.host.at(path)))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.send(client().get(self.app.host.at(path)))
    }

    /// The events of `topic` whose ids are in `wanted` (pages until all are seen or none is left).
    pub fn read_back(
        &self,
        topic: &str,
        wanted: &HashSet<String>,
    ) -> Result<HashMap<String, StoredEvent>, String> {
        let mut found = HashMap::new();
        let mut before: Option<i64> = None;
        loop {
            let mut query = vec![("topic", topic.to_string()), ("limit", "1000".into())];
            if let Some(b) = before {
                query.push(("before", b.to_string()));
            }
            let reply = self.send(client().get(self.app.host.at("/events")).query(&query));
            if reply.status != 200 {
                return Err(format!(
                    "{}: GET /events?topic={topic:?} answered {}: {}",
                    self.name,
                    reply.status,
                    clip(&reply.text)
                ));
            }
            let page: Page = serde_json::from_str(&reply.text)
                .map_err(|e| format!("{}: unreadable /events page ({e})", self.name))?;
            for e in page.events {
                if wanted.contains(&e.event_id) {
                    found.insert(e.event_id.clone(), e);
                }
            }
            match page.next_cursor {
                Some(c) if found.len() < wanted.len() => before = Some(c),
                _ => return Ok(found),
            }
        }
    }

    /// `/stats`, checked against the extended invariant; returns its counters.
    pub fn counters(&self) -> Result<[u64; 5], String> {
        let reply = self.get("/stats");
        let body = reply.json();
        let field = |name: &str| {
            body[name].as_u64().ok_or_else(|| {
                format!(
                    "{}: /stats ({}) has no `{name}`: {}",
                    self.name,
                    reply.status,
                    clip(&reply.text)
                )
            })
        };
        let c = [
            field("received")?,
            field("unique_processed")?,
            field("duplicate_dropped")?,
            field("queued")?,
            field("dead_lettered")?,
        ];
        if c[0] != c[1] + c[2] + c[3] + c[4] {
            return Err(format!(
                "{}: /stats invariant broken: {}",
                self.name, reply.text
            ));
        }
        Ok(c)
    }
}

/// Starts both backends (in parallel: each start builds nothing new but waits for its host).
pub fn both() -> [Side; 2] {
    support::build_components();
    std::thread::scope(|s| {
        let pg = s.spawn(|| Side {
            name: "postgres+redis",
            app: App::start(Backend::PostgresRedis),
        });
        let lite = Side {
            name: "sqlite",
            app: App::start(Backend::Sqlite),
        };
        [lite, pg.join().expect("start postgres+redis app")]
    })
}

/// Runs `f` on both backends at once.
pub fn on_both<T: Send>(apps: &[Side; 2], f: impl Fn(&Side) -> T + Sync) -> [T; 2] {
    std::thread::scope(|s| {
        let second = s.spawn(|| f(&apps[1]));
        let first = f(&apps[0]);
        [first, second.join().expect("worker thread")]
    })
}

/// The start of a long text, for messages.
pub fn clip(s: &str) -> String {
    const MAX: usize = 300;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}… ({} bytes)", s.len())
    }
}
