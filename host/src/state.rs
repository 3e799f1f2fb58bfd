//! Per-component runtime (capabilities and backends, built once at start-up) and per-request
//! host state (a fresh WASI context, resource table and limits for every request, as in Spin:
//! nothing survives between requests except what the backends store).

use crate::kv::KvBackend;
use crate::outbound::AllowedHosts;
use crate::postgres::PgPools;
use crate::sqlite_pool::SqlitePool;
use crate::variables::AppVariables;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What one component may use, resolved from the manifest and runtime config.
#[derive(Debug)]
pub struct ComponentRuntime {
    /// Component id from the manifest.
    pub id: Arc<str>,
    /// Key-value stores the component declared, by label.
    pub key_value: BTreeMap<String, Arc<KvBackend>>,
    /// SQLite labels the component declared.
    pub sqlite_labels: Vec<String>,
    /// SQLite databases the component declared and the runtime config provides, by label.
    pub sqlite: BTreeMap<String, Arc<SqlitePool>>,
    /// Component variables: name → template over application variables.
    pub variables: BTreeMap<String, String>,
    /// Resolved application variables.
    pub app_variables: Arc<AppVariables>,
    /// Expanded `allowed_outbound_hosts`.
    pub allowed_hosts: AllowedHosts,
    /// `environment` entries from the manifest.
    pub environment: Vec<(String, String)>,
    /// Shared Postgres connection pools.
    pub postgres: Arc<PgPools>,
}

/// Host state of one request's `Store`.
pub struct RequestState {
    /// WASI context (stdio, env, clocks, random).
    pub wasi: WasiCtx,
    /// wasi:http context.
    pub http: WasiHttpCtx,
    /// Guest-visible resources of this request.
    pub table: ResourceTable,
    /// Memory limits of this request.
    pub limits: StoreLimits,
    /// The component being run.
    pub component: Arc<ComponentRuntime>,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}
