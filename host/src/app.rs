//! Loading an app: the manifest and runtime config become an engine, a router and, for each
//! component, its capabilities plus a pre-instantiated `wasi:http` proxy. Everything that can be
//! wrong (a missing `.wasm`, an import edge-host does not provide, an undeclared store) fails
//! here, at start-up, never at request time.

use crate::bindings;
use crate::kv::KvBackend;
use crate::manifest::{App, RouteDecl};
use crate::outbound::AllowedHosts;
use crate::postgres::PgPools;
use crate::router::Router;
use crate::runtime_config::{RuntimeConfig, SqliteConfig};
use crate::sqlite_pool::SqlitePool;
use crate::state::{ComponentRuntime, RequestState};
use crate::variables::AppVariables;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Cache, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A component ready to serve.
pub struct ComponentEntry {
    /// Its capabilities and backends.
    pub runtime: Arc<ComponentRuntime>,
    /// The pre-instantiated proxy (imports resolved once).
    pub pre: ProxyPre<RequestState>,
}

/// Everything needed to serve an app.
pub struct AppRuntime {
    /// The shared engine (compiled code, epoch counter).
    pub engine: Engine,
    /// Routes to component indexes.
    pub router: Router,
    /// Components by index.
    pub components: Vec<ComponentEntry>,
    /// `(route, component id)` pairs, for the start-up banner.
    pub routes: Vec<(String, String)>,
}

/// Engine settings that depend on the command line.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Linear memory one instance may use.
    pub max_memory_bytes: usize,
    /// Instances alive at once.
    pub max_instances: u32,
}

/// Bytes of each pooled linear memory kept mapped (and reset in place) between instances:
/// Spin 4.0.2's default and environment variable (`crates/core/src/lib.rs`).
const KEEP_RESIDENT_BYTES: usize = 2 << 20;
/// The same for tables (Spin's default, 512 KiB).
const TABLE_KEEP_RESIDENT_BYTES: usize = 512 << 10;

/// A byte count from Spin's environment variable `name`, else `default` (as Spin reads it).
fn spin_env_bytes(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v:?} is not a byte count")),
        Err(_) => Ok(default),
    }
}

fn engine(opts: &EngineOptions) -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // edge-host serves wasi:http 0.2 (`wasi:http/incoming-handler@0.2`) only, which never runs
    // guest tasks concurrently. With concurrency support on (wasmtime's default), every host
    // call creates and deletes a host task in the store's concurrent state, and every store
    // builds that state: bookkeeping no 0.2 component can use.
    config.concurrency_support(false);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(opts.max_instances)
        .total_core_instances(opts.max_instances * 4)
        .total_memories(opts.max_instances * 2)
        .total_tables(opts.max_instances * 4)
        .max_memory_size(opts.max_memory_bytes);
    // Reuse an instance slot's first pages by resetting them in place instead of handing them
    // back to the kernel: a fresh instance per request otherwise page-faults its stack and heap
    // in again. As much as Spin keeps (and the same variables to change it): more costs a
    // memset of every byte kept on each request (profile in BENCHMARKS.md, issue 17).
    let keep = spin_env_bytes(
        "SPIN_WASMTIME_LINEAR_MEMORY_KEEP_RESIDENT",
        KEEP_RESIDENT_BYTES,
    )?
    .min(opts.max_memory_bytes);
    let table_keep = spin_env_bytes(
        "SPIN_WASMTIME_TABLE_KEEP_RESIDENT",
        TABLE_KEEP_RESIDENT_BYTES,
    )?;
    pool.linear_memory_keep_resident(keep)
        .table_keep_resident(table_keep);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `EDGE_HOST_PERFMAP=1`: write /tmp/perf-<pid>.map so `perf report` names the component's
    // functions (scripts/profile-publish.sh).
    if std::env::var("EDGE_HOST_PERFMAP").is_ok_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    match Cache::from_file(None) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(e) => tracing::debug!("compilation cache disabled: {e:#}"),
    }
    Ok(Engine::new(&config)?)
}

fn linker(engine: &Engine) -> Result<Linker<RequestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::Host_::add_to_linker::<RequestState, HasSelf<RequestState>>(&mut linker, |s| s)?;
    Ok(linker)
}

impl AppRuntime {
    /// Loads every component of `app`.
    pub fn load(app: &App, config: &RuntimeConfig, opts: &EngineOptions) -> Result<Self> {
        let engine = engine(opts)?;
        let linker = linker(&engine)?;
        let variables = Arc::new(AppVariables::resolve(&app.manifest.variables, |k| {
            std::env::var(k).ok()
        })?);
        let postgres = Arc::new(PgPools::default());
        for (id, decl) in &app.manifest.component {
            config
                .check_files(&decl.key_value_stores, &decl.sqlite_databases)
                .with_context(|| format!("component `{id}`"))?;
        }
        let kv: BTreeMap<String, Arc<KvBackend>> = config
            .key_value
            .iter()
            .filter_map(|(label, c)| Some((label.clone(), Arc::new(KvBackend::new(label, c)?))))
            .collect();
        let sqlite: BTreeMap<String, Arc<SqlitePool>> = config
            .sqlite
            .iter()
            .filter_map(|(label, db)| match db {
                SqliteConfig::File(path) => Some((label.clone(), Arc::new(SqlitePool::new(path)))),
                SqliteConfig::InMemory => None,
            })
            .collect();

        let mut router = Router::default();
        let mut components = Vec::new();
        let mut index = BTreeMap::new();
        let mut routes = Vec::new();
        for trigger in &app.manifest.trigger.http {
            let RouteDecl::Path(route) = &trigger.route else {
                continue;
            };
            let id = &trigger.component;
            let i = match index.get(id) {
                Some(i) => *i,
                None => {
                    let decl = &app.manifest.component[id];
                    let entry = load_component(
                        app, id, decl, &engine, &linker, &variables, &kv, &sqlite, &postgres,
                    )
                    .with_context(|| format!("component `{id}`"))?;
                    components.push(entry);
                    index.insert(id.clone(), components.len() - 1);
                    components.len() - 1
                }
            };
            router.add(route, i)?;
            routes.push((route.clone(), id.clone()));
        }
        Ok(AppRuntime {
            engine,
            router,
            components,
            routes,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn load_component(
    app: &App,
    id: &str,
    decl: &crate::manifest::ComponentDecl,
    engine: &Engine,
    linker: &Linker<RequestState>,
    variables: &Arc<AppVariables>,
    kv: &BTreeMap<String, Arc<KvBackend>>,
    sqlite: &BTreeMap<String, Arc<SqlitePool>>,
    postgres: &Arc<PgPools>,
) -> Result<ComponentEntry> {
    let mut key_value = BTreeMap::new();
    for label in &decl.key_value_stores {
        match kv.get(label) {
            Some(b) => key_value.insert(label.clone(), b.clone()),
            None => bail!(
                "key-value store `{label}` is not configured: add [key_value_store.{label}] to the runtime config"
            ),
        };
    }
    let mut dbs = BTreeMap::new();
    for label in &decl.sqlite_databases {
        match sqlite.get(label) {
            Some(p) => dbs.insert(label.clone(), p.clone()),
            None => bail!(
                "SQLite database `{label}` is not configured: add [sqlite_database.{label}] to the runtime config"
            ),
        };
    }
    let hosts = decl
        .allowed_outbound_hosts
        .iter()
        .map(|h| variables.expand(h))
        .collect::<Result<Vec<_>>>()?;
    let component_variables = decl
        .variables
        .iter()
        .map(|(name, template)| Ok((name.clone(), variables.expand(template)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let runtime = Arc::new(ComponentRuntime {
        id: Arc::from(id),
        key_value,
        sqlite_labels: decl.sqlite_databases.clone(),
        sqlite: dbs,
        variables: component_variables,
        allowed_hosts: AllowedHosts::parse(&hosts)?,
        environment: decl
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        postgres: postgres.clone(),
    });

    let path = app.source_path(decl);
    if !path.exists() {
        bail!(
            "{} does not exist: build it first (`edge-host up --build` runs the component's build command)",
            path.display()
        );
    }
    let component = Component::from_file(engine, &path)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", path.display()))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "{} needs an import edge-host does not provide",
                path.display()
            )
        })?;
    let pre = ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "{} does not export wasi:http/incoming-handler",
                path.display()
            )
        })?;
    Ok(ComponentEntry { runtime, pre })
}
