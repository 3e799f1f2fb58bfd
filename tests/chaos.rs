//! The chaos harness, short version (issue 9): `lab chaos` for ~30 s of load on both
//! backends against the real `.wasm` on edge-host — SIGKILL loops under at-least-once load
//! (SQLite, one host; PostgreSQL + Redis, three hosts sharing the stores), a backlog drain, the
//! hostile-input corpus and a Redis blip — and every row of its table must show nothing lost,
//! nothing stored twice and no `5xx`. The full run is `scripts/chaos.sh --seconds 300`.

mod support;

use lab::chaos::{ChaosConfig, chaos};
use support::{TestRedis, build_components, root, temp_dir};

#[test]
fn nothing_acknowledged_is_lost_or_stored_twice_and_nothing_answers_5xx() {
    build_components();
    let redis = TestRedis::reserve();
    let redis_db: u32 = redis
        .url
        .rsplit('/')
        .next()
        .and_then(|d| d.parse().ok())
        .expect("TestRedis url ends with its database number");
    let out = temp_dir("chaos");
    let config = ChaosConfig {
        host: env!("CARGO_BIN_EXE_edge-host").into(),
        manifest: root().join("spin.toml"),
        seconds: 30.0,
        redis_db,
        hosts: 3,
        concurrency: 6,
        out: out.clone(),
        ..ChaosConfig::default()
    };
    let report = chaos(&config).expect("the harness sets up");
    let table = report.render();
    println!("{table}");
    // Both backends ran every scenario, and each scenario did real work.
    assert_eq!(report.rows.len(), 7, "{table}");
    for row in &report.rows {
        assert!(row.requests > 0, "{table}");
        if !row.scenario.starts_with("hostile") {
            assert!(
                row.acknowledged > 0,
                "{}: nothing acknowledged\n{table}",
                row.scenario
            );
        }
        if row.scenario.starts_with("SIGKILL") || row.scenario.starts_with("Redis blip") {
            assert!(
                row.kills > 0,
                "{}: nothing was killed\n{table}",
                row.scenario
            );
        }
        assert_eq!(row.lost, 0, "{}: lost\n{table}", row.scenario);
        assert_eq!(
            row.stored_twice, 0,
            "{}: stored twice\n{table}",
            row.scenario
        );
        assert_eq!(row.server_errors, 0, "{}: 5xx\n{table}", row.scenario);
        assert!(
            row.problems.is_empty(),
            "{}: {:?}\n{table}",
            row.scenario,
            row.problems
        );
    }
    assert!(report.passed(), "{table}");
    let _ = std::fs::remove_dir_all(out);
}
