//! A reverse proxy that signs every request with ARMOR-PSK on its way to
//! an upstream: for a tester that cannot sign (schemathesis, a browser, a
//! load tool) against the mock or any ARMOR-PSK server. The signature is
//! over the exact bytes forwarded: the method, the path as received, the
//! body as received. Loopback only, for tests.
//!
//! ```text
//! ARMOR_PSK_KEY_ID=... ARMOR_PSK_SECRET=... \
//!   cargo run --example signing_proxy -- 127.0.0.1:8081 http://127.0.0.1:3000
//! ```
//!
//! It prints `listening on http://ADDR` once it listens (port 0: a free
//! one). A body over 8 MiB is refused with 413; an upstream that does not
//! answer is a 502. With `ARMOR_PSK_PROXY_SIGN=if-authorization`, only
//! requests that arrive with an `Authorization` header are signed (its
//! value replaced), the others forwarded as they are: for a document that
//! declares `Authorization` as a required header, whose tester leaves it
//! out to check that the server refuses.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

use armor_psk::Signer;

const BODY_LIMIT: usize = 8 << 20;

struct Proxy {
    upstream: String,
    signer: Signer,
    client: reqwest::Client,
    /// Sign only what arrives with an `Authorization` header.
    only_if_authorization: bool,
}

/// Headers that belong to one hop, never forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body): Result<Bytes, _> = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body over 8 MiB").into_response();
    };
    let path = parts.uri.path();
    let target = format!(
        "{}{}",
        proxy.upstream,
        parts.uri.path_and_query().map_or(path, |p| p.as_str())
    );
    let sign = !proxy.only_if_authorization || parts.headers.contains_key(header::AUTHORIZATION);
    let mut outgoing = proxy.client.request(parts.method.clone(), target);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) && name != header::AUTHORIZATION {
            outgoing = outgoing.header(name, value);
        }
    }
    if sign {
        let authorization = proxy.signer.sign(parts.method.as_str(), path, &body);
        outgoing = outgoing.header(header::AUTHORIZATION, authorization);
    }
    let sent = outgoing.body(body).send().await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(error) => {
            return (StatusCode::BAD_GATEWAY, format!("upstream: {error}")).into_response();
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: signing_proxy LISTEN_ADDR UPSTREAM_URL (key from ARMOR_PSK_KEY_ID, ARMOR_PSK_SECRET)"
        );
        return std::process::ExitCode::from(2);
    };
    let (Ok(key_id), Ok(secret)) = (
        std::env::var("ARMOR_PSK_KEY_ID"),
        std::env::var("ARMOR_PSK_SECRET"),
    ) else {
        eprintln!("signing_proxy: set ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET");
        return std::process::ExitCode::from(2);
    };
    let signer = match Signer::new(key_id, secret) {
        Ok(signer) => signer,
        Err(error) => {
            eprintln!("signing_proxy: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("signing_proxy: cannot listen on {listen}: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        signer,
        client: reqwest::Client::new(),
        only_if_authorization: std::env::var("ARMOR_PSK_PROXY_SIGN").as_deref()
            == Ok("if-authorization"),
    });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    if let Ok(addr) = listener.local_addr() {
        println!("listening on http://{addr}");
    }
    match axum::serve(listener, app).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("signing_proxy: {error}");
            std::process::ExitCode::from(1)
        }
    }
}
