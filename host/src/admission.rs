//! Admission: what a request must get through before it may take a guest instance slot.
//!
//! A slot is scarce (`--max-instances`), so a request does not take one while its client is
//! still sending. A body that travels with its headers (any ordinary publish) is taken at once.
//! Any other body is first received by the host, within a bounded pool of "receiving"
//! places (`--max-pending-connections`; when full, a new request gets `503` + `Retry-After` at
//! once), with a time limit between two pieces of body (`--body-idle-timeout-secs`) and for the
//! whole body (the request timeout); either limit answers `408`. Bodies up to
//! [`BUFFER_BEFORE_SLOT`] are received completely before the slot is taken; a larger body takes
//! its slot once that much has arrived and streams the rest to the guest under the same two
//! limits. Slow headers are hyper's business (`header_read_timeout`, set by the server).

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::{Instant, Sleep};

/// Body bytes the host holds for a request before it takes an instance slot. Covers every
/// ordinary publish (a 300-event batch is about 60 KB); with the receiving pool full the host
/// holds at most this much per receiving connection.
pub const BUFFER_BEFORE_SLOT: usize = 256 * 1024;

/// The limits on receiving request bodies.
#[derive(Debug, Clone)]
pub struct BodyPolicy {
    /// Longest wait for the next piece of a body.
    pub idle_timeout: Duration,
    /// Longest a whole body may take, counted from the end of the headers.
    pub total_timeout: Duration,
}

/// Why receiving a body ended without a body.
#[derive(Debug)]
pub enum BodyFailure {
    /// No body bytes arrived for the idle timeout.
    Idle(Duration),
    /// The body was still arriving at the request timeout.
    TooSlow(Duration),
    /// The connection broke mid-body.
    Broken(hyper::Error),
}

impl BodyFailure {
    /// The answer for the client (if it is still there to read it).
    pub fn response(&self) -> hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody> {
        match self {
            BodyFailure::Idle(t) => crate::reply::request_timeout(&format!(
                "no request body bytes arrived for {}s",
                t.as_secs_f64()
            )),
            BodyFailure::TooSlow(t) => crate::reply::request_timeout(&format!(
                "the request body did not arrive within the request timeout ({}s)",
                t.as_secs_f64()
            )),
            BodyFailure::Broken(_) => crate::reply::closing(crate::reply::error(
                hyper::StatusCode::BAD_REQUEST,
                "bad_request",
                "the request body could not be read",
            )),
        }
    }
}

impl std::fmt::Display for BodyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyFailure::Idle(t) => write!(f, "request body idle for {t:?}"),
            BodyFailure::TooSlow(t) => write!(f, "request body slower than {t:?}"),
            BodyFailure::Broken(e) => write!(f, "request body broken: {e}"),
        }
    }
}

/// The bounded pool of connections that are sending a request body.
#[derive(Debug, Clone)]
pub struct ReceivingPool {
    places: Arc<Semaphore>,
    size: usize,
    /// Requests turned away since the last warning (one warning a second at most, so an attack
    /// does not also flood the log).
    refused: Arc<AtomicU64>,
    last_warning: Arc<parking_lot::Mutex<Option<std::time::Instant>>>,
}

impl ReceivingPool {
    /// A pool of `size` places.
    pub fn new(size: usize) -> Self {
        ReceivingPool {
            places: Arc::new(Semaphore::new(size)),
            size,
            refused: Arc::default(),
            last_warning: Arc::default(),
        }
    }

    /// A place, or `None` at once when all are taken (the caller answers `503`, never waits).
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        let place = self.places.clone().try_acquire_owned().ok();
        if place.is_none() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let mut last = self.last_warning.lock();
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                *last = Some(std::time::Instant::now());
                let n = self.refused.swap(0, Ordering::Relaxed);
                tracing::warn!(
                    "all {} receiving places are taken (--max-pending-connections): \
                     {n} request(s) answered 503",
                    self.size
                );
            }
        }
        place
    }
}

/// A request body as the guest sees it: what the host already received, then (for a body larger
/// than [`BUFFER_BEFORE_SLOT`]) the rest as it arrives, under the same idle and total limits.
pub struct ReceivedBody {
    received: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    rest: Option<Incoming>,
    policy: BodyPolicy,
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    stalled: Option<oneshot::Sender<BodyFailure>>,
}

/// Reports, once, that the streamed part of a body stalled: the server then answers `408`
/// instead of waiting for the guest.
pub type StallSignal = oneshot::Receiver<BodyFailure>;

impl ReceivedBody {
    /// A body with nothing in it (requests that declare none).
    pub fn empty(policy: &BodyPolicy) -> Self {
        ReceivedBody {
            received: VecDeque::new(),
            trailers: None,
            rest: None,
            policy: policy.clone(),
            deadline: Instant::now(),
            timer: None,
            stalled: None,
        }
    }

    /// For a body still streaming, the signal that fires if it stalls.
    pub fn stall_signal(&mut self) -> Option<StallSignal> {
        self.rest.as_ref()?;
        let (tx, rx) = oneshot::channel();
        self.stalled = Some(tx);
        Some(rx)
    }

    fn next_wait(&self) -> Instant {
        (Instant::now() + self.policy.idle_timeout).min(self.deadline)
    }

    fn fail(&mut self, failure: BodyFailure) -> wasmtime_wasi_http::Error {
        tracing::info!("{failure}");
        self.rest = None;
        self.timer = None;
        if let Some(tx) = self.stalled.take() {
            let _ = tx.send(failure);
        }
        wasmtime_wasi_http::Error::ConnectionReadTimeout
    }
}

/// How long a body that travels with its headers (any ordinary publish) may take to show up
/// before its request needs a receiving place: such requests are served even when slow clients
/// fill the pool.
pub const ARRIVES_WITH_HEADERS: Duration = Duration::from_millis(10);

/// A request body being received: what has arrived so far, and the connection it comes from.
pub struct Receiving {
    body: Incoming,
    received: VecDeque<Bytes>,
    size: usize,
    trailers: Option<HeaderMap>,
    complete: bool,
    policy: BodyPolicy,
    deadline: Instant,
}

impl Receiving {
    /// Starts receiving `body` under `policy`, its total time counted from `started`.
    pub fn new(body: Incoming, policy: &BodyPolicy, started: Instant) -> Self {
        Receiving {
            body,
            received: VecDeque::new(),
            size: 0,
            trailers: None,
            complete: false,
            policy: policy.clone(),
            deadline: started + policy.total_timeout,
        }
    }

    /// Receives until the body is complete or past [`BUFFER_BEFORE_SLOT`] (`Ok(true)`), or until
    /// `until` (`Ok(false)`); the idle and total limits apply throughout.
    async fn pull(&mut self, until: Option<Instant>) -> Result<bool, BodyFailure> {
        loop {
            if self.complete || self.size > BUFFER_BEFORE_SLOT {
                return Ok(true);
            }
            let limit = (Instant::now() + self.policy.idle_timeout).min(self.deadline);
            let wait = until.map_or(limit, |u| u.min(limit));
            let frame = match tokio::time::timeout_at(wait, self.body.frame()).await {
                Err(_) if until.is_some_and(|u| u < limit) => return Ok(false),
                Err(_) if Instant::now() >= self.deadline => {
                    return Err(BodyFailure::TooSlow(self.policy.total_timeout));
                }
                Err(_) => return Err(BodyFailure::Idle(self.policy.idle_timeout)),
                Ok(None) => {
                    self.complete = true;
                    continue;
                }
                Ok(Some(Err(e))) => return Err(BodyFailure::Broken(e)),
                Ok(Some(Ok(frame))) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    self.size += data.len();
                    if !data.is_empty() {
                        self.received.push_back(data);
                    }
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        self.trailers = Some(t);
                    }
                }
            }
            if self.body.is_end_stream() {
                self.complete = true;
            }
        }
    }

    /// Takes what arrives within [`ARRIVES_WITH_HEADERS`]; `Ok(true)` when nothing more needs
    /// waiting for before the request may take an instance slot.
    pub async fn arrived_with_headers(&mut self) -> Result<bool, BodyFailure> {
        self.pull(Some(Instant::now() + ARRIVES_WITH_HEADERS)).await
    }

    /// Waits for the rest of the body (up to [`BUFFER_BEFORE_SLOT`]) within the limits.
    pub async fn finish(mut self) -> Result<ReceivedBody, BodyFailure> {
        self.pull(None).await?;
        Ok(self.into_body())
    }

    /// The body as the guest will read it: what arrived, then (for a large body) the rest as it
    /// streams in, still under both limits.
    pub fn into_body(self) -> ReceivedBody {
        let rest = (!self.complete).then_some(self.body);
        let mut b = ReceivedBody {
            received: self.received,
            trailers: self.trailers,
            rest,
            policy: self.policy,
            deadline: self.deadline,
            timer: None,
            stalled: None,
        };
        if b.rest.is_some() {
            b.timer = Some(Box::pin(tokio::time::sleep_until(b.next_wait())));
        }
        b
    }
}

impl Body for ReceivedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(data) = this.received.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(rest) = this.rest.as_mut() {
            match Pin::new(rest).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let next = this.next_wait();
                    if let Some(timer) = this.timer.as_mut() {
                        timer.as_mut().reset(next);
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.rest = None;
                    this.timer = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    this.rest = None;
                    this.timer = None;
                }
                Poll::Pending => {
                    let expired = this
                        .timer
                        .as_mut()
                        .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                    if !expired {
                        return Poll::Pending;
                    }
                    let failure = if Instant::now() >= this.deadline {
                        BodyFailure::TooSlow(this.policy.total_timeout)
                    } else {
                        BodyFailure::Idle(this.policy.idle_timeout)
                    };
                    return Poll::Ready(Some(Err(this.fail(failure))));
                }
            }
        }
        match this.trailers.take() {
            Some(t) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.received.is_empty() && self.rest.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let have: u64 = self.received.iter().map(|b| b.len() as u64).sum();
        match &self.rest {
            None => SizeHint::with_exact(have),
            Some(rest) => {
                let r = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(have + r.lower());
                if let Some(upper) = r.upper() {
                    hint.set_upper(have + upper);
                }
                hint
            }
        }
    }
}
