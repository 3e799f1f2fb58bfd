//! Route handlers: one short function per route, wiring parsing, queue, consumer and store.
//!
//! The path of one published event: [`publish`] checks the request (`http`),
//! validates the batch (`validate`), then applies it straight to the store in one
//! transaction keyed by a fresh entry key (`consume::apply_direct`) — the
//! acknowledgement is that commit. If the store cannot take it now (down, or the
//! client asked for asynchronous handling, or the backlog is over its limit), the
//! batch is written to the queue under that same key (`queue`) and answered `202`;
//! the key's marker makes a later re-apply of an entry whose direct apply had in fact
//! committed a no-op. That path is [`deliver`]; the other protocols (`ingest`) use it too.

use serde::Serialize;
use spin_sdk::http::{IncomingRequest, Response};

use crate::config::{self, Config, Upkeep};
use crate::consume::{self, DrainError};
use crate::error::ApiError;
use crate::http;
use crate::log::logln;
use crate::maintenance;
use crate::queue::{self, Queue, QueueError};
use crate::search;
use crate::stats::{self, Stats, StatsError};
use crate::store::{self, Batch, EventStore, Group, StoreError, StoredEvent, TailCursor};
use crate::validate::{self, Shape};

mod find;
pub use find::volume;
use find::{drain_for_read, follow};

/// Handler result: a success response or an error rendered by `ApiError`.
pub type Handled = Result<Response, ApiError>;

#[derive(Serialize)]
struct Published {
    received: u64,
    processed: u64,
    duplicates: u64,
    accepted: u64,
    message: String,
}

#[derive(Serialize)]
struct Queued {
    received: u64,
    queued: u64,
    accepted: u64,
    message: &'static str,
}

#[derive(Serialize)]
struct EventsPage<'a> {
    events: Vec<StoredEvent>,
    count: usize,
    topic: Option<String>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    next_cursor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<&'a str>,
    /// `stored`, `time`, or `tail` (oldest first, after a cursor).
    order: &'static str,
    /// Pass as `after=` to follow what is stored from here on.
    tail_cursor: TailCursor,
}

#[derive(Serialize)]
struct Drained {
    drained_batches: u64,
    processed: u64,
    duplicates: u64,
    dead_lettered: u64,
    queued: u64,
    more: bool,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    store: &'static str,
    checks: Checks,
    consumer_running: bool,
    queue_size: Option<u64>,
    dead_letters: Option<u64>,
}

#[derive(Serialize)]
struct Checks {
    queue: String,
    store: String,
}

#[derive(Serialize)]
struct LetterPage {
    dead_letters: Vec<store::DeadLetter>,
    count: usize,
    next_cursor: Option<i64>,
}

#[derive(Serialize)]
struct LetterDetail {
    #[serde(flatten)]
    letter: store::DeadLetter,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
}

#[derive(Serialize)]
struct LetterStatus<'a> {
    id: &'a str,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    processed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicates: Option<u64>,
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
    logln!("ERROR {e}");
    ApiError::queue_unavailable()
}

fn store_failed(e: StoreError) -> ApiError {
    logln!("ERROR store: {e}");
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
            accepted: n,
            message: "queued durably; the events will be stored exactly once",
        },
    )
}

/// Whether the queue, with this publish's `n` events, would hold more than `max_backlog_events`.
///
/// Off by default (0) because it lists every key of the queue (Redis `KEYS`) on every publish.
fn backlog_exceeded(queue: &Queue, config: &Config, n: u64) -> bool {
    if config.max_backlog_events == 0 {
        return false;
    }
    match queue.pending() {
        Ok(pending) => queue::total(&pending) + n > config.max_backlog_events,
        Err(e) => {
            logln!("WARN could not measure the backlog: {e}");
            false
        }
    }
}

/// What became of a delivered batch.
pub enum Delivered {
    /// Committed to the store (the acknowledgement).
    Stored(store::Applied),
    /// Durably queued, to be stored exactly once later.
    Queued(u64),
}

/// The one apply / queue path of every ingest route: apply the validated batch straight to the
/// store under a fresh entry key; if the store cannot take it now (down, asked for asynchronous
/// handling, backlog over its limit), queue it under that key. `503` when neither can.
pub fn deliver(
    events: &[validate::Event],
    asynchronous: bool,
    config: &Config,
) -> Result<Delivered, ApiError> {
    let n = events.len() as u64;
    let key = queue::new_key(events.len());
    let deferred = asynchronous || {
        // Only consulted when the limit is set (it lists the queue).
        config.max_backlog_events > 0 && backlog_exceeded(&open_queue()?, config, n)
    };
    if !deferred {
        let applied = store::open(&config.store).and_then(|store| {
            store::with_schema(&*store, |s| {
                consume::apply_direct(s, &key, events, config.duplicate_log)
            })
        });
        match applied {
            Ok(a) => return Ok(Delivered::Stored(a)),
            Err(e) => logln!("ERROR store: {e} (queueing entry {key})"),
        }
    }
    open_queue()?
        .enqueue_as(&key, events)
        .map_err(queue_failed)?;
    Ok(Delivered::Queued(n))
}

/// `POST /publish` and `POST /publish/batch`: validate (JSON or NDJSON), then [`deliver`].
pub async fn publish(
    req: IncomingRequest,
    headers: &http::Headers,
    query: &str,
    shape: Shape,
) -> Handled {
    let ndjson = http::check_publish_content_type(headers.get("content-type").as_deref())?;
    let asynchronous = http::wants_async(headers.get("prefer").as_deref(), query)?;
    let config = Config::load()?;
    let body = http::read_body(req, headers, config.max_body_bytes)?;
    let events = if ndjson {
        crate::ingest::ndjson::decode(&body, &config.limits)?
    } else {
        validate::parse_batch(&body, shape, &config.limits)?
    };
    drop(body); // up to max_body_bytes; not needed past validation
    Ok(match deliver(&events, asynchronous, &config)? {
        Delivered::Stored(a) => http::json(
            200,
            &Published {
                received: a.received,
                processed: a.inserted,
                duplicates: a.duplicates(),
                accepted: a.inserted,
                message: format!(
                    "{} stored, {} duplicate(s) dropped",
                    a.inserted,
                    a.duplicates()
                ),
            },
        ),
        Delivered::Queued(n) => accepted(n),
    })
}

/// `GET /events`: consume what is pending (within the budget), then one page, newest first;
/// with `after=<tail_cursor>`, what was stored after it, waiting up to `wait` seconds for it.
pub fn events(query: &str) -> Handled {
    let q = http::parse_event_query(query)?;
    let tail = search::parse_tail(query, &q)?;
    let config = Config::load()?;
    let store = connect(&config)?;
    let warning = drain_for_read(&*store, &config)?;
    if let Some(tail) = tail {
        return follow(store, &config, q, tail, warning);
    }
    // Taken before the page: a tail from it may repeat an event of this page, never miss one.
    let position = store.tail_position().map_err(store_failed)?;
    let events = store.list(&q).map_err(store_failed)?;
    let full = events.len() == q.limit as usize;
    let next_cursor = events.last().filter(|_| full).map(|e| e.id);
    let order = if store::query::by_time(&q) {
        "time"
    } else {
        "stored"
    };
    Ok(http::json(
        200,
        &EventsPage {
            count: events.len(),
            topic: q.topic,
            source: q.source,
            since: q.since,
            until: q.until,
            next_cursor,
            events,
            warning,
            order,
            tail_cursor: position,
        },
    ))
}

/// Drains (best effort, within the budget), then collects stats; shared by `/stats` and `/metrics`.
fn current_stats(config: &Config, topic: Option<String>) -> Result<Stats, Response> {
    let queue = open_queue().map_err(ApiError::into_response)?;
    let name = config.store.name();
    let partial = |e: StoreError, queued: Option<u64>| {
        logln!("ERROR store: {e}");
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
    let budget = config::work_budget().map_err(ApiError::into_response)?;
    if let Err(e) = consume::drain(&*store, &queue, budget, config.duplicate_log) {
        // Answer from what can still be read; the entries stay queued and are counted so.
        drain_failed(e);
    }
    stats::collect(&queue, &*store, name, topic).map_err(|e| match e {
        StatsError::Queue(e) => queue_failed(e).into_response(),
        StatsError::Store(e, queued) => partial(e, Some(queued)),
    })
}

/// `GET /stats`: exact counters (`received = unique_processed + duplicate_dropped + queued +
/// dead_lettered`), per topic too.
pub fn stats(query: &str) -> Handled {
    let topic = http::parse_stats_query(query)?;
    let config = Config::load()?;
    Ok(match current_stats(&config, topic) {
        Ok(stats) => http::json(200, &stats),
        Err(response) => response,
    })
}

/// `GET /metrics`: the same counters as Prometheus text.
pub fn metrics() -> Handled {
    let config = Config::load()?;
    Ok(match current_stats(&config, None) {
        Ok(stats) => Response::builder()
            .status(200)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(stats::prometheus(&stats, config::max_topic_labels()?))
            .build(),
        Err(response) => response,
    })
}

/// `GET /health`: probes queue and store without changing anything; 503 names the failing part.
///
/// `?probe=live` answers 200 without touching a dependency (the component runs: restarting it
/// fixes nothing else); `?probe=ready` answers 200 while publishes can be acknowledged — the
/// store or the queue answers — so an orchestrator keeps routing publishers during an outage of
/// one of them (they get 202s from the queue, or 200s straight from the store).
pub fn health(query: &str) -> Handled {
    let asked = http::parse_probe(query)?;
    let config = Config::load()?;
    if asked == http::Probe::Live {
        return Ok(http::json(200, &serde_json::json!({"status": "alive"})));
    }
    let queue = Queue::open();
    let pending = queue.as_ref().map_err(|e| e.to_string()).and_then(|q| {
        q.pending()
            .map(|p| queue::total(&p))
            .map_err(|e| e.to_string())
    });
    let queue_check = match &pending {
        Ok(_) => "ok".to_owned(),
        Err(e) => {
            logln!("ERROR health: {e}");
            "error: key-value store unavailable".to_owned()
        }
    };
    let store = store::open(&config.store);
    let probe = store.as_ref().map_err(Clone::clone).and_then(|s| {
        s.ping()?;
        let filter = store::TopicFilter {
            topic: None,
            limit: 0,
        };
        Ok(match s.snapshot(&[], &filter) {
            Ok(snapshot) => Some(snapshot.dead_letters_pending),
            // A fresh store (never migrated: /health creates nothing) holds no dead letters.
            Err(_) => match s.has_dead_letter_table() {
                Ok(false) => Some(0),
                _ => None,
            },
        })
    });
    let (store_check, dead_letters) = match probe {
        Ok(dead) => ("ok".to_owned(), dead),
        Err(e) => {
            logln!("ERROR health: store: {e}");
            (format!("error: {}", e.summary), None)
        }
    };
    let healthy = queue_check == "ok" && store_check == "ok";
    let ready = queue_check == "ok" || store_check == "ok";
    let status = match (healthy, ready) {
        (true, _) => "healthy",
        (false, true) => "degraded",
        (false, false) => "unhealthy",
    };
    let up = healthy || (asked == http::Probe::Ready && ready);
    let body = Health {
        status,
        store: config.store.name(),
        checks: Checks {
            queue: queue_check,
            store: store_check,
        },
        consumer_running: healthy,
        queue_size: pending.ok(),
        dead_letters,
    };
    Ok(http::json(if up { 200 } else { 503 }, &body))
}

/// `POST /drain`: the scheduler/operator hook; consumes within the budget, says if more is left.
/// With `lane=I&lanes=N`, only lane `I` of `N` (parallel callers on disjoint lanes); without,
/// everything from a random group (see `consume::Share`).
pub fn drain(query: &str) -> Handled {
    let (lane, lanes) = http::parse_drain_query(query)?;
    let share = consume::Share::of_request(lane, lanes);
    let config = Config::load()?;
    let budget = config::work_budget()?;
    let queue = open_queue()?;
    let store = connect(&config)?;
    let report = consume::drain_share(&*store, &queue, budget, config.duplicate_log, share)
        .map_err(drain_failed)?;
    let pending = queue.pending().map_err(queue_failed)?;
    let queued = queue::total(&pending);
    // `more` is about this caller's share: a lane caller stops once its lane is empty.
    let left = pending.iter().any(|p| share.holds(&p.key));
    Ok(http::json(
        200,
        &Drained {
            drained_batches: report.batches,
            processed: report.processed,
            duplicates: report.duplicates,
            dead_lettered: report.dead_lettered,
            queued,
            more: report.more || left,
        },
    ))
}

/// `POST /maintenance`: releases, compacts and expires within the budget.
pub fn maintenance() -> Handled {
    let config = Config::load()?;
    let upkeep = Upkeep::load()?;
    let queue = open_queue()?;
    let store = connect(&config)?;
    let retention = spin_sdk::variables::get("retention")
        .ok()
        .filter(|_| upkeep.retention.is_some());
    let report = maintenance::run(&*store, &queue, &upkeep, retention).map_err(drain_failed)?;
    Ok(http::json(200, &report))
}

/// `GET /dead-letters`: one page of dead letters, oldest first.
pub fn dead_letters(query: &str) -> Handled {
    let (limit, after) = http::parse_page_query(query)?;
    let config = Config::load()?;
    let store = connect(&config)?;
    let letters = store.dead_letters(after, limit).map_err(store_failed)?;
    let next_cursor = letters
        .last()
        .filter(|_| letters.len() == limit as usize)
        .map(|l| l.seq);
    Ok(http::json(
        200,
        &LetterPage {
            count: letters.len(),
            dead_letters: letters,
            next_cursor,
        },
    ))
}

fn find_letter(store: &dyn EventStore, id: &str) -> Result<store::DeadLetter, ApiError> {
    store
        .dead_letter(id)
        .map_err(store_failed)?
        .ok_or_else(|| ApiError::no_such("dead letter", id))
}

/// `GET /dead-letters/{id}`: one dead letter with its original batch.
pub fn dead_letter(id: &str) -> Handled {
    let config = Config::load()?;
    let store = connect(&config)?;
    let mut letter = find_letter(&*store, id)?;
    let batch = letter.batch.take().unwrap_or_default();
    let events = queue::decode(batch.as_bytes(), letter.received)
        .ok()
        .map(|events| events.iter().map(validate::Event::to_json).collect());
    let raw = events.is_none().then_some(batch);
    Ok(http::json(
        200,
        &LetterDetail {
            letter,
            events,
            raw,
        },
    ))
}

/// `DELETE /dead-letters/{id}`: gives up on a dead letter (it stays counted as dead-lettered).
pub fn discard_dead_letter(id: &str) -> Handled {
    let config = Config::load()?;
    let store = connect(&config)?;
    let status = store
        .discard(id)
        .map_err(store_failed)?
        .ok_or_else(|| ApiError::no_such("dead letter", id))?;
    if status == "applied" {
        return Err(ApiError::conflict(format!(
            "dead letter {id:?} was already re-applied"
        )));
    }
    Ok(http::json(
        200,
        &LetterStatus {
            id,
            status,
            processed: None,
            duplicates: None,
        },
    ))
}

/// `POST /dead-letters/{id}/retry`: applies the batch again, settling the letter atomically.
pub fn retry_dead_letter(id: &str) -> Handled {
    let config = Config::load()?;
    let store = connect(&config)?;
    let mut letter = find_letter(&*store, id)?;
    if letter.status != "pending" {
        return Err(ApiError::conflict(format!(
            "dead letter {id:?} is {}; only pending letters can be retried",
            letter.status
        )));
    }
    let batch = letter.batch.take().unwrap_or_default();
    // The request itself is always well-formed: what stops a retry is the letter's state (its
    // batch unreadable, or still refused by the store), so both answer 409 like any other state.
    let events = queue::decode(batch.as_bytes(), letter.received).map_err(|reason| {
        ApiError::conflict(format!(
            "dead letter {id:?} holds an unreadable batch ({reason}); it can only be discarded"
        ))
    })?;
    let key = format!("r/{id}/{}", letter.attempts);
    let group = Group {
        batches: vec![Batch {
            key: &key,
            events: &events,
        }],
        settles: Some(id),
        shard: consume::shard(),
    };
    match store.apply(&group) {
        Ok(a) if a.settled => Ok(http::json(
            200,
            &LetterStatus {
                id,
                status: "applied".to_owned(),
                processed: Some(a.inserted),
                duplicates: Some(a.duplicates()),
            },
        )),
        Ok(_) => Err(ApiError::conflict(format!(
            "dead letter {id:?} changed meanwhile; read it again"
        ))),
        Err(e) if e.kind == store::ErrorKind::Transient => Err(store_failed(e)),
        Err(e) => {
            logln!("WARN retry of dead letter {id} failed: {e}");
            Err(ApiError::conflict(format!(
                "the store still refuses dead letter {id:?}: {}",
                e.summary
            )))
        }
    }
}
