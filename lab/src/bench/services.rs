//! The processes and servers the benchmark (and the chaos harness) drive: `edge-host up` and
//! `wasmtime serve` children (stopped with SIGTERM, then SIGKILL), and the PostgreSQL databases
//! and Redis database numbers created or flushed for a run and cleaned up whatever happened.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::say;

/// A running `edge-host up`, stopped (SIGTERM, then SIGKILL) when dropped.
/// A running `edge-host up` (also used by `lab scale`), stopped when dropped.
pub struct HostProc {
    child: Option<Child>,
    /// Base URL it serves on (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl HostProc {
    /// Starts `edge-host up` on `listen` (`127.0.0.1:0`: a free port) and waits for its
    /// `Serving` banner.
    pub fn start(
        bin: &Path,
        manifest: &Path,
        listen: &str,
        state_dir: &Path,
        runtime_config: Option<&Path>,
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<HostProc> {
        Self::start_with_args(
            bin,
            manifest,
            listen,
            state_dir,
            runtime_config,
            env,
            log,
            &[],
        )
    }

    /// [`HostProc::start`] with edge-host flags of its own (`--postgres-statements spin`).
    #[allow(clippy::too_many_arguments)]
    pub fn start_with_args(
        bin: &Path,
        manifest: &Path,
        listen: &str,
        state_dir: &Path,
        runtime_config: Option<&Path>,
        env: &[(&str, String)],
        log: &Path,
        args: &[&str],
    ) -> Result<HostProc> {
        let log_file = File::create(log)?;
        let mut cmd = Command::new(bin);
        cmd.arg("up")
            .arg("--from")
            .arg(manifest)
            .args(["--listen", listen, "--state-dir"])
            .arg(state_dir)
            .args(args);
        if let Some(rc) = runtime_config {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        for var in [
            "SPIN_VARIABLE_STORE",
            "SPIN_VARIABLE_DATABASE_URL",
            "SPIN_VARIABLE_DB_HOST",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file.try_clone()?));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log_file = log_file;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Serving ") {
                    let _ = tx.send(addr.trim().to_string());
                }
                let _ = writeln!(log_file, "{line}");
            }
        });
        let mut proc = HostProc {
            child: Some(child),
            url: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => proc.url = url,
            Err(_) => bail!(
                "edge-host did not print its banner within 120 s; see {}",
                log.display()
            ),
        }
        say(&format!(
            "edge-host {}{} on {} (log {})",
            manifest.display(),
            args.iter().map(|a| format!(" {a}")).collect::<String>(),
            proc.url,
            log.display()
        ));
        Ok(proc)
    }

    /// The child's process id (0 once stopped), for CPU sampling and signals.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL, no grace: the crash the chaos harness inflicts.
    pub(crate) fn kill(mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops it gracefully (SIGTERM, then SIGKILL after 40 s).
    pub fn stop(mut self) -> Result<()> {
        if let Some(child) = self.child.take() {
            terminate(child, Duration::from_secs(40))?;
        }
        Ok(())
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = terminate(child, Duration::from_secs(5));
        }
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub(crate) fn terminate(mut child: Child, grace: Duration) -> Result<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    say(&format!("pid {} ignored SIGTERM; killing it", child.id()));
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// A running `wasmtime serve` of the hello component.
pub(crate) struct WasmtimeServe {
    child: Option<Child>,
    /// Base URL it serves on (`http://127.0.0.1:PORT`).
    pub(crate) url: String,
}

impl WasmtimeServe {
    /// Starts `wasmtime serve` on a free port and waits until it listens.
    pub(crate) fn start(bin: &Path, wasm: &Path, log: &Path) -> Result<WasmtimeServe> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log_file = File::create(log)?;
        let child = Command::new(bin)
            .args(["serve", "--addr", &addr, "-S", "cli=y"])
            .arg(wasm)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let ws = WasmtimeServe {
            child: Some(child),
            url: format!("http://{addr}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "wasmtime serve did not listen on {addr}; see {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(ws)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s).
    pub(crate) fn stop(mut self) {
        if let Some(child) = self.child.take() {
            let _ = terminate(child, Duration::from_secs(10));
        }
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = terminate(child, Duration::from_secs(5));
        }
    }
}

/// The first executable called `name` on `PATH`, so optional tools can be skipped.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis administration.

/// `host:port` of a PostgreSQL URL (5432 by default), for `allowed_outbound_hosts`.
pub(crate) fn host_port(server: &str) -> String {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    }
}

/// The component's database URL: plaintext, as the raw clients connect (`NoTls`), so both pay
/// the same transport (with no `sslmode`, `prefer` would encrypt every statement of the
/// component's against a server with `ssl=on`, and none of the raw client's).
pub(crate) fn service_db_url(server: &str, db: &str) -> String {
    format!("{}/{db}?sslmode=disable", server.trim_end_matches('/'))
}

/// Runs one administrative statement (CREATE/DROP DATABASE) on the server's `postgres` db.
pub(crate) async fn pg_admin(server: &str, sql: &str) -> Result<()> {
    let url = format!("{server}/postgres");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute(sql)
        .await
        .with_context(|| format!("PostgreSQL: {sql}"))?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Sends RESP commands and checks each reply is not an error.
fn redis_cmd(url: &str, commands: &[&[&str]]) -> Result<()> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let addr = rest.split('/').next().unwrap_or(rest);
    let mut stream =
        TcpStream::connect(addr).with_context(|| format!("connecting to Redis at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    for c in commands {
        buf.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
        for arg in *c {
            buf.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    stream.write_all(&buf)?;
    let mut reader = BufReader::new(stream);
    for c in commands {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if !line.starts_with('+') && !line.starts_with(':') {
            bail!("Redis {:?} answered {:?}", c, line.trim_end());
        }
    }
    let _ = reader.into_inner().read(&mut [0u8; 0]);
    Ok(())
}

/// Empties one Redis database number (the run's own), before and after a run.
pub fn redis_flush(url: &str, db: u32) -> Result<()> {
    let db = db.to_string();
    redis_cmd(url, &[&["SELECT", &db], &["FLUSHDB"]])
}

/// Databases to drop and the Redis database to flush, whatever happened.
#[derive(Default)]
pub(crate) struct Cleanup {
    /// `(server URL, database name)` to drop.
    pub(crate) databases: Vec<(String, String)>,
    /// `(server URL, database number)` to flush.
    pub(crate) redis: Option<(String, u32)>,
}

impl Cleanup {
    /// Drops the databases and flushes the Redis database, logging (not failing) on errors.
    pub(crate) fn run(&mut self, rt: &tokio::runtime::Runtime) {
        for (server, db) in self.databases.drain(..) {
            let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
            if let Err(e) = rt.block_on(pg_admin(&server, &sql)) {
                say(&format!("cleanup: {e:#}"));
            }
        }
        if let Some((url, db)) = self.redis.take()
            && let Err(e) = redis_flush(&url, db)
        {
            say(&format!("cleanup: {e:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_server_urls() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432"),
            "127.0.0.1:5432"
        );
        assert_eq!(host_port("postgres://u:p@db.example/x"), "db.example:5432");
        assert_eq!(host_port("postgresql://h:6000"), "h:6000");
    }

    #[test]
    fn the_component_connects_in_plaintext_like_the_raw_clients() {
        assert_eq!(
            service_db_url("postgres://postgres@127.0.0.1:5432/", "edgelog_bench_1_svc"),
            "postgres://postgres@127.0.0.1:5432/edgelog_bench_1_svc?sslmode=disable"
        );
    }
}
