//! Secrets never leak: not in `Debug`, not in responses, not in logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use armor_psk::{
    ArmorPskLayer, ManualClock, Signer,
    keys::{MemoryKeyStore, Secret},
};
use axum::Router;
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

const SECRET: &str = "s3cr3t-DO-NOT-LEAK";
const NOW: u64 = 1_700_000_000;

#[test]
fn debug_output_is_redacted() {
    let keys = MemoryKeyStore::new().with_key("key-1", SECRET);
    let signer = Signer::new("key-1", SECRET).unwrap();
    let layer = ArmorPskLayer::new(keys.clone());
    for debug in [
        format!("{:?}", Secret::new(SECRET)),
        format!("{keys:?}"),
        format!("{signer:?}"),
        format!("{layer:?}"),
    ] {
        assert!(!debug.contains(SECRET), "{debug}");
    }
    assert!(format!("{signer:?}").contains("[redacted]"));
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures everything logged at TRACE and above on this thread, span
    /// closes included, until the guard drops.
    fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_writer(move || writer.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }
}

#[tokio::test]
async fn logs_name_the_key_and_reason_but_never_the_secret() {
    let (captured, _guard) = Captured::install();

    let keys = MemoryKeyStore::new().with_key("key-1", SECRET);
    let router = Router::new()
        .fallback(|| async { "ok" })
        .layer(ArmorPskLayer::new(keys).with_clock(ManualClock::new(NOW - 1)));
    // The layer was made a second before the requests were signed: the
    // restart fence has nothing to say of them.
    let good = Signer::new("key-1", SECRET).unwrap();
    let forged = Signer::new("key-1", "guess").unwrap();
    let good_header = good.sign_at("POST", "/x", b"body", "n-1", NOW).unwrap();
    let forged_header = forged.sign_at("POST", "/x", b"body", "n-2", NOW).unwrap();

    for header in [&good_header, &forged_header, &good_header] {
        let request = Request::post("/x")
            .header("authorization", header.as_str())
            .body(Body::from("body"))
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains(SECRET));
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("invalid_signature"), "{logs}");
    assert!(logs.contains("replayed_request"), "{logs}");
    assert!(logs.contains("key-1"), "{logs}");
    assert!(logs.contains("canonical_sha256"), "{logs}");
    // One span per verification, closed with the key id and the outcome.
    let spans: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("armor_psk.verify{") && line.contains(": close "))
        .collect();
    assert_eq!(spans.len(), 3, "{logs}");
    for (span, outcome) in spans
        .iter()
        .zip(["accepted", "invalid_signature", "replayed_request"])
    {
        assert!(span.contains("key-1") && span.contains(outcome), "{span}");
    }
    assert!(!logs.contains(SECRET), "{logs}");
    for header in [&good_header, &forged_header] {
        let signature = header.split(':').nth(1).unwrap();
        assert!(
            !logs.contains(signature),
            "a full signature was logged: {logs}"
        );
    }
}

/// A 300 KB key id is refused as malformed, and nothing of it reaches the
/// log: every line written stays short.
#[tokio::test]
async fn an_oversized_key_id_is_refused_with_a_short_log_line() {
    let (captured, _guard) = Captured::install();

    let router = Router::new().fallback(|| async { "ok" }).layer(
        ArmorPskLayer::new(MemoryKeyStore::new().with_key("key-1", SECRET))
            .with_clock(ManualClock::new(NOW)),
    );
    let key_id = "k".repeat(300_000);
    let signature = "A".repeat(86) + "==";
    let request = Request::get("/me")
        .header(
            "authorization",
            format!("ARMOR-PSK {key_id}:{signature}:n-1:{NOW}"),
        )
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("malformed_authorization"), "{body}");
    assert!(body.len() < 300, "{body}");

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("malformed_authorization"), "{log}");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1024, "a log line of {longest} bytes");
}

/// A key store that never answers.
struct Silent;

impl armor_psk::keys::KeyStore for Silent {
    fn get<'a>(
        &'a self,
        _key_id: &'a str,
    ) -> armor_psk::BoxFuture<
        'a,
        Result<Option<armor_psk::keys::Key>, armor_psk::keys::KeyStoreError>,
    > {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_request_dropped_while_its_key_is_looked_up_closes_its_span_with_the_key_id() {
    let (captured, _guard) = Captured::install();
    let router = Router::new()
        .fallback(|| async { "ok" })
        .layer(ArmorPskLayer::new(Silent).with_clock(ManualClock::new(NOW)));
    let header = Signer::new("key-7", SECRET)
        .unwrap()
        .sign_at("GET", "/x", b"", "n-1", NOW)
        .unwrap();
    let request = Request::get("/x")
        .header("authorization", header.as_str())
        .body(Body::empty())
        .unwrap();
    // An outer timeout gives up on it, as a client that hangs up would.
    let outcome = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        router.oneshot(request),
    )
    .await;
    assert!(outcome.is_err(), "a silent key store cannot answer");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let closed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("armor_psk.verify{") && line.contains(": close "))
        .collect();
    assert_eq!(closed.len(), 1, "{logs}");
    assert!(closed[0].contains("key-7"), "{}", closed[0]);
    assert!(!logs.contains(SECRET), "{logs}");
}
