//! Route handlers: one short function per route, wiring parsing, queue, consumer and store.
//!
//! The path of one published event: [`publish`] checks the request (`http`),
//! validates the batch (`validate`), writes it to the queue (`queue` — the durable
//! acknowledgement), then consumes its own entry (`consume` → `store`) unless the
//! client asked for asynchronous handling or the backlog is over its limit.

use serde::Serialize;
use spin_sdk::http::{IncomingRequest, Response};

use crate::config::Config;
use crate::consume::{self, DrainError};
use crate::error::ApiError;
use crate::http;
use crate::queue::{self, Queue, QueueError};
use crate::stats::{self, Stats, StatsError};
use crate::store::{self, EventStore, StoreError, StoredEvent};
use crate::validate::{self, Shape};

/// Handler result: a success response or an error rendered by `ApiError`.
pub type Handled = Result<Response, ApiError>;

#[derive(Serialize)]
struct Published {
    received: u64,
    processed: u64,
    duplicates: u64,
}

#[derive(Serialize)]
struct Queued {
    received: u64,
    queued: u64,
}

#[derive(Serialize)]
struct EventsPage {
    events: Vec<StoredEvent>,
    count: usize,
    topic: Option<String>,
    next_cursor: Option<i64>,
}

#[derive(Serialize)]
struct Drained {
    drained_batches: u64,
    processed: u64,
    duplicates: u64,
    queued: u64,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    store: &'static str,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    queue: String,
    store: String,
}

/// `/stats` when the store cannot be read: the standard error fields plus what the queue knows.
#[derive(Serialize)]
struct PartialStats<'a> {
    error: &'a str,
    message: &'a str,
    details: [(); 0],
    store: &'static str,
    queued: Option<u64>,
}

fn queue_failed(e: QueueError) -> ApiError {
    eprintln!("ERROR {e}");
    ApiError::queue_unavailable()
}

fn store_failed(e: StoreError) -> ApiError {
    eprintln!("ERROR store: {e}");
    ApiError::store_unavailable()
}

fn drain_failed(e: DrainError) -> ApiError {
    match e {
        DrainError::Queue(e) => queue_failed(e),
        DrainError::Store(e) => store_failed(e),
    }
}

fn open_queue() -> Result<Queue, ApiError> {
    Queue::open().map_err(queue_failed)
}

fn connect(config: &Config) -> Result<Box<dyn EventStore>, ApiError> {
    store::connect(&config.store).map_err(store_failed)
}

fn accepted(n: u64) -> Response {
    http::json(
        202,
        &Queued {
            received: n,
            queued: n,
        },
    )
}

/// Whether the queue holds more than `max_backlog_events` (0, the default, disables the check).
///
/// Off by default because it lists every key of the queue (Redis `KEYS`) on every publish.
fn backlog_exceeded(queue: &Queue, config: &Config) -> bool {
    if config.max_backlog_events == 0 {
        return false;
    }
    match queue.pending() {
        Ok(pending) => queue::total(&pending) > config.max_backlog_events,
        Err(e) => {
            eprintln!("WARN could not measure the backlog: {e}");
            false
        }
    }
}

/// `POST /publish` and `POST /publish/batch`: validate, enqueue (the ack), then consume own entry.
pub async fn publish(req: IncomingRequest, query: &str, shape: Shape) -> Handled {
    http::check_content_type(http::header(&req, "content-type").as_deref())?;
    let asynchronous = http::wants_async(http::header(&req, "prefer").as_deref(), query)?;
    let config = Config::load()?;
    let body = http::read_body(req, config.max_body_bytes).await?;
    let events = validate::parse_batch(&body, shape, &config.limits)?;
    drop(body); // up to max_body_bytes; not needed past validation
    let n = events.len() as u64;
    let queue = open_queue()?;
    let key = queue.enqueue(&events).map_err(queue_failed)?;
    if asynchronous || backlog_exceeded(&queue, &config) {
        return Ok(accepted(n));
    }
    let applied = store::open(&config.store).and_then(|store| {
        store::with_schema(&*store, |s| consume::apply_entry(s, &queue, &key, &events))
    });
    match applied {
        Ok(a) => Ok(http::json(
            200,
            &Published {
                received: a.received,
                processed: a.inserted,
                duplicates: a.duplicates(),
            },
        )),
        Err(e) => {
            eprintln!("ERROR store: {e} (entry {key} stays queued)");
            Ok(accepted(n))
        }
    }
}

/// `GET /events`: consume what is pending (read-your-writes), then one page, newest first.
pub fn events(query: &str) -> Handled {
    let q = http::parse_event_query(query)?;
    let config = Config::load()?;
    let queue = open_queue()?;
    let store = connect(&config)?;
    consume::drain(&*store, &queue).map_err(drain_failed)?;
    let events = store.list(&q).map_err(store_failed)?;
    let full = events.len() == q.limit as usize;
    let next_cursor = events.last().filter(|_| full).map(|e| e.id);
    Ok(http::json(
        200,
        &EventsPage {
            count: events.len(),
            topic: q.topic,
            next_cursor,
            events,
        },
    ))
}

/// Drains (best effort), then collects stats; shared by `/stats` and `/metrics`.
fn current_stats(config: &Config) -> Result<Stats, Response> {
    let queue = open_queue().map_err(ApiError::into_response)?;
    let name = config.store.name();
    let partial = |e: StoreError, queued: Option<u64>| {
        eprintln!("ERROR store: {e}");
        let err = ApiError::store_unavailable();
        http::json(
            503,
            &PartialStats {
                error: err.code,
                message: &err.message,
                details: [],
                store: name,
                queued,
            },
        )
    };
    let store = match store::connect(&config.store) {
        Ok(store) => store,
        Err(e) => {
            let queued = queue.pending().ok().map(|p| queue::total(&p));
            return Err(partial(e, queued));
        }
    };
    if let Err(e) = consume::drain(&*store, &queue) {
        // Answer from what can still be read; the entries stay queued and are counted so.
        drain_failed(e);
    }
    stats::collect(&queue, &*store, name).map_err(|e| match e {
        StatsError::Queue(e) => queue_failed(e).into_response(),
        StatsError::Store(e, queued) => partial(e, Some(queued)),
    })
}

/// `GET /stats`: exact counters (`received = unique_processed + duplicate_dropped + queued`).
pub fn stats(_query: &str) -> Handled {
    let config = Config::load()?;
    Ok(match current_stats(&config) {
        Ok(stats) => http::json(200, &stats),
        Err(response) => response,
    })
}

/// `GET /metrics`: the same counters as Prometheus text.
pub fn metrics() -> Handled {
    let config = Config::load()?;
    Ok(match current_stats(&config) {
        Ok(stats) => Response::builder()
            .status(200)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(stats::prometheus(&stats))
            .build(),
        Err(response) => response,
    })
}

/// `GET /health`: probes queue and store without changing anything; 503 names the failing part.
pub fn health() -> Handled {
    let config = Config::load()?;
    let queue = match Queue::open().and_then(|q| q.ping()) {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            eprintln!("ERROR health: {e}");
            "error: key-value store unavailable".to_owned()
        }
    };
    let store = match store::open(&config.store).and_then(|s| s.ping()) {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            eprintln!("ERROR health: store: {e}");
            format!("error: {}", e.summary)
        }
    };
    let healthy = queue == "ok" && store == "ok";
    let body = Health {
        status: if healthy { "healthy" } else { "unhealthy" },
        store: config.store.name(),
        checks: Checks { queue, store },
    };
    Ok(http::json(if healthy { 200 } else { 503 }, &body))
}

/// `POST /drain`: the scheduler/operator hook that consumes everything pending.
pub fn drain() -> Handled {
    let config = Config::load()?;
    let queue = open_queue()?;
    let store = connect(&config)?;
    let report = consume::drain(&*store, &queue).map_err(drain_failed)?;
    let pending = queue.pending().map_err(queue_failed)?;
    Ok(http::json(
        200,
        &Drained {
            drained_batches: report.batches,
            processed: report.processed,
            duplicates: report.duplicates,
            queued: queue::total(&pending),
        },
    ))
}

/// `POST /maintenance` (being implemented).
pub fn maintenance() -> Handled {
    Err(ApiError::conflict("not implemented yet"))
}

/// `GET /dead-letters` (being implemented).
pub fn dead_letters(_query: &str) -> Handled {
    Err(ApiError::conflict("not implemented yet"))
}

/// `GET /dead-letters/{id}` (being implemented).
pub fn dead_letter(id: &str) -> Handled {
    Err(ApiError::no_such("dead letter", id))
}

/// `DELETE /dead-letters/{id}` (being implemented).
pub fn discard_dead_letter(id: &str) -> Handled {
    Err(ApiError::no_such("dead letter", id))
}

/// `POST /dead-letters/{id}/retry` (being implemented).
pub fn retry_dead_letter(id: &str) -> Handled {
    Err(ApiError::no_such("dead letter", id))
}
