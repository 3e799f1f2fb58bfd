//! edge-host's outbound PostgreSQL against clusters these tests set up themselves (initdb into a
//! temporary directory, a free port, `ssl = on` with a CA and server certificate made by the
//! `openssl` CLI, TLS-only `pg_hba.conf`), driven through the kitchen-sink fixture over real
//! HTTP: every `sslmode`, certificate failures, errors that name their cause, unreachable
//! addresses that fail within seconds, service that resumes as soon as the database is back.
//! Also `--sqlite-mode spin`: the files really are in rollback-journal mode, and data round-trips.

mod support;

use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Host, HostConfig, client, root, temp_dir};

/// Value for the fixture's required variable `region`.
const REGION: &str = "eu-test-1";
/// Password of the cluster's `pwuser` role (the only role that must give one).
const PASSWORD: &str = "right-pw-4711";

/// A PostgreSQL cluster of its own: TLS-only over TCP, trust over its Unix socket (for the
/// test's own administration). Stopped (fast shutdown) when dropped.
struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    child: Option<Child>,
}

/// `uid`/`gid` of the `postgres` account when running as root (PostgreSQL refuses root).
fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    Some((id("-u")?, id("-g")?))
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql/*/bin (scripts/services.sh)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().expect("an initdb under /usr/lib/postgresql")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn as_postgres(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Makes `ca.crt` and a `server.crt`/`server.key` it signed, valid for 127.0.0.1 only.
fn make_certificates(dir: &Path) {
    let ossl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    ossl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "3"],
            &["-subj", "/CN=edgelog test CA"],
        ]
        .concat(),
    );
    ossl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
            &["-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "3",
        "-extfile",
        "server.ext",
    ]);
}

impl Cluster {
    /// initdb, certificates, TLS-only `pg_hba.conf`, start, and a `pwuser` role with a password.
    fn start() -> Cluster {
        let dir = temp_dir("edge-pg-tls-");
        let bin = pg_bin();
        make_certificates(&dir);
        if let Some((uid, gid)) = postgres_ids() {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&dir));
        }
        run(Command::new("chmod")
            .arg("0600")
            .arg(dir.join("server.key")));
        run(as_postgres(
            Command::new(bin.join("initdb"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(dir.join("data")),
        ));
        let d = dir.display();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\nssl = on\n\
             ssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\nfsync = off\n\
             max_connections = 60\nshared_buffers = 16MB\n"
        );
        let conf_path = dir.join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "local all all trust\n\
             hostssl all pwuser 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let mut cluster = Cluster {
            dir,
            port: free_port(),
            bin,
            child: None,
        };
        cluster.spawn();
        let mut admin = cluster.admin();
        admin
            .batch_execute(&format!("CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'"))
            .unwrap();
        admin.batch_execute("CREATE DATABASE edge_tls").unwrap();
        cluster
    }

    /// Starts the server (again) and waits until it accepts connections.
    fn spawn(&mut self) {
        let child = as_postgres(
            Command::new(self.bin.join("postgres"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-p")
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .spawn()
        .expect("start postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.try_admin().is_err() {
            assert!(Instant::now() < deadline, "test cluster did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (as an operator's restart does): sessions are ended, the port closes.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn try_admin(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
    }

    /// A superuser session over the Unix socket.
    fn admin(&self) -> postgres::Client {
        self.try_admin().expect("admin connection over the socket")
    }

    /// `postgres://user@host:port/db?query`.
    fn url(&self, user: &str, host: &str, db: &str, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("postgres://{user}@{host}:{}/{db}{q}", self.port)
    }

    fn ca(&self) -> String {
        self.dir.join("ca.crt").display().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The fixture's manifest, copied with an allow-list that admits the test clusters' ports and
/// `localhost`.
fn manifest() -> PathBuf {
    let fixture = root().join("tests/fixtures/kitchen-sink");
    let text = std::fs::read_to_string(fixture.join("spin.toml")).unwrap();
    let wasm = root().join("target/wasm32-wasip2/release/kitchen_sink.wasm");
    let text = text
        .replace(
            "allowed_outbound_hosts = [\"postgres://127.0.0.1:5432\"]",
            "allowed_outbound_hosts = [\"postgres://127.0.0.1:*\", \"postgres://localhost:*\"]",
        )
        .replace(
            "source = \"../../../target/wasm32-wasip2/release/kitchen_sink.wasm\"",
            &format!("source = \"{}\"", wasm.display()),
        )
        .replace(
            "workdir = \"../../..\"",
            &format!("workdir = \"{}\"", root().display()),
        );
    assert!(
        text.contains("postgres://localhost:*"),
        "fixture manifest changed"
    );
    let dir = temp_dir("edge-pg-app-");
    std::fs::write(dir.join("spin.toml"), text).unwrap();
    let rc = "[key_value_store.other]\ntype = \"spin\"\n";
    std::fs::write(dir.join("runtime-config.toml"), rc).unwrap();
    dir
}

fn start_host(args: &[&str]) -> Host {
    let dir = manifest();
    Host::start(
        HostConfig {
            manifest: Some(dir.join("spin.toml")),
            runtime_config: Some(dir.join("runtime-config.toml")),
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
        .env("SPIN_VARIABLE_REGION", REGION),
    )
}

fn post(host: &Host, path: &str, body: &Json) -> Json {
    let resp = client().post(host.at(path)).json(body).send().unwrap();
    let status = resp.status();
    let text = resp.text().unwrap();
    assert_eq!(status, 200, "POST {path} {body}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Opens `url` through the fixture and runs `SELECT`s that show the session's TLS state and
/// database: `Ok(ssl)` on success, `Err(connection-failed text)` when the open failed.
fn probe(host: &Host, url: &str) -> Result<bool, String> {
    let answer = post(
        host,
        "/pg",
        &json!({ "url": url, "ops": [{ "op": "query", "sql":
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" }] }),
    );
    if let Some(e) = answer.get("open_error") {
        eprintln!("open {url}: {e}"); // shown with --nocapture, or when a test fails
        return Err(e["connection-failed"]
            .as_str()
            .unwrap_or_else(|| panic!("not connection-failed: {answer}"))
            .to_string());
    }
    let row = &answer["results"][0]["rows"][0][0];
    Ok(row["boolean"]
        .as_bool()
        .unwrap_or_else(|| panic!("{answer}")))
}

#[test]
fn every_sslmode_against_a_cluster_with_its_own_certificate() {
    let cluster = Cluster::start();
    let host = start_host(&[]);
    let ca = cluster.ca();
    let ip = |q: &str| cluster.url("postgres", "127.0.0.1", "edge_tls", q);

    // Encrypted without verification, as libpq: prefer (the default) and require.
    assert_eq!(probe(&host, &ip("")), Ok(true));
    assert_eq!(probe(&host, &ip("sslmode=prefer")), Ok(true));
    assert_eq!(probe(&host, &ip("sslmode=require")), Ok(true));
    // Verified against the given CA; verify-full also checks the address (an IP SAN here).
    assert_eq!(
        probe(&host, &ip(&format!("sslmode=verify-full&sslrootcert={ca}"))),
        Ok(true)
    );
    assert_eq!(
        probe(&host, &ip(&format!("sslmode=verify-ca&sslrootcert={ca}"))),
        Ok(true)
    );
    // require + sslrootcert verifies the chain (libpq): works with the right CA …
    assert_eq!(
        probe(&host, &ip(&format!("sslmode=require&sslrootcert={ca}"))),
        Ok(true)
    );

    // … and the system bundle does not know the test CA.
    for mode in ["verify-full", "verify-ca"] {
        let e = probe(&host, &ip(&format!("sslmode={mode}"))).unwrap_err();
        assert!(
            e.contains("certificate verification failed") && e.contains("UnknownIssuer"),
            "{mode}: {e}"
        );
    }
    // A host name the certificate does not carry: verify-full refuses, verify-ca accepts.
    // (`hostaddr` pins the address, so only the name differs.)
    let by_name = |q: &str| {
        cluster.url(
            "postgres",
            "localhost",
            "edge_tls",
            &format!("hostaddr=127.0.0.1&{q}"),
        )
    };
    let e = probe(
        &host,
        &by_name(&format!("sslmode=verify-full&sslrootcert={ca}")),
    )
    .unwrap_err();
    assert!(
        e.contains("certificate verification failed") && e.contains("localhost"),
        "{e}"
    );
    assert_eq!(
        probe(
            &host,
            &by_name(&format!("sslmode=verify-ca&sslrootcert={ca}"))
        ),
        Ok(true)
    );

    // The server accepts only TLS: sslmode=disable is refused, and the message says why.
    let e = probe(&host, &ip("sslmode=disable")).unwrap_err();
    assert!(
        e.contains("no encryption") && e.contains("28000") && e.contains("sslmode=disable"),
        "{e}"
    );

    // A CA file that is not there is named.
    let e = probe(
        &host,
        &ip("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
    )
    .unwrap_err();
    assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");

    // Root causes, not "db error": a missing database, a wrong password (never echoed).
    let e = probe(
        &host,
        &ip("sslmode=require").replace("/edge_tls", "/edgelog_missing"),
    )
    .unwrap_err();
    assert!(
        e.contains("database \"edgelog_missing\" does not exist") && e.contains("3D000"),
        "{e}"
    );
    let wrong = format!(
        "postgres://pwuser:not-the-password@127.0.0.1:{}/edge_tls",
        cluster.port
    );
    let e = probe(&host, &wrong).unwrap_err();
    assert!(
        e.contains("password authentication failed for user \"pwuser\"") && e.contains("28P01"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "{e}");
    let right = format!(
        "postgres://pwuser:{PASSWORD}@127.0.0.1:{}/edge_tls",
        cluster.port
    );
    assert_eq!(probe(&host, &right), Ok(true));

    // `--postgres-tls spin`: Spin's meaning. The same URLs that encrypt without verifying above
    // fail verification here (as `spin up` fails against a self-signed server), and the
    // libpq-only options are refused as Spin's `tokio-postgres` refuses them.
    let spin = start_host(&["--postgres-tls", "spin"]);
    for q in ["", "sslmode=prefer", "sslmode=require"] {
        let e = probe(&spin, &ip(q)).unwrap_err();
        assert!(
            e.contains("certificate verification failed") && e.contains("UnknownIssuer"),
            "spin, {q}: {e}"
        );
    }
    for q in [
        format!("sslmode=verify-full&sslrootcert={ca}"),
        "sslmode=verify-ca".to_string(),
        format!("sslrootcert={ca}"),
    ] {
        let e = probe(&spin, &ip(&q)).unwrap_err();
        assert!(e.contains("not accepted by Spin"), "spin, {q}: {e}");
    }
    drop(spin);

    // The host log keeps the cause too, without the password.
    let logs = host.logs();
    assert!(logs.contains("does not exist (SQLSTATE 3D000)"), "{logs}");
    assert!(
        logs.contains("pwuser@127.0.0.1") && !logs.contains("not-the-password"),
        "{logs}"
    );
}

#[test]
fn unreachable_addresses_fail_within_seconds_with_their_cause() {
    let host = start_host(&[]);
    let closed = format!("postgres://postgres@127.0.0.1:{}/x", free_port());
    let started = Instant::now();
    let e = probe(&host, &closed).unwrap_err();
    assert!(e.contains("Connection refused"), "{e}");
    // A server that accepts the TCP connection and never answers (a hung database, or a
    // middlebox that black-holes the session): the connection set-up limit answers, within
    // seconds, instead of the request hanging until its own timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started_silent = Instant::now();
    let e = probe(&host, &format!("postgres://postgres@127.0.0.1:{port}/x")).unwrap_err();
    let took = started_silent.elapsed();
    assert!(e.contains("no connection within 5 s"), "silent server: {e}");
    // A functional bound on the timeouts (connect 2 s, connection set-up 5 s), not a benchmark.
    assert!(
        took < Duration::from_secs(15),
        "silent server took {took:?}"
    );
    drop(silent);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn service_resumes_as_soon_as_the_database_returns() {
    let mut cluster = Cluster::start();
    let host = start_host(&[]);
    let url = cluster.url("postgres", "127.0.0.1", "edge_tls", "sslmode=require");
    // Warm the pool with several connections.
    let many: Vec<_> = (0..4)
        .map(|_| {
            let (h, u) = (host.url.clone(), url.clone());
            std::thread::spawn(move || {
                let body =
                    json!({ "url": u, "ops": [{ "op": "query", "sql": "SELECT pg_sleep(0.2)" }] });
                client()
                    .post(format!("{h}/pg"))
                    .json(&body)
                    .send()
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in many {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(probe(&host, &url), Ok(true));

    cluster.stop();
    let e = probe(&host, &url).unwrap_err();
    assert!(e.contains("Connection refused"), "database down: {e}");

    cluster.spawn();
    // The pooled connections died with the server; the next requests must get fresh ones
    // straight away, not fail on stale ones.
    for i in 0..6 {
        assert_eq!(
            probe(&host, &url),
            Ok(true),
            "request {i} after the restart"
        );
    }
}

#[test]
fn a_statement_without_an_answer_is_cut_off_and_the_connection_replaced() {
    let cluster = Cluster::start();
    let host = start_host(&[]);
    let url = cluster.url("postgres", "127.0.0.1", "edge_tls", "sslmode=require");
    let answer = post(
        &host,
        "/pg",
        &json!({ "url": url, "ops": [
            { "op": "query", "sql": "SELECT pg_sleep(60)" },
            { "op": "query", "sql": "SELECT 1::int4" },
        ] }),
    );
    let first = answer["results"][0]["error"]["connection-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(
        first.contains("no answer from PostgreSQL within"),
        "{first}"
    );
    let second = answer["results"][1]["error"]["connection-failed"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    assert!(second.contains("connection closed"), "{second}");
    // The server was asked to cancel the statement: no pg_sleep left running.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let running: i64 = cluster
            .admin()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'",
                &[],
            )
            .unwrap()
            .get(0);
        if running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the statement still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(probe(&host, &url), Ok(true));
}

/// `PRAGMA journal_mode` of the file at `path`, read without changing it.
fn journal_mode(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sqlite_mode_spin_keeps_spins_rollback_journal_and_round_trips_data() {
    for (mode, want) in [("spin", "delete"), ("tuned", "wal")] {
        let dir = manifest();
        let state = temp_dir("edge-pg-sqlite-state-");
        let host = Host::start(
            HostConfig {
                manifest: Some(dir.join("spin.toml")),
                runtime_config: Some(dir.join("runtime-config.toml")),
                state_dir: Some(state.clone()),
                args: vec!["--sqlite-mode".into(), mode.into()],
                ..Default::default()
            }
            .env("SPIN_VARIABLE_REGION", REGION),
        );
        let kv = post(
            &host,
            "/kv",
            &json!({ "api": "spin", "store": "default", "ops": [["set", "k", "v1"], ["get", "k"]] }),
        );
        assert_eq!(kv["results"][1], json!("v1"), "{mode}: {kv}");
        let db = post(
            &host,
            "/sqlite",
            &json!({ "api": "v3", "db": "default", "ops": [
                { "sql": "CREATE TABLE t (v)" },
                { "sql": "INSERT INTO t VALUES (?)", "params": [{ "integer": 7 }] },
                { "sql": "SELECT v FROM t" },
            ] }),
        );
        assert_eq!(
            db["results"][2]["rows"],
            json!([[{ "integer": 7 }]]),
            "{mode}: {db}"
        );
        for file in ["sqlite_key_value.db", "sqlite_db.db"] {
            assert_eq!(journal_mode(&state.join(file)), want, "{mode}: {file}");
        }
        if mode == "spin" {
            // The component may still put its database in WAL itself; the mode does not forbid it.
            let wal = post(
                &host,
                "/sqlite",
                &json!({ "api": "v3", "db": "default", "ops": [
                    { "sql": "PRAGMA journal_mode=WAL" },
                    { "sql": "INSERT INTO t VALUES (8)" },
                    { "sql": "SELECT count(*) FROM t" },
                ] }),
            );
            assert_eq!(
                wal["results"][0]["rows"],
                json!([[{ "text": "wal" }]]),
                "{wal}"
            );
            assert_eq!(
                wal["results"][2]["rows"],
                json!([[{ "integer": 2 }]]),
                "{wal}"
            );
            assert_eq!(journal_mode(&state.join("sqlite_db.db")), "wal");
            assert_eq!(journal_mode(&state.join("sqlite_key_value.db")), "delete");
        }
    }
}
