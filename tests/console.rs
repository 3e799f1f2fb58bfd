//! The web console in a real browser: starts edge-host with the real `.wasm` (one service open,
//! one with access control on), puts one unreadable entry in the open service's queue so that
//! it becomes a dead letter, then runs `tests/console/console.spec.mjs`, which publishes events
//! over HTTP and drives Debian's `chromium` headless through `playwright-core`, asserting what a
//! user sees. Fails (never skips) when chromium, node or `tests/console/node_modules` is missing:
//! `scripts/services.sh` installs them.
//!
//! The screenshot goes to `target/tmp/console.png`; with `UPDATE_SCREENSHOT=1` to
//! `docs/console.png` instead (the README shows it).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Host, HostConfig, client, root, temp_dir};

const PUBLISH_TOKEN: &str = "console-publish-token";
const READ_TOKEN: &str = "console-read-token";
const ADMIN_TOKEN: &str = "console-admin-token";

/// Events in the unreadable queue entry (the count its key names).
const DEAD_EVENTS: u64 = 2;

#[test]
fn console_in_headless_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: run scripts/services.sh (installs Debian's chromium)"
    );
    let spec_dir = root().join("tests/console");
    assert!(
        spec_dir.join("node_modules/playwright-core").is_dir(),
        "tests/console/node_modules missing: run scripts/services.sh (npm ci in tests/console)"
    );

    let state = temp_dir("console-open-");
    let open = Host::start(HostConfig {
        state_dir: Some(state.clone()),
        ..Default::default()
    });
    dead_letter_one_entry(&open, &state);
    let guarded = Host::start(
        HostConfig::default()
            .env("SPIN_VARIABLE_PUBLISH_TOKENS", PUBLISH_TOKEN)
            .env("SPIN_VARIABLE_READ_TOKENS", READ_TOKEN)
            .env("SPIN_VARIABLE_ADMIN_TOKENS", ADMIN_TOKEN),
    );

    let screenshot = if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        root().join("docs/console.png")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console.png")
    };
    let output = Command::new("node")
        .current_dir(&spec_dir)
        .arg("console.spec.mjs")
        .arg("--url")
        .arg(&open.url)
        .arg("--dead-lettered")
        .arg(DEAD_EVENTS.to_string())
        .arg("--auth-url")
        .arg(&guarded.url)
        .arg("--tokens")
        .arg(format!("{PUBLISH_TOKEN},{READ_TOKEN},{ADMIN_TOKEN}"))
        .arg("--screenshot")
        .arg(&screenshot)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node (install Node.js 20+: scripts/services.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "console browser test failed ({}):\n{stdout}\n{stderr}\n--- open service log ---\n{}",
        output.status,
        open.logs()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}

/// Writes an entry the component cannot read into the open service's key-value queue (Spin's
/// `spin_key_value` table in the state directory's SQLite file), drains, and checks through the
/// API that it became one pending dead letter of [`DEAD_EVENTS`] events.
fn dead_letter_one_entry(host: &Host, state: &Path) {
    let http = client();
    // The first request makes the host create its key-value table.
    let health = http.get(host.at("/health")).send().unwrap();
    assert_eq!(health.status(), 200);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let key = format!("q/{millis:013}-00000000c0ffee00-{DEAD_EVENTS}");
    let db = rusqlite::Connection::open(state.join("sqlite_key_value.db")).unwrap();
    db.busy_timeout(Duration::from_secs(30)).unwrap();
    db.execute(
        "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
        rusqlite::params![key, b"{\"v\":1,\"events\":\"not a batch\"}".to_vec()],
    )
    .unwrap();
    drop(db);
    for _ in 0..20 {
        let drained: serde_json::Value =
            http.post(host.at("/drain")).send().unwrap().json().unwrap();
        if drained["more"] != true {
            break;
        }
    }
    let health: serde_json::Value = http.get(host.at("/health")).send().unwrap().json().unwrap();
    assert_eq!(health["dead_letters"], 1, "{health}");
    let stats: serde_json::Value = http.get(host.at("/stats")).send().unwrap().json().unwrap();
    assert_eq!(stats["dead_lettered"], DEAD_EVENTS, "{stats}");
}
