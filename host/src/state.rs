//! Per-component runtime (capabilities and backends, built once at start-up) and per-request
//! host state (a fresh WASI context, resource table and limits for every request, as in Spin:
//! nothing survives between requests except what the backends store).

use crate::kv::KvBackend;
use crate::outbound::AllowedHosts;
use crate::postgres::PgPools;
use crate::sqlite_pool::SqlitePool;
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
    /// Component variables: name → its template expanded over the application variables.
    /// Expanded once at load: the application variables are fixed for the process's life, and
    /// a publish reads eight of these.
    pub variables: BTreeMap<String, String>,
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
    /// Memory limits of this request (and its peak linear memory, for profiles).
    pub limits: MeteredLimits,
    /// The component being run.
    pub component: Arc<ComponentRuntime>,
    /// Host calls of this request, when profiling asks for them (`EDGE_HOST_PROFILE_CALLS`).
    pub calls: Option<CallProfile>,
}

/// Wasmtime's store limits, remembering the largest linear memory the request grew to: the
/// pooling allocator resets every page a slot has dirtied, so this is what a request costs
/// after it ends (issue 17's profile).
pub struct MeteredLimits {
    /// The limits themselves.
    pub inner: StoreLimits,
    /// Largest linear memory size granted, in bytes.
    pub peak_memory: usize,
}

impl wasmtime::ResourceLimiter for MeteredLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let granted = self.inner.memory_growing(current, desired, maximum)?;
        if granted {
            self.peak_memory = self.peak_memory.max(desired);
        }
        Ok(granted)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// What one request spent crossing into the host: lets a profile split a request's time
/// between the component's own code and the host calls it makes (database waits included).
#[derive(Debug, Default)]
pub struct CallProfile {
    /// Calls from the component into the host (WASI, wasi:http and Spin interfaces).
    pub calls: u32,
    /// Wall time inside those calls.
    pub in_host: std::time::Duration,
    /// Start of the call in progress.
    pub entered: Option<std::time::Instant>,
}

impl CallProfile {
    /// Records one transition between the component and the host.
    pub fn hook(&mut self, hook: wasmtime::CallHook) {
        match hook {
            wasmtime::CallHook::CallingHost => {
                self.calls += 1;
                self.entered = Some(std::time::Instant::now());
            }
            wasmtime::CallHook::ReturningFromHost => {
                if let Some(t) = self.entered.take() {
                    self.in_host += t.elapsed();
                }
            }
            _ => {}
        }
    }
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
