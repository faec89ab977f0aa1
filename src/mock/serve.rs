//! The mock's accept loop, and what bounds an unauthenticated client.
//!
//! `axum::serve` sets no header timeout and no bound on connections, and
//! its connections outlive the serving task when that is aborted. Here
//! hyper reads at most [`HEAD_BYTES`] of a request head (more is 431)
//! within [`HEAD_TIMEOUT`] (else the connection is closed), at most
//! [`CONNECTIONS`] connections are open at once (more wait in the kernel's
//! backlog), a client that reads nothing of an answer for
//! [`WRITE_TIMEOUT`] loses its connection, the bodies read before their signature is checked hold
//! [`BUFFERED_BYTES`] in all, and dropping the serving future drops every
//! connection with it: a stop's deadline holds whatever a handler does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tower_service::Service as _;

/// A request head not complete within this closes its connection (by
/// default).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The most bytes of a request head (hyper's read buffer; more is 431).
pub(crate) const HEAD_BYTES: usize = 64 << 10;
/// The most connections open at once.
pub(crate) const CONNECTIONS: usize = 512;
/// A client that reads none of an answer for this long loses its
/// connection (a client that sends and never reads would hold it, and the
/// answers queued for it, for ever).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A body not read whole within this is answered 408 `body_timeout` (by
/// default).
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most body bytes held by requests whose signature is not checked
/// yet, all connections together; past it a request is answered 503
/// `mock_busy`.
pub(crate) const BUFFERED_BYTES: usize = 64 << 20;

/// How long a client may take to send a head, and to read an answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) write: Duration,
}

/// Serves `app` until `stopped` fires, then stops accepting and lets the
/// open connections finish their requests. Dropping the returned future
/// (the server's deadline passed) drops every connection still open.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(CONNECTIONS));
    let mut connections: JoinSet<()> = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        // The buffer's bound alone lets the read that crosses it finish a
        // head; the head's own bound is exact.
        .max_header_size(HEAD_BYTES)
        .max_buf_size(HEAD_BYTES);
    tokio::pin!(stopped);
    loop {
        while connections.try_join_next().is_some() {}
        // A place first: past the bound, connections wait in the backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut stopped => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!("the mock cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().call(request)
        });
        let stall = Arc::new(Stall::default());
        let stream = WriteTimeout::new(stream, Arc::clone(&stall));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let write_timeout = timeouts.write;
        connections.spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = stall.exceeded(write_timeout) => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Since when a connection's write has waited for the peer to read.
/// (hyper has a header timeout, none for writes; and once a write is
/// pending it may not poll the stream again until the socket is
/// writable, so the stream cannot time itself out: a watcher beside the
/// connection drops it.)
#[derive(Debug, Default)]
struct Stall(parking_lot::Mutex<Option<tokio::time::Instant>>);

impl Stall {
    /// Completes once a write has waited longer than `timeout`.
    async fn exceeded(&self, timeout: Duration) {
        let every = (timeout / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            if self.0.lock().is_some_and(|since| since.elapsed() > timeout) {
                return;
            }
        }
    }
}

/// A stream that tells its [`Stall`] when its writes wait.
struct WriteTimeout<S> {
    inner: S,
    stall: Arc<Stall>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, stall: Arc<Stall>) -> Self {
        Self { inner, stall }
    }

    fn guard<T>(
        &mut self,
        poll: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        let mut since = self.stall.0.lock();
        if poll.is_ready() {
            *since = None;
        } else if since.is_none() {
            *since = Some(tokio::time::Instant::now());
        }
        poll
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteTimeout<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(poll)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // (Not a write: a flush of a socket is always ready, and would
        // clear the stall of the write that waits.)
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The body bytes held by requests not verified yet, all connections
/// together.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffered(Arc<AtomicUsize>);

/// A share of [`Buffered`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    buffered: Buffered,
    bytes: usize,
}

impl Held {
    fn take(&mut self, bytes: usize, budget: usize) -> bool {
        let counter = &self.buffered.0;
        let taken = counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= budget)
            })
            .is_ok();
        if taken {
            self.bytes += bytes;
        }
        taken
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.buffered.0.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    /// Longer than the limit (declared or sent).
    TooLarge,
    /// Not complete within the body timeout.
    Timeout,
    /// The mock holds [`BUFFERED_BYTES`] of other bodies already.
    Busy,
    /// The connection failed while the body was sent.
    Broken,
}

impl Unread {
    /// The journal's and the answer's code.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::TooLarge => "body_too_large",
            Self::Timeout => "body_timeout",
            Self::Busy => "mock_busy",
            Self::Broken => "invalid_body",
        }
    }

    fn status(self) -> http::StatusCode {
        match self {
            Self::TooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout => http::StatusCode::REQUEST_TIMEOUT,
            Self::Busy => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Broken => http::StatusCode::BAD_REQUEST,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::TooLarge => "the body is larger than the limit",
            Self::Timeout => "the body was not sent whole within the body timeout",
            Self::Busy => "the mock holds as many unverified bodies as it may; try again",
            Self::Broken => "the connection failed while the body was sent",
        }
    }
}

/// The answer: the status, `{"Message", "error"}`, and `Retry-After: 1`
/// when the mock is busy.
impl axum::response::IntoResponse for Unread {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({ "Message": self.message(), "error": self.code() });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if self == Self::Busy {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1));
        }
        response
    }
}

impl Buffered {
    /// Reads `body` whole: at most `limit` bytes, within `timeout`, and
    /// within `budget` bytes held by every read in flight. The share it
    /// holds is given back when the returned [`Held`] is dropped.
    pub(crate) async fn read(
        &self,
        body: Body,
        declared: Option<u64>,
        limit: usize,
        timeout: Duration,
        budget: usize,
    ) -> Result<(Bytes, Held), Unread> {
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(Unread::TooLarge);
        }
        let mut held = Held {
            buffered: self.clone(),
            bytes: 0,
        };
        let read = async {
            let mut body = body;
            let mut bytes = bytes::BytesMut::new();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map_err(|_| Unread::Broken)?.into_data() else {
                    continue;
                };
                if bytes.len() + data.len() > limit {
                    return Err(Unread::TooLarge);
                }
                // What is held is the buffer's capacity, its growth
                // included.
                bytes.reserve(data.len());
                if !held.take(bytes.capacity() - held.bytes, budget) {
                    return Err(Unread::Busy);
                }
                bytes.extend_from_slice(&data);
            }
            Ok(bytes.freeze())
        };
        let bytes = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| Unread::Timeout)??;
        Ok((bytes, held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_holds_its_bytes_until_dropped_and_refuses_past_the_budget() {
        let buffered = Buffered::default();
        let second = Duration::from_secs(1);
        let (bytes, held) = buffered
            .read(Body::from(vec![1u8; 600]), None, 1000, second, 1000)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 600);
        let busy = buffered
            .read(Body::from(vec![1u8; 600]), None, 1000, second, 1000)
            .await;
        assert_eq!(busy.unwrap_err(), Unread::Busy);
        drop(held);
        assert_eq!(buffered.0.load(Ordering::Acquire), 0);
        let again = buffered
            .read(Body::from(vec![1u8; 600]), None, 1000, second, 1000)
            .await;
        assert!(again.is_ok());
        drop(again);
        let declared = buffered
            .read(Body::empty(), Some(1001), 1000, second, 1000)
            .await;
        assert_eq!(declared.unwrap_err(), Unread::TooLarge);
        let sent = buffered
            .read(Body::from(vec![1u8; 1001]), None, 1000, second, 5000)
            .await;
        assert_eq!(sent.unwrap_err(), Unread::TooLarge);
        assert_eq!(buffered.0.load(Ordering::Acquire), 0);
    }
}
