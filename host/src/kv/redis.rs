//! The Redis key-value backend (Spin's `type = "redis"`): plain keys in the configured database,
//! `INCRBY` for increment and a Lua script for compare-and-swap, both atomic on the server, so any
//! number of host processes can share one store.

use anyhow::{Context, Result};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// One Redis-backed store label.
pub struct RedisKv {
    url: String,
    conn: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for RedisKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisKv").finish_non_exhaustive()
    }
}

const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

impl RedisKv {
    /// A store at `url` (`redis://host:port/db`); connects on first use.
    pub fn new(url: &str) -> Self {
        RedisKv {
            url: url.to_string(),
            conn: OnceCell::new(),
        }
    }

    async fn conn(&self) -> Result<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.url.as_str())
                    .context("invalid Redis URL in runtime config")?;
                ConnectionManager::new(client)
                    .await
                    .context("cannot connect to Redis")
            })
            .await?;
        Ok(conn.clone())
    }

    /// Value of `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.conn().await?.get(key).await?)
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let () = self.conn().await?.set(key, value).await?;
        Ok(())
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let _: i64 = self.conn().await?.del(key).await?;
        Ok(())
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.conn().await?.exists(key).await?)
    }

    /// Every key of the database (as Spin does, with `KEYS *`).
    pub async fn keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self.conn().await?.keys("*").await?;
        keys.sort();
        Ok(keys)
    }

    /// `INCRBY key delta`.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        Ok(self.conn().await?.incr(key, delta).await?)
    }

    /// Sets `key` to `new` only if its value is still `expected` (`None` = absent).
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool> {
        let swapped: i64 = redis::Script::new(CAS_SCRIPT)
            .key(key)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .invoke_async(&mut self.conn().await?)
            .await?;
        Ok(swapped == 1)
    }

    /// `MGET`.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(keys.iter().cloned().zip(values).collect())
    }

    /// `MSET` (atomic).
    pub async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let () = self.conn().await?.mset(pairs).await?;
        Ok(())
    }

    /// `DEL k1 k2 …`.
    pub async fn delete_many(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let _: i64 = self.conn().await?.del(keys).await?;
        Ok(())
    }
}
