//! Linear memory of the real `edgelog.wasm` (not the fixture), from edge-host's per-request
//! profile lines: a 100-event publish fits in the heap the component starts with.

use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

use crate::post_json;
use crate::support::{Host, HostConfig};

/// Linear memory at the end of each request so far, from edge-host's per-request profile lines
/// (`EDGE_HOST_PROFILE_CALLS=1`).
fn memory_per_request(host: &Host) -> Vec<u64> {
    host.logs()
        .lines()
        .filter(|l| l.contains("edge_host::calls"))
        .filter_map(|l| {
            l.split(" memory ")
                .nth(1)?
                .strip_suffix("KiB")?
                .parse()
                .ok()
        })
        .collect()
}

/// A 100-event publish fits in the heap the component starts with (build.rs, `HEAP_BYTES`), so
/// it does not grow linear memory: growing costs the host two `mprotect` calls per request. With
/// an empty initial heap (the linker's default) the batch grew the instance by 64 KiB.
#[test]
fn a_hundred_event_publish_does_not_grow_linear_memory() {
    let host = Host::start(HostConfig::default().env("EDGE_HOST_PROFILE_CALLS", "1"));
    let event = |i: usize| {
        json!({
            "topic": "memory", "event_id": format!("run-{i:08}"),
            "timestamp": "2026-12-07T10:00:00.000001Z", "source": "loadgen",
            "payload": {"seq": i, "run": "run", "level": "info",
                        "msg": format!("loadgen event {i}"), "n": 123_456}
        })
    };
    // The first request's figure is the memory an instance starts with.
    post_json(&host, "/publish", &event(0));
    let events: Vec<Json> = (1..=100).map(event).collect();
    let answer = post_json(&host, "/publish/batch", &json!({ "events": events }));
    assert_eq!(answer["processed"], 100, "{answer}");
    assert!(
        host.wait_for_log(" memory ", Duration::from_secs(10)),
        "no profile lines:\n{}",
        host.logs()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while memory_per_request(&host).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    let memory = memory_per_request(&host);
    assert_eq!(memory.len(), 2, "{}", host.logs());
    assert_eq!(
        memory[1], memory[0],
        "a 100-event publish grew linear memory from {} KiB",
        memory[0]
    );
}
