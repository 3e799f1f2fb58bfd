//! The HTTP front: compiles each component once, pre-instantiates it once, and serves every
//! request on a fresh `Store` (Spin's model) through `wasi:http/incoming-handler`. Requests run
//! concurrently on the multi-threaded runtime, bounded by the instance pool; shutdown stops
//! accepting, then lets in-flight requests and guests finish within a bound.
//!
//! Slow clients never hold an instance slot: headers must arrive within the header timeout
//! (hyper closes the connection otherwise), and a request takes its slot only once the
//! admission stage (`admission`) has received its body. Everything the host answers by itself
//! is JSON (`reply`).

use crate::admission::{BodyPolicy, ReceivedBody, Receiving, ReceivingPool};
use crate::app::{AppRuntime, ComponentEntry};
use crate::output::GuestOutput;
use crate::reply;
use crate::state::{CallProfile, MeteredLimits, RequestState};
use anyhow::{Context, Result};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
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
    /// Time a client has to send a request's headers (and an idle keep-alive connection to
    /// start its next request) before the connection is closed.
    pub header_timeout: Duration,
    /// Longest gap between two pieces of a request body before the request gets `408`.
    pub body_idle_timeout: Duration,
    /// Connections that may be sending a request body at once; more get `503` at once.
    pub max_pending_connections: usize,
}

/// `Retry-After` seconds sent with `503` when the receiving pool is full.
const RETRY_AFTER_SECS: u64 = 1;

/// How a guest's run ended.
enum GuestEnd {
    Finished,
    Failed,
    TimedOut,
}

/// A running server's shared state.
pub struct Server {
    app: AppRuntime,
    limits: Limits,
    permits: Arc<Semaphore>,
    receiving: ReceivingPool,
    body_policy: BodyPolicy,
    guests: TaskTracker,
    local_addr: SocketAddr,
}

impl Server {
    /// Wraps a loaded app.
    pub fn new(app: AppRuntime, limits: Limits, local_addr: SocketAddr) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max_instances as usize));
        let receiving = ReceivingPool::new(limits.max_pending_connections);
        let body_policy = BodyPolicy {
            idle_timeout: limits.body_idle_timeout,
            total_timeout: limits.request_timeout,
        };
        Server {
            app,
            limits,
            permits,
            receiving,
            body_policy,
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
        builder
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
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
                reply::host_failed()
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
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>> {
        let started = tokio::time::Instant::now();
        let Some(route) = self.app.router.route(req.uri().path()) else {
            return Ok(reply::not_found());
        };
        let entry = &self.app.components[route.component];

        // Admission: receive the body before taking an instance slot (see `admission`).
        let (parts, body) = req.into_parts();
        let mut body = if body.is_end_stream() {
            ReceivedBody::empty(&self.body_policy)
        } else {
            let mut receiving = Receiving::new(body, &self.body_policy, started);
            let received = match receiving.arrived_with_headers().await {
                Ok(true) => Ok(receiving.into_body()),
                // Still arriving: wait for it in a receiving place, never in an instance slot.
                Ok(false) => {
                    let Some(_place) = self.receiving.try_enter() else {
                        return Ok(reply::overloaded(RETRY_AFTER_SECS));
                    };
                    receiving.finish().await
                }
                Err(failure) => Err(failure),
            };
            match received {
                Ok(b) => b,
                Err(failure) => {
                    tracing::info!("{} {}: {failure}", parts.method, parts.uri.path());
                    return Ok(failure.response());
                }
            }
        };
        let stall = body.stall_signal();
        let mut req = Request::from_parts(parts, body);
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
            let began = std::time::Instant::now();
            let mut instantiated = began;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                instantiated = std::time::Instant::now();
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
            };
            let outcome = tokio::time::timeout(timeout, run).await;
            if let Some(p) = store.data().calls.as_ref() {
                let handler = instantiated.elapsed();
                tracing::info!(
                    target: "edge_host::calls",
                    "instantiate {}us handler {}us host calls {} in host {}us guest {}us memory {}KiB",
                    (instantiated - began).as_micros(),
                    handler.as_micros(),
                    p.calls,
                    p.in_host.as_micros(),
                    handler.saturating_sub(p.in_host).as_micros(),
                    store.data().limits.peak_memory >> 10
                );
            }
            match outcome {
                Ok(Ok(())) => GuestEnd::Finished,
                Ok(Err(e)) => {
                    tracing::error!("component `{id}` failed: {e:?}");
                    GuestEnd::Failed
                }
                Err(_) => {
                    tracing::error!("component `{id}` exceeded the request timeout of {timeout:?}");
                    GuestEnd::TimedOut
                }
            }
        });

        let answered = match stall {
            None => receiver.await,
            // A streamed body that stalls ends the request with 408, unless the guest answered
            // earlier. The stall is signalled before the guest sees the read error, so checking
            // it first answers 408 even when the guest's own error answer is ready as well.
            Some(stall) => tokio::select! {
                biased;
                Ok(failure) = stall => {
                    task.abort();
                    return Ok(failure.response());
                }
                answered = receiver => answered,
            },
        };
        match answered {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => {
                tracing::error!(
                    "component `{}` answered with error {code:?}",
                    entry.runtime.id
                );
                Ok(reply::guest_failed())
            }
            Err(_) => Ok(match task.await {
                Ok(GuestEnd::TimedOut) => reply::guest_timed_out(timeout),
                _ => reply::guest_failed(),
            }),
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
            limits: MeteredLimits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(self.limits.max_memory_bytes)
                    .instances(64)
                    .build(),
                peak_memory: 0,
            },
            component: rt.clone(),
            calls: None,
        };
        let mut store = Store::new(&self.app.engine, state);
        store.limiter(|s| &mut s.limits);
        if profile_calls() {
            store.data_mut().calls = Some(CallProfile::default());
            store.call_hook(|mut s, hook| {
                if let Some(p) = s.data_mut().calls.as_mut() {
                    p.hook(hook);
                }
                Ok(())
            });
        }
        let ticks = (self.limits.request_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1);
        store.set_epoch_deadline(ticks as u64);
        store.epoch_deadline_trap();
        store
    }
}

/// Whether to count each request's host calls (`EDGE_HOST_PROFILE_CALLS=1`): a profiling aid
/// for `scripts/profile-publish.sh`, off by default because the hook costs a little per call.
fn profile_calls() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("EDGE_HOST_PROFILE_CALLS").is_ok_and(|v| v == "1"))
}

fn add_spin_headers<B>(
    req: &mut Request<B>,
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

/// Binds the listener with a clear message when the port is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is another server using the port?)"))
}
