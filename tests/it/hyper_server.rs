//! The layer over a plain `service_fn` with hyper's own body types, served
//! over TCP by hyper and hyper-util: no axum type anywhere in this file.
//! Requests are written by hand on raw sockets, so what a client sees
//! (status, reset or not) is what is asserted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use armor_psk::{
    ArmorPskLayer, Identity, ManualClock, Signer, VerifiedBody, keys::MemoryKeyStore,
    replay::MemoryReplayStore,
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

const KEY_ID: &str = "key-1";
const SECRET: &str = "secret-1";
const NOW: u64 = 1_700_000_000;

/// Answers `key_id:body_length`.
async fn handler(request: Request<VerifiedBody>) -> Result<Response<Full<Bytes>>, Infallible> {
    let who = request
        .extensions()
        .get::<Identity>()
        .map(|identity| identity.key_id().to_owned())
        .unwrap_or_default();
    let text = format!("{who}:{}", request.body().len());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

fn layer() -> ArmorPskLayer {
    // The requests are signed at NOW, on a store made in that second:
    // its memory is declared to have begun an hour before.
    ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_clock(ManualClock::new(NOW))
        .with_replay_store(
            MemoryReplayStore::builder()
                .memory_since(Some(NOW - 3600))
                .build(),
        )
}

/// Serves `layer` around the handler on 127.0.0.1, with a trace layer and
/// a request-body read timeout around it, as a server should.
async fn serve(layer: ArmorPskLayer) -> SocketAddr {
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(500)))
        .layer(layer)
        .service_fn(handler);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn header(method: &str, path: &str, body: &[u8], nonce: &str) -> String {
    Signer::new(KEY_ID, SECRET)
        .unwrap()
        .sign_at(method, path, body, nonce, NOW)
        .unwrap()
}

/// Writes `head` then `body` (all of it, before reading; a large body in
/// 64 KiB pieces a millisecond apart, as a client on a real network
/// would), then reads the whole answer. `Err` when the connection was
/// reset before an answer.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(head.as_bytes()).await?;
    for piece in body.chunks(64 * 1024) {
        stream.write_all(piece).await?;
        if body.len() > 64 * 1024 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer in 10 s"))??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn head(method: &str, target: &str, authorization: Option<&str>, extra: &str) -> String {
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{authorization}{extra}\r\n"
    )
}

#[tokio::test]
async fn signed_requests_are_served_and_unsigned_refused_over_tcp() {
    let addr = serve(layer()).await;
    let body = br#"{"name":"web-01"}"#;
    let signed = header("POST", "/things", body, "n-1");
    let length = format!("Content-Length: {}\r\n", body.len());
    let (status, answer) = exchange(addr, &head("POST", "/things", Some(&signed), &length), body)
        .await
        .unwrap();
    assert_eq!((status, answer.as_str()), (200, "key-1:17"));

    let (status, answer) = exchange(addr, &head("POST", "/things", None, &length), body)
        .await
        .unwrap();
    assert_eq!(status, 401);
    assert!(
        answer.contains(r#""error":"missing_authorization""#),
        "{answer}"
    );
}

#[tokio::test]
async fn a_body_in_one_byte_chunks_is_verified_whole() {
    let addr = serve(layer()).await;
    let body: Vec<u8> = (0..2000).map(|i| b'a' + (i % 26) as u8).collect();
    let signed = header("PUT", "/blob", &body, "n-1");
    let mut chunked = Vec::new();
    for byte in &body {
        chunked.extend_from_slice(b"1\r\n");
        chunked.push(*byte);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, answer) = exchange(
        addr,
        &head(
            "PUT",
            "/blob",
            Some(&signed),
            "Transfer-Encoding: chunked\r\n",
        ),
        &chunked,
    )
    .await
    .unwrap();
    assert_eq!((status, answer.as_str()), (200, "key-1:2000"));
}

#[tokio::test]
async fn targets_without_a_path_are_refused_before_anything_is_verified() {
    let addr = serve(layer()).await;
    // Signed over an empty path, as the authority form used to be checked.
    let signed = header("GET", "", b"", "/accounts/12-n-1");
    for (method, target) in [("GET", "127.0.0.1:80"), ("OPTIONS", "*")] {
        let (status, answer) = exchange(addr, &head(method, target, Some(&signed), ""), b"")
            .await
            .unwrap();
        assert_eq!(status, 401, "{method} {target}: {answer}");
        assert!(
            answer.contains(r#""error":"malformed_request""#),
            "{answer}"
        );
    }

    // `OPTIONS *` when the server opts in: signed over the path `*`.
    let addr = serve(layer().with_asterisk_form(true)).await;
    let signed = header("OPTIONS", "*", b"", "n-1");
    let (status, answer) = exchange(addr, &head("OPTIONS", "*", Some(&signed), ""), b"")
        .await
        .unwrap();
    assert_eq!((status, answer.as_str()), (200, "key-1:0"));
}

/// A client that writes its whole oversized body before reading gets the
/// 413, not a reset: the layer drains the declared body first.
#[tokio::test]
async fn an_oversized_body_written_whole_gets_413_not_a_reset() {
    let addr = serve(layer()).await;
    let body = vec![b'x'; 2 * 1024 * 1024 + 1024];
    let length = format!("Content-Length: {}\r\n", body.len());
    let mut seen = Vec::new();
    for i in 0..20 {
        let signed = header("POST", "/upload", &body, &format!("n-{i}"));
        let outcome = exchange(
            addr,
            &head("POST", "/upload", Some(&signed), &length),
            &body,
        )
        .await;
        seen.push(outcome.map(|(status, _)| status).map_err(|e| e.kind()));
    }
    assert!(seen.iter().all(|s| *s == Ok(413)), "{seen:?}");

    // Unsigned, the same: 401 rather than a reset.
    let (status, _) = exchange(addr, &head("POST", "/upload", None, &length), &body)
        .await
        .unwrap();
    assert_eq!(status, 401);
}

/// The request-body timeout set around the layer ends a body that stalls:
/// the layer answers 400 `invalid_body` instead of waiting for ever.
#[tokio::test]
async fn a_stalled_body_ends_with_the_servers_read_timeout() {
    let addr = serve(layer()).await;
    let signed = header("POST", "/things", b"0123456789", "n-1");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = head("POST", "/things", Some(&signed), "Content-Length: 10\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"01234").await.unwrap(); // and nothing more
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered within the read timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""error":"invalid_body""#), "{answer}");
}
