//! SQLite values in and out: the store's data as host parameters, and host rows read back as
//! the store's records, with a row of an unexpected shape reported as an error, not a panic.

use spin_sdk::sqlite3::Value;

use super::super::sql::Param;
use super::super::{DeadLetter, StoreError, StoredEvent};
use crate::validate::Level;

/// A listing query's parameter as the SQLite host takes it.
pub(super) fn bind(p: &Param<'_>) -> Value {
    match p {
        Param::Text(s) => Value::Text((*s).to_owned()),
        Param::Int(n) => Value::Integer(*n),
        Param::Owned(s) => Value::Text(s.clone()),
    }
}

/// An integer column (NULL reads as 0); any other value is an unexpected row.
pub(super) fn int(v: Option<&Value>) -> Result<i64, StoreError> {
    match v {
        Some(Value::Integer(n)) => Ok(*n),
        Some(Value::Null) => Ok(0),
        other => Err(StoreError::new(
            "unexpected sqlite value",
            format!("expected integer, got {other:?}"),
        )),
    }
}

/// A text column; any other value is an unexpected row.
pub(super) fn text(v: Option<&Value>) -> Result<String, StoreError> {
    match v {
        Some(Value::Text(s)) => Ok(s.clone()),
        other => Err(StoreError::new(
            "unexpected sqlite value",
            format!("expected text, got {other:?}"),
        )),
    }
}

/// A count read from an integer column (a negative one reads as 0).
pub(super) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A text parameter.
pub(super) fn t(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A count as an integer parameter (saturating at `i64::MAX`).
pub(super) fn n(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// A text column holding a JSON array of strings.
pub(super) fn json_list(v: Option<&Value>) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(&text(v)?)
        .map_err(|e| StoreError::new("unexpected sqlite value", e.to_string()))
}

/// A dead-letter row in `LETTER_COLUMNS` order, with `batch` after them when asked for.
pub(super) fn letter(r: &[Value], with_batch: bool) -> Result<DeadLetter, StoreError> {
    let v = |i| r.get(i);
    Ok(DeadLetter {
        seq: int(v(0))?,
        id: text(v(1))?,
        received: count(int(v(2))?),
        reason: text(v(3))?,
        attempts: u32::try_from(int(v(4))?).unwrap_or(0),
        failed_at: text(v(5))?,
        status: text(v(6))?,
        batch: if with_batch { text(v(7)).ok() } else { None },
    })
}

/// An event row in `LIST_COLUMNS` order.
pub(super) fn stored_event(r: &[Value]) -> Result<StoredEvent, StoreError> {
    let v = |i| r.get(i);
    let payload = serde_json::value::RawValue::from_string(text(v(5))?)
        .map_err(|e| StoreError::new("stored payload is not JSON", e.to_string()))?;
    Ok(StoredEvent {
        id: int(v(0))?,
        topic: text(v(1))?,
        event_id: text(v(2))?,
        timestamp: text(v(3))?,
        source: text(v(4))?,
        level: Level::from_rank(int(v(7))?),
        payload,
        processed_at: text(v(6))?,
    })
}
