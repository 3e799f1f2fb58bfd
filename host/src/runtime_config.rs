//! Spin's runtime-config file (`--runtime-config-file`): where key-value stores and SQLite
//! databases live. Without one, edge-host does what `spin up` does: the `default` key-value store
//! and the `default` SQLite database are files under the state directory (`.spin/`).

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where one key-value store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum KvConfig {
    /// A SQLite file (Spin's `type = "spin"` and the default).
    Sqlite(PathBuf),
    /// A Redis server (Spin's `type = "redis"`).
    Redis(String),
}

/// Resolved runtime configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Key-value stores by label.
    pub key_value: BTreeMap<String, KvConfig>,
    /// SQLite databases by label.
    pub sqlite: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawStore>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

impl RuntimeConfig {
    /// Builds the configuration from an optional file; `state_dir` holds the defaults.
    pub fn load(file: Option<&Path>, state_dir: &Path) -> Result<Self> {
        let mut config = RuntimeConfig {
            key_value: BTreeMap::from([(
                "default".to_string(),
                KvConfig::Sqlite(state_dir.join("sqlite_key_value.db")),
            )]),
            sqlite: BTreeMap::from([("default".to_string(), state_dir.join("sqlite_db.db"))]),
        };
        let Some(file) = file else {
            return Ok(config);
        };
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read runtime config {}", file.display()))?;
        let raw: RawConfig = toml::from_str(&text)
            .with_context(|| format!("invalid runtime config {}", file.display()))?;
        let base = file.parent().unwrap_or(Path::new("."));
        for key in raw.other.keys() {
            tracing::warn!("runtime config: `{key}` is not supported by edge-host and is ignored");
        }
        for (label, store) in raw.key_value_store {
            let kv = match store.kind.as_str() {
                "spin" => KvConfig::Sqlite(match store.path {
                    Some(p) => base.join(p),
                    None => state_dir.join(format!("{label}_key_value.db")),
                }),
                "redis" => KvConfig::Redis(store.url.with_context(|| {
                    format!("key_value_store.{label}: type \"redis\" needs `url`")
                })?),
                other => bail!(
                    "key_value_store.{label}: type \"{other}\" is not supported (use \"spin\" or \"redis\")"
                ),
            };
            config.key_value.insert(label, kv);
        }
        for (label, db) in raw.sqlite_database {
            if db.kind != "spin" {
                bail!(
                    "sqlite_database.{label}: type \"{}\" is not supported (use \"spin\")",
                    db.kind
                );
            }
            let path = match db.path {
                Some(p) => base.join(p),
                None => state_dir.join(format!("{label}.db")),
            };
            config.sqlite.insert(label, path);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_in_the_state_dir() {
        let c = RuntimeConfig::load(None, Path::new("/s")).unwrap();
        assert_eq!(
            c.key_value["default"],
            KvConfig::Sqlite("/s/sqlite_key_value.db".into())
        );
        assert_eq!(c.sqlite["default"], PathBuf::from("/s/sqlite_db.db"));
    }

    #[test]
    fn redis_and_spin_stores_parse_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.toml");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379/3\"\n\
             [key_value_store.other]\ntype = \"spin\"\npath = \"o.db\"\n\
             [sqlite_database.default]\ntype = \"spin\"\npath = \"data/app.db\"\n",
        )
        .unwrap();
        let c = RuntimeConfig::load(Some(&file), Path::new("/s")).unwrap();
        assert_eq!(
            c.key_value["default"],
            KvConfig::Redis("redis://127.0.0.1:6379/3".into())
        );
        assert_eq!(
            c.key_value["other"],
            KvConfig::Sqlite(dir.path().join("o.db"))
        );
        assert_eq!(c.sqlite["default"], dir.path().join("data/app.db"));
    }

    #[test]
    fn unknown_store_type_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rc.toml");
        std::fs::write(
            &file,
            "[key_value_store.default]\ntype = \"azure_cosmos\"\n",
        )
        .unwrap();
        let err = RuntimeConfig::load(Some(&file), Path::new("/s")).unwrap_err();
        assert!(format!("{err:#}").contains("not supported"));
    }
}
