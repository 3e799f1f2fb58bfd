//! Configuration: Spin variables turned into limits and a store choice.
//!
//! Every knob is a Spin variable declared in `spin.toml` (override one with
//! `SPIN_VARIABLE_<NAME>`). A variable the host does not define falls back to the
//! documented default, so the component also runs under a bare manifest; a variable
//! that is defined but unusable is an operator error and answers `500` naming it.

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
}

impl Config {
    /// Reads the Spin variables; errors name the offending variable.
    pub fn load() -> Result<Config, ApiError> {
        let store = match parse_store(&var("store", "sqlite")?)? {
            StoreKind::Sqlite => StoreChoice::Sqlite,
            StoreKind::Postgres => StoreChoice::Postgres(var(
                "database_url",
                "postgres://postgres@127.0.0.1:5432/edgelog",
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
        })
    }
}

/// The store variable without its connection string, so parsing is testable.
#[derive(Debug, PartialEq, Eq)]
enum StoreKind {
    Sqlite,
    Postgres,
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

fn parse_count(name: &str, value: &str, min: usize) -> Result<usize, ApiError> {
    match value.trim().parse::<usize>() {
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
