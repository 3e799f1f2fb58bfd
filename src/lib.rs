//! edgelog: an edge log aggregator as a Spin HTTP component.
//!
//! Publishers POST log events at least once; each `(topic, event_id)` is stored
//! exactly once. A publish is acknowledged when its validated batch is durably in
//! the store (or, when the store cannot take it now, in the key-value queue).
//!
//! Module map, in the order one request travels:
//! `lib` (route table, dispatch) → `auth` (token groups, CORS) → `routes` (handlers)
//! → `http` (request checks, JSON answers) → `validate` (the `Event` type; `validate::scan` reads
//! the common bodies in one pass) →
//! `queue` (key-value entries) → `consume` (queue → store in budgeted group commits,
//! dead letters; `consume::lanes`: which entries each of several parallel drains takes)
//! → `store` (`EventStore`; `sqlite`, `postgres`) → `stats` (counters).
//! Other protocols enter through `ingest` (`otlp`, `loki`, `ndjson`): adapters that turn their
//! wire format into validated events and join the same path at `routes::deliver`.
//! Reading: `search` (the `q` / `level` / `order` / tail / volume parameters) over `store`.
//! Beside the path: `arena` (the heap), `error` (the one error type), `config` (Spin variables),
//! `log` (lines to stderr), `maintenance` (marker compaction, retention), `openapi` (the
//! contract) and `console` (the web page at `/`).

#[cfg(any(test, target_family = "wasm"))]
mod arena;
mod auth;
mod config;
mod console;
mod consume;
mod error;
mod http;
mod ingest;
mod log;
mod maintenance;
mod openapi;
mod queue;
mod routes;
mod search;
mod stats;
mod store;
#[cfg(test)]
mod testing;
mod validate;

/// Small allocations are pointer bumps in a bounded arena (see `arena`): every request has a
/// fresh instance, so freeing them one by one was work for nothing.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static HEAP: arena::Arena = arena::Arena::new();

use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;

use crate::error::ApiError;
use crate::validate::Shape;

/// The routes this component serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the web console for browsers, a service summary for other clients.
    Root,
    /// `GET /openapi.json`: the API contract.
    OpenApi,
    /// `POST /publish`: one event, an array or `{"events": [...]}`.
    Publish,
    /// `POST /publish/batch`: an array or `{"events": [...]}`.
    PublishBatch,
    /// `POST /v1/logs`: OTLP/HTTP logs (protobuf or JSON).
    OtlpLogs,
    /// `POST /loki/api/v1/push`: Loki push (snappy protobuf or JSON).
    LokiPush,
    /// `GET /events`: stored events, newest first.
    Events,
    /// `GET /volume`: events per time bucket and level.
    Volume,
    /// `GET /stats`: exact counters.
    Stats,
    /// `GET /health`: liveness of queue and store.
    Health,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `POST /drain`: consume queued entries within the time budget.
    Drain,
    /// `POST /maintenance`: marker compaction and retention within the time budget.
    Maintenance,
    /// `GET /dead-letters`: entries moved aside.
    DeadLetters,
    /// `GET` / `DELETE /dead-letters/{id}`: inspect or discard one.
    DeadLetter,
    /// `POST /dead-letters/{id}/retry`: apply one again.
    DeadLetterRetry,
}

/// Who may call a route when access control is on (see `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// No token needed: health probes, the contract, the console page itself.
    Open,
    /// Publishers.
    Publish,
    /// Readers of events and counters.
    Read,
    /// Operators: drain, maintenance, dead letters.
    Admin,
}

impl Route {
    /// Matches an exact path; returns the route and its `{id}` segment, if any.
    pub fn of(path: &str) -> Option<(Route, Option<&str>)> {
        let fixed = match path {
            "/" => Some(Route::Root),
            "/openapi.json" => Some(Route::OpenApi),
            "/publish" => Some(Route::Publish),
            "/publish/batch" => Some(Route::PublishBatch),
            "/v1/logs" => Some(Route::OtlpLogs),
            "/loki/api/v1/push" => Some(Route::LokiPush),
            "/events" => Some(Route::Events),
            "/volume" => Some(Route::Volume),
            "/stats" => Some(Route::Stats),
            "/health" => Some(Route::Health),
            "/metrics" => Some(Route::Metrics),
            "/drain" => Some(Route::Drain),
            "/maintenance" => Some(Route::Maintenance),
            "/dead-letters" => Some(Route::DeadLetters),
            _ => None,
        };
        if let Some(route) = fixed {
            return Some((route, None));
        }
        let rest = path.strip_prefix("/dead-letters/")?;
        let (id, route) = match rest.strip_suffix("/retry") {
            Some(id) => (id, Route::DeadLetterRetry),
            None => (rest, Route::DeadLetter),
        };
        (!id.is_empty() && !id.contains('/')).then_some((route, Some(id)))
    }

    /// The methods each route accepts, also sent as `Allow` on a 405 (HEAD wherever GET).
    pub fn allow(self) -> &'static str {
        match self {
            Route::Publish
            | Route::PublishBatch
            | Route::OtlpLogs
            | Route::LokiPush
            | Route::Drain
            | Route::Maintenance
            | Route::DeadLetterRetry => "POST",
            Route::DeadLetter => "GET, HEAD, DELETE",
            Route::Root
            | Route::OpenApi
            | Route::Events
            | Route::Volume
            | Route::Stats
            | Route::Health
            | Route::Metrics
            | Route::DeadLetters => "GET, HEAD",
        }
    }

    fn accepts(self, method: &Method) -> bool {
        let name = match method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            _ => return false,
        };
        self.allow().split(", ").any(|m| m == name)
    }

    /// The token group a route belongs to.
    pub fn group(self, method: &Method) -> Group {
        match self {
            Route::Root | Route::OpenApi | Route::Health => Group::Open,
            Route::Publish | Route::PublishBatch | Route::OtlpLogs | Route::LokiPush => {
                Group::Publish
            }
            Route::Events | Route::Volume | Route::Stats | Route::Metrics => Group::Read,
            Route::DeadLetter if *method == Method::Delete => Group::Admin,
            Route::Drain
            | Route::Maintenance
            | Route::DeadLetters
            | Route::DeadLetter
            | Route::DeadLetterRetry => Group::Admin,
        }
    }
}

/// Entry point: answers the request and sends the answer (see [`http::send`]).
#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    http::send(out, answer(req).await);
}

/// CORS preflight, route by path, check the method and token, run the handler.
async fn answer(req: IncomingRequest) -> Response {
    let path_with_query = req.path_with_query().unwrap_or_default();
    let (full_path, query) = http::split_path_query(&path_with_query);
    // Route on the path below the app's mount point (Spin's `spin-path-info`), so the app also
    // works when a manifest mounts it under a prefix such as `/logs/...`.
    let headers = http::Headers::of(&req);
    let path_info = headers.get("spin-path-info");
    let path = path_info.as_deref().unwrap_or(full_path);
    let origin = headers.get("origin");
    let cors = auth::Cors::load(origin.as_deref());
    let method = req.method();
    let found = Route::of(path);
    // Protocol routes answer their errors the way their clients read errors (see `ingest`).
    let dialect = ingest::Dialect::of(
        found.map(|(route, _)| route),
        headers.get("content-type").as_deref(),
    );
    let response = match found {
        _ if method == Method::Options => cors.preflight(),
        None => ApiError::not_found(path).into_response(),
        // A wrong method is the HTTP layer's answer, the same on every path (not a protocol's).
        Some((route, _)) if !route.accepts(&method) => {
            ApiError::method_not_allowed(&method.to_string(), route.allow()).into_response()
        }
        Some((route, id)) => match auth::check(route.group(&method), &headers) {
            Err(e) => dialect.error(e),
            Ok(()) => dispatch(route, id.unwrap_or_default(), &method, req, &headers, query)
                .await
                .unwrap_or_else(|e| dialect.error(e)),
        },
    };
    cors.decorate(response)
}

/// Runs the handler of an already authorised route.
async fn dispatch(
    route: Route,
    id: &str,
    method: &Method,
    req: IncomingRequest,
    headers: &http::Headers,
    query: &str,
) -> routes::Handled {
    match route {
        Route::Root => Ok(console::serve(headers)),
        Route::OpenApi => Ok(openapi::serve()),
        Route::Publish => routes::publish(req, headers, query, Shape::Any).await,
        Route::PublishBatch => routes::publish(req, headers, query, Shape::Batch).await,
        Route::OtlpLogs => ingest::otlp_logs(req, headers, query).await,
        Route::LokiPush => ingest::loki_push(req, headers, query).await,
        Route::Events => routes::events(query),
        Route::Volume => routes::volume(query),
        Route::Stats => routes::stats(query),
        Route::Health => routes::health(query),
        Route::Metrics => routes::metrics(),
        Route::Drain => routes::drain(query),
        Route::Maintenance => routes::maintenance(),
        Route::DeadLetters => routes::dead_letters(query),
        Route::DeadLetter if *method == Method::Delete => routes::discard_dead_letter(id),
        Route::DeadLetter => routes::dead_letter(id),
        Route::DeadLetterRetry => routes::retry_dead_letter(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        assert_eq!(Route::of("/publish"), Some((Route::Publish, None)));
        assert_eq!(
            Route::of("/publish/batch"),
            Some((Route::PublishBatch, None))
        );
        assert_eq!(Route::of("/drain"), Some((Route::Drain, None)));
        assert_eq!(Route::of("/v1/logs"), Some((Route::OtlpLogs, None)));
        assert_eq!(
            Route::of("/loki/api/v1/push"),
            Some((Route::LokiPush, None))
        );
        assert_eq!(Route::of("/"), Some((Route::Root, None)));
        assert_eq!(
            Route::of("/dead-letters/abc"),
            Some((Route::DeadLetter, Some("abc")))
        );
        assert_eq!(
            Route::of("/dead-letters/abc/retry"),
            Some((Route::DeadLetterRetry, Some("abc")))
        );
        for unknown in [
            "/publish/",
            "/events/1",
            "/PUBLISH",
            "",
            "/stats/",
            "/dead-letters/",
            "/dead-letters//retry",
            "/dead-letters/a/b",
        ] {
            assert_eq!(Route::of(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn methods() {
        assert!(Route::Publish.accepts(&Method::Post));
        assert!(!Route::Publish.accepts(&Method::Get));
        assert!(Route::Events.accepts(&Method::Get));
        assert!(Route::Events.accepts(&Method::Head));
        assert!(!Route::Drain.accepts(&Method::Get));
        assert!(Route::DeadLetter.accepts(&Method::Delete));
        assert!(!Route::Events.accepts(&Method::Delete));
        assert_eq!(Route::Metrics.allow(), "GET, HEAD");
    }

    #[test]
    fn groups() {
        assert_eq!(Route::Health.group(&Method::Get), Group::Open);
        assert_eq!(Route::Publish.group(&Method::Post), Group::Publish);
        assert_eq!(Route::OtlpLogs.group(&Method::Post), Group::Publish);
        assert_eq!(Route::LokiPush.group(&Method::Post), Group::Publish);
        assert_eq!(Route::Stats.group(&Method::Get), Group::Read);
        assert_eq!(Route::DeadLetter.group(&Method::Delete), Group::Admin);
        assert_eq!(Route::Drain.group(&Method::Post), Group::Admin);
    }
}
