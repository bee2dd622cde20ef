//! One HTTP exchange with a registry (or its token server, or wherever it redirects), under
//! snap's rules for a server that lies, stalls or floods. Built on reqwest (hyper, rustls):
//! connection pooling and TLS are reqwest's; every rule below is snap's.
//!
//! - **Pace** ([`Timeouts`]). Connecting may take `timeout`. From the first byte of a request
//!   to the last byte of its answer, at least `low_speed_limit × timeout` bytes (and at least
//!   one) must move in every `timeout`-long stretch, in either direction: a registry that
//!   never answers, stalls mid-body or drips a byte a second fails within about `timeout`
//!   of falling behind (`Failure::Stalled`).
//! - **Bounds.** A body is read through a limit (`Answer::read_bounded`, refused early when
//!   `Content-Length` is already larger), to exactly a size (`Answer::copy_exact`), or
//!   skimmed for an error message ([`MAX_ENVELOPE_BYTES`]); nothing unbounded is ever read.
//! - **Redirects.** GET and HEAD follow at most [`MAX_REDIRECTS`] redirects, and a URL seen
//!   twice is a loop. `Authorization` is attached per hop, only when the URL has the origin
//!   (scheme, host and port) the credentials belong to: a blob redirected to object storage
//!   is fetched without them.
//! - **Counting.** Every request sent — each redirect hop and each retry — is counted.
//! - **Retries** (`Transport::retrying`) follow [`super::retry`]: only a whole attempt is
//!   repeated, and the caller builds each attempt afresh, so a body is sent again only when
//!   it can be (bytes in memory, or a source reopened).
//!
//! The async code stays inside `registry`: [`super::Client`] is the blocking face.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Read};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use super::retry::{self, Backoff, GiveUp};

mod timeouts;

pub use timeouts::{
    DEFAULT_LOW_SPEED_LIMIT, DEFAULT_TIMEOUT, MAX_ENVELOPE_BYTES, MAX_REDIRECTS, MAX_TIMEOUT_SECS,
    Timeouts,
};

/// Upload bodies are handed to the connection this much at a time.
const UPLOAD_PIECE: usize = 256 << 10;

/// Why an exchange (or one attempt of it) failed, before the client names the thing it was
/// about.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The low-speed rule: only `moved` bytes in the last `timeout`.
    Stalled { moved: u64 },
    /// The connection broke (reset, closed early) after it was made: another try may work.
    Broken(String),
    /// Connecting failed, or another transport error that a retry will not cure.
    Network(reqwest::Error),
    /// Too many redirects, or a loop.
    Redirects { looped: bool },
    /// A body longer than what is read of it (`declared`: its `Content-Length`, when that
    /// already said so).
    TooLarge { limit: u64, declared: Option<u64> },
    /// A body that ended before the size it had to have.
    Short { expected: u64, got: u64 },
    /// An answer the caller did not expect; `body` is at most [`MAX_ENVELOPE_BYTES`] of it.
    Status {
        status: u16,
        retry_after: Option<Duration>,
        challenge: Option<String>,
        body: Vec<u8>,
    },
    /// An answer that breaks the protocol.
    Protocol(String),
    /// Reading what was being uploaded failed.
    Source(io::Error),
    /// Writing what was downloaded failed.
    Sink(io::Error),
    /// A stop was asked for, and taken at a clean point (`crate::interrupt`).
    Interrupted,
    /// Transient failures outlasted the retries; `asked` is a `Retry-After` beyond the budget.
    GaveUp {
        last: Box<Failure>,
        attempts: u32,
        waited: Duration,
        asked: Option<Duration>,
    },
}

impl Failure {
    fn is_transient(&self) -> bool {
        match self {
            Failure::Broken(_) => true,
            Failure::Status { status, .. } => retry::is_transient_status(*status),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A failed send: a broken connection is worth a retry, a failed connect is not.
    fn from_send(e: reqwest::Error) -> Failure {
        if !e.is_connect() && looks_broken(&e) {
            Failure::Broken(chain_text(&e))
        } else {
            Failure::Network(e)
        }
    }

    /// A body that could not be read to its end.
    fn from_body(e: &reqwest::Error) -> Failure {
        Failure::Broken(chain_text(e))
    }
}

/// Whether an error is a connection that broke under a request (reset, aborted, closed
/// before the answer was complete).
fn looks_broken(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        let text = err.to_string();
        if text.contains("connection closed before message completed")
            || text.contains("end of file before message length reached")
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The messages of an error and its causes, `: `-joined, each once.
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !out.iter().any(|t| t.contains(&text)) {
            out.push(text);
        }
        cur = err.source();
    }
    out.join(": ")
}

/// The low-speed rule over one exchange: samples of the bytes moved, a few per `timeout`.
struct Watch {
    moved: Arc<AtomicU64>,
    window: Duration,
    min_bytes: u64,
    tick: Duration,
    /// `(when, bytes moved by then)`, oldest first; the first is the newest sample at least
    /// `window` old (or the start).
    samples: VecDeque<(Instant, u64)>,
    next_check: Instant,
}

impl Watch {
    fn new(t: Timeouts, moved: Arc<AtomicU64>) -> Watch {
        let now = Instant::now();
        let tick = (t.timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
        Watch {
            moved,
            window: t.timeout,
            min_bytes: t.min_bytes(),
            tick,
            samples: VecDeque::from([(now, 0)]),
            next_check: now + tick,
        }
    }

    /// Records `total` bytes moved at `now`; `Err(bytes moved in the last window)` when
    /// too few moved.
    fn check_at(&mut self, now: Instant, total: u64) -> Result<(), u64> {
        self.samples.push_back((now, total));
        while self.samples.len() > 1 && self.samples[1].0 + self.window <= now {
            self.samples.pop_front();
        }
        let (since, then) = self.samples[0];
        let moved = total.saturating_sub(then);
        if now.duration_since(since) >= self.window && moved < self.min_bytes {
            return Err(moved);
        }
        Ok(())
    }

    /// Runs `fut` under the rule.
    async fn guard<F: Future>(&mut self, fut: F) -> Result<F::Output, Failure> {
        let mut fut = pin!(fut);
        loop {
            let deadline = tokio::time::Instant::from_std(self.next_check);
            let result = tokio::time::timeout_at(deadline, fut.as_mut()).await;
            // Checked whenever due, answer or not: a drip whose bytes arrive just often
            // enough to beat each tick must not escape the rule.
            let now = Instant::now();
            if now >= self.next_check {
                self.next_check = now + self.tick;
                let total = self.moved.load(Ordering::Relaxed);
                self.check_at(now, total)
                    .map_err(|moved| Failure::Stalled { moved })?;
            }
            if let Ok(out) = result {
                return Ok(out);
            }
        }
    }
}

/// A request body.
pub(crate) enum Body {
    /// None.
    Empty,
    /// Bytes in memory (sent again as they are on a retry).
    Bytes(Bytes),
    /// `size` bytes read from a source, once.
    Reader {
        reader: Box<dyn Read + Send>,
        size: u64,
    },
}

/// One request to send.
pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    /// The `Authorization` value and a URL of the origin it belongs to: sent only there.
    pub authorization: Option<(Url, HeaderValue)>,
}

impl Request {
    pub fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            authorization: None,
        }
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Request {
        self.headers.insert(name, value);
        self
    }

    pub fn body(mut self, body: Body) -> Request {
        self.body = body;
        self
    }

    pub fn authorization(mut self, origin: &Url, value: Option<HeaderValue>) -> Request {
        self.authorization = value.map(|v| (origin.clone(), v));
        self
    }
}

/// The HTTP side of a client: a reqwest client (its connection pool), the pace, the count.
pub(crate) struct Transport {
    client: reqwest::Client,
    timeouts: Timeouts,
    requests: AtomicU64,
}

impl Transport {
    /// Needs to run inside the tokio runtime that will drive it.
    pub fn new(timeouts: Timeouts) -> Result<Transport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("snap/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeouts.timeout)
            // Redirects are followed here, hop by hop, to decide about credentials and to
            // count every request.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Transport {
            client,
            timeouts,
            requests: AtomicU64::new(0),
        })
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends `req` and waits for the head of its answer (any status), following redirects
    /// of GET and HEAD. The answer's body is read under the same watch.
    pub async fn send(&self, req: Request) -> Result<Answer, Failure> {
        let moved = Arc::new(AtomicU64::new(0));
        let mut watch = Watch::new(self.timeouts, Arc::clone(&moved));
        let source_failure: Arc<Mutex<Option<io::Error>>> = Arc::default();
        let Request {
            method,
            mut url,
            headers,
            body,
            authorization,
        } = req;
        let follow = method == Method::GET || method == Method::HEAD;
        let mut body = Some(body);
        let mut visited: Vec<Url> = Vec::new();
        loop {
            let mut builder = self
                .client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some((origin, value)) = &authorization
                && origin.origin() == url.origin()
            {
                builder = builder.header(header::AUTHORIZATION, value.clone());
            }
            match body.take() {
                None | Some(Body::Empty) => {}
                Some(Body::Bytes(bytes)) => {
                    builder = builder.header(header::CONTENT_LENGTH, bytes.len()).body(
                        reqwest::Body::wrap_stream(bytes_stream(bytes, Arc::clone(&moved))),
                    );
                }
                Some(Body::Reader { reader, size }) => {
                    builder = builder.header(header::CONTENT_LENGTH, size).body(
                        reqwest::Body::wrap_stream(reader_stream(
                            reader,
                            Arc::clone(&moved),
                            Arc::clone(&source_failure),
                        )),
                    );
                }
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let response = match watch.guard(builder.send()).await? {
                Ok(r) => r,
                Err(e) => {
                    if let Some(source) = source_failure.lock().ok().and_then(|mut f| f.take()) {
                        return Err(Failure::Source(source));
                    }
                    return Err(Failure::from_send(e));
                }
            };
            let status = response.status().as_u16();
            if follow && matches!(status, 301 | 302 | 303 | 307 | 308) {
                let next = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        Failure::Protocol(format!(
                            "it answered {status} without an http(s) Location to go to"
                        ))
                    })?;
                visited.push(url);
                if visited.contains(&next) {
                    return Err(Failure::Redirects { looped: true });
                }
                if visited.len() > MAX_REDIRECTS {
                    return Err(Failure::Redirects { looped: false });
                }
                url = next;
                continue;
            }
            return Ok(Answer { response, watch });
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries of [`super::retry`]
    /// run out. Each call of `attempt` builds its request afresh.
    pub async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Backoff::new(self.timeouts.retry_budget());
        loop {
            match attempt().await {
                Err(f) if f.is_transient() => match backoff.next(f.retry_after()) {
                    Ok(wait) => tokio::time::sleep(wait).await,
                    Err(give_up) => {
                        return Err(Failure::GaveUp {
                            attempts: backoff.attempts(),
                            waited: backoff.waited(),
                            asked: match give_up {
                                GiveUp::TooLong { asked } => Some(asked),
                                GiveUp::Attempts => None,
                            },
                            last: Box::new(f),
                        });
                    }
                },
                other => return other,
            }
        }
    }
}

/// The head of an answer, its body still to read under the exchange's watch.
pub(crate) struct Answer {
    response: reqwest::Response,
    watch: Watch,
}

impl Answer {
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    /// The URL that answered (after redirects).
    pub fn url(&self) -> &Url {
        self.response.url()
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.headers().get(name)?.to_str().ok()
    }

    /// The declared body length.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }

    /// The `Location` header, resolved against the URL that answered.
    pub fn location(&self) -> Option<Url> {
        let l = self.header("location")?;
        self.url()
            .join(l)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        let Answer { response, watch } = self;
        match watch.guard(response.chunk()).await? {
            Ok(Some(c)) => {
                watch.moved.fetch_add(c.len() as u64, Ordering::Relaxed);
                Ok(Some(c))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(Failure::from_body(&e)),
        }
    }

    /// The whole body, at most `limit` bytes: refused before reading when `Content-Length`
    /// says more, and as soon as more arrives otherwise.
    pub async fn read_bounded(mut self, limit: u64) -> Result<Vec<u8>, Failure> {
        let declared = self.content_length();
        if let Some(n) = declared
            && n > limit
        {
            return Err(Failure::TooLarge {
                limit,
                declared: Some(n),
            });
        }
        let cap = usize::try_from(declared.unwrap_or(0).min(limit)).unwrap_or(0);
        let mut out = Vec::with_capacity(cap);
        while let Some(c) = self.chunk().await? {
            if (out.len() + c.len()) as u64 > limit {
                return Err(Failure::TooLarge {
                    limit,
                    declared: None,
                });
            }
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// Exactly `size` bytes of body into `sink`, refused when `Content-Length` says
    /// otherwise, as soon as a byte more arrives, or when it ends short.
    pub async fn copy_exact(
        mut self,
        size: u64,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), Failure> {
        if let Some(n) = self.content_length()
            && n != size
        {
            return Err(if n > size {
                Failure::TooLarge {
                    limit: size,
                    declared: Some(n),
                }
            } else {
                Failure::Short {
                    expected: size,
                    got: n,
                }
            });
        }
        let mut got = 0u64;
        loop {
            let c = match self.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                // A connection closed before the declared length: the body ended short.
                Err(Failure::Broken(_)) if self.content_length().is_some() => break,
                Err(e) => return Err(e),
            };
            got += c.len() as u64;
            if got > size {
                return Err(Failure::TooLarge {
                    limit: size,
                    declared: None,
                });
            }
            sink(&c).map_err(Failure::Sink)?;
        }
        if got < size {
            return Err(Failure::Short {
                expected: size,
                got,
            });
        }
        Ok(())
    }

    /// Turns an unexpected answer into a [`Failure::Status`], keeping at most
    /// [`MAX_ENVELOPE_BYTES`] of its body (the rest is never read).
    pub async fn into_failure(mut self) -> Failure {
        let status = self.status();
        let retry_after = self
            .header("retry-after")
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let challenge = self.header("www-authenticate").map(str::to_owned);
        let mut body = Vec::new();
        // (hyper knows a HEAD answer has no body, whatever its Content-Length says.)
        while let Ok(Some(c)) = self.chunk().await {
            let room = usize::try_from(MAX_ENVELOPE_BYTES).unwrap_or(usize::MAX) - body.len();
            body.extend_from_slice(&c[..c.len().min(room)]);
            if body.len() as u64 >= MAX_ENVELOPE_BYTES {
                break;
            }
        }
        Failure::Status {
            status,
            retry_after,
            challenge,
            body,
        }
    }
}

/// Bytes in memory as a body, handed over a piece at a time so the watch sees them go.
fn bytes_stream(
    bytes: Bytes,
    moved: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures_util::stream::unfold(bytes, move |mut rest| {
        let moved = Arc::clone(&moved);
        async move {
            if rest.is_empty() {
                return None;
            }
            let piece = rest.split_to(rest.len().min(UPLOAD_PIECE));
            moved.fetch_add(piece.len() as u64, Ordering::Relaxed);
            Some((Ok(piece), rest))
        }
    })
}

/// A source as a body. A read error ends the body and is kept in `failure` (the connection
/// only reports that the body failed).
fn reader_stream(
    reader: Box<dyn Read + Send>,
    moved: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<io::Error>>>,
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures_util::stream::unfold(Some(reader), move |state| {
        let moved = Arc::clone(&moved);
        let failure = Arc::clone(&failure);
        async move {
            let mut reader = state?;
            let mut buf = vec![0u8; UPLOAD_PIECE];
            let mut filled = 0;
            while filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let text = e.to_string();
                        if let Ok(mut f) = failure.lock() {
                            *f = Some(e);
                        }
                        return Some((Err(io::Error::other(text)), None));
                    }
                }
            }
            if filled == 0 {
                return None;
            }
            buf.truncate(filled);
            moved.fetch_add(filled as u64, Ordering::Relaxed);
            Some((Ok(Bytes::from(buf)), Some(reader)))
        }
    })
}

#[cfg(test)]
mod tests;
