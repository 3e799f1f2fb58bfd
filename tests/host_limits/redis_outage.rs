//! Redis outages for the host_limits tests: a redis-server the test owns on its own port, killed
//! and restarted under load, and a "Redis" that accepts connections and never answers.

use serde_json::{Value, json};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Host, HostConfig, TestDatabase, client, temp_dir};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A redis-server this test owns, on its own port, with an append-only file fsynced on every
/// write (so a SIGKILL loses nothing it acknowledged).
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let mut r = OwnRedis {
            port: free_port(),
            dir: temp_dir("edge-redis-"),
            child: None,
        };
        r.spawn();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed? scripts/services.sh installs it)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if up.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn edgelog_on(db: &TestDatabase, redis_url: &str) -> Host {
    let rc = temp_dir("edge-rc-").join("runtime-config.toml");
    std::fs::write(
        &rc,
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis_url}\"\n"),
    )
    .unwrap();
    Host::start(
        HostConfig {
            runtime_config: Some(rc),
            ..Default::default()
        }
        .env("SPIN_VARIABLE_STORE", "postgres")
        .env("SPIN_VARIABLE_DATABASE_URL", &db.url),
    )
}

/// One publish attempt as the load thread saw it.
#[derive(Debug, Clone)]
struct Sent {
    id: String,
    queued: bool,
    started: Instant,
    took: Duration,
    status: u16,
    body: Value,
}

/// Publishes one event; `queued` asks for the asynchronous path (`?async=true`), which must go
/// through the key-value queue (Redis), while a synchronous publish may go straight to the store.
fn publish(
    http: &reqwest::blocking::Client,
    base: &str,
    topic: &str,
    id: &str,
    queued: bool,
) -> Sent {
    let started = Instant::now();
    let event = json!({
        "topic": topic, "event_id": id, "timestamp": "2024-05-01T12:00:00Z",
        "source": "limits", "payload": {"id": id}
    });
    let path = if queued {
        "/publish?async=true"
    } else {
        "/publish"
    };
    let (status, body) = match http.post(format!("{base}{path}")).json(&event).send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().unwrap_or(Value::Null))
        }
        Err(e) => (0, json!(e.to_string())),
    };
    Sent {
        id: id.to_string(),
        queued,
        started,
        took: started.elapsed(),
        status,
        body,
    }
}

/// Stops the load thread when the test ends, however it ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Every stored event id of `topic` (after draining the queue).
fn stored_ids(host: &Host, topic: &str) -> Vec<String> {
    let http = client();
    for _ in 0..100 {
        let resp = http.post(host.at("/drain")).send().unwrap();
        let body: Value = resp.json().unwrap_or(Value::Null);
        if body["queued"].as_u64() == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut ids = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/events?topic={topic}&limit=1000&before={b}"),
            None => format!("/events?topic={topic}&limit=1000"),
        };
        let resp = http.get(host.at(&path)).send().unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().unwrap();
        for e in body["events"].as_array().unwrap() {
            ids.push(e["event_id"].as_str().unwrap().to_string());
        }
        match body["next_cursor"].as_i64() {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    ids
}

#[test]
fn redis_killed_and_restarted_mid_load_costs_seconds_and_loses_nothing() {
    let db = TestDatabase::create("edgelog_limits");
    let mut redis = OwnRedis::start();
    // Owned here (the load thread gets only the URL), so a failing assertion still stops it.
    let host = edgelog_on(&db, &redis.url());
    let topic = format!("blip{}", std::process::id());

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_panic = StopOnDrop(stop.clone());
    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let load = {
        let (base, stop, log, topic) = (host.url.clone(), stop.clone(), log.clone(), topic.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Every other publish is asynchronous: that path needs Redis.
                let sent = publish(&http, &base, &topic, &format!("e{n}"), n.is_multiple_of(2));
                log.lock().unwrap().push(sent);
            }
        })
    };
    // Asynchronous publishes the queue (Redis) accepted since `after`.
    let queued_ok = |after: Instant| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|s| s.started >= after && s.queued && s.status == 202)
            .count()
    };
    let t0 = Instant::now();
    while queued_ok(t0) < 20 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no publishes before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    redis.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    // Read paths answer too, and fast, while Redis is down.
    for path in ["/health", "/stats"] {
        let start = Instant::now();
        let resp = client().get(host.at(path)).send().unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        assert!(start.elapsed() < Duration::from_secs(10), "{path} hung");
        assert!(status == 200 || status == 503, "{path}: {status} {body}");
        // JSON either way (`/health` names the failing part, `/stats` says what it knows).
        assert!(body.is_object(), "{path}: {status} {body}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    redis.spawn();
    let restarted = Instant::now();
    while queued_ok(restarted) == 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "no publish succeeded within 15 s of Redis coming back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    let log = log.lock().unwrap().clone();
    let outage: Vec<&Sent> = log
        .iter()
        .filter(|s| s.started >= killed + Duration::from_millis(100) && s.started < restarted)
        .collect();
    assert!(
        !outage.is_empty(),
        "no publish was attempted during the outage"
    );
    for s in &outage {
        // Fast (not the 60 s request timeout), and JSON: 503 when nothing could be
        // acknowledged, 2xx where the design took the event another way.
        assert!(s.took < Duration::from_secs(10), "{s:?}");
        assert!(matches!(s.status, 200 | 202 | 503), "{s:?}");
        if s.status == 503 {
            assert!(s.body["error"].is_string(), "{s:?}");
        }
    }
    let refused = outage
        .iter()
        .filter(|s| s.queued && s.status == 503)
        .count();
    assert!(
        refused > 0,
        "Redis was down yet no asynchronous publish reported it ({} attempts)",
        outage.len()
    );
    for s in &log {
        assert!(matches!(s.status, 200 | 202 | 503), "{s:?}");
    }

    // Nothing acknowledged is lost, nothing is stored twice.
    let stored = stored_ids(&host, &topic);
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "an event was stored twice");
    for s in log.iter().filter(|s| s.status == 200 || s.status == 202) {
        assert!(
            unique.binary_search(&s.id).is_ok(),
            "acknowledged {s:?} lost"
        );
    }
}

#[test]
fn a_redis_that_never_answers_costs_seconds_not_minutes() {
    // Accepts connections and never answers: neither connect nor commands can succeed.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for s in silent.incoming().flatten() {
                held.lock().unwrap().push(s);
            }
        });
    }
    let db = TestDatabase::create("edgelog_limits");
    let host = edgelog_on(&db, &format!("redis://127.0.0.1:{port}/0"));
    let http = client();
    for i in 0..3 {
        let sent = publish(&http, &host.url, "silent", &format!("s{i}"), true);
        // The queue cannot take it: nothing acknowledged, a JSON 503, and fast (the request
        // timeout is 60 s).
        assert!(sent.took < Duration::from_secs(10), "{sent:?}");
        assert_eq!(sent.status, 503, "{sent:?}");
        assert!(sent.body["error"].is_string(), "{sent:?}");
    }
    let start = Instant::now();
    let resp = http.get(host.at("/health")).send().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(matches!(resp.status().as_u16(), 200 | 503));
}
