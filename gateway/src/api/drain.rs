//! Reading what a refused request still has in flight, so its client gets the answer.
//!
//! A handler may answer before it has read the request body: a 401 from the key check, a 400 for
//! a bad query parameter, a 413 once the body passes its limit. hyper then closes the connection
//! with the rest of the body unread, the kernel turns that close into a reset, and a client still
//! sending (a plugin upload, a big event) sees "connection reset" instead of the 4xx naming its
//! mistake (hyper#2384, hyper#3241). This layer gives the unread rest a bounded read before the
//! answer goes out, as nginx's lingering close does: at most [`DRAIN_BYTES`] more bytes within
//! [`DRAIN_TIME`]; a client sending more than that still gets the reset.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;

/// Most bytes read and dropped after an answer that left the body unread.
pub const DRAIN_BYTES: usize = 64 << 20;
/// Longest such a read may take.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The middleware: hands the handler a body that, when dropped before its end, gives the unread
/// rest back to be drained once the handler has answered.
pub async fn drain_unread_body(req: Request, next: Next) -> Response {
    let (tx, mut rx) = oneshot::channel();
    let req = req.map(|inner| {
        Body::new(Watched {
            inner: Some(inner),
            back: Some(tx),
        })
    });
    let response = next.run(req).await;
    if let Ok(rest) = rx.try_recv() {
        let read = tokio::time::timeout(DRAIN_TIME, drain(rest)).await;
        if !matches!(read, Ok(true)) {
            tracing::debug!(status = %response.status(), "request body left unread after the answer");
        }
    }
    response
}

/// Reads `body` to its end, dropping the bytes; false past [`DRAIN_BYTES`] or on a read error.
async fn drain(mut body: Body) -> bool {
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                read += f.data_ref().map_or(0, Bytes::len);
                if read > DRAIN_BYTES {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// The request body as the handler sees it; see [`drain_unread_body`].
struct Watched {
    inner: Option<Body>,
    back: Option<oneshot::Sender<Body>>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(body) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.inner = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let (Some(body), Some(back)) = (self.inner.take(), self.back.take())
            && !body.is_end_stream()
        {
            let _ = back.send(body);
        }
    }
}
