//! The HTTP listener: accepts connections and serves each with hyper's HTTP/1 connection builder,
//! enforcing the server limits `axum::serve` lacks (`[server]` in the configuration):
//!
//! - **header read**: a connection must deliver a complete request head within
//!   `header_read_timeout` of its first byte (of its accept, for a new connection), so a client
//!   trickling one header byte a second is closed instead of holding a descriptor forever;
//! - **idle keep-alive**: a connection with no request in flight and no byte moving for
//!   `idle_timeout` is closed;
//! - **body read**: a request body must arrive completely within `body_read_timeout` of the
//!   handler's first read (a whole-body deadline, not a per-chunk one); a late body gets a 408
//!   problem and the connection is closed;
//! - **connections**: beyond `max_connections` open connections, a new one is answered `503` and
//!   closed at once while the open ones keep being served;
//! - **accept errors** (EMFILE, ENFILE, ENOBUFS...) back off (5 ms doubling to 1 s) instead of
//!   spinning, logged once per burst.
//!
//! Shutdown is graceful, as `axum::serve`'s: stop accepting, let every connection finish its
//! in-flight request, then return.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::api::error::problem_response;

/// The limits one listener enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    pub body_read: Duration,
    pub max_connections: usize,
}

/// What a refused connection is told before it is closed.
fn busy_answer() -> Vec<u8> {
    let body = r#"{"type":"https://webhook-gateway.dev/problems/unavailable","title":"Service Unavailable","status":503,"detail":"too many open connections (server.max_connections); retry"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\n\
         content-type: application/problem+json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    let mut backoff = AcceptBackoff::default();
    let mut refused_burst = Burst::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff.reset();
                stream
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                let wait = backoff.next(&e);
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if refused_burst.first() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection refused: server.max_connections open connections (logged once per burst)"
                );
            }
            let _ = stream.try_write(&busy_answer());
            continue;
        };
        refused_burst.reset();
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            limits,
            stop: stop_rx.clone(),
            _open: open_rx.clone(),
        };
        tokio::spawn(async move {
            conn.run(stream).await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// Accept errors that concern one connection only (it was reset before we took it): retry now.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Backs off on resource errors of `accept` (EMFILE...), logging once per burst.
#[derive(Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    fn reset(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!("accepting connections again");
        }
    }

    fn next(&mut self, e: &std::io::Error) -> Duration {
        let d = match self.delay {
            None => {
                tracing::error!(error = %e, "accept failed; backing off (logged once per burst)");
                Duration::from_millis(5)
            }
            Some(d) => (d * 2).min(Duration::from_secs(1)),
        };
        self.delay = Some(d);
        d
    }
}

/// True once per run of events, until reset.
#[derive(Default)]
struct Burst(bool);

impl Burst {
    fn first(&mut self) -> bool {
        !std::mem::replace(&mut self.0, true)
    }
    fn reset(&mut self) {
        self.0 = false;
    }
}

/// One accepted connection.
struct Connection {
    app: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    /// Held while the connection is open; `serve` waits for every holder to go.
    _open: watch::Receiver<()>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let app = self.app.clone();
        let body_read = self.limits.body_read;
        let svc_activity = activity.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            handle(app.clone(), svc_activity.clone(), body_read, req)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // Our own timers below replace hyper's header timeout (which also cuts idle keep-alive).
        builder.header_read_timeout(None);
        let conn = builder.serve_connection(io, svc).with_upgrades();
        tokio::pin!(conn);
        let mut stopping = *self.stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let wake = activity
                .deadline(&self.limits)
                .unwrap_or_else(|| Instant::now() + self.limits.header_read.min(self.limits.idle));
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = activity.finished.notified() => {}
                () = tokio::time::sleep_until(wake) => {
                    if activity.deadline(&self.limits).is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!("closing a connection: header read or idle timeout");
                        return;
                    }
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// One request: the body gets its deadline, the response body marks the end of the request.
async fn handle(
    app: Router,
    activity: Arc<Activity>,
    body_read: Duration,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    activity.request_started();
    let late = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(Deadline {
            inner,
            sleep: None,
            limit: body_read,
            late: late.clone(),
        })
    });
    let resp = match app.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let resp = if late.load(Ordering::Relaxed) {
        let mut r = problem_response(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!(
                "the request body did not arrive within {} s (server.body_read_timeout_secs)",
                body_read.as_secs()
            ),
            None,
        );
        r.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        r.into_response()
    } else {
        resp
    };
    let done = InFlight(activity);
    Ok(resp.map(move |inner| Body::new(Finishing { inner, _done: done })))
}

/// A response body that ends its request when dropped; sizes pass through, so a known length
/// still goes out as `Content-Length`.
struct Finishing {
    inner: Body,
    _done: InFlight,
}

impl http_body::Body for Finishing {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Ends an in-flight request when the response body is dropped (written or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// What the timers of one connection look at. Times are milliseconds since `base`; a head start
/// is stored plus one so that 0 means none.
struct Activity {
    base: Instant,
    last_io: AtomicU64,
    head_started: AtomicU64,
    in_flight: AtomicUsize,
    /// Wakes the connection's timer when a request ends (its deadline may move earlier).
    finished: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            last_io: AtomicU64::new(0),
            // A new connection must send its first request within the header timeout.
            head_started: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            finished: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn read(&self) {
        self.read_at(self.now());
    }

    fn read_at(&self, now: u64) {
        self.last_io.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(now + 1, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
    }

    fn request_finished(&self) {
        self.request_finished_at(self.now());
    }

    fn request_finished_at(&self, now: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.last_io.store(now, Ordering::Relaxed);
        self.finished.notify_one();
    }

    /// When the connection is to be closed, if nothing happens before; `None` while a request is
    /// in flight (its body has its own deadline).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        self.deadline_ms(limits)
            .map(|ms| self.base + Duration::from_millis(ms))
    }

    /// [`Activity::deadline`] in milliseconds since `base`.
    fn deadline_ms(&self, limits: &Limits) -> Option<u64> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(match self.head_started.load(Ordering::Relaxed) {
            0 => self.last_io.load(Ordering::Relaxed) + millis(limits.idle),
            started => started - 1 + millis(limits.header_read),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

/// The socket, noting every byte that moves.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The body did not arrive within `server.body_read_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} s (server.body_read_timeout_secs)")]
pub struct BodyReadTimeout(u64);

/// A request body with a whole-body deadline, started on its first read.
struct Deadline {
    inner: Incoming,
    sleep: Option<Pin<Box<Sleep>>>,
    limit: Duration,
    late: Arc<AtomicBool>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let limit = this.limit;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.late.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(limit.as_secs())))));
                }
                Poll::Pending
            }
            Poll::Ready(r) => {
                if this.sleep.is_none() && !this.inner.is_end_stream() {
                    let limit = this.limit;
                    this.sleep = Some(Box::pin(tokio::time::sleep(limit)));
                }
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the resulting soft limit (`None`
/// where it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        let raised = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => lim = getrlimit(Resource::Nofile),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
        }
    }
    lim.current
}

/// `max_connections` as configured, or (0) three quarters of the open-files limit, leaving the
/// rest for outbound deliveries, the store and plugins.
pub fn effective_max_connections(configured: usize, fd_limit: Option<u64>) -> usize {
    if configured > 0 {
        return configured;
    }
    match fd_limit {
        Some(n) => usize::try_from(n / 4 * 3)
            .unwrap_or(usize::MAX)
            .clamp(16, 1 << 20),
        None => 10_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(75),
            body_read: Duration::from_secs(30),
            max_connections: 10,
        }
    }

    #[test]
    fn timers_follow_the_phase_of_the_connection() {
        let a = Activity::new();
        let l = limits();
        // New connection: the header timeout from accept.
        assert_eq!(a.deadline_ms(&l), Some(10_000));
        a.read_at(3_000);
        assert_eq!(a.deadline_ms(&l), Some(10_000));
        a.request_started();
        assert_eq!(a.deadline_ms(&l), None);
        a.request_finished_at(103_000);
        // Between requests: the idle timeout from the last byte.
        assert_eq!(a.deadline_ms(&l), Some(178_000));
        a.read_at(108_000);
        // A new request head started: the header timeout from its first byte.
        assert_eq!(a.deadline_ms(&l), Some(118_000));
        a.read_at(110_000);
        assert_eq!(a.deadline_ms(&l), Some(118_000));
    }

    #[test]
    fn max_connections_defaults_from_the_fd_limit() {
        assert_eq!(effective_max_connections(500, Some(100)), 500);
        assert_eq!(effective_max_connections(0, Some(20_000)), 15_000);
        assert_eq!(effective_max_connections(0, Some(8)), 16);
        assert_eq!(effective_max_connections(0, None), 10_000);
    }

    #[test]
    fn bursts_log_once() {
        let mut b = Burst::default();
        assert!(b.first());
        assert!(!b.first());
        b.reset();
        assert!(b.first());
    }
}
