//! The layer over plain tower services: `service_fn`, `ServiceBuilder`, and
//! readiness forwarded to the inner service.

use crate::common;

use std::convert::Infallible;

use armor_psk::{ArmorPsk, ArmorPskLayer, Identity, VerifiedBody};
use axum::body::Body;
use common::{NOW, harness, signed};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_test::mock;

async fn body_text<B>(response: Response<B>) -> String
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn over_a_plain_service_fn_inside_a_service_builder() {
    let h = harness();
    let service = ServiceBuilder::new()
        .concurrency_limit(8)
        .layer(h.layer)
        .service(service_fn(|request: Request<VerifiedBody>| async move {
            let identity = request.extensions().get::<Identity>().cloned();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let text = format!(
                "{}:{}",
                identity.map(|i| i.key_id().to_owned()).unwrap_or_default(),
                body.len()
            );
            Ok::<_, Infallible>(Response::new(text))
        }));

    let response = service
        .clone()
        .oneshot(signed("PUT", "/x", b"hello", "n-1", NOW))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, format!("{}:5", common::KEY_ID));

    let response = service
        .oneshot(Request::get("/x").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// tower-http layers around the layer (trace, timeout, request-body
/// timeout) and inside it (a timeout on the handler alone).
#[tokio::test]
async fn inside_a_service_builder_between_tower_http_layers() {
    use std::time::Duration;
    use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
    use tower_http::trace::TraceLayer;

    let h = harness();
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(5),
        ))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(5)))
        .layer(h.layer)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(100),
        ))
        .service(service_fn(|request: Request<VerifiedBody>| async move {
            if request.uri().path() == "/slow" {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            let who = request
                .extensions()
                .get::<Identity>()
                .unwrap()
                .key_id()
                .to_owned();
            Ok::<_, Infallible>(Response::new(format!("{who}:{}", request.body().len())))
        }));

    let response = service
        .clone()
        .oneshot(signed("POST", "/fast", b"abc", "n-1", NOW))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, format!("{}:3", common::KEY_ID));

    // The inner timeout answers for the handler once the request verified.
    let response = service
        .clone()
        .oneshot(signed("GET", "/slow", b"", "n-2", NOW))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    // A refusal never reaches the handler nor its timeout.
    let response = service
        .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

type Mock = mock::Mock<Request<VerifiedBody>, Response<String>>;
type Handle = mock::Handle<Request<VerifiedBody>, Response<String>>;

/// The layer over a `tower_test` mock inner service.
fn mocked(layer: &ArmorPskLayer) -> (mock::Spawn<ArmorPsk<Mock>>, Handle) {
    let (inner, handle) = mock::pair();
    (mock::Spawn::new(tower::Layer::layer(layer, inner)), handle)
}

#[tokio::test]
async fn poll_ready_is_forwarded() {
    let h = harness();
    let (mut service, mut handle) = mocked(&h.layer);

    handle.allow(0);
    assert!(
        service.poll_ready::<Request<Body>>().is_pending(),
        "not ready while the inner service is not"
    );

    handle.allow(1);
    assert!(service.poll_ready::<Request<Body>>().is_ready());
    let call = tokio::spawn(service.call(signed("GET", "/me", b"", "n-1", NOW)));
    let (request, respond) = handle
        .next_request()
        .await
        .expect("request reached the inner service");
    assert_eq!(request.uri().path(), "/me");
    assert!(request.extensions().get::<Identity>().is_some());
    respond.send_response(Response::new("inner".to_owned()));
    let response = call.await.unwrap().unwrap();
    assert_eq!(body_text(response).await, "inner");
}

#[tokio::test]
async fn inner_errors_pass_through_and_rejections_are_responses() {
    let h = harness();
    let (mut service, mut handle) = mocked(&h.layer);
    handle.allow(2);

    assert!(service.poll_ready::<Request<Body>>().is_ready());
    let refused = service
        .call(Request::get("/me").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        refused.expect("a rejection is Ok(response)").status(),
        StatusCode::UNAUTHORIZED
    );

    assert!(service.poll_ready::<Request<Body>>().is_ready());
    let call = tokio::spawn(service.call(signed("GET", "/me", b"", "n-2", NOW)));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_error(std::io::Error::other("inner failed"));
    let error = call.await.unwrap().unwrap_err();
    assert_eq!(error.to_string(), "inner failed");
}

/// tower-http's shape: the service made directly (`ArmorPsk::new`), the
/// layer from the service type (`ArmorPsk::layer`).
#[tokio::test]
async fn the_service_and_its_layer_are_made_as_in_tower_http() {
    use tower::{Layer as _, ServiceExt as _, service_fn};
    let inner = service_fn(|_request: http::Request<armor_psk::VerifiedBody>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
    });
    let keys = armor_psk::keys::MemoryKeyStore::new().with_key("key-1", "secret");
    let direct = armor_psk::ArmorPsk::new(inner, keys.clone());
    let unsigned = http::Request::get("/me").body(String::new()).unwrap();
    assert_eq!(direct.oneshot(unsigned).await.unwrap().status(), 401);
    let layered = armor_psk::ArmorPsk::<()>::layer(keys).layer(inner);
    let unsigned = http::Request::get("/me").body(String::new()).unwrap();
    assert_eq!(layered.oneshot(unsigned).await.unwrap().status(), 401);
}
