//! Host-side bindings for the Spin interfaces, generated from the WIT packages vendored from
//! `spin-sdk` in `host/wit/` so host and guest are built from the same definitions.
//!
//! Resource types are mapped onto this crate's own handle types, which live in the per-request
//! `ResourceTable` and are dropped with the request's `Store`.

wasmtime::component::bindgen!({
    path: "wit",
    world: "edge:host/host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::kv::KvHandle,
        "fermyon:spin/sqlite.connection": crate::sqlite::SqliteHandle,
        "spin:sqlite/sqlite.connection": crate::sqlite::SqliteHandle,
        "wasi:keyvalue/store.bucket": crate::kv::KvHandle,
        "wasi:keyvalue/atomics.cas": crate::kv::CasHandle,
        "spin:postgres/postgres@3.0.0.connection": crate::postgres::PgHandle,
        "spin:postgres/postgres@4.0.0.connection": crate::postgres::PgHandle,
    },
});
