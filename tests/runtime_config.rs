//! Where the app's files land: the real `edgelog.wasm` started with runtime configs, manifests and
//! working directories in different places, relative and absolute paths, and the files looked
//! for where Spin 4.0.2 puts them (`crates/runtime-config/src/lib.rs`): a key-value `path`
//! relative to the runtime-config file, a SQLite `path` relative to the working directory, the
//! state directory `.spin/` beside the manifest or `--state-dir` relative to the working
//! directory. Runs on edge-host, and on real Spin with `EDGELOG_SPIN=/path/to/spin`, with the
//! same assertions.

mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use support::app::event;
use support::{Host, HostConfig, client, root, temp_dir};

/// A copy of the app's `spin.toml` in `dir`, its `source` made absolute (the build stays put).
fn app_manifest(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    let source = "source = \"target/wasm32-wasip2/release/edgelog.wasm\"";
    assert!(text.contains(source), "spin.toml's source moved");
    let wasm = root().join("target/wasm32-wasip2/release/edgelog.wasm");
    let text = text.replace(source, &format!("source = {:?}", wasm.to_str().unwrap()));
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Uses both stores and checks they are the given files: a queued publish must sit in the
/// key-value file `kv`, and once a read has applied it, the event must be in the SQLite file `db`.
fn assert_stores_in(host: &Host, kv: &Path, db: &Path) {
    let resp = client()
        .post(host.at("/publish?async=true"))
        .header("content-type", "application/json")
        .body(event("paths", "1").to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "{}", host.logs());
    let log = || host.logs();
    assert!(
        kv.is_file(),
        "key-value file {} missing; log:\n{}",
        kv.display(),
        log()
    );
    let queued: i64 = rusqlite::Connection::open(kv)
        .unwrap()
        .query_row("SELECT count(*) FROM spin_key_value", [], |r| r.get(0))
        .unwrap();
    assert!(queued > 0, "the queued publish is not in {}", kv.display());

    let body: serde_json::Value = client()
        .get(host.at("/events?topic=paths"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["count"], json!(1), "{body}");
    assert!(
        db.is_file(),
        "SQLite file {} missing; log:\n{}",
        db.display(),
        log()
    );
    let events: i64 = rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM events WHERE topic = 'paths'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 1, "the event is not in {}", db.display());
}

fn assert_absent(paths: &[PathBuf]) {
    for p in paths {
        assert!(!p.exists(), "{} should not exist", p.display());
    }
}

#[test]
fn relative_paths_key_value_from_the_file_sqlite_from_the_working_directory() {
    let base = temp_dir("paths-rel-");
    let manifest = app_manifest(&base.join("app"));
    write(
        &base.join("conf/rc.toml"),
        "[key_value_store.default]\ntype = \"spin\"\npath = \"kv/queue.db\"\n\
         [sqlite_database.default]\ntype = \"spin\"\npath = \"db/events.db\"\n",
    );
    std::fs::create_dir_all(base.join("work")).unwrap();
    let host = Host::start(HostConfig {
        manifest: Some(manifest),
        // Given relative to the working directory, as a user types it.
        runtime_config: Some("../conf/rc.toml".into()),
        cwd: Some(base.join("work")),
        ..HostConfig::default()
    });
    assert_stores_in(
        &host,
        &base.join("conf/kv/queue.db"),
        &base.join("work/db/events.db"),
    );
    assert_absent(&[
        base.join("work/kv"),
        base.join("conf/db"),
        base.join("app/kv"),
        base.join("app/db"),
    ]);
}

#[test]
fn absolute_paths_are_used_as_they_are() {
    let base = temp_dir("paths-abs-");
    let manifest = app_manifest(&base.join("app"));
    let (kv, db) = (base.join("abs/kv/q.db"), base.join("abs/db/e.db"));
    let rc = write(
        &base.join("conf/rc.toml"),
        &format!(
            "[key_value_store.default]\ntype = \"spin\"\npath = {:?}\n\
             [sqlite_database.default]\ntype = \"spin\"\npath = {:?}\n",
            kv.to_str().unwrap(),
            db.to_str().unwrap()
        ),
    );
    std::fs::create_dir_all(base.join("work")).unwrap();
    let host = Host::start(HostConfig {
        manifest: Some(manifest),
        runtime_config: Some(rc),
        cwd: Some(base.join("work")),
        ..HostConfig::default()
    });
    assert_stores_in(&host, &kv, &db);
}

#[test]
fn the_default_state_dir_is_beside_the_manifest() {
    let base = temp_dir("paths-default-");
    let manifest = app_manifest(&base.join("app"));
    std::fs::create_dir_all(base.join("work")).unwrap();
    let host = Host::start(HostConfig {
        manifest: Some(manifest),
        default_state_dir: true,
        cwd: Some(base.join("work")),
        ..HostConfig::default()
    });
    assert_stores_in(
        &host,
        &base.join("app/.spin/sqlite_key_value.db"),
        &base.join("app/.spin/sqlite_db.db"),
    );
    assert_absent(&[base.join("work/.spin")]);
}

#[test]
fn a_given_state_dir_is_relative_to_the_working_directory() {
    let base = temp_dir("paths-state-");
    let manifest = app_manifest(&base.join("app"));
    std::fs::create_dir_all(base.join("work")).unwrap();
    let host = Host::start(HostConfig {
        manifest: Some(manifest),
        state_dir: Some("state".into()),
        cwd: Some(base.join("work")),
        ..HostConfig::default()
    });
    assert_stores_in(
        &host,
        &base.join("work/state/sqlite_key_value.db"),
        &base.join("work/state/sqlite_db.db"),
    );
    assert_absent(&[base.join("app/state"), base.join("app/.spin")]);
}

#[test]
fn with_a_relative_manifest_the_default_key_value_store_follows_the_runtime_config() {
    // Spin quirk: the default store's path (`.spin/sqlite_key_value.db`, relative when the
    // manifest is given relative) goes through the key-value resolution, which rebases relative
    // paths on the runtime-config file's directory; the default SQLite database does not.
    let base = temp_dir("paths-quirk-");
    app_manifest(&base);
    write(
        &base.join("conf/rc.toml"),
        "[sqlite_database.extra]\ntype = \"spin\"\npath = \"extra.db\"\n",
    );
    let host = Host::start(HostConfig {
        manifest: Some("spin.toml".into()),
        runtime_config: Some("conf/rc.toml".into()),
        default_state_dir: true,
        cwd: Some(base.clone()),
        ..HostConfig::default()
    });
    assert_stores_in(
        &host,
        &base.join("conf/.spin/sqlite_key_value.db"),
        &base.join(".spin/sqlite_db.db"),
    );
    assert_absent(&[base.join(".spin/sqlite_key_value.db")]);
}

#[test]
fn the_repository_local_toml_puts_both_files_in_the_apps_spin_dir() {
    // `spin up --runtime-config-file runtime-config/local.toml`, run from the repository root.
    let base = temp_dir("paths-local-");
    app_manifest(&base);
    let local = std::fs::read_to_string(root().join("runtime-config/local.toml")).unwrap();
    write(&base.join("runtime-config/local.toml"), &local);
    let host = Host::start(HostConfig {
        manifest: Some("spin.toml".into()),
        runtime_config: Some("runtime-config/local.toml".into()),
        default_state_dir: true,
        cwd: Some(base.clone()),
        ..HostConfig::default()
    });
    assert_stores_in(
        &host,
        &base.join(".spin/sqlite_key_value.db"),
        &base.join(".spin/sqlite_db.db"),
    );
    assert_absent(&[
        base.join("runtime-config/.spin"),
        base.parent().unwrap().join(".spin"),
    ]);
}
