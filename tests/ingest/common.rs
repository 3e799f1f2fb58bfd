//! What the ingest suites (`ingest_otlp`, `ingest_loki`, `ingest_ndjson`) share: running the
//! real client libraries in `tests/clients` with Node.js, raw HTTP for hostile bodies, gzip, and
//! a TCP switch that takes PostgreSQL or Redis away and brings it back without touching the
//! shared servers.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::switch::Switch;
use crate::support::{self, client};

/// `tests/clients`, where the npm packages are (installed by `scripts/services.sh`).
pub fn clients_dir() -> PathBuf {
    let dir = support::root().join("tests/clients");
    assert!(
        dir.join("node_modules").is_dir(),
        "tests/clients/node_modules is missing: run scripts/services.sh (npm ci there)"
    );
    dir
}

/// A Node.js client script running in `tests/clients`, its stdout read line by line.
pub struct NodeRun {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line so far.
    pub seen: Vec<String>,
}

impl NodeRun {
    /// Starts `node <script> <args...>`.
    pub fn start(script: &str, args: &[&str]) -> NodeRun {
        let mut child = Command::new("node")
            .current_dir(clients_dir())
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node (scripts/services.sh installs Node.js)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        NodeRun {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`; panics if the script ends first (or after
    /// 5 minutes, a hang guard, not a timing assertion).
    pub fn wait_for(&mut self, needle: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(300)) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "node never printed {needle:?}; it printed:\n{:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the script to end; returns whether it succeeded and its JSON lines.
    pub fn finish(mut self) -> (bool, Vec<Value>) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        let json = self
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        (status.success(), json)
    }
}

/// Runs a client script to its end and asserts it succeeded; returns its JSON lines.
pub fn node(script: &str, args: &[&str]) -> Vec<Value> {
    let (ok, lines) = NodeRun::start(script, args).finish();
    assert!(ok, "node {script} {args:?} failed:\n{lines:#?}");
    lines
}

/// A raw POST (for bodies no client library would send); returns status, content type, body.
pub fn post_raw(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let mut request = client().post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.bytes().unwrap().to_vec())
}

/// gzip, as clients send it.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// About 1 KB that inflates to 1 GiB through `Content-Encoding: gzip, gzip`: 1024 copies of a
/// gzip member holding 1 MiB of zeros (about 1 MB), gzipped again.
pub fn gzip_bomb() -> Vec<u8> {
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb = gzip(&member.repeat(1024));
    assert!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
    bomb
}

/// The app on PostgreSQL + Redis, each reached through its own [`Switch`] (PostgreSQL's first).
pub fn app_behind_switches() -> (crate::support::app::App, Switch, Switch) {
    use crate::support::{Host, HostConfig, TestDatabase, TestRedis, temp_dir};
    let pg = Switch::start(5432);
    let kv = Switch::start(6379);
    let db = TestDatabase::create("edgelog_ingest");
    let redis = TestRedis::reserve();
    let pg_url = db
        .url
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", pg.port));
    let redis_url = redis
        .url
        .replace("127.0.0.1:6379", &format!("127.0.0.1:{}", kv.port));
    let rc = temp_dir("edge-rc-").join("runtime-config.toml");
    std::fs::write(
        &rc,
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis_url}\"\n"),
    )
    .unwrap();
    let config = HostConfig {
        runtime_config: Some(rc),
        ..HostConfig::default()
    }
    .env("SPIN_VARIABLE_STORE", "postgres")
    .env("SPIN_VARIABLE_DATABASE_URL", &pg_url)
    .env("SPIN_VARIABLE_DB_HOST", &format!("127.0.0.1:{}", pg.port));
    let app = crate::support::app::App {
        host: Host::start(config),
        db: Some(db),
        redis: Some(redis),
    };
    (app, pg, kv)
}

/// `/stats?topic=` counters of one topic: (received, unique_processed, duplicate_dropped).
pub fn topic_counts(app: &crate::support::app::App, topic: &str) -> (u64, u64, u64) {
    let (status, stats) = app.get(&format!("/stats?topic={topic}"));
    assert_eq!(status, 200, "{stats}");
    let t = stats["topic_stats"]
        .as_array()
        .and_then(|topics| topics.iter().find(|t| t["topic"] == topic))
        .unwrap_or_else(|| panic!("no topic {topic:?} in /stats: {stats}"));
    let n = |k: &str| t[k].as_u64().unwrap_or_else(|| panic!("{k} in {t}"));
    (n("received"), n("unique_processed"), n("duplicate_dropped"))
}
