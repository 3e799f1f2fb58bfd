//! Serving the kitchen-sink fixture: an 8 MiB body streamed back byte for byte (with a length and
//! chunked), guest stdout and stderr forwarded under the component's name, SIGTERM (an in-flight
//! request finishes, a stop right after start-up is clean), and traps, timeouts and the memory
//! limit answering 500 while the host keeps serving.

use std::time::{Duration, Instant};

use crate::support::{Host, HostConfig, client};
use crate::{fixture_config, runtime_config, start_fixture};

fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn assert_same_bytes(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "echoed length differs");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("echoed body differs first at byte {i}");
    }
}

#[test]
fn an_8_mib_body_is_streamed_back_byte_identical() {
    let host = start_fixture();
    let data = pseudo_random_bytes(8 * 1024 * 1024);
    // With a Content-Length…
    let resp = client()
        .post(host.at("/echo"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-spin-matched-route"], "/...");
    assert_same_bytes(&resp.bytes().unwrap(), &data);
    // …and chunked, of unknown length.
    let body = reqwest::blocking::Body::new(std::io::Cursor::new(data.clone()));
    let resp = client().post(host.at("/echo")).body(body).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_same_bytes(&resp.bytes().unwrap(), &data);
}

#[test]
fn guest_stdout_and_stderr_are_forwarded_with_the_component_name() {
    let host = start_fixture();
    let marker = format!("marker-{}-{:?}", std::process::id(), Instant::now());
    let resp = client()
        .post(host.at("/print"))
        .body(format!("{marker}\nsecond line"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    for line in [
        format!("[kitchen-sink] stdout: {marker}"),
        format!("[kitchen-sink] stderr: {marker}"),
        "[kitchen-sink] stdout: second line".to_string(),
        "[kitchen-sink] stderr: second line".to_string(),
    ] {
        assert!(
            host.wait_for_log(&line, Duration::from_secs(30)),
            "missing `{line}` in:\n{}",
            host.logs()
        );
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    let mut host = start_fixture();
    let url = host.at("/sleep?ms=3000&tag=in-flight");
    let request = std::thread::spawn(move || {
        let resp = client().get(url).send()?;
        let status = resp.status().as_u16();
        Ok::<_, reqwest::Error>((status, resp.text()?))
    });
    assert!(
        host.wait_for_log(
            "[kitchen-sink] sleep-start in-flight",
            Duration::from_secs(60)
        ),
        "the slow request never started:\n{}",
        host.logs()
    );
    let status = host.stop();
    let answer = request.join().unwrap();
    let logs = host.logs();
    let (code, body) = answer.unwrap_or_else(|e| panic!("in-flight request failed: {e}\n{logs}"));
    assert_eq!(code, 200, "{logs}");
    assert_eq!(body, "slept in-flight");
    assert!(
        logs.contains("[kitchen-sink] sleep-end in-flight"),
        "{logs}"
    );
    assert!(
        status.success(),
        "edge-host exited with {status:?}:\n{logs}"
    );
}

#[test]
fn traps_timeouts_and_memory_limits_answer_500_and_the_host_keeps_serving() {
    let host = Host::start(HostConfig {
        args: ["--request-timeout-secs", "3", "--max-memory-mib", "64"]
            .map(String::from)
            .to_vec(),
        ..fixture_config(runtime_config(""))
    });
    let get = |path: &str| -> (u16, String, Duration) {
        let start = Instant::now();
        let resp = client().get(host.at(path)).send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().unwrap(), start.elapsed())
    };
    let (status, body, _) = get("/panic");
    assert_eq!(status, 500, "{body}");
    // A guest spinning on the CPU and a guest waiting are both cut off by the time limit
    // (generous bounds: the limit is 3 s, the guests want 60 s).
    for path in ["/busy?ms=60000", "/sleep?ms=60000&tag=timeout"] {
        let (status, body, took) = get(path);
        assert_eq!(status, 500, "{path}: {body}");
        assert!(took < Duration::from_secs(45), "{path} took {took:?}");
    }
    let (status, body, _) = get("/alloc?mib=16");
    assert_eq!(
        (status, body.as_str()),
        (200, "allocated 16 MiB, 4096 pages")
    );
    let (status, body, _) = get("/alloc?mib=128");
    assert_eq!(status, 500, "{body}");
    // Still serving, and guest failures are logged.
    let (status, body, _) = get("/exact");
    assert_eq!(status, 200, "{body}");
    let logs = host.logs();
    assert!(logs.contains("exceeded the request timeout"), "{logs}");
    assert!(logs.contains("deliberate panic"), "{logs}");
}

#[test]
fn sigterm_right_after_start_up_is_a_clean_exit() {
    let mut host = start_fixture();
    for _ in 0..3 {
        // As soon as the banner is out, SIGTERM means a graceful stop.
        let status = host.stop();
        assert!(status.success(), "exited with {status:?}:\n{}", host.logs());
        host.spawn();
    }
    let resp = client().get(host.at("/exact")).send().unwrap();
    assert_eq!(resp.status(), 200);
}
