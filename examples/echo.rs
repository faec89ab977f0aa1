//! The servers the load test compares, one form a process: an axum echo
//! that answers a `POST` body's length on any path,
//!
//! - `bare`: nothing in front of it;
//! - `layer`: behind `ArmorPskLayer` with every default (the in-memory
//!   replay store, both replay entries, the 5-minute window, the 1 MiB body
//!   limit);
//! - `peer`: behind what a user writes by hand from the crates the design
//!   card names, without this crate: an axum `from_fn` middleware that
//!   parses the header, reads the body with `to_bytes`, checks the
//!   timestamp, the HMAC-SHA512 (`hmac`, `sha2`, `base64`) and remembers
//!   each signature in a `moka` cache for the window, so that a replay is
//!   refused.
//!
//! ```text
//! ARMOR_PSK_KEYS='id=secret' cargo run --release --example echo -- bare|layer|peer [ADDR]
//! ```
//!
//! It listens on `ADDR` (default `127.0.0.1:0`) and prints
//! `listening on http://ADDR` once bound. `examples/loadtest.rs` starts
//! each form and drives it with `wrk`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use armor_psk::{ArmorPskLayer, keys::MemoryKeyStore};
use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha512};

async fn echo(body: Bytes) -> String {
    body.len().to_string()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let form = args.next().unwrap_or_else(|| "bare".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let keys = std::env::var("ARMOR_PSK_KEYS").unwrap_or_default();
    let (key_id, secret) = keys
        .split(',')
        .next()
        .and_then(|pair| pair.split_once('='))
        .ok_or("ARMOR_PSK_KEYS must hold one id=secret pair")?;

    let app = Router::new().route("/{*path}", post(echo));
    let app = match form.as_str() {
        "bare" => app,
        "layer" => app.layer(ArmorPskLayer::new(
            MemoryKeyStore::new().with_key(key_id, secret),
        )),
        "peer" => app.layer(middleware::from_fn_with_state(
            Peer::new(key_id, secret),
            peer::verify,
        )),
        other => return Err(format!("unknown form {other}: bare, layer or peer").into()),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The hand-written peer's state: one key, and the signatures seen in the
/// window.
#[derive(Clone)]
struct Peer {
    key_id: String,
    secret: Vec<u8>,
    seen: moka::sync::Cache<String, ()>,
}

impl Peer {
    const WINDOW: u64 = 300;

    fn new(key_id: &str, secret: &str) -> Self {
        Self {
            key_id: key_id.to_owned(),
            secret: secret.as_bytes().to_vec(),
            seen: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(2 * Self::WINDOW))
                .build(),
        }
    }
}

/// What a careful user writes by hand; kept apart so that nothing of it
/// reads like the crate's own code.
mod peer {
    use super::*;

    fn unauthorized() -> Response {
        StatusCode::UNAUTHORIZED.into_response()
    }

    pub(super) async fn verify(State(peer): State<Peer>, request: Request, next: Next) -> Response {
        let Some(header) = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        else {
            return unauthorized();
        };
        let Some(credentials) = header.strip_prefix("ARMOR-PSK ") else {
            return unauthorized();
        };
        let fields: Vec<&str> = credentials.split(':').collect();
        let [key_id, signature, nonce, timestamp] = fields[..] else {
            return unauthorized();
        };
        let Ok(timestamp_secs) = timestamp.parse::<u64>() else {
            return unauthorized();
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if key_id != peer.key_id || now.abs_diff(timestamp_secs) > Peer::WINDOW {
            return unauthorized();
        }
        let Ok(tag) = STANDARD.decode(signature) else {
            return unauthorized();
        };
        let signature = signature.to_owned();
        let (key_id, nonce, timestamp) =
            (key_id.to_owned(), nonce.to_owned(), timestamp.to_owned());

        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, 1024 * 1024).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let slot = if bytes.is_empty() {
            String::new()
        } else {
            STANDARD.encode(Sha512::digest(&bytes))
        };
        let mut mac = Hmac::<Sha512>::new_from_slice(&peer.secret).expect("any key length");
        mac.update(key_id.as_bytes());
        mac.update(parts.method.as_str().as_bytes());
        mac.update(parts.uri.path().as_bytes());
        mac.update(nonce.as_bytes());
        mac.update(timestamp.as_bytes());
        mac.update(slot.as_bytes());
        if mac.verify_slice(&tag).is_err() {
            return unauthorized();
        }
        if !peer.seen.entry(signature).or_insert(()).is_fresh() {
            return unauthorized();
        }
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    }
}
