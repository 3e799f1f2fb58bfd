//! The Redis key-value backend (Spin's `type = "redis"`): plain keys in the configured database,
//! `INCRBY` for increment and a Lua script for compare-and-swap, both atomic on the server, so any
//! number of host processes can share one store.
//!
//! Every call is bounded: a connection attempt gives up after [`CONNECT_TIMEOUT`], a command
//! after [`RESPONSE_TIMEOUT`], and the whole call (reconnect and one retry included) after
//! [`CALL_BUDGET`], so a Redis that is down or silent costs a guest a key-value error within
//! about a second instead of a hung request. Reconnecting makes one attempt per call and never
//! backs off, so service resumes with the first call after Redis is back.

use anyhow::{Context, Result, anyhow};
use redis::AsyncCommands;
use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::time::Duration;

/// A connection attempt (TCP connect plus handshake) that takes longer fails: a blackholed
/// address must not hold a request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// A command Redis has not answered in this long fails: a stopped or partitioned server must not
/// hold a request. Far above any answer a healthy server gives this workload.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1500);
/// The most one key-value call may take, reconnect and retry included.
pub const CALL_BUDGET: Duration = Duration::from_millis(2000);

/// A call that makes Spin 4.0.2's host panic: edge-host fails the request (a trap) the same way.
#[derive(Debug)]
pub struct SpinHostPanic(pub &'static str);

impl std::fmt::Display for SpinHostPanic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for SpinHostPanic {}

/// One Redis-backed store label.
pub struct RedisKv {
    url: String,
    /// The shared (multiplexed, self-reconnecting) connection; `None` before first use and after
    /// a call timed out, so the next call starts on a fresh connection instead of a silent one.
    current: parking_lot::Mutex<Option<ConnectionManager>>,
    /// Held while a fresh connection is being opened, so concurrent calls open one, not many.
    connecting: tokio::sync::Mutex<()>,
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

/// Whether a failed command may be sent again without changing its meaning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads and plain writes: sending twice is the same as once.
    Idempotent,
    /// `INCRBY` and compare-and-swap: resend only what certainly never reached the server.
    OnlyIfNotSent,
}

/// The connection settings: bounded connect and response times, and a reconnect that makes one
/// attempt with no back-off (the caller's next call makes the next attempt).
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(RESPONSE_TIMEOUT)
        .set_number_of_retries(0)
        .set_max_delay(100)
}

/// Whether a failed command should be tried once more on a (re)connected connection.
fn worth_retrying(e: &redis::RedisError, retry: Retry) -> bool {
    match retry {
        // A dropped connection (the server restarted) or a refused reconnect: the retry goes
        // through the manager's fresh connection attempt.
        Retry::Idempotent => e.is_unrecoverable_error(),
        Retry::OnlyIfNotSent => e.is_connection_refusal(),
    }
}

impl RedisKv {
    /// A store at `url` (`redis://host:port/db`); connects on first use.
    pub fn new(url: &str) -> Self {
        RedisKv {
            url: url.to_string(),
            current: parking_lot::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    async fn conn(&self) -> Result<ConnectionManager> {
        if let Some(c) = self.current.lock().as_ref() {
            return Ok(c.clone());
        }
        let _turn = self.connecting.lock().await;
        if let Some(c) = self.current.lock().as_ref() {
            return Ok(c.clone());
        }
        let client = redis::Client::open(self.url.as_str())
            .context("invalid Redis URL in runtime config")?;
        let conn = ConnectionManager::new_with_config(client, manager_config())
            .await
            .context("cannot connect to Redis")?;
        *self.current.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the shared connection so the next call opens a fresh one.
    fn forget(&self) {
        self.current.lock().take();
    }

    /// Runs one command within [`CALL_BUDGET`], retrying once where that is safe.
    async fn call<T, F, Fut>(&self, op: &'static str, retry: Retry, command: F) -> Result<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempts = async {
            let mut retried = false;
            loop {
                let conn = self.conn().await?;
                match command(conn).await {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        if e.is_timeout() {
                            self.forget();
                        }
                        if !retried && worth_retrying(&e, retry) {
                            retried = true;
                            continue;
                        }
                        return Err(anyhow::Error::new(e).context(format!("Redis {op} failed")));
                    }
                }
            }
        };
        match tokio::time::timeout(CALL_BUDGET, attempts).await {
            Ok(result) => result,
            Err(_) => {
                self.forget();
                Err(anyhow!("Redis {op}: no answer within {CALL_BUDGET:?}"))
            }
        }
    }

    /// Value of `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.call(
            "GET",
            Retry::Idempotent,
            |mut c| async move { c.get(key).await },
        )
        .await
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.call("SET", Retry::Idempotent, |mut c| async move {
            c.set(key, value).await
        })
        .await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let _: i64 = self
            .call(
                "DEL",
                Retry::Idempotent,
                |mut c| async move { c.del(key).await },
            )
            .await?;
        Ok(())
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.call("EXISTS", Retry::Idempotent, |mut c| async move {
            c.exists(key).await
        })
        .await
    }

    /// Every key of the database (as Spin does, with `KEYS *`).
    pub async fn keys(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .call("KEYS", Retry::Idempotent, |mut c| async move {
                c.keys("*").await
            })
            .await?;
        keys.sort();
        Ok(keys)
    }

    /// `INCRBY key delta`.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.call("INCRBY", Retry::OnlyIfNotSent, |mut c| async move {
            c.incr(key, delta).await
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
        let script = redis::Script::new(CAS_SCRIPT);
        let swapped: i64 = self
            .call("compare-and-swap", Retry::OnlyIfNotSent, |mut c| {
                let mut invocation = script.key(key);
                invocation
                    .arg(if expected.is_some() { "1" } else { "0" })
                    .arg(expected.unwrap_or_default())
                    .arg(new);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        Ok(swapped == 1)
    }

    /// `wasi:keyvalue/batch.get-many` as Spin 4.0.2 serves it on Redis, reproduced so an app
    /// tested here fails as it would there: Spin sends `KEYS k1 k2 …` (not `MGET`;
    /// `crates/key-value-redis/src/store.rs`). Two or more keys fail with Redis's "wrong number
    /// of arguments"; one key that matches nothing (as a `KEYS` pattern) gives an empty list; one
    /// that matches makes Spin's host panic while decoding the answer, and the request fails
    /// ([`SpinHostPanic`]). No keys: an empty list.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let matched: Vec<String> = self
            .call("KEYS", Retry::Idempotent, |mut c| async move {
                redis::cmd("KEYS").arg(keys).query_async(&mut c).await
            })
            .await?;
        if matched.is_empty() {
            Ok(Vec::new())
        } else {
            Err(anyhow::Error::new(SpinHostPanic(
                "Spin 4.0.2's Redis get-many panics when its `KEYS` call matches a key; read \
                 keys one by one with `get`",
            )))
        }
    }

    /// `MSET` (atomic).
    pub async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.call("MSET", Retry::Idempotent, |mut c| async move {
            c.mset(pairs).await
        })
        .await
    }

    /// `DEL k1 k2 …`.
    pub async fn delete_many(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let _: i64 = self
            .call("DEL", Retry::Idempotent, |mut c| async move {
                c.del(keys).await
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    fn io(kind: ErrorKind) -> redis::RedisError {
        std::io::Error::from(kind).into()
    }

    #[test]
    fn only_commands_that_are_safe_to_repeat_are_resent() {
        // Refused: the command never left; any command may go again.
        assert!(worth_retrying(
            &io(ErrorKind::ConnectionRefused),
            Retry::Idempotent
        ));
        assert!(worth_retrying(
            &io(ErrorKind::ConnectionRefused),
            Retry::OnlyIfNotSent
        ));
        // Dropped mid-exchange: it may have run; only an idempotent one goes again.
        assert!(worth_retrying(
            &io(ErrorKind::BrokenPipe),
            Retry::Idempotent
        ));
        assert!(!worth_retrying(
            &io(ErrorKind::BrokenPipe),
            Retry::OnlyIfNotSent
        ));
        // A timeout spent the budget; an answer from the server is final.
        assert!(!worth_retrying(&io(ErrorKind::TimedOut), Retry::Idempotent));
        let refused: redis::RedisError = (redis::ErrorKind::ResponseError, "WRONGTYPE").into();
        assert!(!worth_retrying(&refused, Retry::Idempotent));
    }

    #[tokio::test]
    async fn a_server_that_accepts_and_never_answers_fails_the_call_within_the_budget() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "redis://127.0.0.1:{}/0",
            silent.local_addr().unwrap().port()
        );
        let kv = RedisKv::new(&url);
        for _ in 0..2 {
            let start = std::time::Instant::now();
            assert!(kv.set("k", b"v").await.is_err());
            // The budget plus scheduling slack; without timeouts this call never returns.
            assert!(start.elapsed() < CALL_BUDGET + Duration::from_secs(5));
        }
        drop(silent);
    }

    #[tokio::test]
    async fn a_closed_port_fails_the_call_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let kv = RedisKv::new(&format!("redis://127.0.0.1:{port}/0"));
        let err = kv.get("k").await.unwrap_err();
        assert!(format!("{err:#}").contains("Redis"), "{err:#}");
    }
}
