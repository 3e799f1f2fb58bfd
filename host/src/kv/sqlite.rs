//! The SQLite key-value backend (Spin's default and `type = "spin"`): one table keyed by
//! `(store, key)`, the same layout `spin up` uses, so a state directory works with both hosts.
//! Increment and compare-and-swap are single transactions under SQLite's write lock, hence
//! atomic across requests and across host processes sharing the file.

use crate::sqlite_pool::{SqlitePool, blocking};
use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, params};
use std::path::Path;
use std::sync::OnceLock;

/// One SQLite-backed store label.
#[derive(Debug)]
pub struct SqliteKv {
    store: String,
    pool: SqlitePool,
    ready: OnceLock<()>,
}

impl SqliteKv {
    /// A store named `label` kept in the file at `path`.
    pub fn new(label: &str, path: &Path) -> Self {
        SqliteKv {
            store: label.to_string(),
            pool: SqlitePool::new(path),
            ready: OnceLock::new(),
        }
    }

    /// Like `with`, on the file's writer connection, holding its write turn (see
    /// `sqlite_pool`) for the duration.
    async fn write<R>(
        &self,
        f: impl FnOnce(&rusqlite::Connection, &str) -> Result<R>,
    ) -> Result<R> {
        let Some(mut turn) = self.pool.write_turn().await else {
            return self.with(f);
        };
        blocking(|| {
            let conn = turn.conn(&self.pool)?;
            self.ensure_table(conn)?;
            f(conn, &self.store)
        })
    }

    fn with<R>(&self, f: impl FnOnce(&rusqlite::Connection, &str) -> Result<R>) -> Result<R> {
        blocking(|| {
            let conn = self.pool.get()?;
            self.ensure_table(&conn)?;
            f(&conn, &self.store)
        })
    }

    /// Creates Spin's key-value table on first use.
    fn ensure_table(&self, conn: &rusqlite::Connection) -> Result<()> {
        if self.ready.get().is_none() {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS spin_key_value (
                    store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                    PRIMARY KEY (store, key))",
            )
            .context("cannot create key-value table")?;
            let _ = self.ready.set(());
        }
        Ok(())
    }

    /// Value of `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c, s| {
            Ok(
                c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .query_row(params![s, key], |r| r.get(0))
                    .optional()?,
            )
        })
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(|c, s| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![s, key, value])?;
            Ok(())
        })
        .await
    }

    /// Deletes `key` (no error when absent).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.write(|c, s| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .execute(params![s, key])?;
            Ok(())
        })
        .await
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.get(key).await?.is_some())
    }

    /// Every key of the store.
    pub async fn keys(&self) -> Result<Vec<String>> {
        self.with(|c, s| {
            let mut stmt =
                c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            let keys = stmt
                .query_map(params![s], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(keys)
        })
    }

    /// Adds `delta` to the decimal counter at `key` (absent = 0) and returns the new value.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.write(|c, s| {
            let mut conn_tx = immediate(c)?;
            let tx = conn_tx.tx();
            let current: Option<Vec<u8>> = tx
                .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                .query_row(params![s, key], |r| r.get(0))
                .optional()?;
            let next = super::parse_counter(current.as_deref())?
                .checked_add(delta)
                .context("counter overflow")?;
            tx.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![s, key, next.to_string().into_bytes()])?;
            conn_tx.commit()?;
            Ok(next)
        })
        .await
    }

    /// Sets `key` to `new` only if its value is still `expected` (`None` = absent).
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool> {
        self.write(|c, s| {
            let changed = match expected {
                None => c
                    .prepare_cached(
                        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (store, key) DO NOTHING",
                    )?
                    .execute(params![s, key, new])?,
                Some(old) => c
                    .prepare_cached(
                        "UPDATE spin_key_value SET value = ?4
                         WHERE store = ?1 AND key = ?2 AND value = ?3",
                    )?
                    .execute(params![s, key, old, new])?,
            };
            Ok(changed == 1)
        })
        .await
    }

    /// Values of several keys in one read.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        // As Spin 4.0.2 answers (`key IN rarray(…)` over the primary key): the keys that exist,
        // each once, in key order; missing keys are left out.
        self.with(|c, s| {
            let mut stmt =
                c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
            let mut found = std::collections::BTreeMap::new();
            for k in keys {
                if let Some(v) = stmt.query_row(params![s, k], |r| r.get(0)).optional()? {
                    found.insert(k.clone(), Some(v));
                }
            }
            Ok(found.into_iter().collect())
        })
    }

    /// Sets several keys in one transaction.
    pub async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        self.write(|c, s| {
            let mut conn_tx = immediate(c)?;
            {
                let mut stmt = conn_tx.tx().prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                )?;
                for (k, v) in pairs {
                    stmt.execute(params![s, k, v])?;
                }
            }
            conn_tx.commit()
        })
        .await
    }

    /// Deletes several keys in one transaction.
    pub async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.write(|c, s| {
            let mut conn_tx = immediate(c)?;
            {
                let mut stmt = conn_tx
                    .tx()
                    .prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?;
                for k in keys {
                    stmt.execute(params![s, k])?;
                }
            }
            conn_tx.commit()
        })
        .await
    }
}

/// An immediate (write-locking) transaction on a shared `&Connection`.
struct ImmediateTx<'c> {
    conn: &'c rusqlite::Connection,
    done: bool,
}

fn immediate(conn: &rusqlite::Connection) -> Result<ImmediateTx<'_>> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    Ok(ImmediateTx { conn, done: false })
}

impl ImmediateTx<'_> {
    fn tx(&mut self) -> &rusqlite::Connection {
        self.conn
    }
    fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

impl Drop for ImmediateTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
