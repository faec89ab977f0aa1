//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cluster;
pub mod process;
pub mod redis;
pub mod web;

use armor_psk::{
    ArmorPskLayer, ManualClock, Rejection, Signer, keys::MemoryKeyStore, replay::ReplayStore,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::OriginalUri;
use axum::response::Json;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The name of the test function it is written in (inside an `async fn`
/// too), for the messages of a skipped or failed test.
#[allow(unused_macros)]
macro_rules! test_name {
    () => {{
        fn here() {}
        $crate::common::test_name_of(std::any::type_name_of_val(&here))
    }};
}
#[allow(unused_imports)]
pub(crate) use test_name;

/// `crate::test::{{closure}}::here` → `test`.
pub fn test_name_of(path: &'static str) -> &'static str {
    path.trim_end_matches("::here")
        .rsplit("::")
        .find(|part| *part != "{{closure}}")
        .unwrap_or(path)
}

/// A layer over `store` with the test key and a clock at `NOW`.
pub fn layer_with(store: impl ReplayStore) -> ArmorPskLayer {
    ArmorPskLayer::new(MemoryKeyStore::new().with_key(KEY_ID, SECRET))
        .with_clock(ManualClock::new(NOW))
        .with_replay_store(store)
}

pub const KEY_ID: &str = "20a37099-4a0b-432f-bf46-5fa690a0405c";
pub const SECRET: &str = "secret";
pub const NOW: u64 = 1_700_000_000;

pub struct Harness {
    pub keys: MemoryKeyStore,
    pub clock: ManualClock,
    pub layer: ArmorPskLayer,
}

pub fn harness() -> Harness {
    let keys = MemoryKeyStore::new().with_key(KEY_ID, SECRET);
    let clock = ManualClock::new(NOW);
    let layer = ArmorPskLayer::new(keys.clone())
        .with_clock(clock.clone())
        .with_replay_store(memory_store());
    Harness { keys, clock, layer }
}

/// The default store, its memory declared complete since 1970: the tests
/// sign requests in the past and set the clock back to a vector's time on
/// stores they just made, which a real server refuses as
/// `issued_before_restart` (the restart fence has tests of its own).
pub fn memory_store() -> armor_psk::replay::MemoryReplayStore {
    armor_psk::replay::MemoryReplayStore::builder()
        .memory_since(Some(0))
        .build()
}

pub fn signer() -> Signer {
    Signer::new(KEY_ID, SECRET).expect("valid key id")
}

/// A handler that echoes what it received: identity, method, path, body.
pub async fn echo(
    identity: Option<armor_psk::Identity>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Json<Value> {
    Json(json!({
        "key_id": identity.as_ref().map(|i| i.key_id().to_owned()),
        "nonce": identity.as_ref().map(|i| i.nonce().to_owned()),
        "method": method.as_str(),
        "path": uri.path(),
        "body": String::from_utf8_lossy(&body),
        "body_len": body.len(),
    }))
}

/// A router that echoes on every path, behind the layer.
pub fn app(layer: ArmorPskLayer) -> Router {
    Router::new().fallback(echo).layer(layer)
}

/// A request carrying `header` as its `Authorization`.
pub fn request_with_header(method: &str, path: &str, header: &str, body: &[u8]) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", header)
        .body(Body::from(body.to_vec()))
        .expect("valid request")
}

/// A request signed with the test key at `timestamp`.
pub fn signed(method: &str, path: &str, body: &[u8], nonce: &str, timestamp: u64) -> Request<Body> {
    let header = signer()
        .sign_at(method, path, body, nonce, timestamp)
        .expect("valid nonce");
    request_with_header(method, path, &header, body)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub rejection: Option<Rejection>,
    pub identity: Option<armor_psk::Identity>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
}

/// Sends `request` through `router` without sockets.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let rejection = response.extensions().get::<Rejection>().cloned();
    let identity = response.extensions().get::<armor_psk::Identity>().cloned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        json,
        rejection,
        identity,
    }
}

/// Sends `GET /accounts/12` signed with nonce `abc` (accepted), then the
/// same again (a replay) and the path/nonce forgery `GET /accounts/1` with
/// nonce `2abc` and the captured signature: both refused as replays.
pub async fn assert_replays_and_the_path_nonce_forgery_are_refused(router: &Router) {
    let original = signer()
        .sign_at("GET", "/accounts/12", b"", "abc", NOW)
        .expect("valid nonce");
    let first = send(
        router,
        request_with_header("GET", "/accounts/12", &original, b""),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK);
    let again = send(
        router,
        request_with_header("GET", "/accounts/12", &original, b""),
    )
    .await;
    assert_eq!(again.code(), "replayed_request");
    let forged = original.replace(":abc:", ":2abc:");
    let forgery = send(
        router,
        request_with_header("GET", "/accounts/1", &forged, b""),
    )
    .await;
    assert_eq!(forgery.code(), "replayed_request");
}

/// The real time after which the entries of a request signed 299 s before
/// the clock would be gone without the clock-skew allowance (their TTL
/// would be 2 s); with it they live 62 s.
const PAST_THE_BARE_WINDOW: std::time::Duration = std::time::Duration::from_millis(2_300);

/// A server accepts a request signed 299 s ago; its clock then steps back
/// 30 s (an NTP step, a VM restored) while real time passes the bare
/// window's lifetime: the replay must still be refused.
pub async fn assert_a_clock_stepped_back_still_refuses_the_replay(store: impl ReplayStore) {
    let clock = ManualClock::new(NOW);
    let keys = MemoryKeyStore::new().with_key(KEY_ID, SECRET);
    let router = app(ArmorPskLayer::new(keys)
        .with_clock(clock.clone())
        .with_replay_store(store));
    let header = signer()
        .sign_at("POST", "/things", b"{}", "stepped-back", NOW - 299)
        .expect("valid nonce");
    let first = send(
        &router,
        request_with_header("POST", "/things", &header, b"{}"),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);

    tokio::time::sleep(PAST_THE_BARE_WINDOW).await;
    clock.set(NOW + 2 - 30);
    let replay = send(
        &router,
        request_with_header("POST", "/things", &header, b"{}"),
    )
    .await;
    assert_eq!(replay.code(), "replayed_request", "{}", replay.json);
}

/// Two servers share `store`, B's clock 10 s behind A's. A accepts a
/// request signed 299 s ago; B must refuse its replay at once, after real
/// time passed the bare window's lifetime, and up to the last second its
/// own clock finds the request valid.
pub async fn assert_clocks_apart_refuse_the_replay_while_it_is_valid<S>(store: S)
where
    S: ReplayStore + Clone,
{
    let keys = MemoryKeyStore::new().with_key(KEY_ID, SECRET);
    let (a_clock, b_clock) = (ManualClock::new(NOW), ManualClock::new(NOW - 10));
    let layer = |clock: &ManualClock| {
        app(ArmorPskLayer::new(keys.clone())
            .with_clock(clock.clone())
            .with_replay_store(store.clone()))
    };
    let (a, b) = (layer(&a_clock), layer(&b_clock));
    let timestamp = NOW - 299;
    let header = signer()
        .sign_at("POST", "/things", b"{}", "clocks-apart", timestamp)
        .expect("valid nonce");
    let request = || request_with_header("POST", "/things", &header, b"{}");
    let first = send(&a, request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert_eq!(send(&b, request()).await.code(), "replayed_request");

    tokio::time::sleep(PAST_THE_BARE_WINDOW).await;
    a_clock.advance(2);
    b_clock.advance(2);
    assert_eq!(send(&b, request()).await.code(), "replayed_request");
    // B's last second of validity for it.
    b_clock.set(timestamp + 300);
    assert_eq!(send(&b, request()).await.code(), "replayed_request");
    b_clock.advance(1);
    assert_eq!(send(&b, request()).await.code(), "timestamp_out_of_window");
}

/// A number no other call in this process returns.
pub fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Sends 200 copies of one signed request at once, alternating between
/// `instances`: exactly one is accepted, the others are replays.
pub async fn assert_exactly_one_of_200_concurrent_copies_is_accepted(instances: &[Router]) {
    let header = signer()
        .sign_at("POST", "/pay", b"{}", &format!("once-{}", unique()), NOW)
        .expect("valid nonce");
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let router = instances[i % instances.len()].clone();
            let header = header.clone();
            tokio::spawn(async move {
                send(&router, request_with_header("POST", "/pay", &header, b"{}")).await
            })
        })
        .collect();
    let (mut accepted, mut replayed) = (0, 0);
    for task in tasks {
        let answer = task.await.expect("task");
        if answer.status == StatusCode::OK {
            accepted += 1;
        } else {
            assert_eq!(answer.code(), "replayed_request", "{:?}", answer.json);
            replayed += 1;
        }
    }
    assert_eq!((accepted, replayed), (1, 199));
}

/// The value of `var` (a service's URL for the tests), or `None` after
/// saying loudly, past the harness's capture, that `test` is skipped;
/// with `require` set to `1` (as in CI) a missing one fails instead.
pub fn service_env(var: &str, require: &str, test: &str, hint: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var(require).as_deref() == Ok("1") => {
            panic!("{test}: {require}=1 but {var} is not set")
        }
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: {var} is not set. {hint} (.ci/run sets it) ***\n"
            );
            None
        }
    }
}
