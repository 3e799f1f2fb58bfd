//! Key-value stores: `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue` (store, atomics, batch)
//! over one backend abstraction with a SQLite and a Redis implementation. A component may only
//! open the labels its manifest lists in `key_value_stores`.

mod redis;
mod sqlite;

use crate::bindings::fermyon::spin::key_value as spin_kv;
use crate::bindings::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use crate::runtime_config::KvConfig;
use crate::state::RequestState;
use anyhow::{Context, Result};
use std::sync::Arc;
use wasmtime::component::Resource;

/// A configured key-value store.
#[derive(Debug)]
pub enum KvBackend {
    /// SQLite file.
    Sqlite(sqlite::SqliteKv),
    /// Redis server.
    Redis(redis::RedisKv),
}

/// What a guest's store (or bucket) handle points at.
#[derive(Debug, Clone)]
pub struct KvHandle {
    backend: Arc<KvBackend>,
}

/// A compare-and-swap handle: the key and the value seen when it was created.
#[derive(Debug)]
pub struct CasHandle {
    backend: Arc<KvBackend>,
    key: String,
    current: Option<Vec<u8>>,
}

macro_rules! dispatch {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {
        match $self {
            KvBackend::Sqlite(s) => s.$method($($arg),*).await,
            KvBackend::Redis(r) => r.$method($($arg),*).await,
        }
    };
}

impl KvBackend {
    /// Builds the backend for a store label from its runtime configuration (none for a store
    /// Spin would keep in memory: see `RuntimeConfig::check_files`).
    pub fn new(label: &str, config: &KvConfig) -> Option<Self> {
        Some(match config {
            KvConfig::Sqlite(path) => KvBackend::Sqlite(sqlite::SqliteKv::new(label, path)),
            KvConfig::Redis(url) => KvBackend::Redis(redis::RedisKv::new(url)),
            KvConfig::InMemory => return None,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        dispatch!(self, get(key))
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        dispatch!(self, set(key, value))
    }
    async fn delete(&self, key: &str) -> Result<()> {
        dispatch!(self, delete(key))
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        dispatch!(self, exists(key))
    }
    async fn keys(&self) -> Result<Vec<String>> {
        dispatch!(self, keys())
    }
    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        dispatch!(self, increment(key, delta))
    }
    async fn compare_and_swap(&self, key: &str, old: Option<&[u8]>, new: &[u8]) -> Result<bool> {
        dispatch!(self, compare_and_swap(key, old, new))
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        dispatch!(self, get_many(keys))
    }
    async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        dispatch!(self, set_many(pairs))
    }
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        dispatch!(self, delete_many(keys))
    }
}

/// Reads a counter stored as decimal text (absent = 0).
fn parse_counter(value: Option<&[u8]>) -> Result<i64> {
    match value {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .context("value is not an integer counter"),
    }
}

impl RequestState {
    fn open_kv(&self, label: &str) -> Result<KvHandle, spin_kv::Error> {
        match self.component.key_value.get(label) {
            Some(backend) => Ok(KvHandle {
                backend: backend.clone(),
            }),
            None => Err(spin_kv::Error::AccessDenied),
        }
    }

    fn kv(&self, handle: &Resource<KvHandle>) -> wasmtime::Result<KvHandle> {
        Ok(self.table.get(handle)?.clone())
    }
}

fn spin_err(e: anyhow::Error) -> spin_kv::Error {
    tracing::debug!("key-value error: {e:#}");
    spin_kv::Error::Other(format!("{e:#}"))
}

fn wasi_err(e: anyhow::Error) -> wasi_kv::Error {
    tracing::debug!("key-value error: {e:#}");
    wasi_kv::Error::Other(format!("{e:#}"))
}

impl spin_kv::Host for RequestState {}

impl spin_kv::HostStore for RequestState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KvHandle>, spin_kv::Error>> {
        Ok(match self.open_kv(&label) {
            Ok(h) => Ok(self.table.push(h)?),
            Err(e) => Err(e),
        })
    }

    async fn get(
        &mut self,
        store: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        let h = self.kv(&store)?;
        Ok(h.backend.get(&key).await.map_err(spin_err))
    }

    async fn set(
        &mut self,
        store: Resource<KvHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let h = self.kv(&store)?;
        Ok(h.backend.set(&key, &value).await.map_err(spin_err))
    }

    async fn delete(
        &mut self,
        store: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let h = self.kv(&store)?;
        Ok(h.backend.delete(&key).await.map_err(spin_err))
    }

    async fn exists(
        &mut self,
        store: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        let h = self.kv(&store)?;
        Ok(h.backend.exists(&key).await.map_err(spin_err))
    }

    async fn get_keys(
        &mut self,
        store: Resource<KvHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        let h = self.kv(&store)?;
        Ok(h.backend.keys().await.map_err(spin_err))
    }

    async fn drop(&mut self, store: Resource<KvHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl wasi_kv::Host for RequestState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<KvHandle>, wasi_kv::Error>> {
        Ok(match self.open_kv(&identifier) {
            Ok(h) => Ok(self.table.push(h)?),
            Err(_) => Err(wasi_kv::Error::AccessDenied),
        })
    }
}

impl wasi_kv::HostBucket for RequestState {
    async fn get(
        &mut self,
        bucket: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(h.backend.get(&key).await.map_err(wasi_err))
    }

    async fn set(
        &mut self,
        bucket: Resource<KvHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(h.backend.set(&key, &value).await.map_err(wasi_err))
    }

    async fn delete(
        &mut self,
        bucket: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(h.backend.delete(&key).await.map_err(wasi_err))
    }

    async fn exists(
        &mut self,
        bucket: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(h.backend.exists(&key).await.map_err(wasi_err))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<KvHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        // One page holding every key: the cursor is accepted but never needed.
        let _ = cursor;
        Ok(h.backend
            .keys()
            .await
            .map(|keys| wasi_kv::KeyResponse { keys, cursor: None })
            .map_err(wasi_err))
    }

    async fn drop(&mut self, bucket: Resource<KvHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for RequestState {
    async fn increment(
        &mut self,
        bucket: Resource<KvHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(h.backend.increment(&key, delta).await.map_err(wasi_err))
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas = self.table.delete(cas)?;
        let swapped = cas
            .backend
            .compare_and_swap(&cas.key, cas.current.as_deref(), &value)
            .await;
        Ok(match swapped {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Hand back a fresh handle holding the value that won, as the interface asks.
                match cas.backend.get(&cas.key).await {
                    Ok(current) => {
                        let fresh = self.table.push(CasHandle {
                            backend: cas.backend.clone(),
                            key: cas.key.clone(),
                            current,
                        })?;
                        Err(atomics::CasError::CasFailed(fresh))
                    }
                    Err(e) => Err(atomics::CasError::StoreError(wasi_err(e))),
                }
            }
            Err(e) => Err(atomics::CasError::StoreError(wasi_err(e))),
        })
    }
}

impl atomics::HostCas for RequestState {
    async fn new(
        &mut self,
        bucket: Resource<KvHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(match h.backend.get(&key).await {
            Ok(current) => Ok(self.table.push(CasHandle {
                backend: h.backend,
                key,
                current,
            })?),
            Err(e) => Err(wasi_err(e)),
        })
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for RequestState {
    async fn get_many(
        &mut self,
        bucket: Resource<KvHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        match h.backend.get_many(&keys).await {
            // Where Spin's host panics, the guest's request fails here too (a trap: 500).
            Err(e) if e.is::<redis::SpinHostPanic>() => Err(wasmtime::format_err!("{e}")),
            result => Ok(result.map_err(wasi_err)),
        }
    }

    async fn set_many(
        &mut self,
        bucket: Resource<KvHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(h.backend.set_many(&key_values).await.map_err(wasi_err))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<KvHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let h = self.kv(&bucket)?;
        Ok(h.backend.delete_many(&keys).await.map_err(wasi_err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter(None).unwrap(), 0);
        assert_eq!(parse_counter(Some(b"42")).unwrap(), 42);
        assert_eq!(parse_counter(Some(b"-7")).unwrap(), -7);
        assert!(parse_counter(Some(b"\x00\x01")).is_err());
    }
}
