//! The processes `loadgen scale` drives: `edge-host up` children (stopped with SIGTERM, then
//! SIGKILL) and the run's own Redis database number (flushed before and after).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::ScaleArgs;

/// A running `edge-host up`, stopped with SIGTERM (then SIGKILL) when dropped.
pub(super) struct Host {
    child: Option<Child>,
    pub(super) url: String,
}

impl Host {
    pub(super) fn start(
        a: &ScaleArgs,
        state: &Path,
        rc: Option<&Path>,
        env: &[(&str, String)],
        log: &Path,
    ) -> Result<Host> {
        let log_file = File::create(log)?;
        let mut cmd = Command::new(&a.host);
        cmd.arg("up").arg("--from").arg(&a.manifest).args([
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
        ]);
        cmd.arg(state);
        if let Some(rc) = rc {
            cmd.arg("--runtime-config-file").arg(rc);
        }
        for var in [
            "SPIN_VARIABLE_STORE",
            "SPIN_VARIABLE_DATABASE_URL",
            "SPIN_VARIABLE_DB_HOST",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file.try_clone()?));
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", a.host.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log_file = log_file;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Serving ") {
                    let _ = tx.send(addr.trim().to_string());
                }
                let _ = writeln!(log_file, "{line}");
            }
        });
        let mut host = Host {
            child: Some(child),
            url: String::new(),
        };
        host.url = rx
            .recv_timeout(Duration::from_secs(120))
            .with_context(|| format!("edge-host printed no banner; see {}", log.display()))?;
        Ok(host)
    }

    pub(super) fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `SELECT db` then `command` and returns the second reply line.
fn redis(url: &str, db: u32, command: &str) -> Result<String> {
    let addr = url
        .strip_prefix("redis://")
        .unwrap_or(url)
        .trim_end_matches('/');
    let s = TcpStream::connect(addr).with_context(|| format!("connecting to Redis at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let db = db.to_string();
    (&s).write_all(
        format!(
            "*2\r\n$6\r\nSELECT\r\n${}\r\n{db}\r\n*1\r\n${}\r\n{command}\r\n",
            db.len(),
            command.len()
        )
        .as_bytes(),
    )?;
    let mut lines = BufReader::new(&s).lines();
    let selected = lines.next().transpose()?.unwrap_or_default();
    if !selected.starts_with("+OK") {
        bail!("Redis SELECT {db} answered {selected:?}");
    }
    Ok(lines.next().transpose()?.unwrap_or_default())
}

/// Checks the run's Redis database is unused (another harness, e.g. `loadgen chaos` on 14,
/// may hold it: flushing it would wipe that harness's queue), then flushes it.
pub(super) fn redis_claim(url: &str, db: u32) -> Result<()> {
    let size = redis(url, db, "DBSIZE")?;
    if size.trim() != ":0" {
        bail!(
            "Redis database {db} is not empty ({size}): in use by something else? pick --redis-db"
        );
    }
    redis_flush(url, db)
}

/// `FLUSHDB` on the run's own Redis database number.
pub(super) fn redis_flush(url: &str, db: u32) -> Result<()> {
    let reply = redis(url, db, "FLUSHDB")?;
    if !reply.starts_with("+OK") {
        bail!("Redis FLUSHDB answered {reply:?}");
    }
    Ok(())
}
