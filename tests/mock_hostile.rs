//! The mock against clients that try to make it hold memory or time:
//! stalled bodies, slow heads, a flood of long unsigned requests, and a
//! handler that never answers when the mock is told to stop.
#![cfg(feature = "mock")]

use std::time::{Duration, Instant};

use armor_psk::mock::MockArmorServer;
use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The resident memory of this process (the mock runs in it), in bytes.
fn resident() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmRSS in kB");
    kib << 10
}

/// The status of the answer read from `stream`, 0 when it closed without
/// one.
async fn status_of(stream: &mut TcpStream) -> u16 {
    answer_of(stream).await.0
}

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_hold_at_most_the_stated_bytes_then_time_out() {
    let server = MockArmorServer::builder()
        .body_timeout(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let signer = server.key().signer();
    let before = resident();
    // 200 clients declare 2,000,000 bytes, send 1 MiB and stall: 200 MiB
    // held without a bound.
    let chunk = vec![b'x'; MIB];
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let head = format!(
            "POST /me HTTP/1.1\r\nHost: mock\r\nAuthorization: {}\r\nContent-Length: 2000000\r\n\r\n",
            signer.sign("POST", "/me", b"never sent whole")
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // A client the mock refused while it sent is answered at once.
        let _ = stream.write_all(&chunk).await;
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = resident().saturating_sub(before);

    // A bodiless request is served meanwhile.
    let me = signer.sign("GET", "/me", b"");
    let url = format!("{}/me", server.url());
    let reply = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .header("authorization", &me)
            .call()
            .map(|reply| reply.status().as_u16())
    })
    .await
    .unwrap();
    assert_eq!(reply.unwrap(), 200);

    let started = Instant::now();
    let mut statuses = Vec::new();
    for stream in &mut stalled {
        statuses.push(status_of(stream).await);
    }
    let waited = started.elapsed();
    let busy = statuses.iter().filter(|status| **status == 503).count();
    let timed_out = statuses.iter().filter(|status| **status == 408).count();
    eprintln!(
        "200 stalled bodies: {} MiB resident added, {busy} refused 503, {timed_out} held then 408 after {waited:?}",
        held / MIB
    );
    assert_eq!(busy + timed_out, 200, "{statuses:?}");
    // 64 MiB of buffers in all: at most 64 held 1 MiB each.
    assert!(timed_out <= 64, "{timed_out} held");
    assert!(busy >= 136, "{busy} refused");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    // The buffers' 64 MiB, and what the runtime and the test hold.
    assert!(held < 128 * MIB, "{} MiB held", held / MIB);

    let journal = server.journal();
    let reasons: Vec<_> = journal.iter().filter_map(|entry| entry.reason()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "mock_busy").count(), busy);
    assert_eq!(
        reasons.iter().filter(|r| **r == "body_timeout").count(),
        timed_out
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let server = MockArmorServer::start().await.unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"POST /me HTTP/1.1\r\nHost: mock\r\nContent-Length: 10000000000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(status_of(&mut stream).await, 413);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.journal()[0].reason(), Some("body_too_large"));
}

#[tokio::test]
async fn a_head_sent_slowly_is_cut_at_the_header_timeout() {
    let server = MockArmorServer::builder()
        .header_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"GET /me HTTP/1.1\r\nHost: mock\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), status_of(&mut stream)).await;
    assert!(closed.is_ok(), "the connection is still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));

    // A head larger than 64 KiB is 431.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "GET /me HTTP/1.1\r\nHost: mock\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(100 << 10)
    );
    let _ = stream.write_all(head.as_bytes()).await;
    assert_eq!(status_of(&mut stream).await, 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_long_unsigned_requests_keeps_the_journal_small() {
    let server = MockArmorServer::start().await.unwrap();
    let path = format!("/{}", "p".repeat(20_000));
    let query = "q".repeat(20_000);
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let (addr, path, query) = (server.addr(), path.clone(), query.clone());
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let body = "b".repeat(100_000);
                for _ in 0..100 {
                    let request = format!(
                        "POST {path}?{query} HTTP/1.1\r\nHost: mock\r\nAuthorization: ARMOR-PSK {}:sig:nonce:1\r\nX-Account-Context: {}\r\nContent-Length: {}\r\n\r\n{body}",
                        "k".repeat(200),
                        "a".repeat(10_000),
                        body.len()
                    );
                    stream.write_all(request.as_bytes()).await.unwrap();
                    let mut head = [0u8; 12];
                    stream.read_exact(&mut head).await.unwrap();
                    assert_eq!(&head[9..12], b"401");
                    // The rest of the answer, up to the next request's.
                    let mut rest = [0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.ends_with(b"}") {
                        let n = stream.read(&mut rest).await.unwrap();
                        assert!(n > 0);
                        seen.extend_from_slice(&rest[..n]);
                    }
                }
            })
        })
        .collect();
    for client in flood {
        client.await.unwrap();
    }
    let journal = server.journal();
    assert_eq!(journal.len(), 1_600);
    let entry = &journal[0];
    assert!(entry.path.len() <= 512 && entry.path.starts_with("/ppp"));
    assert!(entry.query.as_ref().unwrap().len() <= 512);
    assert!(entry.account_context.as_ref().unwrap().len() <= 512);
    assert!(entry.body.as_ref().unwrap().len() <= 2048);
    assert_eq!(entry.body_len, 100_000);

    let url = format!("{}/__mock/journal", server.url());
    let bytes = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
            .len()
    })
    .await
    .unwrap();
    eprintln!("1,600 unsigned requests of 150 KB: a journal of {bytes} bytes");
    // 1,600 requests of 150 KB each: a few KiB each in the journal.
    assert!(bytes < 1_600 * 6_000, "{bytes} bytes of journal");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stop_meets_its_deadline_whatever_a_handler_does() {
    let hang = Router::new().route(
        "/hang",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        }),
    );
    let server = MockArmorServer::builder()
        .routes(hang)
        .start()
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "GET /hang HTTP/1.1\r\nHost: mock\r\nAuthorization: {}\r\n\r\n",
        server.key().signer().sign("GET", "/hang", b"")
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // And a client that stalls in its body.
    let mut stalled = TcpStream::connect(server.addr()).await.unwrap();
    stalled
        .write_all(b"POST /me HTTP/1.1\r\nHost: mock\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    server
        .shutdown_within(Duration::from_millis(300))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    // Both connections are closed, not left to a task that outlives the
    // server.
    for stream in [&mut stream, &mut stalled] {
        let closed = tokio::time::timeout(Duration::from_secs(2), status_of(stream)).await;
        assert_eq!(
            closed,
            Ok(0),
            "a connection outlived the stop, or was answered"
        );
    }
}

#[tokio::test]
async fn admin_bodies_are_bounded_like_the_apis() {
    let server = MockArmorServer::builder()
        .body_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(server.addr()).await.unwrap();
    stalled
        .write_all(b"POST /__mock/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let (status, body) = answer_of(&mut stalled).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("body_timeout"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut large = TcpStream::connect(server.addr()).await.unwrap();
    large
        .write_all(
            b"POST /__mock/stubs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 3000000\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, body) = answer_of(&mut large).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("body_too_large"), "{body}");
}

#[tokio::test]
async fn a_client_that_never_reads_loses_its_connection_at_the_write_timeout() {
    const BIG: usize = 64 << 20;
    let big = Router::new().route("/big", get(|| async { vec![b'x'; BIG] }));
    let server = MockArmorServer::builder()
        .routes(big)
        .write_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr()).await.unwrap();
    let head = format!(
        "GET /big HTTP/1.1\r\nHost: mock\r\nAuthorization: {}\r\n\r\n",
        server.key().signer().sign("GET", "/big", b"")
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // 64 MiB, more than the kernel's buffers hold, read by no one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut sink = vec![0u8; 1 << 20];
    let mut read = 0usize;
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the connection is still open after {read} bytes"
    );
    assert!(read < BIG, "{read} bytes: the whole answer was sent");
    eprintln!(
        "a client that never read: cut after {} MiB of 64",
        read >> 20
    );
}

#[tokio::test]
async fn error_answers_are_json_with_a_content_type() {
    let server = MockArmorServer::start().await.unwrap();
    let signer = server.key().signer();
    let post_me = format!(
        "POST /me HTTP/1.1\r\nHost: mock\r\nAuthorization: {}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        signer.sign("POST", "/me", b"")
    );
    let (status, body, head) = raw_exchange(&server, &post_me).await;
    assert_eq!(status, 405, "{body}");
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
    assert!(
        body.contains("\"ErrorCode\":\"MethodNotAllowed\""),
        "{body}"
    );
    let bad_id = format!(
        "GET /accounts/%FF HTTP/1.1\r\nHost: mock\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        signer.sign("GET", "/accounts/%FF", b"")
    );
    let (status, body, head) = raw_exchange(&server, &bad_id).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let revoke =
        "DELETE /__mock/keys/nobody HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (status, body, _) = raw_exchange(&server, revoke).await;
    assert_eq!(status, 404);
    assert!(body.contains("no_such_key"), "{body}");
}

#[tokio::test]
async fn a_journal_body_of_control_bytes_is_base64_not_six_times_its_size() {
    let server = MockArmorServer::start().await.unwrap();
    let body = "\u{1}".repeat(2000);
    let request = format!(
        "POST /x HTTP/1.1\r\nHost: mock\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = raw_exchange(&server, &request).await;
    let (status, journal, _) = raw_exchange(
        &server,
        "GET /__mock/journal HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(journal.contains("\"base64\""), "{journal}");
    assert!(journal.len() < 4_000, "{} bytes", journal.len());
}

/// The status and body of the answer read from `stream` (0 when it
/// closed without one).
async fn answer_of(stream: &mut TcpStream) -> (u16, String) {
    let (status, body, _) = read_answer(stream).await;
    (status, body)
}

/// One raw exchange: status, body, head.
async fn raw_exchange(server: &MockArmorServer, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answer(&mut stream).await
}

/// Everything `stream` sends until it closes: status, body, head.
async fn read_answer(stream: &mut TcpStream) -> (u16, String, String) {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, body.to_owned(), head.to_owned())
}
