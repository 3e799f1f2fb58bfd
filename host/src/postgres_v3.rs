//! `spin:postgres/postgres@3.0.0`, served by the 4.0.0 implementation in `postgres.rs` (3.0.0 is
//! a subset of it): parameters are converted up, results down. Values and column types 3.0.0
//! cannot express become `unsupported` and `other`; a Postgres error becomes its text.

use crate::bindings::spin::postgres3_0_0::postgres as v3;
use crate::bindings::spin::postgres4_0_0::postgres as v4;
use crate::postgres::PgHandle;
use crate::state::RequestState;
use wasmtime::component::Resource;

impl v3::Host for RequestState {}

impl v3::HostConnection for RequestState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgHandle>, v3::Error>> {
        Ok(v4::HostConnection::open(self, address)
            .await?
            .map_err(error))
    }

    async fn query(
        &mut self,
        conn: Resource<PgHandle>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<v3::RowSet, v3::Error>> {
        let params = params.into_iter().map(parameter).collect();
        let result = v4::HostConnection::query(self, conn, statement, params).await?;
        Ok(result.map(row_set).map_err(error))
    }

    async fn execute(
        &mut self,
        conn: Resource<PgHandle>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, v3::Error>> {
        let params = params.into_iter().map(parameter).collect();
        let result = v4::HostConnection::execute(self, conn, statement, params).await?;
        Ok(result.map_err(error))
    }

    async fn drop(&mut self, conn: Resource<PgHandle>) -> wasmtime::Result<()> {
        v4::HostConnection::drop(self, conn).await
    }
}

fn parameter(p: v3::ParameterValue) -> v4::ParameterValue {
    use v3::ParameterValue as P3;
    use v4::ParameterValue as P4;
    match p {
        P3::Boolean(b) => P4::Boolean(b),
        P3::Int8(i) => P4::Int8(i),
        P3::Int16(i) => P4::Int16(i),
        P3::Int32(i) => P4::Int32(i),
        P3::Int64(i) => P4::Int64(i),
        P3::Floating32(f) => P4::Floating32(f),
        P3::Floating64(f) => P4::Floating64(f),
        P3::Str(s) => P4::Str(s),
        P3::Binary(b) => P4::Binary(b),
        P3::Date(d) => P4::Date(d),
        P3::Time(t) => P4::Time(t),
        P3::Datetime(dt) => P4::Datetime(dt),
        P3::Timestamp(t) => P4::Timestamp(t),
        P3::DbNull => P4::DbNull,
    }
}

fn row_set(rs: v4::RowSet) -> v3::RowSet {
    v3::RowSet {
        columns: rs
            .columns
            .into_iter()
            .map(|c| v3::Column {
                name: c.name,
                data_type: data_type(c.data_type),
            })
            .collect(),
        rows: rs
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(value).collect())
            .collect(),
    }
}

fn data_type(t: v4::DbDataType) -> v3::DbDataType {
    use v3::DbDataType as T3;
    use v4::DbDataType as T4;
    match t {
        T4::Boolean => T3::Boolean,
        T4::Int8 => T3::Int8,
        T4::Int16 => T3::Int16,
        T4::Int32 => T3::Int32,
        T4::Int64 => T3::Int64,
        T4::Floating32 => T3::Floating32,
        T4::Floating64 => T3::Floating64,
        T4::Str => T3::Str,
        T4::Binary => T3::Binary,
        T4::Date => T3::Date,
        T4::Time => T3::Time,
        T4::Datetime => T3::Datetime,
        T4::Timestamp => T3::Timestamp,
        _ => T3::Other,
    }
}

fn value(v: v4::DbValue) -> v3::DbValue {
    use v3::DbValue as V3;
    use v4::DbValue as V4;
    match v {
        V4::Boolean(b) => V3::Boolean(b),
        V4::Int8(i) => V3::Int8(i),
        V4::Int16(i) => V3::Int16(i),
        V4::Int32(i) => V3::Int32(i),
        V4::Int64(i) => V3::Int64(i),
        V4::Floating32(f) => V3::Floating32(f),
        V4::Floating64(f) => V3::Floating64(f),
        V4::Str(s) => V3::Str(s),
        V4::Binary(b) => V3::Binary(b),
        V4::Date(d) => V3::Date(d),
        V4::Time(t) => V3::Time(t),
        V4::Datetime(dt) => V3::Datetime(dt),
        V4::Timestamp(t) => V3::Timestamp(t),
        V4::DbNull => V3::DbNull,
        _ => V3::Unsupported,
    }
}

fn error(e: v4::Error) -> v3::Error {
    use v3::Error as E3;
    use v4::Error as E4;
    match e {
        E4::ConnectionFailed(s) => E3::ConnectionFailed(s),
        E4::BadParameter(s) => E3::BadParameter(s),
        E4::QueryFailed(v4::QueryError::DbError(d)) => E3::QueryFailed(d.as_text),
        E4::QueryFailed(v4::QueryError::Text(t)) => E3::QueryFailed(t),
        E4::ValueConversionFailed(s) => E3::ValueConversionFailed(s),
        E4::Other(s) => E3::Other(s),
    }
}
