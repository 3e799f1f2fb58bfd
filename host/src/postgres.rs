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
use crate::state::RequestState;
use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use deadpool_postgres::Object;
use futures_util::TryStreamExt;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
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

/// A guest parameter, encoded for whatever type the server expects (so a date-time binds to
/// both `timestamp` and `timestamptz`, as in Spin).
#[derive(Debug)]
enum Param {
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(NaiveDateTime),
    Uuid(uuid::Uuid),
    Json(serde_json::Value),
    ArrI32(Vec<Option<i32>>),
    ArrI64(Vec<Option<i64>>),
    ArrStr(Vec<Option<String>>),
    Interval(pg::Interval),
    Null,
}

impl TryFrom<pg::ParameterValue> for Param {
    type Error = pg::Error;
    fn try_from(v: pg::ParameterValue) -> Result<Self, pg::Error> {
        use pg::ParameterValue as P;
        let bad = |what: &str| pg::Error::BadParameter(what.to_string());
        Ok(match v {
            P::Boolean(b) => Param::Bool(b),
            P::Int8(i) => Param::I8(i),
            P::Int16(i) => Param::I16(i),
            P::Int32(i) => Param::I32(i),
            P::Int64(i) => Param::I64(i),
            P::Floating32(f) => Param::F32(f),
            P::Floating64(f) => Param::F64(f),
            P::Str(s) => Param::Str(s),
            P::Binary(b) => Param::Bytes(b),
            P::Date((y, m, d)) => Param::Date(
                NaiveDate::from_ymd_opt(y, m.into(), d.into())
                    .ok_or_else(|| bad("invalid date"))?,
            ),
            P::Time((h, m, s, ns)) => Param::Time(
                NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
                    .ok_or_else(|| bad("invalid time"))?,
            ),
            P::Datetime((y, mo, d, h, mi, s, ns)) => Param::DateTime(
                NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                    .and_then(|date| date.and_hms_nano_opt(h.into(), mi.into(), s.into(), ns))
                    .ok_or_else(|| bad("invalid datetime"))?,
            ),
            P::Timestamp(secs) => Param::DateTime(
                DateTime::<Utc>::from_timestamp(secs, 0)
                    .ok_or_else(|| bad("invalid timestamp"))?
                    .naive_utc(),
            ),
            P::Uuid(s) => Param::Uuid(uuid::Uuid::parse_str(&s).map_err(|_| bad("invalid uuid"))?),
            P::Jsonb(bytes) => {
                Param::Json(serde_json::from_slice(&bytes).map_err(|_| bad("invalid jsonb"))?)
            }
            P::ArrayInt32(a) => Param::ArrI32(a),
            P::ArrayInt64(a) => Param::ArrI64(a),
            P::ArrayStr(a) => Param::ArrStr(a),
            P::Interval(i) => Param::Interval(i),
            P::DbNull => Param::Null,
            P::Decimal(_)
            | P::ArrayDecimal(_)
            | P::RangeInt32(_)
            | P::RangeInt64(_)
            | P::RangeDecimal(_) => {
                return Err(bad(
                    "decimal and range parameters are not supported by edge-host",
                ));
            }
        })
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Bool(v) => v.to_sql(ty, out),
            Param::I8(v) => v.to_sql(ty, out),
            Param::I16(v) => v.to_sql(ty, out),
            Param::I32(v) => v.to_sql(ty, out),
            Param::I64(v) => v.to_sql(ty, out),
            Param::F32(v) => v.to_sql(ty, out),
            Param::F64(v) => v.to_sql(ty, out),
            Param::Str(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
            Param::Date(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
            Param::DateTime(v) if *ty == Type::TIMESTAMPTZ => v.and_utc().to_sql(ty, out),
            Param::DateTime(v) => v.to_sql(ty, out),
            Param::Uuid(v) => v.to_sql(ty, out),
            Param::Json(v) => v.to_sql(ty, out),
            Param::ArrI32(v) => v.to_sql(ty, out),
            Param::ArrI64(v) => v.to_sql(ty, out),
            Param::ArrStr(v) => v.to_sql(ty, out),
            Param::Interval(i) => {
                out.extend_from_slice(&i.micros.to_be_bytes());
                out.extend_from_slice(&i.days.to_be_bytes());
                out.extend_from_slice(&i.months.to_be_bytes());
                Ok(IsNull::No)
            }
            Param::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let ok = match self {
            Param::Bool(_) => <bool as ToSql>::accepts(ty),
            Param::I8(_) => <i8 as ToSql>::accepts(ty),
            Param::I16(_) => <i16 as ToSql>::accepts(ty),
            Param::I32(_) => <i32 as ToSql>::accepts(ty),
            Param::I64(_) => <i64 as ToSql>::accepts(ty),
            Param::F32(_) => <f32 as ToSql>::accepts(ty),
            Param::F64(_) => <f64 as ToSql>::accepts(ty),
            Param::Str(_) => <String as ToSql>::accepts(ty),
            Param::Bytes(_) => <Vec<u8> as ToSql>::accepts(ty),
            Param::Date(_) => <NaiveDate as ToSql>::accepts(ty),
            Param::Time(_) => <NaiveTime as ToSql>::accepts(ty),
            Param::DateTime(_) => *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ,
            Param::Uuid(_) => <uuid::Uuid as ToSql>::accepts(ty),
            Param::Json(_) => <serde_json::Value as ToSql>::accepts(ty),
            Param::ArrI32(_) => <Vec<Option<i32>> as ToSql>::accepts(ty),
            Param::ArrI64(_) => <Vec<Option<i64>> as ToSql>::accepts(ty),
            Param::ArrStr(_) => <Vec<Option<String>> as ToSql>::accepts(ty),
            Param::Interval(_) => *ty == Type::INTERVAL,
            Param::Null => true,
        };
        if !ok {
            return Err(format!("cannot bind {self:?} to a parameter of type {ty}").into());
        }
        self.to_sql(ty, out)
    }
}

fn data_type(ty: &Type) -> pg::DbDataType {
    use pg::DbDataType as D;
    match *ty {
        Type::BOOL => D::Boolean,
        Type::CHAR => D::Int8,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => D::Str,
        Type::BYTEA => D::Binary,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::UUID => D::Uuid,
        Type::JSONB | Type::JSON => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        _ => D::Other(ty.name().to_string()),
    }
}

fn db_value(row: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<pg::DbValue, BoxError> {
    use pg::DbValue as V;
    fn get<'a, T: FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        i: usize,
    ) -> Result<Option<T>, BoxError> {
        Ok(row.try_get::<_, Option<T>>(i)?)
    }
    let v = match *ty {
        Type::BOOL => get::<bool>(row, i)?.map(V::Boolean),
        Type::CHAR => get::<i8>(row, i)?.map(V::Int8),
        Type::INT2 => get::<i16>(row, i)?.map(V::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(V::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(V::Int64),
        Type::FLOAT4 => get::<f32>(row, i)?.map(V::Floating32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(V::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get::<String>(row, i)?.map(V::Str)
        }
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(V::Binary),
        Type::DATE => {
            get::<NaiveDate>(row, i)?.map(|d| V::Date((d.year(), d.month() as u8, d.day() as u8)))
        }
        Type::TIME => get::<NaiveTime>(row, i)?.map(|t| {
            V::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        Type::TIMESTAMP => get::<NaiveDateTime>(row, i)?.map(datetime),
        Type::TIMESTAMPTZ => get::<DateTime<Utc>>(row, i)?.map(|t| datetime(t.naive_utc())),
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| V::Uuid(u.to_string())),
        Type::JSONB | Type::JSON => get::<serde_json::Value>(row, i)?
            .map(|j| serde_json::to_vec(&j).map(V::Jsonb))
            .transpose()?,
        Type::INT4_ARRAY => get::<Vec<Option<i32>>>(row, i)?.map(V::ArrayInt32),
        Type::INT8_ARRAY => get::<Vec<Option<i64>>>(row, i)?.map(V::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(V::ArrayStr)
        }
        Type::INTERVAL => get::<Interval>(row, i)?.map(|iv| V::Interval(iv.0)),
        _ => get::<Raw>(row, i)?.map(|r| V::Unsupported(r.0)),
    };
    Ok(v.unwrap_or(V::DbNull))
}

fn datetime(t: NaiveDateTime) -> pg::DbValue {
    pg::DbValue::Datetime((
        t.year(),
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.nanosecond(),
    ))
}

/// Postgres `interval` in its binary form.
struct Interval(pg::Interval);

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err("bad interval".into());
        }
        let micros = i64::from_be_bytes(raw[0..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..16].try_into()?);
        Ok(Interval(pg::Interval {
            micros,
            days,
            months,
        }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// Any other type, passed through as its binary wire form.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
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

    #[test]
    fn datetime_binds_to_timestamp_and_timestamptz_only() {
        let p = Param::DateTime(
            NaiveDate::from_ymd_opt(2024, 1, 2)
                .unwrap()
                .and_hms_opt(3, 4, 5)
                .unwrap(),
        );
        let mut buf = BytesMut::new();
        assert!(p.to_sql_checked(&Type::TIMESTAMPTZ, &mut buf).is_ok());
        assert!(p.to_sql_checked(&Type::TIMESTAMP, &mut buf).is_ok());
        assert!(p.to_sql_checked(&Type::TEXT, &mut buf).is_err());
    }
}
