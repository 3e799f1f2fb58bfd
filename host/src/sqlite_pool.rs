//! Pooled SQLite connections shared by the key-value and SQLite interfaces. Every connection is
//! opened in WAL mode with a busy handler, so concurrent requests (and several host processes
//! sharing one file) wait for each other instead of failing with "database is locked".
//!
//! Inside one process, writers also take turns: a connection about to write waits, first come
//! first served, for the file's write turn and keeps it until its transaction ends. SQLite would
//! serialise them anyway, but by letting the losers sleep and retry (1, 2, 5 … 100 ms), which
//! under 16 concurrent writers meant tail latencies of half a second.
//!
//! The turn carries the file's one writer connection, which a write that starts outside a
//! transaction runs on. In WAL mode a connection drops its whole page cache whenever another
//! connection has committed since it last looked, so with writes spread over the pool every
//! write read its B-tree pages again (a third of edge-host's CPU per SQLite publish was kernel,
//! much of it those reads); the writer only ever sees its own commits and keeps its cache warm.
//!
//! Checkpoints (copying the WAL back into the database file, with its fsyncs) run on a
//! background thread per file, not inside whichever request's commit crosses SQLite's
//! auto-checkpoint threshold while it holds the write turn. The auto-checkpoint stays on at a
//! high threshold as a safety net, should the background thread fall behind. While writes go
//! on, the thread checkpoints every 10 ms, so each checkpoint is small; on an idle file it backs
//! off to 250 ms.
//!
//! All of that is the `tuned` mode (the default). `edge-host up --sqlite-mode spin` opens files
//! exactly as Spin does instead — plain `rusqlite::Connection::open`, no pragmas: the rollback
//! journal unless the file itself is in WAL mode, `synchronous=FULL`, rusqlite's 5 s busy
//! timeout, SQLite's own auto-checkpoint — so an app can be measured and tested under the
//! durability and speed it gets on `spin up`. The write turns stay in both modes (they order
//! writers, they change no setting of the file).

use anyhow::{Context, Result};
use parking_lot::Mutex;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

/// How long a writer waits for another writer before SQLite reports "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per file.
const MAX_IDLE: usize = 32;
/// The checkpoint thread's pause while the WAL keeps growing. Short, so that each checkpoint
/// has little to copy and sync: with 250 ms between them, every in-flight write stalled for
/// 60–120 ms at each checkpoint (p99 of single SQLite publishes ≈ 60 ms; 10 ms: ≈ 20 ms).
const CHECKPOINT_BUSY: Duration = Duration::from_millis(10);
/// The longest pause, reached by doubling while the WAL stays as it was (an idle file).
const CHECKPOINT_IDLE: Duration = Duration::from_millis(250);
/// WAL pages after which a committing connection checkpoints itself (SQLite's default: 1000).
const AUTOCHECKPOINT_PAGES: u32 = 20_000;

/// How edge-host opens SQLite files (`--sqlite-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SqliteMode {
    /// WAL, `synchronous=NORMAL`, background checkpoints: fast, and every commit survives a
    /// crash of the process (not necessarily of the machine).
    #[default]
    Tuned,
    /// Spin's settings: plain `Connection::open`, no pragmas (rollback journal,
    /// `synchronous=FULL`, 5 s busy timeout): an fsync per commit, as on `spin up`.
    Spin,
}

static MODE: OnceLock<SqliteMode> = OnceLock::new();

/// Chooses the mode for every pool made afterwards; called once at start-up, before any file is
/// opened (a process-wide setting, like the command-line flag it comes from).
pub fn set_mode(mode: SqliteMode) {
    if MODE.set(mode).is_err() && MODE.get() != Some(&mode) {
        tracing::warn!("SQLite mode already set; {mode:?} ignored");
    } else if mode == SqliteMode::Spin {
        tracing::info!(
            "SQLite files are opened with Spin's settings (no pragmas: rollback journal, synchronous=FULL)"
        );
    }
}

/// The mode pools are opened in.
pub fn mode() -> SqliteMode {
    MODE.get().copied().unwrap_or_default()
}

/// A pool of connections to one SQLite file.
#[derive(Debug)]
pub struct SqlitePool {
    path: PathBuf,
    mode: SqliteMode,
    idle: Mutex<Vec<Connection>>,
    writer: Arc<tokio::sync::Mutex<Option<Connection>>>,
    checkpointer: Once,
    stop: Arc<AtomicBool>,
}

impl Drop for SqlitePool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The right to write to a pool's file, held until the writing transaction ends, with the
/// file's writer connection (opened on first use).
#[derive(Debug)]
pub struct WriteTurn(tokio::sync::OwnedMutexGuard<Option<Connection>>);

impl WriteTurn {
    /// The file's writer connection, opened on first use.
    pub fn conn(&mut self, pool: &SqlitePool) -> Result<&Connection> {
        if self.0.is_none() {
            *self.0 = Some(pool.open()?);
        }
        Ok(self.0.as_ref().expect("opened above"))
    }
}

impl Drop for WriteTurn {
    /// A writer left inside a transaction (a guest dropped mid-way) is rolled back before the
    /// next turn; one that cannot be is closed, and the next turn opens another.
    fn drop(&mut self) {
        if self.0.as_ref().is_some_and(|conn| !rolled_back(conn)) {
            *self.0 = None;
        }
    }
}

/// A connection borrowed from a pool; rolled back if left inside a transaction and returned on
/// drop.
#[derive(Debug)]
pub struct PooledConnection<'a> {
    pool: &'a SqlitePool,
    conn: Option<Connection>,
}

impl SqlitePool {
    /// Creates the pool; the file (and its directory) are created on first use.
    pub fn new(path: &Path) -> Self {
        SqlitePool {
            path: path.to_path_buf(),
            mode: mode(),
            idle: Mutex::new(Vec::new()),
            writer: Arc::new(tokio::sync::Mutex::new(None)),
            checkpointer: Once::new(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts the file's checkpoint thread (once); it ends when the pool is dropped.
    fn start_checkpointer(&self) {
        self.checkpointer.call_once(|| {
            let (path, stop) = (self.path.clone(), self.stop.clone());
            let spawned = std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || {
                    let (mut conn, mut pause, mut seen) = (None, CHECKPOINT_IDLE, None);
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(pause);
                        if conn.is_none() {
                            conn = Connection::open(&path).ok();
                        }
                        let Some(c) = &conn else { continue };
                        // The WAL's frame count: moved since the last look means writers are busy.
                        match c
                            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                        {
                            Ok(frames) => {
                                pause = next_pause(pause, seen, frames);
                                seen = Some(frames);
                            }
                            Err(e) => {
                                tracing::debug!("checkpoint of {} failed: {e}", path.display());
                            }
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("no checkpoint thread for {}: {e}", self.path.display());
            }
        });
    }

    /// Waits (in arrival order) for the file's write turn; after the busy timeout, goes ahead
    /// without it and leaves the waiting to SQLite, so a guest that holds two turns cannot hang.
    pub async fn write_turn(&self) -> Option<WriteTurn> {
        tokio::time::timeout(BUSY_TIMEOUT, self.writer.clone().lock_owned())
            .await
            .ok()
            .map(WriteTurn)
    }

    /// Opens a fresh connection (not pooled): used by long-lived guest handles.
    pub fn open(&self) -> Result<Connection> {
        if let Some(dir) = self.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let conn = Connection::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        conn.set_prepared_statement_cache_capacity(64);
        if self.mode == SqliteMode::Spin {
            // Exactly what Spin does: nothing more (rusqlite already set a 5 s busy timeout).
            return Ok(conn);
        }
        conn.busy_handler(Some(wait_while_busy))?;
        // WAL lets readers run beside the writer; NORMAL syncs the WAL at checkpoints, which keeps
        // every committed transaction across a crash of the process (not of the machine).
        switch_to_wal(&conn)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
        self.start_checkpointer();
        Ok(conn)
    }

    /// Borrows a connection.
    pub fn get(&self) -> Result<PooledConnection<'_>> {
        let conn = self.open_pooled()?;
        Ok(PooledConnection {
            pool: self,
            conn: Some(conn),
        })
    }

    /// Takes an idle connection (or opens one) for a guest handle to own until it is dropped.
    pub fn open_pooled(&self) -> Result<Connection> {
        match self.idle.lock().pop() {
            Some(c) => Ok(c),
            None => self.open(),
        }
    }

    /// Returns a connection that a guest handle owned, unless it is unusable.
    pub fn give_back(&self, conn: Connection) {
        if !rolled_back(&conn) {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

impl std::ops::Deref for PooledConnection<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl Drop for PooledConnection<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

/// Runs SQLite work on the calling runtime worker.
///
/// Statements take microseconds; handing the worker to another thread around each one
/// (`block_in_place`) cost about 30 % of a publish's CPU on SQLite. The one long wait, for another
/// process's write lock, gives the worker up inside [`wait_while_busy`].
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Ends a transaction `conn` was left inside, if any; false if it cannot, so the connection
/// must not be used again.
fn rolled_back(conn: &Connection) -> bool {
    conn.is_autocommit() || conn.execute_batch("ROLLBACK").is_ok()
}

/// The checkpoint thread's next pause, given the last one, the WAL's frame count at the last
/// look and now: short while writers add frames, doubling up to the idle pause while they don't.
fn next_pause(pause: Duration, seen: Option<i64>, frames: i64) -> Duration {
    if frames > 0 && seen != Some(frames) {
        CHECKPOINT_BUSY
    } else {
        (pause * 2).min(CHECKPOINT_IDLE)
    }
}

/// How long to sleep before busy retry number `attempt` (SQLite's own 1, 2, 5 … 100 ms), or
/// `None` once the waits so far add up to `BUSY_TIMEOUT`.
fn busy_delay(attempt: i32) -> Option<Duration> {
    const DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    let delay = |i: usize| DELAYS_MS.get(i).copied().unwrap_or(100);
    let attempt = usize::try_from(attempt).unwrap_or(0);
    let waited: u64 = (0..attempt).map(delay).sum();
    (Duration::from_millis(waited) < BUSY_TIMEOUT).then(|| Duration::from_millis(delay(attempt)))
}

/// `PRAGMA journal_mode=WAL`, retried like a busy lock: when several processes switch a fresh
/// file at once (edge-hosts sharing a state directory), SQLite answers the losers with
/// SQLITE_BUSY at once, without calling the busy handler. Once the file is in WAL mode the
/// pragma only reads.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mut attempt = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && wait_while_busy(attempt) =>
            {
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// SQLite's busy handler: sleep and retry until `BUSY_TIMEOUT`, letting the runtime move its
/// other tasks to another thread meanwhile.
fn wait_while_busy(attempt: i32) -> bool {
    let Some(delay) = busy_delay(attempt) else {
        return false;
    };
    let sleep = || std::thread::sleep(delay);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(sleep)
        }
        _ => sleep(),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wall clock in milliseconds: the racing processes' shared start time.
    fn unix_millis() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    }

    /// The child half of the test below: when `EDGE_HOST_RACE_DB` names a file, waits for the
    /// start time, then opens it the way edge-host does and writes one row; otherwise nothing.
    #[test]
    fn racing_open_child() {
        let Ok(path) = std::env::var("EDGE_HOST_RACE_DB") else {
            return;
        };
        let start: u128 = std::env::var("EDGE_HOST_RACE_AT").unwrap().parse().unwrap();
        while unix_millis() < start {
            std::hint::spin_loop();
        }
        let pool = SqlitePool::new(Path::new(&path));
        let conn = pool.open().unwrap_or_else(|e| panic!("open: {e:#}"));
        conn.execute_batch(
            "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS t (x INTEGER);
             INSERT INTO t VALUES (1); COMMIT;",
        )
        .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Processes opening a fresh file at once (edge-hosts sharing a state directory, their first
    /// requests together): every open and its first write succeeds. SQLite answers racing
    /// `journal_mode=WAL` switches with SQLITE_BUSY at once, without the busy handler.
    #[test]
    fn first_opens_of_a_fresh_file_by_racing_processes_all_succeed() {
        let exe = std::env::current_exe().unwrap();
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("race.db");
            let at = unix_millis() + 400;
            let children: Vec<_> = (0..6)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .args(["--exact", "sqlite_pool::tests::racing_open_child"])
                        .args(["--nocapture", "--test-threads=1"])
                        .env("EDGE_HOST_RACE_DB", &path)
                        .env("EDGE_HOST_RACE_AT", at.to_string())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for child in children {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "round {round}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    #[test]
    fn checkpoints_follow_writes_closely_and_back_off_when_idle() {
        let ms = |d: Duration| d.as_millis();
        // Frames added since the last look (or a WAL restarted by a writer): 10 ms.
        assert_eq!(ms(next_pause(CHECKPOINT_IDLE, None, 7)), 10);
        assert_eq!(ms(next_pause(CHECKPOINT_BUSY, Some(7), 12)), 10);
        assert_eq!(ms(next_pause(CHECKPOINT_BUSY, Some(900), 3)), 10);
        // Nothing new, or an empty WAL: doubling, up to 250 ms.
        let mut pause = CHECKPOINT_BUSY;
        let mut seen = Vec::new();
        for _ in 0..8 {
            pause = next_pause(pause, Some(12), 12);
            seen.push(ms(pause));
        }
        assert_eq!(seen, [20, 40, 80, 160, 250, 250, 250, 250]);
        assert_eq!(ms(next_pause(CHECKPOINT_BUSY, None, 0)), 20);
    }

    #[test]
    fn busy_waits_back_off_then_give_up_after_the_timeout() {
        let ms = |a| busy_delay(a).map(|d| d.as_millis());
        assert_eq!(
            (ms(0), ms(1), ms(11), ms(12), ms(200), ms(400)),
            (Some(1), Some(2), Some(100), Some(100), Some(100), None)
        );
        let total: u128 = (0..).map_while(ms).sum();
        let timeout = BUSY_TIMEOUT.as_millis();
        assert!((timeout..timeout + 100).contains(&total), "{total} ms");
    }
}
