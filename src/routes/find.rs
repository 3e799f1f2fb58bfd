//! The reading handlers of issue 16 beside `events`: the live tail's wait loop and `/volume`,
//! and the drain every read does first.

use super::{EventsPage, Handled, connect, store_failed};
use crate::config::Config;
use crate::consume::{self, DrainError};
use crate::error::ApiError;
use crate::http;
use crate::log::logln;
use crate::queue::Queue;
use crate::search;
use crate::stats;
use crate::store::{self, EventStore};

/// Consumes queued entries first (read-your-writes); says why the answer may be incomplete.
pub(super) fn drain_for_read(
    store: &dyn EventStore,
    config: &Config,
) -> Result<Option<&'static str>, ApiError> {
    // If the queue is down the stored events are still served, with a warning.
    let budget = crate::config::work_budget()?;
    let drained = Queue::open()
        .map_err(DrainError::Queue)
        .and_then(|queue| consume::drain(store, &queue, budget, config.duplicate_log));
    match drained {
        Ok(report) if report.more => Ok(Some(
            "entries are still queued; they will appear once consumed",
        )),
        Ok(_) => Ok(None),
        Err(DrainError::Store(e)) => Err(store_failed(e)),
        Err(DrainError::Queue(e)) => {
            logln!("WARN {e}; serving stored events only");
            Ok(Some(
                "the queue is unavailable; queued events may be missing",
            ))
        }
    }
}

/// The live tail: reads what was stored after the cursor; if nothing yet, gives the store
/// connection back, sleeps [`search::POLL`] and reads again, until something arrives or
/// `wait` is over. One request, one instance, one loop: it works the same on Spin.
pub(super) fn follow(
    store: Box<dyn EventStore>,
    config: &Config,
    q: store::EventQuery,
    tail: search::Tail,
    warning: Option<&'static str>,
) -> Handled {
    let deadline = std::time::Instant::now() + tail.wait;
    let mut cursor = tail.after;
    let mut open = Some(store);
    loop {
        let store = match open.take() {
            Some(store) => store,
            None => {
                // Later looks: one index probe; the tail's read only when something is new.
                let store = store::open(&config.store).map_err(store_failed)?;
                let now = std::time::Instant::now();
                if now < deadline && !store.tail_moved(cursor).map_err(store_failed)? {
                    drop(store);
                    std::thread::sleep(search::POLL.min(deadline - now));
                    continue;
                }
                store
            }
        };
        let page = store.tail(&q, cursor).map_err(store_failed)?;
        cursor = page.next;
        let now = std::time::Instant::now();
        if !page.events.is_empty() || now >= deadline {
            return Ok(http::json(
                200,
                &EventsPage {
                    count: page.events.len(),
                    events: page.events,
                    topic: q.topic,
                    source: q.source,
                    since: q.since,
                    until: q.until,
                    next_cursor: None,
                    warning,
                    order: "tail",
                    tail_cursor: cursor,
                },
            ));
        }
        drop(store); // a waiting client holds no pooled connection
        std::thread::sleep(search::POLL.min(deadline - now));
    }
}

/// `GET /volume`: events per time bucket and level, with the filters of `/events`.
pub fn volume(query: &str) -> Handled {
    let now_minute = stats::now_utc().and_utc().timestamp().div_euclid(60);
    let v = search::parse_volume(query, now_minute)?;
    let config = Config::load()?;
    let store = connect(&config)?;
    let warning = drain_for_read(&*store, &config)?;
    let cells = if v.until_minute > v.since_minute {
        store.volume(&v).map_err(store_failed)?
    } else {
        Vec::new()
    };
    Ok(http::json(200, &stats::volume_page(&v, &cells, warning)))
}
