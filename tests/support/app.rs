//! The app under test on either backend: the real `edgelog.wasm` on `edge-host`, with the
//! SQLite defaults or with PostgreSQL + Redis, plus small JSON helpers shared by the suites.

use super::{Host, HostConfig, TestDatabase, TestRedis, client, temp_dir};
use serde_json::{Value, json};

/// Which stores the app runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    /// SQLite queue and store (the embedded default).
    Sqlite,
    /// Redis queue, PostgreSQL store.
    PostgresRedis,
}

/// A running app plus the resources it owns (dropped after the host).
pub struct App {
    /// The edge-host process.
    pub host: Host,
    /// The PostgreSQL database, on that backend.
    pub db: Option<TestDatabase>,
    /// The Redis database, on that backend.
    pub redis: Option<TestRedis>,
}

impl App {
    /// Starts the app on a backend with default settings.
    pub fn start(backend: Backend) -> App {
        Self::start_with(backend, HostConfig::default())
    }

    /// Starts the app on a backend with extra host settings.
    pub fn start_with(backend: Backend, mut config: HostConfig) -> App {
        let (db, redis) = match backend {
            Backend::Sqlite => (None, None),
            Backend::PostgresRedis => {
                let db = TestDatabase::create("edgelog_api");
                let redis = TestRedis::reserve();
                let dir = temp_dir("edge-rc-");
                config.runtime_config = Some(redis.runtime_config(&dir));
                config = config
                    .env("SPIN_VARIABLE_STORE", "postgres")
                    .env("SPIN_VARIABLE_DATABASE_URL", &db.url);
                (Some(db), Some(redis))
            }
        };
        App {
            host: Host::start(config),
            db,
            redis,
        }
    }

    /// POSTs JSON; checks and strips the predecessors' compat fields of publish answers.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = client()
            .post(self.host.at(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        self.explain(status);
        let mut body: Value = resp.json().unwrap_or(Value::Null);
        if path.starts_with("/publish") && (status == 200 || status == 202) {
            // The superset fields of the predecessors' clients: checked here, once.
            let obj = body.as_object_mut().unwrap();
            let accepted = obj
                .remove("accepted")
                .expect("publish answers carry `accepted`");
            let expected = if status == 200 {
                &obj["processed"]
            } else {
                &obj["queued"]
            };
            assert_eq!(
                &accepted, expected,
                "accepted = processed (200) / queued (202)"
            );
            assert!(
                obj.remove("message").is_some_and(|m| m.is_string()),
                "a human message"
            );
        }
        (status, body)
    }

    /// On a 5xx, prints the end of the host's log, where the cause is.
    fn explain(&self, status: u16) {
        if status >= 500 {
            let logs = self.host.logs();
            let tail: Vec<&str> = logs.lines().rev().take(8).collect();
            eprintln!(
                "host log before a {status}:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// GETs JSON.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let resp = client().get(self.host.at(path)).send().unwrap();
        let status = resp.status().as_u16();
        self.explain(status);
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// `/stats`, with the invariant checked.
    pub fn stats(&self) -> Value {
        let (status, body) = self.get("/stats");
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["received"].as_u64().unwrap(),
            body["unique_processed"].as_u64().unwrap()
                + body["duplicate_dropped"].as_u64().unwrap()
                + body["queued"].as_u64().unwrap()
                + body["dead_lettered"].as_u64().unwrap(),
            "stats invariant broken: {body}"
        );
        body
    }

    /// Every stored event of a topic, through the cursor.
    pub fn all_events(&self, topic: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut before: Option<i64> = None;
        loop {
            let path = match before {
                Some(b) => format!("/events?topic={topic}&limit=1000&before={b}"),
                None => format!("/events?topic={topic}&limit=1000"),
            };
            let (status, body) = self.get(&path);
            assert_eq!(status, 200, "{body}");
            let page = body["events"].as_array().unwrap().clone();
            out.extend(page);
            match body["next_cursor"].as_i64() {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        out
    }
}

/// A valid event.
pub fn event(topic: &str, id: &str) -> Value {
    json!({
        "topic": topic,
        "event_id": id,
        "timestamp": "2024-03-05T06:07:08.123456Z",
        "source": "test",
        "payload": {"id": id, "n": [1, 2, 3]}
    })
}

/// (received, unique_processed, duplicate_dropped, queued).
pub fn counts(stats: &Value) -> (u64, u64, u64, u64) {
    (
        stats["received"].as_u64().unwrap(),
        stats["unique_processed"].as_u64().unwrap(),
        stats["duplicate_dropped"].as_u64().unwrap(),
        stats["queued"].as_u64().unwrap(),
    )
}
