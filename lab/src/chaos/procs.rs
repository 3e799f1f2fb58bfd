//! The processes the chaos harness breaks on purpose: edge-hosts on fixed ports that can be
//! SIGKILLed and restarted in place (same port, same state, same databases), and a private
//! `redis-server` on a free port of its own (never the shared 6379) that can be killed and
//! brought back with its append-only file.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::services::HostProc;

/// A free loopback port right now (bound, then released).
pub(super) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// How to (re)start one edge-host: everything but the process itself.
pub(super) struct HostSpec {
    /// The `edge-host` binary.
    pub bin: PathBuf,
    /// The edgelog manifest.
    pub manifest: PathBuf,
    /// State directory, kept across restarts.
    pub state_dir: PathBuf,
    /// Runtime config (the queue in Redis), when not the embedded default.
    pub runtime_config: Option<PathBuf>,
    /// `SPIN_VARIABLE_*` settings.
    pub env: Vec<(&'static str, String)>,
    /// Where the logs go: `<log_stem>-<generation>.log`.
    pub log_stem: PathBuf,
}

/// One edge-host that the harness kills and restarts on the same port.
pub(super) struct KillableHost {
    spec: HostSpec,
    listen: String,
    /// Base URL, stable across restarts.
    pub url: String,
    proc: Option<HostProc>,
    generation: u32,
}

impl KillableHost {
    /// Starts the host on a free port and waits until it serves.
    pub fn start(spec: HostSpec) -> Result<KillableHost> {
        let port = free_port()?;
        let mut h = KillableHost {
            spec,
            listen: format!("127.0.0.1:{port}"),
            url: format!("http://127.0.0.1:{port}"),
            proc: None,
            generation: 0,
        };
        h.restart()?;
        Ok(h)
    }

    /// SIGKILLs the process (no-op when it is down).
    pub fn kill(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.kill(),
            None => Ok(()),
        }
    }

    /// Starts the process again (same port, state and databases) and waits for its banner.
    pub fn restart(&mut self) -> Result<()> {
        if self.proc.is_some() {
            return Ok(());
        }
        let log = PathBuf::from(format!(
            "{}-{}.log",
            self.spec.log_stem.display(),
            self.generation
        ));
        self.generation += 1;
        let s = &self.spec;
        let p = HostProc::start(
            &s.bin,
            &s.manifest,
            &self.listen,
            &s.state_dir,
            s.runtime_config.as_deref(),
            &s.env,
            &log,
        )?;
        if p.url != self.url {
            bail!("edge-host came back on {} instead of {}", p.url, self.url);
        }
        self.proc = Some(p);
        Ok(())
    }

    /// Stops it gracefully at the end of a scenario.
    pub fn stop(&mut self) -> Result<()> {
        match self.proc.take() {
            Some(p) => p.stop(),
            None => Ok(()),
        }
    }
}

/// A `redis-server` of the harness's own: free port, append-only file fsynced on every write
/// (so a SIGKILL loses nothing it acknowledged), data in a temporary directory.
pub(super) struct OwnRedis {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts `redis-server` (from `PATH`) in `dir` on a free port.
    pub fn start(dir: &Path) -> Result<OwnRedis> {
        let bin = crate::bench::services::which("redis-server")
            .context("redis-server is not on PATH (scripts/services.sh installs it)")?;
        let mut r = OwnRedis {
            bin,
            dir: dir.to_path_buf(),
            port: free_port()?,
            child: None,
        };
        r.restart()?;
        Ok(r)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// SIGKILL.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts it again on the same port with the same data, and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::File::create(self.dir.join("redis.log"))?;
        let child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not listen on port {}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
