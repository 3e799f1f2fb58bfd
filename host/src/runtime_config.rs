//! Spin's runtime-config file (`--runtime-config-file`) and state directory (`--state-dir`):
//! where key-value stores and SQLite databases live. Paths are resolved with Spin 4.0.2's rules
//! (`crates/runtime-config/src/lib.rs`, `crates/sqlite`, `crates/key-value-spin`), so an app's
//! files land in the same places on `edge-host up` and on `spin up`:
//! - the state directory is `--state-dir` (empty: none), else the file's `state_dir` key (empty:
//!   none), else `.spin/` beside the manifest; a given one is relative to the working directory;
//! - the `default` key-value store is `<state dir>/sqlite_key_value.db` and the `default` SQLite
//!   database `<state dir>/sqlite_db.db`, unless the file configures those labels;
//! - a relative `path` of a `type = "spin"` key-value store is relative to the runtime-config
//!   file's directory, and so is the default store's path when the state directory is relative
//!   (Spin rebases it there too);
//! - a relative `path` of a `type = "spin"` SQLite database is relative to the working
//!   directory (Spin's `sqlite_config_resolver` uses `current_dir()`), whatever the file's place;
//! - absolute paths are used as they are.
//!
//! Where Spin would keep a store in memory (a `type = "spin"` store without `path`, or a default
//! store with no state directory), edge-host refuses to start a component that uses it: it keeps
//! every store in a file, and data that silently outlived a restart would differ from Spin.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the `default` key-value store in the state directory (Spin's).
const DEFAULT_KV_FILE: &str = "sqlite_key_value.db";
/// File name of the `default` SQLite database in the state directory (Spin's).
const DEFAULT_SQLITE_FILE: &str = "sqlite_db.db";

/// Where one key-value store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum KvConfig {
    /// A SQLite file (Spin's `type = "spin"` and the default).
    Sqlite(PathBuf),
    /// A Redis server (Spin's `type = "redis"`).
    Redis(String),
    /// Where Spin keeps the store in memory; edge-host does not serve it.
    InMemory,
}

/// Where one SQLite database lives.
#[derive(Debug, Clone, PartialEq)]
pub enum SqliteConfig {
    /// A file.
    File(PathBuf),
    /// Where Spin keeps the database in memory; edge-host does not serve it.
    InMemory,
}

/// Resolved runtime configuration.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Key-value stores by label.
    pub key_value: BTreeMap<String, KvConfig>,
    /// SQLite databases by label.
    pub sqlite: BTreeMap<String, SqliteConfig>,
    /// The state directory (absolute), if there is one.
    pub state_dir: Option<PathBuf>,
}

/// What start-up knows when it resolves the configuration.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// `--runtime-config-file`, as given.
    pub file: Option<&'a Path>,
    /// The manifest's directory, as given (the default state directory is beside it).
    pub app_dir: &'a Path,
    /// `--state-dir`, as given (`Some("")` means no state directory).
    pub state_dir: Option<&'a str>,
    /// The working directory, against which every relative path is finally taken.
    pub cwd: &'a Path,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawStore>,
    #[serde(default)]
    state_dir: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    url: Option<String>,
}

impl RuntimeConfig {
    /// Reads the file (if any) and resolves every store's place.
    pub fn load(inputs: &Inputs<'_>) -> Result<Self> {
        let raw = match inputs.file {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read runtime config {}", file.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("invalid runtime config {}", file.display()))?
            }
            None => RawConfig {
                key_value_store: BTreeMap::new(),
                sqlite_database: BTreeMap::new(),
                state_dir: None,
                other: BTreeMap::new(),
            },
        };
        Self::resolve(raw, inputs)
    }

    fn resolve(raw: RawConfig, inputs: &Inputs<'_>) -> Result<Self> {
        for key in raw.other.keys() {
            tracing::warn!("runtime config: `{key}` is not supported by edge-host and is ignored");
        }
        let absolute = |p: &Path| inputs.cwd.join(p);
        // Spin: the flag, else the file's key, else `.spin` beside the manifest; "" means none.
        let given = inputs.state_dir.or(raw.state_dir.as_deref());
        let state_dir = match given {
            Some("") => None,
            Some(dir) => Some(absolute(Path::new(dir))),
            None => Some(inputs.app_dir.join(".spin")),
        };
        // A key-value `path` is taken relative to the runtime-config file's directory.
        let kv_base = inputs.file.map(|f| f.parent().unwrap_or(Path::new("")));
        let kv_path = |p: &Path| match kv_base {
            Some(base) if p.is_relative() => absolute(&base.join(p)),
            _ => absolute(p),
        };
        let mut key_value = BTreeMap::from([(
            "default".to_string(),
            match &state_dir {
                // The default store goes through the same resolution as a configured one, so a
                // relative state dir (a relative manifest path) is rebased on the file's dir.
                Some(dir) => KvConfig::Sqlite(kv_path(&dir.join(DEFAULT_KV_FILE))),
                None => KvConfig::InMemory,
            },
        )]);
        let mut sqlite = BTreeMap::from([(
            "default".to_string(),
            match &state_dir {
                Some(dir) => SqliteConfig::File(absolute(&dir.join(DEFAULT_SQLITE_FILE))),
                None => SqliteConfig::InMemory,
            },
        )]);
        for (label, store) in raw.key_value_store {
            let kv = match store.kind.as_str() {
                "spin" => store
                    .path
                    .map_or(KvConfig::InMemory, |p| KvConfig::Sqlite(kv_path(&p))),
                "redis" => KvConfig::Redis(store.url.with_context(|| {
                    format!("key_value_store.{label}: type \"redis\" needs `url`")
                })?),
                other => bail!(
                    "key_value_store.{label}: type \"{other}\" is not supported (use \"spin\" or \"redis\")"
                ),
            };
            key_value.insert(label, kv);
        }
        for (label, db) in raw.sqlite_database {
            if db.kind != "spin" {
                bail!(
                    "sqlite_database.{label}: type \"{}\" is not supported (use \"spin\")",
                    db.kind
                );
            }
            // Relative to the working directory, not to the file: Spin 4.0.2's rule.
            let location = db
                .path
                .map_or(SqliteConfig::InMemory, |p| SqliteConfig::File(absolute(&p)));
            sqlite.insert(label, location);
        }
        Ok(RuntimeConfig {
            key_value,
            sqlite,
            state_dir: state_dir.map(|d| absolute(&d)),
        })
    }

    /// Refuses a store Spin would keep in memory, for a component that declares it.
    pub fn check_files(&self, key_value: &[String], sqlite: &[String]) -> Result<()> {
        let memory = |what: &str, label: &str| {
            let why = if label == "default" && self.state_dir.is_none() {
                "there is no state directory (`--state-dir \"\"`)".to_string()
            } else {
                format!("its [{what}.{label}] entry has no `path`")
            };
            anyhow::anyhow!(
                "{what} `{label}`: {why}, so Spin would keep it in memory; edge-host keeps \
                 stores in files only: give it a `path` (or a state directory)"
            )
        };
        for label in key_value {
            if self.key_value.get(label) == Some(&KvConfig::InMemory) {
                return Err(memory("key_value_store", label));
            }
        }
        for label in sqlite {
            if self.sqlite.get(label) == Some(&SqliteConfig::InMemory) {
                return Err(memory("sqlite_database", label));
            }
        }
        Ok(())
    }

    /// One line per file store, so the operator sees where the data goes.
    pub fn log_locations(&self) {
        for (label, kv) in &self.key_value {
            match kv {
                KvConfig::Sqlite(p) => {
                    tracing::info!("key-value store `{label}`: SQLite file {}", p.display())
                }
                KvConfig::Redis(_) => tracing::info!("key-value store `{label}`: Redis"),
                KvConfig::InMemory => {}
            }
        }
        for (label, db) in &self.sqlite {
            if let SqliteConfig::File(p) = db {
                tracing::info!("SQLite database `{label}`: {}", p.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml: &str, file: Option<&str>, app: &str, state: Option<&str>) -> RuntimeConfig {
        let raw: RawConfig = toml::from_str(toml).unwrap();
        let inputs = Inputs {
            file: file.map(Path::new),
            app_dir: Path::new(app),
            state_dir: state,
            cwd: Path::new("/cwd"),
        };
        RuntimeConfig::resolve(raw, &inputs).unwrap()
    }

    fn kv_file(c: &RuntimeConfig, label: &str) -> PathBuf {
        match &c.key_value[label] {
            KvConfig::Sqlite(p) => p.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn db_file(c: &RuntimeConfig, label: &str) -> PathBuf {
        match &c.sqlite[label] {
            SqliteConfig::File(p) => p.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_live_in_the_state_dir_beside_the_manifest() {
        let c = resolve("", None, "/app", None);
        assert_eq!(
            kv_file(&c, "default"),
            Path::new("/app/.spin/sqlite_key_value.db")
        );
        assert_eq!(db_file(&c, "default"), Path::new("/app/.spin/sqlite_db.db"));
        // A relative manifest path: `.spin` beside it, from the working directory.
        let c = resolve("", None, "sub", None);
        assert_eq!(
            kv_file(&c, "default"),
            Path::new("/cwd/sub/.spin/sqlite_key_value.db")
        );
    }

    #[test]
    fn a_given_state_dir_is_relative_to_the_working_directory() {
        let c = resolve("", None, "/app", Some("st"));
        assert_eq!(db_file(&c, "default"), Path::new("/cwd/st/sqlite_db.db"));
        assert_eq!(c.state_dir.as_deref(), Some(Path::new("/cwd/st")));
        // The file's `state_dir` applies when the flag is absent; the flag wins.
        let toml = "state_dir = \"from-file\"\n";
        let c = resolve(toml, Some("/rc/rc.toml"), "/app", None);
        assert_eq!(
            db_file(&c, "default"),
            Path::new("/cwd/from-file/sqlite_db.db")
        );
        let c = resolve(toml, Some("/rc/rc.toml"), "/app", Some("/flag"));
        assert_eq!(db_file(&c, "default"), Path::new("/flag/sqlite_db.db"));
    }

    #[test]
    fn kv_paths_follow_the_file_and_sqlite_paths_the_working_directory() {
        let toml = "[key_value_store.default]\ntype = \"spin\"\npath = \"../kv/q.db\"\n\
                    [key_value_store.abs]\ntype = \"spin\"\npath = \"/abs/kv.db\"\n\
                    [sqlite_database.default]\ntype = \"spin\"\npath = \"data/ev.db\"\n\
                    [sqlite_database.abs]\ntype = \"spin\"\npath = \"/abs/db.db\"\n";
        let c = resolve(toml, Some("conf/rc.toml"), "/app", None);
        assert_eq!(kv_file(&c, "default"), Path::new("/cwd/conf/../kv/q.db"));
        assert_eq!(kv_file(&c, "abs"), Path::new("/abs/kv.db"));
        assert_eq!(db_file(&c, "default"), Path::new("/cwd/data/ev.db"));
        assert_eq!(db_file(&c, "abs"), Path::new("/abs/db.db"));
        // A file named without a directory: its directory is the working directory.
        let c = resolve(toml, Some("rc.toml"), "/app", None);
        assert_eq!(kv_file(&c, "default"), Path::new("/cwd/../kv/q.db"));
    }

    #[test]
    fn a_relative_default_state_dir_is_rebased_on_the_file_for_the_default_kv_store() {
        // `spin up --from spin.toml --runtime-config-file conf/rc.toml` with no default store in
        // the file: Spin 4.0.2 puts the default key-value store under conf/.spin/, the default
        // SQLite database under ./.spin/.
        let toml = "[sqlite_database.other]\ntype = \"spin\"\npath = \"o.db\"\n";
        let c = resolve(toml, Some("conf/rc.toml"), ".", None);
        assert_eq!(
            kv_file(&c, "default"),
            Path::new("/cwd/conf/./.spin/sqlite_key_value.db")
        );
        assert_eq!(
            db_file(&c, "default"),
            Path::new("/cwd/./.spin/sqlite_db.db")
        );
    }

    #[test]
    fn stores_spin_keeps_in_memory_are_refused_when_used() {
        let toml = "[key_value_store.mem]\ntype = \"spin\"\n[sqlite_database.m]\ntype = \"spin\"\n";
        let c = resolve(toml, Some("/rc/rc.toml"), "/app", None);
        assert_eq!(c.key_value["mem"], KvConfig::InMemory);
        assert!(
            c.check_files(&["default".into()], &["default".into()])
                .is_ok()
        );
        let err = c.check_files(&["mem".into()], &[]).unwrap_err().to_string();
        assert!(
            err.contains("key_value_store `mem`") && err.contains("`path`"),
            "{err}"
        );
        assert!(c.check_files(&[], &["m".into()]).is_err());
        let c = resolve("", None, "/app", Some(""));
        let err = c
            .check_files(&["default".into()], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no state directory"), "{err}");
    }

    #[test]
    fn redis_stores_and_unknown_types() {
        let toml =
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379/3\"\n";
        let c = resolve(toml, Some("/rc/rc.toml"), "/app", None);
        assert_eq!(
            c.key_value["default"],
            KvConfig::Redis("redis://127.0.0.1:6379/3".into())
        );
        let raw: RawConfig =
            toml::from_str("[key_value_store.default]\ntype = \"azure_cosmos\"\n").unwrap();
        let inputs = Inputs {
            file: Some(Path::new("/rc/rc.toml")),
            app_dir: Path::new("/app"),
            state_dir: None,
            cwd: Path::new("/cwd"),
        };
        let err = RuntimeConfig::resolve(raw, &inputs).unwrap_err();
        assert!(format!("{err:#}").contains("not supported"));
    }
}
