//! How `spin:postgres` values cross to `tokio-postgres` and back, the way Spin maps them: a guest
//! parameter binds to whatever type the server expects (a date-time to both `timestamp` and
//! `timestamptz`), and a column comes back as the `DbValue` Spin would give for its type.

use crate::bindings::spin::postgres4_0_0::postgres as pg;
use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use std::error::Error as StdError;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// A guest parameter, encoded for whatever type the server expects (so a date-time binds to
/// both `timestamp` and `timestamptz`, as in Spin).
#[derive(Debug)]
pub(crate) enum Param {
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

pub(crate) fn data_type(ty: &Type) -> pg::DbDataType {
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

pub(crate) fn db_value(
    row: &tokio_postgres::Row,
    i: usize,
    ty: &Type,
) -> Result<pg::DbValue, BoxError> {
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
