//! The HTTP front: compiles each component once, pre-instantiates it once, and serves every
//! request on a fresh `Store` (Spin's model) through `wasi:http/incoming-handler`. Requests run
//! concurrently on the multi-threaded runtime, bounded by the instance pool; shutdown stops
//! accepting, then lets in-flight requests and guests finish within a bound.

use crate::app::{AppRuntime, ComponentEntry};
use crate::output::GuestOutput;
use crate::state::RequestState;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

/// How often the epoch ticks; request time limits are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Limits and knobs of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory one request may grow to.
    pub max_memory_bytes: usize,
    /// Wall-clock time one request's guest may run.
    pub request_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// Guest instances alive at once (the rest wait).
    pub max_instances: u32,
}

/// A running server's shared state.
pub struct Server {
    app: AppRuntime,
    limits: Limits,
    permits: Arc<Semaphore>,
    guests: TaskTracker,
    local_addr: SocketAddr,
}

impl Server {
    /// Wraps a loaded app.
    pub fn new(app: AppRuntime, limits: Limits, local_addr: SocketAddr) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max_instances as usize));
        Server {
            app,
            limits,
            permits,
            guests: TaskTracker::new(),
            local_addr,
        }
    }

    /// Accepts connections until `shutdown` resolves, then drains.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(true);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, client) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let server = self.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req, client).await) }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!("connection from {client}: {e}");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!("shutting down: waiting for in-flight requests");
        let deadline = self.limits.shutdown_timeout;
        let drained = tokio::time::timeout(deadline, async {
            graceful.shutdown().await;
            self.guests.close();
            self.guests.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown: in-flight requests did not finish within {deadline:?}");
        }
        Ok(())
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let response = match self.dispatch(req, client).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{method} {path}: {e:#}");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
            }
        };
        tracing::info!(
            target: "edge_host::request",
            "{method} {path} {} {:.1}ms",
            response.status().as_u16(),
            start.elapsed().as_secs_f64() * 1000.0
        );
        response
    }

    async fn dispatch(
        &self,
        mut req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>> {
        let Some(route) = self.app.router.route(req.uri().path()) else {
            return Ok(plain(StatusCode::NOT_FOUND, "Not Found\n"));
        };
        let entry = &self.app.components[route.component];
        add_spin_headers(&mut req, &route, client, self.local_addr);

        let permit = self.permits.clone().acquire_owned().await?;
        let mut store = self.new_store(entry);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let pre = entry.pre.clone();
        let timeout = self.limits.request_timeout;
        let id = entry.runtime.id.clone();

        // The guest runs in its own task: a wasi:http handler may keep working after it has
        // sent the response head (Spin awaits it to completion), and shutdown waits for it.
        let task = self.guests.spawn(async move {
            let _permit = permit;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    tracing::error!("component `{id}` failed: {e:?}");
                    Err(())
                }
                Err(_) => {
                    tracing::error!("component `{id}` exceeded the request timeout of {timeout:?}");
                    Err(())
                }
            }
        });

        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => {
                tracing::error!(
                    "component `{}` answered with error {code:?}",
                    entry.runtime.id
                );
                Ok(plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error\n",
                ))
            }
            Err(_) => {
                let _ = task.await;
                Ok(plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error\n",
                ))
            }
        }
    }

    fn new_store(&self, entry: &ComponentEntry) -> Store<RequestState> {
        let rt = &entry.runtime;
        let mut wasi = WasiCtx::builder();
        wasi.stdout(GuestOutput::new(rt.id.clone(), false))
            .stderr(GuestOutput::new(rt.id.clone(), true))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (k, v) in &rt.environment {
            wasi.env(k, v);
        }
        let state = RequestState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory_bytes)
                .instances(64)
                .build(),
            component: rt.clone(),
        };
        let mut store = Store::new(&self.app.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = (self.limits.request_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1);
        store.set_epoch_deadline(ticks as u64);
        store.epoch_deadline_trap();
        store
    }
}

fn add_spin_headers(
    req: &mut Request<Incoming>,
    route: &crate::router::RouteMatch,
    client: SocketAddr,
    local: SocketAddr,
) {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| local.to_string());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let full_url = format!("http://{host}{path_and_query}");
    let headers = req.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("spin-full-url", &full_url);
    put("spin-path-info", &route.path_info);
    put("spin-matched-route", &route.raw_route);
    put("spin-raw-component-route", &route.raw_route);
    put("spin-component-route", &route.component_route);
    put("spin-base-path", "/");
    put("spin-client-addr", &client.to_string());
}

fn plain(status: StatusCode, body: &'static str) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// Binds the listener with a clear message when the port is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is another server using the port?)"))
}
