//! Configuration: Spin variables turned into limits and a store choice.
//!
//! Every knob is a Spin variable declared in `spin.toml` (override one with
//! `SPIN_VARIABLE_<NAME>`). A variable the host does not define falls back to the
//! documented default, so the component also runs under a bare manifest; a variable
//! that is defined but unusable is an operator error and answers `500` naming it.

use std::time::Duration;

use spin_sdk::variables;

use crate::error::ApiError;
use crate::validate::Limits;

/// Where events are stored; `database_url` is only read when Postgres is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// Spin's SQLite database `default` (the zero-install default).
    Sqlite,
    /// A PostgreSQL server at this connection string.
    Postgres(String),
}

impl StoreChoice {
    /// Short name shown in `/stats`, `/health` and `/metrics`.
    pub fn name(&self) -> &'static str {
        match self {
            StoreChoice::Sqlite => "sqlite",
            StoreChoice::Postgres(_) => "postgres",
        }
    }
}

/// Everything a request needs to know about its deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which store to use.
    pub store: StoreChoice,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Per-event and per-batch limits for validation.
    pub limits: Limits,
    /// Above this many queued events, publishes answer `202` without consuming (0 = never check).
    pub max_backlog_events: u64,
    /// How dropped duplicates are logged.
    pub duplicate_log: DuplicateLog,
}

/// What maintenance needs besides [`Config`]; read only by `POST /maintenance`, so the publish
/// path pays no host call for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upkeep {
    /// Longest the request may spend (`work_budget_ms`).
    pub work_budget: Duration,
    /// Stored events older than this (by storage time) are removed; None = kept.
    pub retention: Option<Duration>,
    /// Markers older than this may be compacted (see docs/DESIGN.md).
    pub marker_horizon: Duration,
}

impl Upkeep {
    /// Reads the maintenance variables; errors name the offending variable.
    pub fn load() -> Result<Upkeep, ApiError> {
        Ok(Upkeep {
            work_budget: work_budget()?,
            retention: parse_duration("retention", &var("retention", "off")?)?,
            marker_horizon: parse_duration("marker_horizon", &var("marker_horizon", "1h")?)?
                .ok_or_else(|| {
                    ApiError::config("marker_horizon", "must be a duration such as \"1h\"")
                })?,
        })
    }
}

/// Longest a request may spend consuming queued work or maintaining the store
/// (`work_budget_ms`); read by the routes that consume, not by publishes.
pub fn work_budget() -> Result<Duration, ApiError> {
    Ok(Duration::from_millis(
        parse_count("work_budget_ms", &var("work_budget_ms", "2000")?, 1)? as u64,
    ))
}

/// Topics exported with their own label in `/metrics` (`max_topic_labels`).
pub fn max_topic_labels() -> Result<usize, ApiError> {
    parse_count("max_topic_labels", &var("max_topic_labels", "100")?, 0)
}

/// How dropped duplicates are logged: they are normal under at-least-once delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateLog {
    /// One WARN line per dropped duplicate (up to a sample per batch, then a count).
    Each,
    /// One INFO line per batch that dropped any.
    Summary,
    /// Nothing (the counters still count them).
    Off,
}

impl Config {
    /// Reads the variables every route needs (seven host calls, six on SQLite); errors name the
    /// offending variable. The rest are read by the routes that use them ([`Upkeep`],
    /// [`work_budget`], [`max_topic_labels`], [`setting`]).
    pub fn load() -> Result<Config, ApiError> {
        let store = match parse_store(&var("store", "sqlite")?)? {
            StoreKind::Sqlite => StoreChoice::Sqlite,
            StoreKind::Postgres => StoreChoice::Postgres(var(
                "database_url",
                "postgres://postgres@127.0.0.1:5432/edgelog?sslmode=disable",
            )?),
        };
        Ok(Config {
            store,
            max_body_bytes: parse_count("max_body_bytes", &var("max_body_bytes", "10485760")?, 1)?,
            limits: Limits {
                max_batch_events: parse_count(
                    "max_batch_events",
                    &var("max_batch_events", "10000")?,
                    1,
                )?,
                max_payload_bytes: parse_count(
                    "max_payload_bytes",
                    &var("max_payload_bytes", "65536")?,
                    1,
                )?,
            },
            max_backlog_events: parse_count(
                "max_backlog_events",
                &var("max_backlog_events", "0")?,
                0,
            )? as u64,
            duplicate_log: parse_duplicate_log(&var("duplicate_log", "summary")?)?,
        })
    }
}

/// The store variable without its connection string, so parsing is testable.
#[derive(Debug, PartialEq, Eq)]
enum StoreKind {
    Sqlite,
    Postgres,
}

/// A setting only one route reads (e.g. `otlp_topic_attribute`), so other routes do not pay a
/// host call for it; a blank value means the default.
pub fn setting(name: &str, default: &str) -> Result<String, ApiError> {
    let value = var(name, default)?;
    Ok(if value.trim().is_empty() {
        default.to_owned()
    } else {
        value.trim().to_owned()
    })
}

fn var(name: &str, default: &str) -> Result<String, ApiError> {
    match variables::get(name) {
        Ok(value) => Ok(value),
        Err(variables::Error::Undefined(_)) => Ok(default.to_owned()),
        Err(e) => Err(ApiError::config(name, e)),
    }
}

fn parse_store(value: &str) -> Result<StoreKind, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "sqlite" => Ok(StoreKind::Sqlite),
        "postgres" | "postgresql" => Ok(StoreKind::Postgres),
        _ => Err(ApiError::config(
            "store",
            format!("{value:?} is not a store; use \"sqlite\" or \"postgres\""),
        )),
    }
}

/// Parses `30d`, `12h`, `15m`, `45s` (or `off`/empty = None).
fn parse_duration(name: &str, value: &str) -> Result<Option<Duration>, ApiError> {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() || v == "off" || v == "0" {
        return Ok(None);
    }
    let bad = || {
        ApiError::config(
            name,
            format!("{value:?} is not a duration such as \"30d\", \"12h\", \"15m\" or \"off\""),
        )
    };
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    if seconds == 0 {
        return Err(bad());
    }
    Ok(Some(Duration::from_secs(seconds)))
}

fn parse_duplicate_log(value: &str) -> Result<DuplicateLog, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "each" => Ok(DuplicateLog::Each),
        "summary" | "" => Ok(DuplicateLog::Summary),
        "off" => Ok(DuplicateLog::Off),
        _ => Err(ApiError::config(
            "duplicate_log",
            format!("{value:?} is not one of \"each\", \"summary\", \"off\""),
        )),
    }
}

fn parse_count(name: &str, value: &str, min: usize) -> Result<usize, ApiError> {
    // Most values are plain digits: no trimming (a Unicode-aware search) needed.
    let digits = if value.bytes().all(|b| b.is_ascii_digit()) {
        value
    } else {
        value.trim()
    };
    match digits.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(ApiError::config(
            name,
            format!("{value:?} is not a whole number >= {min}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names() {
        assert_eq!(parse_store("sqlite").unwrap(), StoreKind::Sqlite);
        assert_eq!(parse_store(" Postgres ").unwrap(), StoreKind::Postgres);
        let err = parse_store("mysql").unwrap_err();
        assert_eq!((err.status, err.code), (500, "config_error"));
        assert!(err.message.contains("\"store\""));
    }

    #[test]
    fn durations() {
        let d = |v| parse_duration("retention", v).unwrap();
        assert_eq!(d("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(d(" 12H "), Some(Duration::from_secs(12 * 3600)));
        assert_eq!(d("15m"), Some(Duration::from_secs(900)));
        assert_eq!(d("45s"), Some(Duration::from_secs(45)));
        assert_eq!(d("off"), None);
        assert_eq!(d(""), None);
        for bad in ["30", "d", "1w", "-1d", "0d", "1.5h"] {
            let err = parse_duration("retention", bad).unwrap_err();
            assert!(err.message.contains("\"retention\""), "{bad}");
        }
    }

    #[test]
    fn duplicate_log_settings() {
        assert_eq!(parse_duplicate_log("Each").unwrap(), DuplicateLog::Each);
        assert_eq!(parse_duplicate_log("off").unwrap(), DuplicateLog::Off);
        assert!(parse_duplicate_log("loud").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(
            parse_count("max_body_bytes", " 10485760 ", 1).unwrap(),
            10_485_760
        );
        assert_eq!(parse_count("max_backlog_events", "0", 0).unwrap(), 0);
        for bad in ["0", "-1", "ten", "", "1.5"] {
            let err = parse_count("max_batch_events", bad, 1).unwrap_err();
            assert!(err.message.contains("max_batch_events"), "{bad}");
        }
    }
}
