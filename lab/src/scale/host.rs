//! The run's own Redis database number for `lab scale`: claimed only when empty, flushed
//! before and after. (Its `edge-host` children are the benchmark's `HostProc`.)

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

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

/// Checks the run's Redis database is unused (another harness, e.g. `lab chaos` on 14,
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
