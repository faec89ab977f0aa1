//! The layer end to end, without sockets: every rejection code, the window
//! edges, replays, body limits, paths, and the tower mechanics.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use armor_psk::{
    ArmorPskLayer, BoxFuture, Identity, Rejection, RejectionKind,
    keys::{KeyStore, KeyStoreError},
    protocol::NonceFormat,
    replay::{
        MemoryReplayStore, ReplayRequest, ReplayStore, ReplayStoreError, Reservation, Sweeping,
    },
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use common::{KEY_ID, NOW, app, harness, request_with_header, send, signed, signer};
use http::{Request, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn accepted_request_reaches_the_handler_with_identity_and_exact_body() {
    let h = harness();
    let router = app(h.layer);
    let body = br#"{"name": "web-01", "size": 2}"#;
    let answer = send(
        &router,
        signed("POST", "/example/anywhere", body, "n-1", NOW),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["key_id"], KEY_ID);
    assert_eq!(answer.json["nonce"], "n-1");
    assert_eq!(answer.json["path"], "/example/anywhere");
    assert_eq!(answer.json["body"], std::str::from_utf8(body).unwrap());
    assert!(answer.rejection.is_none());
    // The identity rides on the response too, for outer layers (an access
    // log): the same one the handler saw.
    let identity = answer.identity.expect("Identity on the response");
    assert_eq!(
        (identity.key_id(), identity.nonce(), identity.timestamp()),
        (KEY_ID, "n-1", NOW)
    );
}

/// A store that answers only through its future: the layer must take the
/// same decisions as with one that answers at once.
struct OnlyAsync<S>(S);

impl<S: ReplayStore> ReplayStore for OnlyAsync<S> {
    fn reserve<'a>(
        &'a self,
        request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        self.0.reserve(request)
    }
}

impl KeyStore for OnlyAsync<armor_psk::keys::MemoryKeyStore> {
    fn get<'a>(
        &'a self,
        key_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<armor_psk::keys::Key>, KeyStoreError>> {
        self.0.get(key_id)
    }
}

#[tokio::test]
async fn stores_that_answer_at_once_and_through_a_future_decide_alike() {
    let keys = armor_psk::keys::MemoryKeyStore::new().with_key(KEY_ID, common::SECRET);
    assert!(
        keys.get_ready(KEY_ID).is_some(),
        "the memory store answers at once"
    );
    assert!(OnlyAsync(keys.clone()).get_ready(KEY_ID).is_none());
    let at_once = ArmorPskLayer::new(keys.clone())
        .with_clock(armor_psk::ManualClock::new(NOW))
        .with_replay_store(
            MemoryReplayStore::builder()
                .memory_since(Some(NOW - 3600))
                .build(),
        );
    let through_futures = ArmorPskLayer::new(OnlyAsync(keys))
        .with_clock(armor_psk::ManualClock::new(NOW))
        .with_replay_store(OnlyAsync(
            MemoryReplayStore::builder()
                .memory_since(Some(NOW - 3600))
                .build(),
        ));
    let mut outcomes = Vec::new();
    for layer in [at_once, through_futures] {
        let router = app(layer);
        let mut codes = Vec::new();
        for (nonce, key_id) in [("n-1", KEY_ID), ("n-1", KEY_ID), ("n-2", "nobody")] {
            let header = armor_psk::Signer::new(key_id, common::SECRET)
                .unwrap()
                .sign_at("GET", "/me", b"", nonce, NOW)
                .unwrap();
            let answer = send(&router, request_with_header("GET", "/me", &header, b"")).await;
            codes.push((answer.status, answer.code().to_owned()));
        }
        outcomes.push(codes);
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(
        outcomes[0]
            .iter()
            .map(|(status, _)| status.as_u16())
            .collect::<Vec<_>>(),
        [200, 401, 401]
    );
    assert_eq!(outcomes[0][1].1, "replayed_request");
    assert_eq!(outcomes[0][2].1, "invalid_signature");
}

#[tokio::test]
async fn documented_vector_is_accepted_at_its_time() {
    let h = harness();
    h.clock.set(1528140529);
    let header = "ARMOR-PSK 20a37099-4a0b-432f-bf46-5fa690a0405c:WacyhtoW2KhDbXzmKlaKWrMkFEs4UTOSyj/K01j5nZNHpTKPwu+Fh9BbN43nbQa55zysaXs2k0H7Zmq7F5sy5A==:8jbj872s2h:1528140529";
    let answer = send(
        &app(h.layer),
        request_with_header("GET", "/me", header, b""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

/// Checks the shape every rejection shares.
fn assert_rejected(answer: &common::Answer, kind: RejectionKind) {
    assert_eq!(answer.status, kind.status(), "{kind}: {}", answer.json);
    assert_eq!(answer.code(), kind.code(), "{}", answer.json);
    assert!(
        answer.json["Message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(answer.headers["content-type"], "application/json");
    let www = answer.headers.get("www-authenticate");
    if kind.status() == StatusCode::UNAUTHORIZED {
        assert_eq!(www.unwrap(), "ARMOR-PSK");
    } else {
        assert!(www.is_none(), "{kind} has WWW-Authenticate");
    }
    let rejection = answer.rejection.as_ref().expect("rejection in extensions");
    assert_eq!(rejection.kind(), kind);
}

#[tokio::test]
async fn header_rejections_through_the_layer() {
    let router = app(harness().layer);
    let good = signer().sign_at("GET", "/me", b"", "n-1", NOW).unwrap();

    let missing = Request::get("/me").body(Body::empty()).unwrap();
    assert_rejected(
        &send(&router, missing).await,
        RejectionKind::MissingAuthorization,
    );

    let malformed = request_with_header("GET", "/me", "Bearer abc", b"");
    assert_rejected(
        &send(&router, malformed).await,
        RejectionKind::MalformedAuthorization,
    );

    let mut twice = request_with_header("GET", "/me", &good, b"");
    twice
        .headers_mut()
        .append("authorization", good.parse().unwrap());
    assert_rejected(
        &send(&router, twice).await,
        RejectionKind::MalformedAuthorization,
    );

    let long_nonce = good.replace(":n-1:", &format!(":{}:", "n".repeat(129)));
    let answer = send(&router, request_with_header("GET", "/me", &long_nonce, b"")).await;
    assert_rejected(&answer, RejectionKind::InvalidNonce);

    let plus = good.replace(":1700000000", ":+1700000000");
    let answer = send(&router, request_with_header("GET", "/me", &plus, b"")).await;
    assert_rejected(&answer, RejectionKind::InvalidTimestamp);
}

#[tokio::test]
async fn wrong_signature_and_unknown_key_look_the_same() {
    let router = app(harness().layer);
    let other = armor_psk::Signer::new(KEY_ID, "not the secret").unwrap();
    let wrong = other.sign_at("GET", "/me", b"", "n-1", NOW).unwrap();
    let unknown = armor_psk::Signer::new("no-such-key", "secret").unwrap();
    let unknown = unknown.sign_at("GET", "/me", b"", "n-1", NOW).unwrap();

    let a = send(&router, request_with_header("GET", "/me", &wrong, b"")).await;
    let b = send(&router, request_with_header("GET", "/me", &unknown, b"")).await;
    assert_rejected(&a, RejectionKind::InvalidSignature);
    assert_rejected(&b, RejectionKind::InvalidSignature);
    assert_eq!(a.json, b.json, "the bodies must not tell the two apart");
    assert_eq!(a.headers, b.headers);
}

#[tokio::test]
async fn tampering_with_any_signed_part_is_refused() {
    let router = app(harness().layer);
    let header = signer()
        .sign_at("POST", "/vms/1", b"{\"a\":1}", "n-1", NOW)
        .unwrap();
    let cases = [
        (
            "body",
            request_with_header("POST", "/vms/1", &header, b"{\"a\":2}"),
        ),
        (
            "empty body",
            request_with_header("POST", "/vms/1", &header, b""),
        ),
        (
            "path",
            request_with_header("POST", "/vms/2", &header, b"{\"a\":1}"),
        ),
        (
            "method",
            request_with_header("PUT", "/vms/1", &header, b"{\"a\":1}"),
        ),
        (
            "nonce",
            request_with_header(
                "POST",
                "/vms/1",
                &header.replace(":n-1:", ":n-2:"),
                b"{\"a\":1}",
            ),
        ),
        (
            "timestamp",
            request_with_header(
                "POST",
                "/vms/1",
                &header.replace(":1700000000", ":1700000001"),
                b"{\"a\":1}",
            ),
        ),
    ];
    for (name, request) in cases {
        let answer = send(&router, request).await;
        assert_eq!(answer.code(), "invalid_signature", "{name}");
    }
}

#[tokio::test]
async fn window_edges() {
    let h = harness();
    let router = app(h.layer);
    for (offset, accepted) in [
        (-300i64, true),
        (300, true),
        (-301, false),
        (301, false),
        (0, true),
    ] {
        let timestamp = NOW.checked_add_signed(offset).unwrap();
        let nonce = format!("edge{offset}");
        let answer = send(&router, signed("GET", "/me", b"", &nonce, timestamp)).await;
        if accepted {
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "offset {offset}: {}",
                answer.json
            );
        } else {
            assert_rejected(&answer, RejectionKind::TimestampOutOfWindow);
            assert_eq!(answer.json["server_time"], NOW, "offset {offset}");
            assert_eq!(answer.rejection.unwrap().server_time(), Some(NOW));
        }
    }
}

#[tokio::test]
async fn configurable_window() {
    let h = harness();
    let router = app(h.layer.with_window(Duration::from_secs(30)).unwrap());
    assert_eq!(
        send(&router, signed("GET", "/me", b"", "a", NOW - 30))
            .await
            .status,
        StatusCode::OK
    );
    let answer = send(&router, signed("GET", "/me", b"", "b", NOW - 31)).await;
    assert_eq!(answer.code(), "timestamp_out_of_window");
}

#[tokio::test]
async fn out_of_window_with_a_bad_signature_reveals_no_time() {
    // The HMAC is checked before the window: no server_time for forgers.
    let router = app(harness().layer);
    let other = armor_psk::Signer::new(KEY_ID, "wrong").unwrap();
    let header = other.sign_at("GET", "/me", b"", "n", NOW - 1000).unwrap();
    let answer = send(&router, request_with_header("GET", "/me", &header, b"")).await;
    assert_eq!(answer.code(), "invalid_signature");
    assert!(answer.json.get("server_time").is_none());
}

#[tokio::test]
async fn replay_is_refused() {
    let router = app(harness().layer);
    let header = signer().sign_at("GET", "/me", b"", "once", NOW).unwrap();
    let first = send(&router, request_with_header("GET", "/me", &header, b"")).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = send(&router, request_with_header("GET", "/me", &header, b"")).await;
    assert_rejected(&again, RejectionKind::ReplayedRequest);
}

#[tokio::test]
async fn nonce_reuse_with_a_new_signature_is_refused() {
    let router = app(harness().layer);
    assert_eq!(
        send(&router, signed("GET", "/a", b"", "same", NOW))
            .await
            .status,
        StatusCode::OK
    );
    let answer = send(&router, signed("GET", "/b", b"", "same", NOW)).await;
    assert_eq!(answer.code(), "replayed_request");
}

#[tokio::test]
async fn a_refused_request_does_not_burn_its_nonce() {
    // Reservation happens only after the signature verified.
    let router = app(harness().layer);
    let forged = armor_psk::Signer::new(KEY_ID, "wrong").unwrap();
    let forged = forged.sign_at("GET", "/me", b"", "precious", NOW).unwrap();
    assert_eq!(
        send(&router, request_with_header("GET", "/me", &forged, b""))
            .await
            .code(),
        "invalid_signature"
    );
    assert_eq!(
        send(&router, signed("GET", "/me", b"", "precious", NOW))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn path_nonce_hole_is_closed() {
    // `/accounts/12` + `abc` and `/accounts/1` + `2abc` sign the same bytes.
    let router = app(harness().layer);
    let original = signer()
        .sign_at("GET", "/accounts/12", b"", "abc", NOW)
        .unwrap();
    let accepted = send(
        &router,
        request_with_header("GET", "/accounts/12", &original, b""),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::OK);

    let forged = original.replace(":abc:", ":2abc:");
    let answer = send(
        &router,
        request_with_header("GET", "/accounts/1", &forged, b""),
    )
    .await;
    assert_rejected(&answer, RejectionKind::ReplayedRequest);
}

/// Without a nonce format, a re-cut that arrives *before* the genuine
/// request is accepted (the replay store only knows what it saw); with
/// `NonceFormat::Uuid` the boundary cannot move and it is refused.
#[tokio::test]
async fn uuid_nonce_format_refuses_a_re_cut_sent_before_the_genuine_request() {
    let nonce = "0e2ad5d5-4b7e-4a1c-9a52-05b4c2b0e1f3";
    let original = signer()
        .sign_at("GET", "/accounts/12", b"", nonce, NOW)
        .unwrap();
    // Two re-cuts: a path character moved into the nonce, and back.
    let shorter_path = (
        "/accounts/1",
        original.replace(&format!(":{nonce}:"), &format!(":2{nonce}:")),
    );
    let longer_path = (
        "/accounts/120",
        original.replace(&format!(":{nonce}:"), &format!(":{}:", &nonce[1..])),
    );

    let open = app(harness().layer);
    let answer = send(
        &open,
        request_with_header("GET", shorter_path.0, &shorter_path.1, b""),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the hole, without the setting"
    );

    let closed = app(harness().layer.with_nonce_format(NonceFormat::Uuid));
    for (path, header) in [&shorter_path, &longer_path] {
        let answer = send(&closed, request_with_header("GET", path, header, b"")).await;
        assert_rejected(&answer, RejectionKind::InvalidNonce);
    }
    let genuine = send(
        &closed,
        request_with_header("GET", "/accounts/12", &original, b""),
    )
    .await;
    assert_eq!(genuine.status, StatusCode::OK, "{}", genuine.json);
    // Any other nonce is refused before the body is read.
    let answer = send(&closed, signed("GET", "/me", b"", "n-1", NOW)).await;
    assert_rejected(&answer, RejectionKind::InvalidNonce);
}

#[tokio::test]
async fn nonce_timestamp_hole_is_closed() {
    // `abc0` + `1700000000` and `abc` + `01700000000` sign the same bytes.
    let router = app(harness().layer);
    let original = signer().sign_at("GET", "/me", b"", "abc0", NOW).unwrap();
    assert_eq!(
        send(&router, request_with_header("GET", "/me", &original, b""))
            .await
            .status,
        StatusCode::OK
    );

    let leading_zero = original.replace(":abc0:1700000000", ":abc:01700000000");
    let answer = send(
        &router,
        request_with_header("GET", "/me", &leading_zero, b""),
    )
    .await;
    assert_rejected(&answer, RejectionKind::InvalidTimestamp);

    let plus = original.replace(":abc0:1700000000", ":abc0:+1700000000");
    let answer = send(&router, request_with_header("GET", "/me", &plus, b"")).await;
    assert_rejected(&answer, RejectionKind::InvalidTimestamp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_copies_reach_the_handler_once() {
    let h = harness();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let router = Router::new()
        .route(
            "/pay",
            post(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { "paid" }
            }),
        )
        .layer(h.layer);
    let header = signer()
        .sign_at("POST", "/pay", b"{\"amount\":5}", "n-pay", NOW)
        .unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let router = router.clone();
            let header = header.clone();
            tokio::spawn(async move {
                send(
                    &router,
                    request_with_header("POST", "/pay", &header, b"{\"amount\":5}"),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let replayed = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!((ok, replayed), (1, 99));
    assert_eq!(reached.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn keys_added_and_revoked_at_run_time() {
    let h = harness();
    let router = app(h.layer);
    assert_eq!(
        send(&router, signed("GET", "/me", b"", "r-1", NOW))
            .await
            .status,
        StatusCode::OK
    );
    assert!(h.keys.revoke(KEY_ID));
    let answer = send(&router, signed("GET", "/me", b"", "r-2", NOW)).await;
    assert_rejected(&answer, RejectionKind::InvalidSignature);

    h.keys.insert("new-key", "new-secret");
    let new = armor_psk::Signer::new("new-key", "new-secret").unwrap();
    let header = new.sign_at("GET", "/me", b"", "r-3", NOW).unwrap();
    let answer = send(&router, request_with_header("GET", "/me", &header, b"")).await;
    assert_eq!(answer.json["key_id"], "new-key");
}

#[tokio::test]
async fn nested_router_sees_the_original_path() {
    let h = harness();
    let api = Router::new().route("/me", get(common::echo)).layer(h.layer);
    let router = Router::new().nest("/api", api);
    let answer = send(&router, signed("GET", "/api/me", b"", "n-1", NOW)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["key_id"], KEY_ID);
    // Signed for the path the nested router sees: refused.
    let answer = send(&router, {
        let header = signer().sign_at("GET", "/me", b"", "n-2", NOW).unwrap();
        request_with_header("GET", "/api/me", &header, b"")
    })
    .await;
    assert_eq!(answer.code(), "invalid_signature");
}

#[tokio::test]
async fn route_layer_guards_matched_routes_only() {
    let h = harness();
    let router = Router::new()
        .route("/me", get(common::echo))
        .route_layer(h.layer)
        .route("/health", get(|| async { "ok" }));
    assert_eq!(
        send(&router, signed("GET", "/me", b"", "n-1", NOW))
            .await
            .status,
        StatusCode::OK
    );
    let unsigned = send(&router, Request::get("/me").body(Body::empty()).unwrap()).await;
    assert_eq!(unsigned.code(), "missing_authorization");
    let health = send(
        &router,
        Request::get("/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
    let unknown = send(
        &router,
        Request::get("/nowhere").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn query_is_not_signed() {
    let router = app(harness().layer);
    let header = signer().sign_at("GET", "/search", b"", "n-1", NOW).unwrap();
    let answer = send(
        &router,
        request_with_header("GET", "/search?q=a%20b&page=2", &header, b""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    // A signer given the query leaves it out too.
    let header = signer()
        .sign_at("GET", "/search?q=1", b"", "n-2", NOW)
        .unwrap();
    let answer = send(
        &router,
        request_with_header("GET", "/search?q=1", &header, b""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn percent_encoding_is_signed_as_sent() {
    let router = app(harness().layer);
    let header = signer()
        .sign_at("GET", "/files/a%20b", b"", "n-1", NOW)
        .unwrap();
    let answer = send(
        &router,
        request_with_header("GET", "/files/a%20b", &header, b""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let decoded = signer()
        .sign_at("GET", "/files/a b", b"", "n-2", NOW)
        .unwrap();
    let answer = send(
        &router,
        request_with_header("GET", "/files/a%20b", &decoded, b""),
    )
    .await;
    assert_eq!(answer.code(), "invalid_signature");
}

#[tokio::test]
async fn path_prefix_for_a_stripping_proxy() {
    let h = harness();
    assert!(h.layer.clone().with_path_prefix("armor").is_err());
    assert!(h.layer.clone().with_path_prefix("/armor/").is_err());
    let router = app(h.layer.with_path_prefix("/armor").unwrap());
    let header = signer()
        .sign_at("GET", "/armor/me", b"", "n-1", NOW)
        .unwrap();
    let answer = send(&router, request_with_header("GET", "/me", &header, b"")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

/// `POST /up` signed over `signed_body`, whose body arrives as `chunks`
/// (an `Err` chunk fails the read there).
fn streamed(signed_body: &[u8], chunks: Vec<Result<&'static [u8], &'static str>>) -> Request<Body> {
    let header = signer()
        .sign_at("POST", "/up", signed_body, "n-1", NOW)
        .unwrap();
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| chunk.map(Bytes::from_static).map_err(std::io::Error::other)),
    );
    Request::post("/up")
        .header("authorization", header)
        .body(Body::from_stream(stream))
        .unwrap()
}

#[tokio::test]
async fn body_over_the_limit_by_content_length_is_refused_before_reading() {
    let router = app(harness().layer.with_body_limit(16));
    // The body would fail if read: a 413 proves it was not.
    let mut request = streamed(b"x", vec![Err("must not be read")]);
    request
        .headers_mut()
        .insert("content-length", "17".parse().unwrap());
    assert_rejected(&send(&router, request).await, RejectionKind::BodyTooLarge);
}

/// Counts its lookups: what the layer refuses by what a request says of
/// itself must cost no query.
struct CountingKeys {
    keys: armor_psk::keys::MemoryKeyStore,
    lookups: AtomicUsize,
}

impl KeyStore for CountingKeys {
    fn get<'a>(
        &'a self,
        key_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<armor_psk::keys::Key>, KeyStoreError>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.keys.get(key_id)
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_key_store_is_asked() {
    let keys = Arc::new(CountingKeys {
        keys: armor_psk::keys::MemoryKeyStore::new().with_key(KEY_ID, common::SECRET),
        lookups: AtomicUsize::new(0),
    });
    let router = app(ArmorPskLayer::new(Arc::clone(&keys))
        .with_clock(armor_psk::ManualClock::new(NOW))
        .with_replay_store(common::memory_store())
        .with_body_limit(16));
    for declared in ["17", "10000000000"] {
        let mut request = streamed(b"x", vec![Err("must not be read")]);
        request
            .headers_mut()
            .insert("content-length", declared.parse().unwrap());
        let answer = send(&router, request).await;
        assert_rejected(&answer, RejectionKind::BodyTooLarge);
        // The refusal still names the key the client used (for the log).
        let rejection = answer
            .rejection
            .as_ref()
            .expect("a Rejection on the response");
        assert_eq!(rejection.key_id(), Some(KEY_ID));
    }
    assert_eq!(
        keys.lookups.load(Ordering::SeqCst),
        0,
        "a lookup for a refused size"
    );
    // One within the limit is looked up once, and served.
    let answer = send(
        &router,
        signed("POST", "/up", b"0123456789abcdef", "n-2", NOW),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(keys.lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_cut_off() {
    let router = app(harness().layer.with_body_limit(16));
    let chunks = vec![
        Ok(&b"0123456789"[..]),
        Ok(b"abcdef"),
        Ok(b"X"),
        Err("never reached"),
    ];
    let request = streamed(b"0123456789abcdefX", chunks);
    assert_rejected(&send(&router, request).await, RejectionKind::BodyTooLarge);
}

#[tokio::test]
async fn body_exactly_at_the_limit_is_accepted_across_frames() {
    let router = app(harness().layer.with_body_limit(16));
    let chunks = vec![Ok(&b"0123"[..]), Ok(b""), Ok(b"456789ab"), Ok(b"cdef")];
    let answer = send(&router, streamed(b"0123456789abcdef", chunks)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["body"], "0123456789abcdef");
}

#[tokio::test]
async fn body_read_error_is_a_400() {
    let router = app(harness().layer);
    let request = streamed(b"abc", vec![Ok(b"ab"), Err("reset by 10.0.0.5")]);
    let answer = send(&router, request).await;
    assert_rejected(&answer, RejectionKind::InvalidBody);
    // The cause is the server's (the log's), not the client's.
    assert!(
        !answer.json.to_string().contains("10.0.0.5"),
        "{}",
        answer.json
    );
}

#[tokio::test]
async fn default_body_limit_is_two_mebibytes() {
    let router = app(harness().layer);
    let body = vec![b'a'; 2 * 1024 * 1024];
    let answer = send(&router, signed("POST", "/up", &body, "n-1", NOW)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = vec![b'a'; 2 * 1024 * 1024 + 1];
    let answer = send(&router, signed("POST", "/up", &body, "n-2", NOW)).await;
    assert_rejected(&answer, RejectionKind::BodyTooLarge);
}

#[tokio::test]
async fn hashed_empty_body_slot_is_an_option() {
    let hashed = "ARMOR-PSK 20a37099-4a0b-432f-bf46-5fa690a0405c:rZz3frtRRZvKAENiUERyh45V8mYbRz7+8BNQrk/2hBuQBlYVdd5d742Rlt17F/U4gBXXzzO6LaT19ebaFp1Qcw==:8jbj872s2h:1528140529";
    let h = harness();
    h.clock.set(1528140529);
    let strict = app(h.layer.clone());
    let answer = send(&strict, request_with_header("GET", "/me", hashed, b"")).await;
    assert_eq!(answer.code(), "invalid_signature");

    let lenient = app(h.layer.with_hashed_empty_body(true));
    let answer = send(&lenient, request_with_header("GET", "/me", hashed, b"")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    // The empty-slot form still works with the option on.
    let answer = send(&lenient, signed("GET", "/me", b"", "other", 1528140529)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

struct DownKeys;
impl KeyStore for DownKeys {
    fn get<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<armor_psk::keys::Key>, KeyStoreError>> {
        Box::pin(async { Err(KeyStoreError::new("database at 10.0.0.5 refused")) })
    }
}

struct DownReplay;
impl ReplayStore for DownReplay {
    fn reserve<'a>(
        &'a self,
        _: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(async { Err(ReplayStoreError::Unavailable("connection refused".into())) })
    }
}

#[tokio::test]
async fn store_outages_are_503s_that_leak_nothing() {
    let router = app(ArmorPskLayer::new(DownKeys).with_clock(armor_psk::ManualClock::new(NOW)));
    let answer = send(&router, signed("GET", "/me", b"", "n-1", NOW)).await;
    assert_rejected(&answer, RejectionKind::KeyStoreUnavailable);
    assert!(!answer.json.to_string().contains("10.0.0.5"));

    let h = harness();
    let router = app(h.layer.with_replay_store(DownReplay));
    let answer = send(&router, signed("GET", "/me", b"", "n-1", NOW)).await;
    assert_rejected(&answer, RejectionKind::ReplayStoreUnavailable);
}

#[tokio::test]
async fn full_replay_store_refuses_instead_of_forgetting() {
    let h = harness();
    let store = MemoryReplayStore::builder()
        .capacity(2)
        .per_key_limit(2)
        .memory_since(Some(NOW - 3600))
        .build();
    let router = app(h.layer.with_replay_store(store.clone()));
    let first = signed("GET", "/me", b"", "n-1", NOW);
    let header = first.headers()["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(send(&router, first).await.status, StatusCode::OK);
    assert_eq!(store.len(), 2);

    let answer = send(&router, signed("GET", "/me", b"", "n-2", NOW)).await;
    assert_rejected(&answer, RejectionKind::ReplayStoreFull);
    // The held request is still known as a replay.
    let replay = send(&router, request_with_header("GET", "/me", &header, b"")).await;
    assert_rejected(&replay, RejectionKind::ReplayedRequest);
}

#[tokio::test]
async fn custom_rejection_response_keeps_the_reason_readable() {
    let h = harness();
    let layer = h.layer.with_rejection_response(|rejection: &Rejection| {
        http::Response::builder()
            .status(StatusCode::IM_A_TEAPOT)
            .body(format!("nope: {}", rejection.code()))
            .unwrap()
    });
    let router = app(layer);
    let response =
        tower::ServiceExt::oneshot(router, Request::get("/me").body(Body::empty()).unwrap())
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    let rejection = response.extensions().get::<Rejection>().unwrap();
    assert_eq!(rejection.kind(), RejectionKind::MissingAuthorization);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"nope: missing_authorization");
}

#[tokio::test]
async fn identity_extractor_without_the_layer_is_a_500() {
    let router = Router::new().route(
        "/me",
        get(|identity: Identity| async move { identity.key_id().to_owned() }),
    );
    let answer = send(&router, Request::get("/me").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.code(), "missing_identity");
}

#[tokio::test]
async fn every_rejection_kind_has_a_distinct_code() {
    let codes: std::collections::HashSet<_> = RejectionKind::ALL.iter().map(|k| k.code()).collect();
    assert_eq!(codes.len(), RejectionKind::ALL.len());
    let json: Value =
        serde_json::from_str(&format!("{{\"c\":\"{}\"}}", RejectionKind::ReplayedRequest)).unwrap();
    assert_eq!(json["c"], "replayed_request");
}

#[tokio::test]
async fn without_unique_nonces_replays_are_still_refused_but_a_reused_nonce_is_not() {
    let store = MemoryReplayStore::builder()
        .memory_since(Some(NOW - 3600))
        .build();
    let router = app(harness()
        .layer
        .with_unique_nonces(false)
        .with_replay_store(store.clone()));
    common::assert_replays_and_the_path_nonce_forgery_are_refused(&router).await;
    assert_eq!(store.len(), 1, "one entry per accepted request");

    // The key holder's own nonce on another request: a new signature.
    let reused = send(&router, signed("GET", "/other", b"", "abc", NOW)).await;
    assert_eq!(reused.status, StatusCode::OK);
}

/// The memory store as each sweeping makes it, its memory declared
/// complete since an hour before `NOW`.
fn memory_stores() -> [MemoryReplayStore; 2] {
    [Sweeping::Thread, Sweeping::Requests].map(|sweeping| {
        MemoryReplayStore::builder()
            .memory_since(Some(NOW - 3600))
            .sweeping(sweeping)
            .build()
    })
}

#[tokio::test]
async fn the_memory_store_refuses_replays_forgeries_and_reused_nonces() {
    for store in memory_stores() {
        let router = app(harness().layer.with_replay_store(store));
        common::assert_replays_and_the_path_nonce_forgery_are_refused(&router).await;
        let reused = send(&router, signed("GET", "/other", b"", "abc", NOW)).await;
        assert_rejected(&reused, RejectionKind::ReplayedRequest);
    }
}

#[tokio::test]
async fn the_memory_store_outlives_a_clock_stepped_back() {
    for store in memory_stores() {
        common::assert_a_clock_stepped_back_still_refuses_the_replay(store).await;
    }
}

#[tokio::test]
async fn the_memory_store_shared_by_clocks_apart_refuses_replays_while_valid() {
    for store in memory_stores() {
        common::assert_clocks_apart_refuse_the_replay_while_it_is_valid(store).await;
    }
}

#[test]
fn windows_and_allowances_over_a_day_are_refused() {
    let layer = || ArmorPskLayer::new(armor_psk::keys::MemoryKeyStore::new());
    let day = Duration::from_secs(24 * 3600);
    assert!(layer().with_window(day).is_ok());
    assert!(matches!(
        layer().with_window(day + Duration::from_secs(1)),
        Err(armor_psk::ConfigError::WindowTooLong(_))
    ));
    assert!(matches!(
        layer().with_clock_skew_allowance(day + Duration::from_secs(1)),
        Err(armor_psk::ConfigError::SkewAllowanceTooLong(_))
    ));
    // The longest lifetime (a day's window, a day's allowance, a timestamp a
    // day ahead) is kept whole.
    let options = armor_psk::protocol::VerifyOptions::default()
        .with_window(day)
        .unwrap()
        .with_clock_skew_allowance(day)
        .unwrap();
    let signature = armor_psk::protocol::Signature::from_bytes([7; 64]);
    let request = ReplayRequest::new(
        KEY_ID,
        &signature,
        NOW + 24 * 3600,
        NOW,
        options.replay_lifetime(),
    );
    assert_eq!(request.ttl(), Duration::from_secs(3 * 24 * 3600 + 1));
}

/// One key fills its share of the store: its next request is 429 with
/// `Retry-After`, and another key is still served.
async fn a_key_over_its_share_does_not_lock_out_the_others(store: impl ReplayStore) {
    let keys = armor_psk::keys::MemoryKeyStore::new()
        .with_key(KEY_ID, common::SECRET)
        .with_key("other-key", "other-secret");
    let router = app(ArmorPskLayer::new(keys)
        .with_clock(armor_psk::ManualClock::new(NOW))
        .with_replay_store(store));
    for i in 0..5 {
        let answer = send(
            &router,
            signed("GET", "/me", b"", &format!("share-{i}"), NOW),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }
    let over = send(&router, signed("GET", "/me", b"", "share-5", NOW)).await;
    assert_rejected(&over, RejectionKind::KeyQuotaExceeded);
    let retry_after: u64 = over.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=661).contains(&retry_after),
        "Retry-After {retry_after}"
    );

    let other = armor_psk::Signer::new("other-key", "other-secret").unwrap();
    let header = other.sign_at("GET", "/me", b"", "share-0", NOW).unwrap();
    let answer = send(&router, request_with_header("GET", "/me", &header, b"")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[tokio::test]
async fn the_memory_store_holds_each_key_to_its_share() {
    for sweeping in [Sweeping::Thread, Sweeping::Requests] {
        a_key_over_its_share_does_not_lock_out_the_others(
            MemoryReplayStore::builder()
                .capacity(100)
                .per_key_limit(10)
                .memory_since(Some(NOW - 3600))
                .sweeping(sweeping)
                .build(),
        )
        .await;
    }
}

#[tokio::test]
async fn a_nonce_reused_with_another_timestamp_is_refused_by_the_memory_store() {
    for store in memory_stores() {
        let router = app(harness().layer.with_replay_store(store));
        let first = send(&router, signed("GET", "/me", b"", "reused", NOW)).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.json);
        let again = send(&router, signed("GET", "/me", b"", "reused", NOW - 7)).await;
        assert_rejected(&again, RejectionKind::ReplayedRequest);
    }
}

/// Rotation step by step: a second secret with an hour's overlap; both
/// verify during it, only the new one after.
#[tokio::test]
async fn a_rotated_key_accepts_both_secrets_during_the_overlap_only() {
    let h = harness();
    let router = app(h.layer.clone());
    let version = h.keys.rotate(KEY_ID, "secret-2", NOW, 3600).unwrap();
    assert_eq!(version, 2);
    let new = armor_psk::Signer::new(KEY_ID, "secret-2").unwrap();
    let signed_with = |signer: &armor_psk::Signer, nonce: &str, at: u64| {
        let header = signer.sign_at("GET", "/me", b"", nonce, at).unwrap();
        request_with_header("GET", "/me", &header, b"")
    };
    assert_eq!(
        send(&router, signed_with(&signer(), "old-1", NOW))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&router, signed_with(&new, "new-1", NOW)).await.status,
        StatusCode::OK
    );

    h.clock.set(NOW + 3600);
    let old = send(&router, signed_with(&signer(), "old-2", NOW + 3600)).await;
    assert_rejected(&old, RejectionKind::InvalidSignature);
    let fresh = send(&router, signed_with(&new, "new-2", NOW + 3600)).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.json);
}

/// With `NonceFormat::Uuid`, both forms of UUID are accepted, and no
/// character can move between the path and the nonce of either: every
/// re-cut of a signed request is refused before anything is checked.
#[tokio::test]
async fn uuid_nonces_of_both_forms_leave_no_re_cut() {
    for nonce in [
        "0e2ad5d5-4b7e-4a1c-9a52-05b4c2b0e1f3",
        "0e2ad5d54b7e4a1c9a5205b4c2b0e1f3",
        "ABCDEF01-2345-6789-abcd-ef0123456789",
    ] {
        let h = harness();
        let router = app(h
            .layer
            .with_nonce_format(armor_psk::protocol::NonceFormat::Uuid));
        let path = "/accounts/1234567890abcdef";
        let header = signer().sign_at("GET", path, b"", nonce, NOW).unwrap();
        let answer = send(&router, request_with_header("GET", path, &header, b"")).await;
        assert_eq!(answer.status, StatusCode::OK, "{nonce}: {}", answer.json);
        let signature = header.split(':').nth(1).unwrap();
        for k in 1..=12 {
            // k characters of the path into the nonce, and back.
            let (head, tail) = path.split_at(path.len() - k);
            let (lead, rest) = nonce.split_at(k);
            for (re_path, re_nonce) in [
                (head.to_owned(), format!("{tail}{nonce}")),
                (format!("{path}{lead}"), rest.to_owned()),
            ] {
                let forged = format!("ARMOR-PSK {KEY_ID}:{signature}:{re_nonce}:{NOW}");
                let answer =
                    send(&router, request_with_header("GET", &re_path, &forged, b"")).await;
                assert_eq!(
                    answer.code(),
                    "invalid_nonce",
                    "{re_path} + {re_nonce}: {}",
                    answer.json
                );
            }
        }
    }
}
