//! edgelog: an edge log aggregator as a Spin HTTP component.
//!
//! Publishers POST log events at least once; each `(topic, event_id)` is stored
//! exactly once. A publish is acknowledged when its validated batch is durably in
//! the key-value queue, and is normally stored before the answer too.
//!
//! Module map, in the order one event travels:
//! `lib` (entry, dispatch) → `routes` (handlers) → `http` (request checks, JSON
//! answers) → `validate` (the `Event` type) → `queue` (key-value entries) →
//! `consume` (queue → store, exactly once) → `store` (`EventStore`; `sqlite`,
//! `postgres`). Beside the path: `config` (Spin variables) and `stats` (counters).

mod config;
mod consume;
mod http;
mod queue;
mod routes;
mod stats;
mod store;
mod validate;

use spin_sdk::http::{IncomingRequest, Method, Response};
use spin_sdk::http_component;

use crate::http::ApiError;
use crate::validate::Shape;

/// The routes this component serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Publish,
    PublishBatch,
    Events,
    Stats,
    Health,
    Drain,
    Metrics,
}

impl Route {
    /// Matches an exact path (no trailing-slash or prefix matching).
    fn of(path: &str) -> Option<Route> {
        Some(match path {
            "/publish" => Route::Publish,
            "/publish/batch" => Route::PublishBatch,
            "/events" => Route::Events,
            "/stats" => Route::Stats,
            "/health" => Route::Health,
            "/drain" => Route::Drain,
            "/metrics" => Route::Metrics,
            _ => return None,
        })
    }

    /// The one method each route accepts, also sent as `Allow` on a 405.
    fn allow(self) -> &'static str {
        match self {
            Route::Publish | Route::PublishBatch | Route::Drain => "POST",
            Route::Events | Route::Stats | Route::Health | Route::Metrics => "GET",
        }
    }

    fn accepts(self, method: &Method) -> bool {
        match self.allow() {
            "POST" => *method == Method::Post,
            _ => *method == Method::Get,
        }
    }
}

/// Entry point: route by path, check the method, run the handler, render any error.
#[http_component]
async fn handle(req: IncomingRequest) -> Response {
    let path_with_query = req.path_with_query().unwrap_or_default();
    let (path, query) = http::split_path_query(&path_with_query);
    let Some(route) = Route::of(path) else {
        return ApiError::not_found(path).into_response();
    };
    let method = req.method();
    if !route.accepts(&method) {
        return ApiError::method_not_allowed(&method.to_string(), route.allow()).into_response();
    }
    let result = match route {
        Route::Publish => routes::publish(req, query, Shape::Any).await,
        Route::PublishBatch => routes::publish(req, query, Shape::Batch).await,
        Route::Events => routes::events(query),
        Route::Stats => routes::stats(),
        Route::Health => routes::health(),
        Route::Drain => routes::drain(),
        Route::Metrics => routes::metrics(),
    };
    result.unwrap_or_else(ApiError::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table() {
        assert_eq!(Route::of("/publish"), Some(Route::Publish));
        assert_eq!(Route::of("/publish/batch"), Some(Route::PublishBatch));
        assert_eq!(Route::of("/drain"), Some(Route::Drain));
        for unknown in ["/", "/publish/", "/events/1", "/PUBLISH", "", "/stats/"] {
            assert_eq!(Route::of(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn methods() {
        assert!(Route::Publish.accepts(&Method::Post));
        assert!(!Route::Publish.accepts(&Method::Get));
        assert!(Route::Events.accepts(&Method::Get));
        assert!(!Route::Events.accepts(&Method::Head));
        assert!(!Route::Drain.accepts(&Method::Get));
        assert_eq!(Route::Metrics.allow(), "GET");
    }
}
