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
//! performance claims; `loadgen slow-clients` measures latency. Raw-socket helpers live in
//! `host_limits/raw.rs`, the Redis outage tests in `host_limits/redis_outage.rs`.

mod support;

#[path = "host_limits/raw.rs"]
mod raw;
#[path = "host_limits/redis_outage.rs"]
mod redis_outage;

use raw::{assert_json_error, dribble, open, post_head, read_answer};
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{Host, HostConfig, client, root, temp_dir};

/// The kitchen-sink fixture with extra `edge-host up` flags.
fn fixture(args: &[&str]) -> Host {
    let rc = temp_dir("edge-rc-").join("runtime-config.toml");
    std::fs::write(
        &rc,
        "[key_value_store.other]\ntype = \"spin\"\npath = \"other.db\"\n",
    )
    .unwrap();
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
