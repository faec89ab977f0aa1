//! The signing layer in front of hyper-util's client, against a real
//! `MockArmorServer` on 127.0.0.1: every request verified, every nonce new.
#![cfg(feature = "mock")]

use std::collections::HashSet;

use armor_psk::client::{SignLayer, SignedBody};
use armor_psk::mock::{MockArmorServer, Stub};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The journal holds `count` requests, all accepted and answered 200, no
/// two with the same nonce.
fn assert_every_request_verified_with_a_new_nonce(server: &MockArmorServer, count: usize) {
    let journal = server.journal();
    assert_eq!(journal.len(), count);
    assert!(
        journal
            .iter()
            .all(|entry| entry.accepted() && entry.status == 200)
    );
    let nonces: HashSet<_> = journal
        .iter()
        .filter_map(|entry| entry.nonce.clone())
        .collect();
    assert_eq!(nonces.len(), count, "every nonce new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_util_through_the_signing_layer_1000_in_a_row_100_at_once_and_1_mib() {
    let server = MockArmorServer::builder()
        .stub(Stub::new("POST", "/upload", 200, json!({"stored": true})).unwrap())
        .start()
        .await
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<SignedBody>();
    let signed = ServiceBuilder::new()
        .layer(SignLayer::new(server.key().signer()))
        .service(client);
    let get = |path: &str| {
        Request::get(format!("{}{path}", server.url()))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let mut service = signed.clone();
    for _ in 0..1_000 {
        let ready = ServiceExt::<Request<SignedBody>>::ready(&mut service)
            .await
            .unwrap();
        let response = ready.call(get("/me")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let at_once: Vec<_> = (0..100)
        .map(|_| tokio::spawn(signed.clone().oneshot(get("/accounts"))))
        .collect();
    for task in at_once {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    let big = Bytes::from(vec![b'x'; 1024 * 1024]);
    let upload = Request::post(format!("{}/upload", server.url()))
        .body(Full::new(big))
        .unwrap();
    let response = signed.clone().oneshot(upload).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"stored":true}"#);

    assert_every_request_verified_with_a_new_nonce(&server, 1_101);
}

#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_through_the_middleware_1000_in_a_row_100_at_once_and_1_mib() {
    use armor_psk::client::SignMiddleware;

    let server = MockArmorServer::builder()
        .stub(Stub::new("PUT", "/upload", 200, json!({"stored": true})).unwrap())
        .start()
        .await
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(SignMiddleware::new(server.key().signer()))
        .build();
    for _ in 0..1_000 {
        let response = client
            .get(format!("{}/me", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let at_once: Vec<_> = (0..100)
        .map(|_| {
            let request = client.get(format!("{}/accounts", server.url()));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    for task in at_once {
        assert_eq!(task.await.unwrap(), 200);
    }
    let response = client
        .put(format!("{}/upload", server.url()))
        .body(vec![b'x'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"stored":true}"#);

    assert_every_request_verified_with_a_new_nonce(&server, 1_101);
}
