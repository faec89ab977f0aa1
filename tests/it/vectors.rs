//! The protocol's documented vectors and the independent Python vector set
//! (tests/fixtures/vectors.json, written by tools/gen_vectors.py).

use crate::common;

use armor_psk::{
    ArmorPskLayer, Identity, ManualClock, Rejection, RejectionKind, Signer,
    keys::MemoryKeyStore,
    protocol::{BodyDigest, BodySlot, Canonical, Credentials, VerifyOptions, signed_path, verify},
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use serde_json::Value;

struct Vector {
    name: String,
    key_id: String,
    secret: String,
    method: String,
    path: String,
    nonce: String,
    timestamp: u64,
    body: Vec<u8>,
    hashed_empty: bool,
    canonical_sha256: String,
    authorization: String,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../fixtures/vectors.json");
    let root: Value = serde_json::from_str(text).expect("vectors.json is JSON");
    let s = |v: &Value, k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("field {k}"))
            .to_owned()
    };
    root["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| Vector {
            name: s(v, "name"),
            key_id: s(v, "key_id"),
            secret: s(v, "secret"),
            method: s(v, "method"),
            path: s(v, "path"),
            nonce: s(v, "nonce"),
            timestamp: v["timestamp"].as_u64().expect("timestamp"),
            body: STANDARD.decode(s(v, "body_base64")).expect("body base64"),
            hashed_empty: v["hashed_empty_body"].as_bool().expect("flag"),
            canonical_sha256: s(v, "canonical_sha256"),
            authorization: s(v, "authorization"),
        })
        .collect()
}

#[test]
fn documented_vectors_sign_exactly() {
    let signer = Signer::new("20a37099-4a0b-432f-bf46-5fa690a0405c", "secret").unwrap();
    let get = signer
        .sign_at("GET", "/me", b"", "8jbj872s2h", 1528140529)
        .unwrap();
    assert!(get.ends_with(
        ":WacyhtoW2KhDbXzmKlaKWrMkFEs4UTOSyj/K01j5nZNHpTKPwu+Fh9BbN43nbQa55zysaXs2k0H7Zmq7F5sy5A==:8jbj872s2h:1528140529"
    ));
    let post = signer
        .sign_at(
            "POST",
            "/example/anywhere",
            br#"{"name": "web-01", "size": 2}"#,
            "0b6c1d0e-6f7a-4a5e-9d3c-2f1e8a7b6c5d",
            1700000000,
        )
        .unwrap();
    assert!(post.contains(
        ":oabHvF1CuuCrcdPykdunp++2AmnhiD3nIk6tSINV9qpzbovCC5EU3/PnEkaHq6yqzOLfhg60aO2nWinz36Dq6A==:"
    ));
}

#[test]
fn the_vector_set_is_large_enough() {
    let all = vectors();
    assert!(all.len() >= 22, "{} vectors", all.len());
    assert!(all.iter().any(|v| v.hashed_empty));
}

#[test]
fn signer_reproduces_every_python_vector() {
    for v in vectors().iter().filter(|v| !v.hashed_empty) {
        let signer = Signer::new(v.key_id.as_str(), v.secret.as_str()).unwrap();
        let header = signer
            .sign_at(&v.method, &v.path, &v.body, &v.nonce, v.timestamp)
            .unwrap();
        assert_eq!(header, v.authorization, "vector {}", v.name);
    }
}

#[test]
fn canonical_string_hash_matches_python() {
    for v in vectors() {
        let canonical = Canonical {
            key_id: &v.key_id,
            method: &v.method,
            path: &v.path,
            nonce: &v.nonce,
            timestamp: v.timestamp,
        };
        let slot = if v.hashed_empty {
            BodySlot::hashed_empty()
        } else {
            BodyDigest::of(&v.body).slot()
        };
        assert_eq!(
            canonical.sha256_hex(&slot),
            v.canonical_sha256,
            "vector {}",
            v.name
        );
    }
}

fn parts_for(v: &Vector) -> http::request::Parts {
    let request = http::Request::builder()
        .method(v.method.as_str())
        .uri(v.path.as_str())
        .header("authorization", v.authorization.as_str())
        .body(())
        .unwrap_or_else(|e| panic!("vector {}: {e}", v.name));
    request.into_parts().0
}

/// Verifies vector `v` with `secret` and `options`, at the vector's own time.
fn check(
    v: &Vector,
    body: &BodyDigest,
    secret: &str,
    options: &VerifyOptions,
) -> Result<Identity, Rejection> {
    let parts = parts_for(v);
    let credentials = Credentials::from_headers(&parts.headers).unwrap();
    let path = signed_path(parts.uri.path(), options)?;
    verify(
        parts.method.as_str(),
        &path,
        &credentials,
        body,
        Some(&armor_psk::keys::Key::new(secret)),
        v.timestamp,
        options,
    )
}

#[test]
fn verify_accepts_every_python_vector() {
    for v in vectors() {
        let options = VerifyOptions::default().with_hashed_empty_body(v.hashed_empty);
        let identity = check(&v, &BodyDigest::of(&v.body), &v.secret, &options)
            .unwrap_or_else(|e| panic!("vector {}: {e}", v.name));
        assert_eq!(identity.key_id(), v.key_id);
        assert_eq!(identity.nonce(), v.nonce);
    }
}

#[test]
fn hashed_empty_vectors_need_the_option() {
    for v in vectors().iter().filter(|v| v.hashed_empty) {
        let refused =
            check(v, &BodyDigest::Empty, &v.secret, &VerifyOptions::default()).unwrap_err();
        assert_eq!(
            refused.kind(),
            RejectionKind::InvalidSignature,
            "vector {}",
            v.name
        );
    }
}

#[test]
fn wrong_secret_fails_every_vector() {
    for v in vectors() {
        let options = VerifyOptions::default().with_hashed_empty_body(true);
        let refused = check(
            &v,
            &BodyDigest::of(&v.body),
            &format!("{}x", v.secret),
            &options,
        )
        .unwrap_err();
        assert_eq!(
            refused.kind(),
            RejectionKind::InvalidSignature,
            "vector {}",
            v.name
        );
    }
}

#[tokio::test]
async fn every_vector_passes_the_layer() {
    for v in vectors() {
        let keys = MemoryKeyStore::new().with_key(v.key_id.as_str(), v.secret.as_str());
        let layer = ArmorPskLayer::new(keys)
            .with_clock(ManualClock::new(v.timestamp))
            .with_replay_store(
                // Its memory began an hour before the vector was signed
                // (the fence off for a vector signed at 0).
                armor_psk::replay::MemoryReplayStore::builder()
                    .memory_since(v.timestamp.checked_sub(3600))
                    .build(),
            )
            .with_hashed_empty_body(v.hashed_empty);
        let router = common::app(layer);
        let request = http::Request::builder()
            .method(v.method.as_str())
            .uri(v.path.as_str())
            .header("authorization", v.authorization.as_str())
            .body(axum::body::Body::from(v.body.clone()))
            .unwrap();
        let answer = common::send(&router, request).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "vector {}: {}",
            v.name,
            answer.json
        );
        if v.method == "HEAD" {
            continue; // axum sends no body for HEAD
        }
        assert_eq!(
            answer.json["key_id"],
            v.key_id.as_str(),
            "vector {}",
            v.name
        );
        assert_eq!(answer.json["body_len"], v.body.len(), "vector {}", v.name);
    }
}

#[test]
fn committed_vectors_match_the_python_generator() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = std::process::Command::new("python3")
        .arg(format!("{root}/tools/gen_vectors.py"))
        .arg("--check")
        .output()
        .expect("python3 must be installed to check the vectors");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
