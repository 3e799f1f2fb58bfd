//! `spin:postgres/postgres@4.0.0` on `tokio-postgres` with one connection pool per address, so a
//! request borrows a warm connection instead of paying a connection set-up (pools, TLS and time
//! limits: `pg_pool`, `pg_tls`). Addresses must match the component's `allowed_outbound_hosts`.
//! Values are mapped the way Spin maps them (both `timestamp` and `timestamptz` are a naive UTC
//! date-time); Postgres errors keep their SQLSTATE, connection failures their root cause
//! (`pg_error`). A statement that gets no answer within `QUERY_TIMEOUT`, or fails because the
//! connection broke, costs that connection: it is never returned to the pool. A query whose
//! result is empty fails the request ([`EMPTY_RESULT`]), because on Spin 4.0.2 it never returns.
//!
//! Statements are prepared once per pooled connection and reused (`prepare_cached`), a shortcut
//! Spin does not have; `--postgres-statements spin` ([`Statements::Spin`]) sends each one the
//! way Spin 4.0.2 does instead, prepared anew on every call, so a benchmark can measure what a
//! component costs the database on Spin.

use crate::bindings::spin::postgres4_0_0::postgres as pg;
use crate::pg_error::describe;
use crate::pg_pool::{PgPool, QUERY_TIMEOUT};
use crate::pg_values::{Param, data_type, db_value};
use crate::state::RequestState;
use deadpool_postgres::Object;
use futures_util::TryStreamExt;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio_postgres::types::ToSql;
use wasmtime::component::Resource;

pub use crate::pg_pool::PgPools;

/// Why a query with an empty result fails the request (a trap): Spin 4.0.2's host never answers
/// one (`crates/factor-outbound-pg/src/client.rs`: `query` awaits the column list, which is sent
/// with the first row), so the request hangs there; here it fails at once instead of passing.
pub const EMPTY_RESULT: &str = "a Postgres query returned no row: Spin 4.0.2 never answers such \
     a query (the request hangs), so edge-host fails it; make the statement yield a row, or use \
     execute";

/// How statements reach the server (`--postgres-statements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Statements {
    /// Each distinct statement text prepared once per pooled connection and reused
    /// (`prepare_cached`): the server parses and plans it once per connection. Host-only.
    #[default]
    Cached,
    /// As Spin 4.0.2 (`crates/factor-outbound-pg/src/client.rs`): `query_raw` and `execute` on
    /// the statement text, so every call prepares it again (parse, plan, then close), and
    /// `execute` goes through the extended protocol even without parameters.
    Spin,
}

static STATEMENTS: OnceLock<Statements> = OnceLock::new();

/// Chooses how statements are sent, for the whole process; called once at start-up (like the
/// command-line flag it comes from).
pub fn set_statements(mode: Statements) {
    if STATEMENTS.set(mode).is_err() && STATEMENTS.get() != Some(&mode) {
        tracing::warn!("PostgreSQL statement mode already set; {mode:?} ignored");
    }
}

fn statements() -> Statements {
    STATEMENTS.get().copied().unwrap_or_default()
}

/// A guest's open connection: a pooled client, discarded instead of reused if the guest left a
/// transaction open or the connection failed.
pub struct PgHandle {
    client: Option<Object>,
    pool: Option<Arc<PgPool>>,
    in_transaction: bool,
}

impl std::fmt::Debug for PgHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgHandle")
            .field("in_transaction", &self.in_transaction)
            .finish_non_exhaustive()
    }
}

impl Drop for PgHandle {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && self.in_transaction
        {
            // Never hand a half-done transaction to the next request.
            drop(Object::take(client));
        }
    }
}

/// Checks `address` against the allow-list; the error text is what the guest sees.
fn check_allowed(state: &RequestState, address: &str) -> Result<(), String> {
    let url = url::Url::parse(address)
        .map_err(|_| "invalid address: expected postgres://user@host:port/database".to_string())?;
    let host = url.host_str().unwrap_or("");
    let port = url.port().unwrap_or(5432);
    if !matches!(url.scheme(), "postgres" | "postgresql") || host.is_empty() {
        return Err("invalid address: expected postgres://user@host:port/database".into());
    }
    if state.component.allowed_hosts.allows("postgres", host, port) {
        Ok(())
    } else {
        Err(format!(
            "address postgres://{host}:{port} is not permitted: add it to allowed_outbound_hosts of component `{}`",
            state.component.id
        ))
    }
}

impl pg::Host for RequestState {}

impl pg::HostConnection for RequestState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgHandle>, pg::Error>> {
        if let Err(e) = check_allowed(self, &address) {
            return Ok(Err(pg::Error::ConnectionFailed(e)));
        }
        let pool = match self.component.postgres.pool(&address) {
            Ok(p) => p,
            Err(e) => return Ok(Err(pg::Error::ConnectionFailed(e))),
        };
        match pool.get().await {
            Ok(client) => Ok(Ok(self.table.push(PgHandle {
                client: Some(client),
                pool: Some(pool),
                in_transaction: false,
            })?)),
            Err(e) => Ok(Err(pg::Error::ConnectionFailed(e))),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<PgHandle>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<pg::RowSet, pg::Error>> {
        let handle = self.table.get_mut(&conn)?;
        track_transaction(handle, &statement);
        let Some(client) = handle.client.as_ref() else {
            return Ok(Err(pg::Error::ConnectionFailed(
                "connection closed after an earlier failure; open a new one".into(),
            )));
        };
        let params = match params
            .into_iter()
            .map(Param::try_from)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        // Set once the statement runs and rows stream back: an error from then on reaches the
        // guest as Spin 4.0.2 reports it, flattened to text (`client.rs`: `query` collects the
        // rows inside an `anyhow` block), SQLSTATE included only in the words.
        let streaming = AtomicBool::new(false);
        let answer = tokio::time::timeout(QUERY_TIMEOUT, async {
            let stream = match statements() {
                Statements::Cached => {
                    let stmt = client.prepare_cached(&statement).await?;
                    client.query_raw(&stmt, refs.iter().copied()).await?
                }
                Statements::Spin => {
                    client
                        .query_raw(statement.as_str(), refs.iter().copied())
                        .await?
                }
            };
            streaming.store(true, Ordering::Relaxed);
            stream.try_collect::<Vec<tokio_postgres::Row>>().await
        })
        .await;
        let rows = match settle(handle, answer) {
            Ok(r) => r,
            Err(e @ pg::Error::QueryFailed(_)) if streaming.load(Ordering::Relaxed) => {
                return Ok(Err(pg::Error::QueryFailed(pg::QueryError::Text(format!(
                    "{e:?}"
                )))));
            }
            Err(e) => return Ok(Err(e)),
        };
        let Some(first) = rows.first() else {
            return Err(wasmtime::format_err!("{EMPTY_RESULT}"));
        };
        // From the first row, as Spin does (`infer_columns`): the statement's columns.
        let columns = first
            .columns()
            .iter()
            .map(|c| pg::Column {
                name: c.name().to_string(),
                data_type: data_type(c.type_()),
            })
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                match db_value(row, i, col.type_()) {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        return Ok(Err(pg::Error::ValueConversionFailed(format!(
                            "column `{}`: {e}",
                            col.name()
                        ))));
                    }
                }
            }
            out.push(values);
        }
        Ok(Ok(pg::RowSet { columns, rows: out }))
    }

    async fn execute(
        &mut self,
        conn: Resource<PgHandle>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        let handle = self.table.get_mut(&conn)?;
        track_transaction(handle, &statement);
        let Some(client) = handle.client.as_ref() else {
            return Ok(Err(pg::Error::ConnectionFailed(
                "connection closed after an earlier failure; open a new one".into(),
            )));
        };
        let params = match params
            .into_iter()
            .map(Param::try_from)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let work = async {
            if statements() == Statements::Spin {
                // Spin: `execute` on the text, whatever the parameters (one statement only).
                client.execute(statement.as_str(), &refs).await
            } else if refs.is_empty() {
                // Lets a guest send statements that cannot be prepared (BEGIN, SET, DDL batches),
                // while still reporting the rows affected (summed over the statements), as Spin does.
                client.simple_query(&statement).await.map(|messages| {
                    messages
                        .iter()
                        .map(|m| match m {
                            tokio_postgres::SimpleQueryMessage::CommandComplete(n) => *n,
                            _ => 0,
                        })
                        .sum()
                })
            } else {
                let stmt = client.prepare_cached(&statement).await?;
                client.execute(&stmt, &refs).await
            }
        };
        let answer = tokio::time::timeout(QUERY_TIMEOUT, work).await;
        Ok(settle(handle, answer))
    }

    async fn drop(&mut self, conn: Resource<PgHandle>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

fn track_transaction(handle: &mut PgHandle, statement: &str) {
    let first = statement
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" | "START" => handle.in_transaction = true,
        "COMMIT" | "ROLLBACK" | "END" | "ABORT" => handle.in_transaction = false,
        _ => {}
    }
}

/// Turns a timed statement's outcome into the guest's answer. A timeout or a broken connection
/// takes the connection out of the handle (cancelling the statement on the server after a
/// timeout), so it is never reused; later calls on the handle get `connection-failed`.
#[allow(clippy::result_large_err)] // the guest's own error type, returned as is
fn settle<T>(
    handle: &mut PgHandle,
    answer: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
) -> Result<T, pg::Error> {
    let failure = match answer {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(e)) if e.as_db_error().is_none() && broken(&e) => {
            format!("the connection to PostgreSQL broke: {}", describe(&e))
        }
        Ok(Err(e)) => return Err(query_error(e)),
        Err(_) => {
            if let (Some(client), Some(pool)) = (&handle.client, &handle.pool) {
                pool.cancel(client);
            }
            format!(
                "no answer from PostgreSQL within {} s; the statement was cancelled and the connection closed",
                QUERY_TIMEOUT.as_secs()
            )
        }
    };
    if let Some(pool) = &handle.pool {
        pool.warn(&failure);
    }
    if let Some(client) = handle.client.take() {
        drop(Object::take(client));
    }
    Err(pg::Error::ConnectionFailed(failure))
}

/// Whether a (non-server) error means the connection itself is unusable.
fn broken(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut next = e.source();
    while let Some(layer) = next {
        if layer.is::<std::io::Error>() {
            return true;
        }
        next = layer.source();
    }
    false
}

fn query_error(e: tokio_postgres::Error) -> pg::Error {
    // As Spin 4.0.2 builds it (`client.rs`, `query_failed`): the flattened error, and the
    // server's fields in Spin's order.
    if let Some(db) = e.as_db_error() {
        let mut extras = Vec::new();
        let mut extra = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                extras.push((name.to_string(), v));
            }
        };
        extra("column", db.column().map(str::to_string));
        extra("constraint", db.constraint().map(str::to_string));
        extra("routine", db.routine().map(str::to_string));
        extra("hint", db.hint().map(str::to_string));
        extra("table", db.table().map(str::to_string));
        extra("datatype", db.datatype().map(str::to_string));
        extra("schema", db.schema().map(str::to_string));
        extra("file", db.file().map(str::to_string));
        extra("line", db.line().map(|l| l.to_string()));
        extra("where_", db.where_().map(str::to_string));
        return pg::Error::QueryFailed(pg::QueryError::DbError(pg::DbError {
            as_text: format!("{e:?}"),
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras,
        }));
    }
    pg::Error::QueryFailed(pg::QueryError::Text(describe(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_tracking_follows_statements() {
        let mut h = PgHandle {
            client: None,
            pool: None,
            in_transaction: false,
        };
        track_transaction(&mut h, "  begin isolation level serializable");
        assert!(h.in_transaction);
        track_transaction(&mut h, "INSERT INTO t VALUES (1)");
        assert!(h.in_transaction);
        track_transaction(&mut h, "commit;");
        assert!(!h.in_transaction);
    }
}
