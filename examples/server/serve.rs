//! The accept loop: every connection bounded before the layer runs (a
//! header read timeout, a header size limit, a bound on open connections),
//! and a stop that drains.
//!
//! `axum::serve` sets no header timeout and no bound on connections: 2,000
//! clients each sending 380 KB of headers and never finishing held 820 MB.
//! Here hyper reads at most [`Limits::header_bytes`] of a request head
//! (more is 431) within [`Limits::header_timeout`] (else the connection is
//! closed), and at most [`Limits::connections`] are open at once (more
//! wait in the kernel's backlog), so unauthenticated clients hold at most
//! about `connections × header_bytes` before any request reaches the
//! layer, whose body limit and timeout bound the rest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// What bounds a connection before its request reaches the layer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request head not complete within this closes the connection.
    pub header_timeout: Duration,
    /// The most bytes of a request head (hyper's read buffer; more is 431).
    pub header_bytes: usize,
    /// The most connections open at once.
    pub connections: usize,
    /// How long a stop waits for the requests in flight.
    pub drain: Duration,
}

/// Serves `app` on `listener` until a first signal on `stop` (SIGTERM or
/// SIGINT), then stops accepting and waits for the connections to finish
/// their requests, at most `limits.drain`: whether they all did. A second
/// signal exits the process at once (status 1), without a snapshot.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: &mut tokio::sync::mpsc::Receiver<()>,
) -> bool {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The buffer's bound alone lets the read that crosses it finish a
        // head; the head's own bound is exact.
        .max_header_size(limits.header_bytes)
        .max_buf_size(limits.header_bytes);
    loop {
        // A place first: past the bound, connections wait in the backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stop.recv() => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: http::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                request
            },
        ));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("stopping: no longer accepting, draining the requests in flight");
    let drained = tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(limits.drain) => false,
        _ = stop.recv() => second_signal(),
    };
    drained
}

/// A second signal: out at once.
pub fn second_signal() -> ! {
    eprintln!("a second signal: exiting at once, without waiting or saving");
    std::process::exit(1);
}

/// Sends on the returned channel at each SIGTERM or SIGINT (Ctrl-C). The
/// handlers are registered before this returns, so a signal sent as soon
/// as the server says it listens is never the default (death).
pub fn signals() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    let (send, receive) = tokio::sync::mpsc::channel(4);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                if send.send(()).await.is_err() {
                    return;
                }
            }
        });
    }
    #[cfg(not(unix))]
    {
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if send.send(()).await.is_err() {
                    return;
                }
            }
        });
    }
    Ok(receive)
}
