//! Test harness shared by the integration suites: builds the real `.wasm` components once, starts
//! `edge-host` as a separate process on a free port with its own state directory, and talks to
//! it over real HTTP. Databases and Redis key spaces are created per test and dropped after.
//!
//! With `EDGELOG_SPIN=/path/to/spin` set, [`Host`] starts the real Spin CLI instead
//! (`spin up --from … --listen 127.0.0.1:0 [--state-dir …] [--runtime-config-file …]`, the same
//! environment), so the app's suites run on Spin 4.0.2 unchanged; see [`spin`].

#![allow(dead_code)]

pub mod app;
mod spin;
pub mod switch;

#[allow(unused_imports)] // each suite uses what it needs
pub use spin::{on_spin, skip_on_spin};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the app and fixture components for `wasm32-wasip2` (once per test binary).
/// `EDGE_TEST_ONLY_FIXTURE=1` builds only the `kitchen-sink` fixture (enough for the edge-host
/// suite while the app does not build).
pub fn build_components() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut packages = vec!["-p", "edgelog", "-p", "kitchen-sink"];
        if std::env::var_os("EDGE_TEST_ONLY_FIXTURE").is_some_and(|v| !v.is_empty() && v != "0") {
            packages.drain(..2);
        }
        let status = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["build", "--target", "wasm32-wasip2", "--release"])
            .args(&packages)
            // What scripts/build-component.sh (spin.toml's build command) builds with, so the
            // suites test the same component and share its build.
            .env("CARGO_PROFILE_RELEASE_LTO", "fat")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
            .status()
            .expect("run cargo build for the components");
        assert!(status.success(), "building the wasm components failed");
    });
}

/// A running `edge-host` process (or `spin up`, under `EDGELOG_SPIN`).
pub struct Host {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    manifest: PathBuf,
    state_dir: PathBuf,
    state_dir_flag: bool,
    runtime_config: Option<PathBuf>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    extra_args: Vec<String>,
    /// Everything the host printed (stdout and stderr), for assertions on logs.
    pub output: std::sync::Arc<Mutex<String>>,
}

/// How to start a host.
#[derive(Clone, Default)]
pub struct HostConfig {
    /// Manifest path (default: the app's `spin.toml`).
    pub manifest: Option<PathBuf>,
    /// State directory (default: a fresh temporary one).
    pub state_dir: Option<PathBuf>,
    /// `--runtime-config-file`.
    pub runtime_config: Option<PathBuf>,
    /// Extra environment (e.g. `SPIN_VARIABLE_STORE`).
    pub env: Vec<(String, String)>,
    /// Extra command-line arguments (edge-host's own flags: a test that sets any skips on Spin).
    pub args: Vec<String>,
    /// Working directory of the host process (default: the test's).
    pub cwd: Option<PathBuf>,
    /// Pass no `--state-dir`: the host's default, `.spin/` beside the manifest.
    pub default_state_dir: bool,
}

impl HostConfig {
    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

/// A fresh temporary directory that lives as long as the test binary. They all sit under one
/// per-process folder; folders left by earlier test processes that have exited are removed on
/// first use (a test binary ends without running destructors of statics).
pub fn temp_dir(prefix: &str) -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let tmp = std::env::temp_dir();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name.strip_prefix("edgelog-tests-") else {
                    continue;
                };
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let base = tmp.join(format!("edgelog-tests-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        base
    });
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .unwrap();
    dir.keep()
}

impl Host {
    /// Starts a host and waits until it serves.
    pub fn start(config: HostConfig) -> Host {
        build_components();
        let manifest = config.manifest.unwrap_or_else(|| root().join("spin.toml"));
        let state_dir = match (config.default_state_dir, config.state_dir) {
            (true, _) => manifest.parent().unwrap_or(Path::new("")).join(".spin"),
            (false, dir) => dir.unwrap_or_else(|| temp_dir("edge-state-")),
        };
        let mut host = Host {
            child: None,
            url: String::new(),
            manifest,
            state_dir,
            state_dir_flag: !config.default_state_dir,
            runtime_config: config.runtime_config,
            cwd: config.cwd,
            env: config.env,
            extra_args: config.args,
            output: Default::default(),
        };
        host.spawn();
        host
    }

    /// Starts the process again with the same configuration (after `kill` or `stop`).
    pub fn spawn(&mut self) {
        let spin = spin::binary();
        let mut cmd = match &spin {
            Some(spin) => spin::command(spin, &self.extra_args, &self.env),
            None => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-host"));
                cmd.arg("up").env("RUST_LOG", "info");
                for (k, v) in &self.env {
                    cmd.env(k, v);
                }
                cmd
            }
        };
        cmd.arg("--from")
            .arg(&self.manifest)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.state_dir_flag {
            cmd.arg("--state-dir").arg(&self.state_dir);
        }
        if let Some(rc) = &self.runtime_config {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().expect("start the host");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = self.output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // Spin prints "Serving" in colour when it thinks it may.
                let plain = spin::strip_ansi(&line);
                if let Some(url) = plain.trim_start().strip_prefix("Serving ") {
                    let _ = tx.send(url.trim().to_string());
                }
                out.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let out = self.output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("EDGE_TEST_VERBOSE").is_some() {
                    eprintln!("{line}");
                }
                out.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => self.url = url,
            Err(_) => {
                spin::kill_all(&mut child);
                panic!(
                    "{} did not start; output:\n{}",
                    if spin.is_some() {
                        "spin up"
                    } else {
                        "edge-host"
                    },
                    self.output.lock().unwrap()
                );
            }
        }
        self.child = Some(child);
    }

    /// SIGKILL: the process dies at once, mid-whatever it was doing (under Spin, `spin up` and
    /// its trigger process both).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            spin::kill_all(&mut c);
        }
    }

    /// SIGTERM and wait: a graceful stop.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("host running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the host did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Full URL of `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// Everything logged so far.
    pub fn logs(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until the host has logged a line containing `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A blocking HTTP client with a generous timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Connection string of the local PostgreSQL server for `database`.
pub fn pg_url(database: &str) -> String {
    let user = std::env::var("EDGE_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
    format!("postgres://{user}@127.0.0.1:5432/{database}")
}

/// A database created for one test and dropped when this value is dropped.
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// Connection URL.
    pub url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    pub fn create(prefix: &str) -> TestDatabase {
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut admin = postgres::Client::connect(&pg_url("postgres"), postgres::NoTls)
            .expect("connect to PostgreSQL on 127.0.0.1:5432");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TestDatabase {
            url: pg_url(&name),
            name,
        }
    }

    /// A client connected to this database.
    pub fn connect(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&pg_url("postgres"), postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A Redis logical database (1..=12) reserved for one test, flushed before and after use.
///
/// Reserved across processes too: a lock file per number is held while the test runs, so test
/// binaries running at the same time (a developer's, a benchmark's) never flush each other's
/// queue. 13, 14 and 15 are left to `loadgen` (scale, chaos, bench).
pub struct TestRedis {
    /// `redis://127.0.0.1:6379/N`.
    pub url: String,
    db: u8,
    _lock: std::fs::File,
}

static REDIS_DBS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

impl TestRedis {
    /// Reserves and flushes a database number not used by another test (of any process).
    pub fn reserve() -> TestRedis {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            {
                let mut used = REDIS_DBS.lock().unwrap();
                for db in (1..=12u8).filter(|d| !used.contains(d)) {
                    let path = std::env::temp_dir().join(format!("edgelog-test-redis-{db}.lock"));
                    let file = std::fs::File::create(&path).unwrap();
                    if file.try_lock().is_ok() {
                        used.push(db);
                        let r = TestRedis {
                            url: format!("redis://127.0.0.1:6379/{db}"),
                            db,
                            _lock: file,
                        };
                        r.flush();
                        return r;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no free Redis database for 5 minutes"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Empties the database.
    pub fn flush(&self) {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client
            .get_connection()
            .expect("connect to Redis on 127.0.0.1:6379");
        let _: () = redis::cmd("FLUSHDB").query(&mut conn).unwrap();
    }

    /// Writes a runtime-config file that puts the `default` key-value store in this database.
    pub fn runtime_config(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("runtime-config-redis-{}.toml", self.db));
        std::fs::write(
            &path,
            format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
                self.url
            ),
        )
        .unwrap();
        path
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.flush();
        REDIS_DBS.lock().unwrap().retain(|d| *d != self.db);
    }
}

impl Host {
    /// The host's state directory (where its SQLite files live).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}
