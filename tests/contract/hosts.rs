//! The hosts the contract tests start: backends, tokens, a closed port for outages, and a way to
//! put an unreadable entry in a queue (so a dead letter exists).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// Tokens the protected hosts are configured with.
pub const PUBLISH_TOKEN: &str = "contract-publish-token";
/// The read group's token.
pub const READ_TOKEN: &str = "contract-read-token";
/// The admin group's token.
pub const ADMIN_TOKEN: &str = "contract-admin-token";

use crate::support::{Host, HostConfig, TestDatabase, TestRedis, temp_dir};

/// Which stores a host runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    PostgresRedis,
}

/// A host plus what it owns (dropped after it).
pub struct App {
    /// The running edge-host.
    pub host: Host,
    /// Its state directory (the SQLite queue file lives there).
    pub state_dir: PathBuf,
    /// The Redis database of the queue, on PostgreSQL + Redis.
    pub redis: Option<TestRedis>,
    /// The PostgreSQL database of the store, on PostgreSQL + Redis.
    pub db: Option<TestDatabase>,
}

/// Starts a host on `backend` with its own state, database and Redis database.
pub fn start(backend: Backend, mut config: HostConfig) -> App {
    let state_dir = temp_dir("contract-state-");
    config.state_dir = Some(state_dir.clone());
    let (db, redis) = match backend {
        Backend::Sqlite => (None, None),
        Backend::PostgresRedis => {
            let db = TestDatabase::create("edgelog_contract");
            let redis = TestRedis::reserve();
            config.runtime_config = Some(redis.runtime_config(&temp_dir("contract-rc-")));
            config = config
                .env("SPIN_VARIABLE_STORE", "postgres")
                .env("SPIN_VARIABLE_DATABASE_URL", &db.url);
            (Some(db), Some(redis))
        }
    };
    App {
        host: Host::start(config),
        state_dir,
        redis,
        db,
    }
}

/// Turns access control on for all three groups.
pub fn with_tokens(config: HostConfig) -> HostConfig {
    config
        .env("SPIN_VARIABLE_PUBLISH_TOKENS", PUBLISH_TOKEN)
        .env("SPIN_VARIABLE_READ_TOKENS", READ_TOKEN)
        .env("SPIN_VARIABLE_ADMIN_TOKENS", ADMIN_TOKEN)
}

/// A local TCP port nothing listens on: port 1 (tcpmux) is privileged and unused, so a connection
/// is refused at once (a released ephemeral port could be handed to another test's server).
pub const CLOSED_PORT: u16 = 1;

/// Puts an entry no consumer can read into the app's queue; draining turns it into a dead letter.
pub fn inject_unreadable_entry(app: &App) {
    let key = "q/0000000000001-00000000c0ffee00-1";
    let value: &[u8] = b"not a queue entry";
    match &app.redis {
        Some(r) => {
            let client = redis::Client::open(r.url.as_str()).unwrap();
            let mut conn = client.get_connection().unwrap();
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query(&mut conn)
                .unwrap();
        }
        None => {
            let conn =
                rusqlite::Connection::open(app.state_dir.join("sqlite_key_value.db")).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            // The table edge-host creates on first use (the same statement), in case no request
            // has touched the queue yet.
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS spin_key_value (
                    store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                    PRIMARY KEY (store, key))",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?1, ?2)",
                rusqlite::params![key, value],
            )
            .unwrap();
        }
    }
}

/// A valid event, so a probe reaches the handler's success path.
pub fn event(id: &str) -> Value {
    json!({"topic": "contract", "event_id": id, "timestamp": "2026-11-23T10:00:00Z",
           "source": "contract-test", "payload": {"n": 1}})
}

/// A concrete path for a template (`{id}` filled in).
pub fn concrete(template: &str, id: &str) -> String {
    template.replace("{id}", id)
}
