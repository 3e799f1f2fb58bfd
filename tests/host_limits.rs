//! edge-host under slow and abusive clients and a failing key-value dependency, through the real
//! binary over real HTTP (raw TCP where the client must misbehave):
//!
//! - headers that never finish: the connection is closed within `--header-timeout-secs`;
//! - a body that stops arriving: `408` JSON after `--body-idle-timeout-secs`; a body that keeps
//!   dribbling past the request timeout: `408` JSON, not `500`;
//! - with `--max-pending-connections` bodies in flight, a new request gets `503` + `Retry-After`
//!   at once instead of waiting;
//! - slow connections hold no instance slot: a normal request succeeds while more of them are
//!   open than there are slots;
//! - guest traps and timeouts answer JSON;
//! - Redis (a server this test starts on its own port) killed and restarted under load: publishes
//!   answer fast during the outage, service is back soon after, nothing acknowledged is lost; a
//!   Redis that accepts connections and never answers costs seconds, not minutes.
//!
//! Time bounds in these tests are liveness checks ("answered within 10 s, not 60"), never
//! performance claims; `loadgen slow-clients` measures latency.

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Host, HostConfig, TestDatabase, client, root, temp_dir};

/// The kitchen-sink fixture with extra `edge-host up` flags.
fn fixture(args: &[&str]) -> Host {
    let rc = temp_dir("edge-rc-").join("runtime-config.toml");
    std::fs::write(&rc, "[key_value_store.other]\ntype = \"spin\"\n").unwrap();
    Host::start(
        HostConfig {
            manifest: Some(root().join("tests/fixtures/kitchen-sink/spin.toml")),
            runtime_config: Some(rc),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
        .env("SPIN_VARIABLE_REGION", "limits-test"),
    )
}

fn addr(host: &Host) -> String {
    host.url.trim_start_matches("http://").to_string()
}

/// A raw connection that has sent `head` (and whatever part of a body follows it).
fn open(host: &Host, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr(host)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// A POST whose headers promise `len` body bytes, of which `sent` are sent now.
fn post_head(path: &str, len: usize, sent: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\r\n{sent}")
}

/// An HTTP answer read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// Reads one answer (headers plus a `Content-Length` body); `None` if the server closed the
/// connection without answering. Panics if nothing happens within `within` (liveness bound).
fn read_answer(s: &mut TcpStream, within: Duration) -> Option<Raw> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap().split(' ').nth(1).unwrap();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let chunked = headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
            });
            let rest = &buf[end + 4..];
            let body = if chunked {
                decode_chunked(rest)
            } else {
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                (rest.len() >= len).then(|| rest[..len].to_vec())
            };
            if let Some(body) = body {
                return Some(Raw {
                    status: status.parse().unwrap(),
                    headers,
                    body: String::from_utf8_lossy(&body).to_string(),
                });
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("no answer and no close within {within:?}: {e}"),
        }
    }
}

/// The body of a complete chunked encoding, or `None` while the last chunk has not arrived.
fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return data.starts_with(b"\r\n").then_some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn assert_json_error(raw: &Raw, status: u16, code: &str) {
    assert_eq!(raw.status, status, "{raw:?}");
    assert_eq!(
        raw.header("content-type"),
        Some("application/json"),
        "{raw:?}"
    );
    let body = raw.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(body["details"], json!([]), "{body}");
}

#[test]
fn headers_that_never_finish_are_closed_within_the_header_timeout() {
    let host = fixture(&["--header-timeout-secs", "1"]);
    let mut s = open(&host, "GET /exact HTTP/1.1\r\nHost: test\r\nX-Slow: ");
    let start = Instant::now();
    // hyper closes the connection; whatever it sends first, the connection must end.
    let answer = read_answer(&mut s, Duration::from_secs(20));
    assert!(
        answer.as_ref().is_none_or(|a| a.status == 408),
        "{answer:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    // A request whose headers arrive in time is served as usual.
    let resp = client().get(host.at("/exact")).send().unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn a_body_that_stops_arriving_gets_408_json() {
    let host = fixture(&["--body-idle-timeout-secs", "1"]);
    let mut s = open(&host, &post_head("/echo", 100, "only a part"));
    let answer = read_answer(&mut s, Duration::from_secs(20)).expect("an answer");
    assert_json_error(&answer, 408, "request_timeout");
    assert_eq!(answer.header("connection"), Some("close"));
}

/// Sends one byte every `every` on a clone of `s` until the server stops taking them.
fn dribble(s: &TcpStream, every: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (mut w, flag) = (s.try_clone().unwrap(), stop.clone());
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) && w.write_all(b"a").is_ok() {
            std::thread::sleep(every);
        }
    });
    stop
}

#[test]
fn a_body_slower_than_the_request_timeout_gets_408_json_not_500() {
    let host = fixture(&[
        "--request-timeout-secs",
        "2",
        "--body-idle-timeout-secs",
        "5",
    ]);
    let mut s = open(&host, &post_head("/echo", 1000, "a"));
    // One byte every 200 ms: never idle for 5 s, but far slower than 2 s for 1000 bytes.
    let stop = dribble(&s, Duration::from_millis(200));
    let answer = read_answer(&mut s, Duration::from_secs(20)).expect("an answer");
    stop.store(true, Ordering::Relaxed);
    assert_json_error(&answer, 408, "request_timeout");
}

#[test]
fn a_full_receiving_pool_answers_503_with_retry_after_at_once() {
    let host = fixture(&[
        "--max-pending-connections",
        "3",
        "--body-idle-timeout-secs",
        "60",
    ]);
    // Three connections sending bodies fill the pool (they would hold it for 60 s).
    let held: Vec<TcpStream> = (0..3)
        .map(|_| open(&host, &post_head("/echo", 100, "x")))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A fourth body that is still arriving needs a place too.
    let mut s = open(&host, &post_head("/echo", 10, "hello"));
    // Far less than the 60 s the held bodies may take: the answer does not wait for them.
    let answer = read_answer(&mut s, Duration::from_secs(10)).expect("an answer");
    assert_json_error(&answer, 503, "overloaded");
    let retry: u64 = answer
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1, "{answer:?}");
    // Requests without a body, or whose body travels with the headers (one write here, as an
    // ordinary publish), need no receiving place and are served.
    let resp = client().get(host.at("/exact")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let mut s = open(&host, &post_head("/echo", 5, "hello"));
    let answer = read_answer(&mut s, Duration::from_secs(10)).expect("an answer");
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "hello"),
        "{answer:?}"
    );
    // Once the held connections go away, bodies are accepted again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = client()
            .post(host.at("/echo"))
            .body("again")
            .send()
            .unwrap();
        if resp.status() == 200 {
            assert_eq!(resp.text().unwrap(), "again");
            break;
        }
        assert_eq!(resp.status(), 503);
        assert!(Instant::now() < deadline, "pool never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn slow_connections_hold_no_instance_slot() {
    // Four instance slots, forty connections dribbling bodies: if a connection took a slot when
    // its headers arrived, the normal request below would wait for the 60 s request timeout.
    let host = fixture(&["--max-instances", "4", "--body-idle-timeout-secs", "30"]);
    let mut held: Vec<TcpStream> = (0..40)
        .map(|_| open(&host, &post_head("/echo", 1_000_000, "x")))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for s in &mut held {
        s.write_all(b"y").unwrap();
    }
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    for i in 0..5 {
        let body = format!("normal request {i}");
        let resp = quick
            .post(host.at("/echo"))
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().unwrap(), body);
    }
    let resp = quick.get(host.at("/exact")).send().unwrap();
    assert_eq!(resp.status(), 200);
    drop(held);
}

#[test]
fn a_large_body_streams_to_the_guest_and_echoes_back_whole() {
    // Past the host's receive buffer (256 KiB) the rest streams to the guest.
    let host = fixture(&[]);
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let resp = client()
        .post(host.at("/echo"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), body.as_slice());
}

#[test]
fn a_large_body_that_stalls_after_streaming_began_gets_408_json() {
    // 300 KB arrive (past the receive buffer, so the guest has its slot and is reading), then
    // nothing: the guest (which reads the whole body before answering) is stopped and the client
    // gets 408, not a 500 at the request timeout.
    let host = fixture(&["--body-idle-timeout-secs", "1"]);
    let mut s = open(&host, &post_head("/kv", 400_000, ""));
    s.write_all(&vec![b' '; 300_000]).unwrap();
    let answer = read_answer(&mut s, Duration::from_secs(20)).expect("an answer");
    assert_json_error(&answer, 408, "request_timeout");
    let resp = client().get(host.at("/exact")).send().unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn guest_traps_and_timeouts_answer_json_errors() {
    let host = fixture(&["--request-timeout-secs", "2"]);
    let resp = client().get(host.at("/panic")).send().unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"], "internal_error", "{body}");
    let resp = client()
        .get(host.at("/sleep?ms=60000&tag=t"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"], "timeout", "{body}");
    assert_eq!(body["details"], json!([]), "{body}");
}

// ----- Redis outages -----

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
    host: &Host,
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
    let (status, body) = match http.post(host.at(path)).json(&event).send() {
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
    let host = Arc::new(edgelog_on(&db, &redis.url()));
    let topic = format!("blip{}", std::process::id());

    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let load = {
        let (host, stop, log, topic) = (host.clone(), stop.clone(), log.clone(), topic.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Every other publish is asynchronous: that path needs Redis.
                let sent = publish(&http, &host, &topic, &format!("e{n}"), n.is_multiple_of(2));
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
        let sent = publish(&http, &host, "silent", &format!("s{i}"), true);
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
