//! PostgreSQL connection pools, one per address, with the time limits that keep a database
//! outage from holding requests: a TCP connect limit (`connect_timeout`, 2 s unless the URL
//! says otherwise), a limit on making a connection (connect + TLS + authentication), on waiting
//! for a busy pool, and on checking a pooled connection. Pooled connections found closed are
//! dropped on checkout (deadpool's fast recycling checks `is_closed`), and `postgres.rs` drops a
//! connection whose call failed at the transport level or ran out of time, so the first request
//! after the database returns gets a fresh connection.

use crate::pg_error::describe_pool;
use crate::pg_tls::{SslMode, Tls};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Connections kept per address.
const POOL_SIZE: usize = 32;
/// Added to the TCP connect limit for TLS and authentication when making a connection.
const HANDSHAKE_ALLOWANCE: Duration = Duration::from_secs(3);
/// How long a request waits for a connection while all of them are in use.
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long checking a pooled connection before reuse may take.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one statement may wait for its answer; past it the connection is discarded, the
/// statement cancelled on the server and the guest told `connection-failed`.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection pools by address, shared by every request of the process.
#[derive(Debug, Default)]
pub struct PgPools {
    pools: Mutex<HashMap<String, Arc<PgPool>>>,
}

/// The pool of one address, with what is needed to describe and cancel its work.
pub struct PgPool {
    pool: Pool,
    /// The connector, also used for cancel requests.
    pub tls: Tls,
    /// The effective `sslmode`.
    pub mode: SslMode,
    /// `user@host:port/database`, for logs (never the password).
    pub label: String,
    timeouts: Timeouts,
    last_warning: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("label", &self.label)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PgPools {
    /// The pool for `address`, made on first use; the error is what the guest sees.
    pub fn pool(&self, address: &str) -> Result<Arc<PgPool>, String> {
        if let Some(p) = self.pools.lock().get(address) {
            return Ok(p.clone());
        }
        let target = crate::pg_tls::target(address)?;
        let label = label(&target.config);
        let connect = target
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(crate::pg_tls::DEFAULT_CONNECT_TIMEOUT);
        let timeouts = Timeouts {
            wait: Some(WAIT_TIMEOUT),
            create: Some(connect + HANDSHAKE_ALLOWANCE),
            recycle: Some(RECYCLE_TIMEOUT),
        };
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &target.tls {
            Tls::None => Manager::from_config(target.config, tokio_postgres::NoTls, manager_config),
            Tls::Rustls(tls) => Manager::from_config(target.config, tls.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .timeouts(timeouts)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("cannot set up a connection pool: {e}"))?;
        let pool = Arc::new(PgPool {
            pool,
            tls: target.tls,
            mode: target.mode,
            label,
            timeouts,
            last_warning: AtomicU64::new(0),
            started: Instant::now(),
        });
        Ok(self
            .pools
            .lock()
            .entry(address.to_string())
            .or_insert(pool)
            .clone())
    }
}

impl PgPool {
    /// A connection, or the root cause of not getting one (also logged, at most once a second).
    pub async fn get(&self) -> Result<Object, String> {
        match self.pool.get().await {
            Ok(client) => Ok(client),
            Err(e) => {
                let message = describe_pool(&e, &self.timeouts);
                self.warn(&format!("cannot connect: {message}"));
                Err(message)
            }
        }
    }

    /// Logs `what` about this pool unless another warning went out in the last second, so an
    /// outage under load does not flood the log.
    pub fn warn(&self, what: &str) {
        let now = self.started.elapsed().as_millis() as u64 + 1000;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "postgres {} (sslmode={}): {what}",
                self.label,
                self.mode.as_str()
            );
        }
    }

    /// Asks the server to cancel whatever `client` is running (after a timeout), in the
    /// background.
    pub fn cancel(&self, client: &Object) {
        let token = client.cancel_token();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let sent = match tls {
                Tls::None => token.cancel_query(tokio_postgres::NoTls).await,
                Tls::Rustls(tls) => token.cancel_query(tls).await,
            };
            if let Err(e) = sent {
                tracing::debug!("postgres cancel request failed: {e}");
            }
        });
    }
}

fn label(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}
