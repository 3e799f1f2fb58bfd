//! SQLite databases for guests: `spin:sqlite/sqlite@3.0.0` and the older
//! `fermyon:spin/sqlite@2.0.0`. A guest connection holds one pooled rusqlite connection for its
//! lifetime, so `BEGIN … COMMIT` issued through `execute` behaves as the guest expects; a
//! connection dropped inside a transaction is rolled back before it is reused. A statement that
//! writes (or a `BEGIN IMMEDIATE`/`EXCLUSIVE`) first waits for the file's write turn, which the
//! guest connection keeps until it is back in autocommit mode (see `sqlite_pool`).
//!
//! A write that starts outside a transaction runs, with everything up to the end of its
//! transaction, on the file's writer connection that comes with the turn (its page cache stays
//! warm). Only the guest's own connection sees a transaction begun with a plain `BEGIN`, and a
//! guest that sets up its connection (a `PRAGMA`, `ATTACH`, `DETACH` or a `TEMP` object) keeps
//! every later statement on its own connection, where that set-up lives (and that connection
//! is closed afterwards rather than pooled, so the set-up does not reach the next guest). So that
//! `last_insert_rowid` and `changes` still answer for the guest's connection whichever one ran
//! its statements, the guest connection remembers both after each `INSERT`, `UPDATE` or
//! `DELETE` it ran (0 until then, as on a connection Spin has just opened).

use crate::bindings::fermyon::spin::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;
use crate::sqlite_pool::{SqlitePool, WriteTurn, blocking};
use crate::state::RequestState;
use rusqlite::types::ValueRef;
use std::sync::Arc;
use wasmtime::component::Resource;

/// A guest's open database connection.
#[derive(Debug)]
pub struct SqliteHandle {
    pool: Arc<SqlitePool>,
    conn: Option<rusqlite::Connection>,
    turn: Option<WriteTurn>,
    /// Whether the turn's writer connection runs this guest's statements until the turn ends.
    on_writer: bool,
    /// Whether the guest has set up its own connection, so its statements must stay there.
    pinned: bool,
    /// `last_insert_rowid` and `changes` as of the guest's last data change.
    last_change: (i64, u64),
}

impl Drop for SqliteHandle {
    fn drop(&mut self) {
        // A connection the guest set up is closed, not pooled: the next guest gets a connection
        // as Spin opens it, without this one's settings, attachments or TEMP objects.
        if let Some(conn) = self.conn.take()
            && !self.pinned
        {
            self.pool.give_back(conn); // rolls back first, so the turn is released after
        }
        self.turn = None;
    }
}

impl SqliteHandle {
    /// Releases the write turn, and with it the writer connection.
    fn end_turn(&mut self) {
        self.turn = None;
        self.on_writer = false;
    }
}

/// Whether running `sql` on `conn` may write, so it needs the write turn.
fn writes(conn: &rusqlite::Connection, sql: &str) -> bool {
    if let Some(lock) = begins_locking(sql) {
        return lock;
    }
    // Unknown or failing statements are left to `execute`, which reports the error.
    conn.prepare_cached(sql).is_ok_and(|stmt| !stmt.readonly())
}

/// For a `BEGIN` statement, whether it takes the write lock at once (`IMMEDIATE`/`EXCLUSIVE`);
/// `None` for anything else. SQLite calls every `BEGIN` read-only, so the text has to tell.
fn begins_locking(sql: &str) -> Option<bool> {
    let mut words = words(sql);
    if !words.next()?.eq_ignore_ascii_case("BEGIN") {
        return None;
    }
    Some(words.next().is_some_and(|w| {
        w.eq_ignore_ascii_case("IMMEDIATE") || w.eq_ignore_ascii_case("EXCLUSIVE")
    }))
}

/// Whether a statement that may write sets `changes` (SQLite counts only `INSERT`, `UPDATE`
/// and `DELETE`, which `REPLACE` is, and a `WITH` clause may lead any of them).
fn changes_rows(sql: &str) -> bool {
    words(sql).next().is_some_and(|w| {
        ["INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"]
            .iter()
            .any(|k| w.eq_ignore_ascii_case(k))
    })
}

/// Whether a statement sets up the connection it runs on (settings, attached databases, `TEMP`
/// objects): what follows it must run on the same connection.
fn sets_up_connection(sql: &str) -> bool {
    let mut words = words(sql);
    let Some(first) = words.next() else {
        return false;
    };
    let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
    ["PRAGMA", "ATTACH", "DETACH"].iter().any(|k| is(first, k))
        || (is(first, "CREATE")
            && words
                .next()
                .is_some_and(|w| is(w, "TEMP") || is(w, "TEMPORARY")))
}

/// The words of a statement, after its leading comments.
fn words(sql: &str) -> impl Iterator<Item = &str> {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(line) = rest.strip_prefix("--") {
            rest = line.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(block) = rest.strip_prefix("/*") {
            rest = block.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    rest.split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
}

/// A value crossing the interface, version-independent.
enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// Rows of a statement, version-independent.
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    /// Whether SQLite calls the statement read-only.
    readonly: bool,
}

enum OpenError {
    NoSuchDatabase,
    AccessDenied,
    Io(String),
}

impl RequestState {
    fn open_sqlite(&mut self, label: &str) -> Result<SqliteHandle, OpenError> {
        if !self.component.sqlite_labels.iter().any(|l| l == label) {
            return Err(OpenError::AccessDenied);
        }
        let Some(pool) = self.component.sqlite.get(label).cloned() else {
            return Err(OpenError::NoSuchDatabase);
        };
        let conn = blocking(|| pool.open_pooled()).map_err(|e| OpenError::Io(format!("{e:#}")))?;
        Ok(SqliteHandle {
            pool,
            conn: Some(conn),
            turn: None,
            on_writer: false,
            pinned: false,
            last_change: (0, 0),
        })
    }

    async fn run_sqlite(
        &mut self,
        handle: &Resource<SqliteHandle>,
        statement: &str,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<Rows, String>> {
        let handle = self.table.get_mut(handle)?;
        let needs_turn = match handle.conn.as_ref() {
            None => return Ok(Err("connection closed".into())),
            Some(conn) => handle.turn.is_none() && blocking(|| writes(conn, statement)),
        };
        handle.pinned |= sets_up_connection(statement);
        if needs_turn {
            let outside_tx = handle.conn.as_ref().is_some_and(|c| c.is_autocommit());
            handle.turn = handle.pool.write_turn().await;
            handle.on_writer = outside_tx && !handle.pinned && handle.turn.is_some();
        }
        let conn = match (&mut handle.turn, handle.on_writer) {
            (Some(turn), true) => match turn.conn(&handle.pool) {
                Ok(conn) => conn,
                Err(e) => {
                    handle.end_turn();
                    return Ok(Err(format!("{e:#}")));
                }
            },
            _ => match handle.conn.as_ref() {
                Some(conn) => conn,
                None => return Ok(Err("connection closed".into())),
            },
        };
        let changes = changes_rows(statement);
        if changes {
            set_last_insert_rowid(conn, handle.last_change.0);
        }
        let result = blocking(|| execute(conn, statement, params)).map_err(|e| e.to_string());
        if changes && result.as_ref().is_ok_and(|rows| !rows.readonly) {
            handle.last_change = (conn.last_insert_rowid(), conn.changes());
        }
        if conn.is_autocommit() {
            handle.end_turn();
        }
        Ok(result)
    }

    fn last_change(&self, handle: &Resource<SqliteHandle>) -> wasmtime::Result<(i64, u64)> {
        let handle = self.table.get(handle)?;
        if handle.conn.is_none() {
            return Err(wasmtime::format_err!("connection closed"));
        }
        Ok(handle.last_change)
    }
}
/// Makes `conn` report `rowid` as its last insert until it inserts a row, so that after a
/// statement it answers for the guest's connection whichever connection ran it (an `INSERT`
/// that inserts nothing leaves it as it was).
fn set_last_insert_rowid(conn: &rusqlite::Connection, rowid: i64) {
    // SAFETY: `conn` is open and used by this thread only while borrowed here; the call only
    // sets a field of the connection (`sqlite3_set_last_insert_rowid`).
    unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(conn.handle(), rowid) }
}

fn execute(conn: &rusqlite::Connection, sql: &str, params: Vec<Value>) -> rusqlite::Result<Rows> {
    let mut stmt = conn.prepare_cached(sql)?;
    let readonly = stmt.readonly();
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    for (i, p) in params.into_iter().enumerate() {
        let idx = i + 1;
        match p {
            Value::Integer(v) => stmt.raw_bind_parameter(idx, v)?,
            Value::Real(v) => stmt.raw_bind_parameter(idx, v)?,
            Value::Text(v) => stmt.raw_bind_parameter(idx, v)?,
            Value::Blob(v) => stmt.raw_bind_parameter(idx, v)?,
            Value::Null => stmt.raw_bind_parameter(idx, rusqlite::types::Null)?,
        }
    }
    let mut rows = Vec::new();
    let mut raw = stmt.raw_query();
    while let Some(row) = raw.next()? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Integer(v),
                ValueRef::Real(v) => Value::Real(v),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        rows.push(values);
    }
    Ok(Rows {
        columns,
        rows,
        readonly,
    })
}

macro_rules! sqlite_interface {
    ($m:ident, $host:path, $host_conn:path) => {
        impl From<$m::Value> for Value {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => Value::Integer(i),
                    $m::Value::Real(r) => Value::Real(r),
                    $m::Value::Text(t) => Value::Text(t),
                    $m::Value::Blob(b) => Value::Blob(b),
                    $m::Value::Null => Value::Null,
                }
            }
        }

        impl From<Value> for $m::Value {
            fn from(v: Value) -> Self {
                match v {
                    Value::Integer(i) => $m::Value::Integer(i),
                    Value::Real(r) => $m::Value::Real(r),
                    Value::Text(t) => $m::Value::Text(t),
                    Value::Blob(b) => $m::Value::Blob(b),
                    Value::Null => $m::Value::Null,
                }
            }
        }

        impl $host for RequestState {}

        impl $host_conn for RequestState {
            async fn open(
                &mut self,
                database: String,
            ) -> wasmtime::Result<Result<Resource<SqliteHandle>, $m::Error>> {
                Ok(match self.open_sqlite(&database) {
                    Ok(h) => Ok(self.table.push(h)?),
                    Err(OpenError::NoSuchDatabase) => Err($m::Error::NoSuchDatabase),
                    Err(OpenError::AccessDenied) => Err($m::Error::AccessDenied),
                    Err(OpenError::Io(e)) => Err($m::Error::Io(e)),
                })
            }

            async fn execute(
                &mut self,
                conn: Resource<SqliteHandle>,
                statement: String,
                parameters: Vec<$m::Value>,
            ) -> wasmtime::Result<Result<$m::QueryResult, $m::Error>> {
                let params = parameters.into_iter().map(Value::from).collect();
                Ok(self
                    .run_sqlite(&conn, &statement, params)
                    .await?
                    .map(|rows| $m::QueryResult {
                        columns: rows.columns,
                        rows: rows
                            .rows
                            .into_iter()
                            .map(|r| $m::RowResult {
                                values: r.into_iter().map(Into::into).collect(),
                            })
                            .collect(),
                    })
                    .map_err($m::Error::Io))
            }

            sqlite_interface!(@extra $m);

            async fn drop(&mut self, conn: Resource<SqliteHandle>) -> wasmtime::Result<()> {
                self.table.delete(conn)?;
                Ok(())
            }
        }
    };
    (@extra v3) => {
        async fn last_insert_rowid(&mut self, conn: Resource<SqliteHandle>) -> wasmtime::Result<i64> {
            Ok(self.last_change(&conn)?.0)
        }

        async fn changes(&mut self, conn: Resource<SqliteHandle>) -> wasmtime::Result<u64> {
            Ok(self.last_change(&conn)?.1)
        }
    };
    (@extra v2) => {};
}

sqlite_interface!(v3, v3::Host, v3::HostConnection);
sqlite_interface!(v2, v2::Host, v2::HostConnection);

#[cfg(test)]
mod tests {
    use super::{begins_locking, changes_rows, sets_up_connection};

    #[test]
    fn statements_that_count_changes_or_set_up_the_connection_are_recognised() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            " -- c\n replace into t values (1)",
            "UPDATE t SET v = 1",
            "/* x */ DELETE FROM t",
            "WITH n AS (SELECT 1) INSERT INTO t SELECT * FROM n",
        ] {
            assert!(changes_rows(sql), "{sql:?}");
        }
        for sql in [
            "SELECT 1",
            "CREATE TABLE t (v)",
            "BEGIN",
            "PRAGMA x",
            "INSERTED",
            "",
        ] {
            assert!(!changes_rows(sql), "{sql:?}");
        }
        for sql in [
            "PRAGMA foreign_keys = ON",
            "pragma foreign_keys=on;",
            "ATTACH ':memory:' AS m",
            "detach m",
            "CREATE TEMP TABLE x (v)",
            "-- scratch\ncreate temporary view v as select 1",
        ] {
            assert!(sets_up_connection(sql), "{sql:?}");
        }
        for sql in [
            "CREATE TABLE t (v)",
            "SELECT 1",
            "CREATE TEMPLATES",
            "PRAGMATIC",
            "",
        ] {
            assert!(!sets_up_connection(sql), "{sql:?}");
        }
    }

    #[test]
    fn begin_statements_are_recognised_through_case_comments_and_semicolons() {
        for (sql, want) in [
            ("BEGIN IMMEDIATE", Some(true)),
            ("  begin exclusive transaction;", Some(true)),
            ("-- take the lock\nBEGIN IMMEDIATE", Some(true)),
            ("/* a */ /* b */\n\tBegin\nImmediate;", Some(true)),
            ("BEGIN", Some(false)),
            ("BEGIN;", Some(false)),
            ("BEGIN DEFERRED TRANSACTION", Some(false)),
            ("INSERT INTO t VALUES (1)", None),
            ("BEGINNING", None),
            ("-- only a comment", None),
            ("", None),
        ] {
            assert_eq!(begins_locking(sql), want, "{sql:?}");
        }
    }
}
