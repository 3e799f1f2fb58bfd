//! Scale-out: several edge-host processes over one Redis queue and one PostgreSQL database, one
//! of them killed mid-run; nothing acknowledged is lost and nothing is stored that was not sent.

use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

use crate::support::app::{App, counts, event};
use crate::support::{Host, HostConfig, TestDatabase, TestRedis, client, temp_dir};

#[test]
fn scale_out_three_hosts_with_one_killed_mid_run() {
    use std::sync::RwLock;
    let db = TestDatabase::create("edgelog_scale");
    let redis = TestRedis::reserve();
    let rc = redis.runtime_config(&temp_dir("edge-rc-"));
    let config = HostConfig {
        runtime_config: Some(rc),
        ..HostConfig::default()
    }
    .env("SPIN_VARIABLE_STORE", "postgres")
    .env("SPIN_VARIABLE_DATABASE_URL", &db.url);
    let mut hosts: Vec<Host> = (0..3).map(|_| Host::start(config.clone())).collect();
    let urls = Arc::new(RwLock::new(
        hosts.iter().map(|h| h.url.clone()).collect::<Vec<_>>(),
    ));

    let publishers = 32;
    let batches = 12;
    let per_batch = 20;
    let mut threads = Vec::new();
    for p in 0..publishers {
        let urls = urls.clone();
        threads.push(std::thread::spawn(move || {
            let mut acked_ids = HashSet::new();
            let (mut acked, mut unknown, mut unknown_ids) = (0u64, 0u64, HashSet::new());
            for b in 0..batches {
                // 40% of each batch comes from a pool shared by every publisher.
                let ids: Vec<String> = (0..per_batch)
                    .map(|i| {
                        if i % 5 < 2 {
                            format!("shared-{}", (p * 3 + b * 7 + i) % 200)
                        } else {
                            format!("p{p}-b{b}-{i}")
                        }
                    })
                    .collect();
                let body =
                    json!(ids.iter().map(|id| event("scale", id)).collect::<Vec<_>>()).to_string();
                let mut attempt = 0;
                loop {
                    let url = urls.read().unwrap()[(p + b + attempt) % 3].clone();
                    attempt += 1;
                    let sent = client()
                        .post(format!("{url}/publish/batch"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send();
                    match sent {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            assert!(
                                s == 200 || s == 202,
                                "publisher {p}: status {s}: {:?}",
                                r.text()
                            );
                            acked += per_batch as u64;
                            acked_ids.extend(ids.iter().cloned());
                            break;
                        }
                        Err(e) => {
                            // The host died under us: the batch may or may not have been queued.
                            // Retry elsewhere, as an at-least-once publisher does.
                            if !e.is_connect() {
                                unknown += per_batch as u64;
                                unknown_ids.extend(ids.iter().cloned());
                            }
                            assert!(attempt < 50, "publisher {p} could not publish: {e}");
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    }
                }
            }
            (acked_ids, acked, unknown, unknown_ids)
        }));
    }
    // Kill one instance while the publishers run, then bring it back.
    std::thread::sleep(std::time::Duration::from_millis(400));
    hosts[1].kill();
    std::thread::sleep(std::time::Duration::from_millis(300));
    hosts[1].spawn();
    urls.write().unwrap()[1] = hosts[1].url.clone();

    let mut acked_ids = HashSet::new();
    let mut sent_ids = HashSet::new();
    let (mut acked, mut unknown) = (0, 0);
    for t in threads {
        let (ids, a, u, uids) = t.join().unwrap();
        sent_ids.extend(ids.iter().cloned());
        sent_ids.extend(uids);
        acked_ids.extend(ids);
        acked += a;
        unknown += u;
    }
    let app = App {
        host: hosts.remove(0),
        db: Some(db),
        redis: Some(redis),
    };
    assert_eq!(app.post("/drain", &json!({})).0, 200);
    let stored: Vec<String> = app
        .all_events("scale")
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let stored_set: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "exactly one row per key");
    assert!(
        acked_ids.is_subset(&stored_set),
        "an acknowledged event was lost"
    );
    assert!(
        stored_set.is_subset(&sent_ids),
        "a stored event was never sent"
    );
    let (received, unique, dups, queued) = counts(&app.stats());
    assert_eq!(queued, 0);
    assert_eq!(unique, stored.len() as u64);
    assert!(
        received >= acked && received <= acked + unknown,
        "received {received}, acked {acked}, unknown {unknown}"
    );
    assert_eq!(received, unique + dups);
}
