//! The admin API under `/__mock/`, for test suites in any language: the
//! journal, keys, stubs, the clock. Off with `--no-admin`
//! (`MockArmorServerBuilder::without_admin`).
//!
//! A web page the developer visits could otherwise reach it (DNS
//! rebinding: a page's script posting to a name that resolves to
//! 127.0.0.1) and mint a key: the admin API answers only requests whose
//! `Host` is a loopback name or address (403 `admin_host_forbidden`
//! otherwise), and, with an admin token set (`--admin-token`,
//! `ARMOR_PSK_MOCK_ADMIN_TOKEN`, `admin_token`), only requests that
//! carry it as `Authorization: Bearer TOKEN` (401 `admin_token_required`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::Method;
use axum::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, WWW_AUTHENTICATE,
};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::control::Control;
use super::journal::{JournalEntry, Outcome};
use super::key::{ApiKey, add_key};

/// The admin routes, to merge beside the API (outside its
/// authentication), behind the loopback-host and token guard.
pub(crate) fn router(
    control: Control,
    token: Option<Arc<str>>,
    operations: Arc<super::Operations>,
) -> Router {
    let listing = operations.listing();
    Router::new()
        .route(
            "/__mock/operations",
            get(move || {
                let listing = listing.clone();
                async move { Json(listing) }
            }),
        )
        .route("/__mock/journal", get(journal).delete(clear_journal))
        .route("/__mock/keys", post(issue_key))
        .route("/__mock/stubs", post(add_stubs).delete(clear_stubs))
        .route("/__mock/keys/{key_id}", delete(revoke_key))
        .route("/__mock/clock", post(set_clock).get(clock))
        .layer(axum::middleware::from_fn_with_state(
            control.clone(),
            super::recorder::bounded_body,
        ))
        .with_state(control)
        .layer(axum::middleware::from_fn(move |request, next| {
            guard(token.clone(), request, next)
        }))
}

/// Whether a `Host` header names this machine: `localhost` (or a name
/// under it), an address in 127.0.0.0/8, or `[::1]`; with or without a
/// port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if let Ok(address) = host.parse::<std::net::IpAddr>() {
        return address.is_loopback();
    }
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

async fn guard(token: Option<Arc<str>>, request: Request, next: Next) -> Response {
    let forbidden = |error: &str, message: &str| {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"error": error, "Message": message})),
        )
            .into_response()
    };
    let headers = request.headers();
    let hosts: Vec<&str> = headers
        .get_all(HOST)
        .iter()
        .map(|host| host.to_str().unwrap_or_default())
        .collect();
    // One Host, a loopback one; an absolute-form target's authority too.
    let loopback = hosts.len() == 1
        && is_loopback_host(hosts[0])
        && request
            .uri()
            .authority()
            .is_none_or(|authority| is_loopback_host(authority.as_str()));
    if !loopback {
        return forbidden(
            "admin_host_forbidden",
            "the admin API answers only requests to a loopback host (localhost, 127.0.0.1, [::1])",
        );
    }
    // A page in a browser says where it comes from: only a loopback origin.
    if let Some(origin) = headers.get(ORIGIN).and_then(|origin| origin.to_str().ok()) {
        let host = origin.split_once("://").map_or(origin, |(_, host)| host);
        if !is_loopback_host(host) {
            return forbidden(
                "admin_origin_forbidden",
                "the admin API does not answer web pages of other origins",
            );
        }
    }
    // Without a token, only this machine's clients.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    if token.is_none() && peer.is_some_and(|peer| !peer.is_loopback()) {
        return forbidden(
            "admin_remote_forbidden",
            "the admin API answers remote clients only with --admin-token",
        );
    }
    // A body must be JSON: a form or text/plain post from a page is not.
    if request.method() == Method::POST {
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("application/json"));
        let empty = headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() == b"0");
        if !json && !empty {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Json(json!({
                    "error": "admin_json_required",
                    "Message": "admin requests with a body take Content-Type: application/json",
                })),
            )
                .into_response();
        }
    }
    if let Some(token) = token {
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, "Bearer")],
                Json(json!({
                    "error": "admin_token_required",
                    "Message": "the admin API needs Authorization: Bearer <the mock's admin token>",
                })),
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// A journal entry as `GET /__mock/journal` shows it.
#[derive(serde::Serialize)]
struct WireEntry<'a> {
    time: String,
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    key_id: Option<&'a str>,
    nonce: Option<&'a str>,
    account: Option<&'a str>,
    status: u16,
    /// `accepted`, or the rejection code.
    outcome: &'a str,
    error_code: Option<&'a str>,
    client_issues: &'a [&'static str],
    request_errors: &'a [String],
    body_len: usize,
    body: Option<WireBody<'a>>,
}

/// A body as text, unless control characters would cost six bytes each
/// escaped: then as base64.
#[derive(serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum WireBody<'a> {
    Text(&'a str),
    Base64(String),
}

impl<'a> From<&'a JournalEntry> for WireEntry<'a> {
    fn from(entry: &'a JournalEntry) -> Self {
        let body = entry
            .body
            .as_deref()
            .map(|body| match std::str::from_utf8(body) {
                Ok(text)
                    if !text
                        .chars()
                        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
                {
                    WireBody::Text(text)
                }
                _ => {
                    use base64::Engine as _;
                    WireBody::Base64(base64::engine::general_purpose::STANDARD.encode(body))
                }
            });
        Self {
            time: humantime::format_rfc3339_millis(entry.time).to_string(),
            method: &entry.method,
            path: &entry.path,
            query: entry.query.as_deref(),
            key_id: entry.key_id.as_deref(),
            nonce: entry.nonce.as_deref(),
            account: entry.account_context.as_deref(),
            status: entry.status,
            outcome: match &entry.outcome {
                Outcome::Accepted => "accepted",
                Outcome::Rejected(code) => code,
            },
            error_code: entry.error_code.as_deref(),
            client_issues: &entry.client_issues,
            request_errors: &entry.request_errors,
            body_len: entry.body_len,
            body,
        }
    }
}

/// Serializes on a blocking thread, one journal at a time: a journal of
/// 32 MiB makes an answer of a few times that, which must neither hold a
/// runtime thread (a stop's deadline is a timer on the runtime) nor be
/// built by every client at once.
async fn journal(State(control): State<Control>) -> Response {
    let Ok(_turn) = control.journal_answers.acquire().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let entries = control.journal.entries();
    let built = tokio::task::spawn_blocking(move || {
        let wire: Vec<WireEntry<'_>> = entries.iter().map(WireEntry::from).collect();
        serde_json::to_vec(&wire)
    })
    .await;
    match built {
        Ok(Ok(bytes)) => ([(CONTENT_TYPE, "application/json")], bytes).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "journal_unavailable"})),
        )
            .into_response(),
    }
}

async fn clear_journal(State(control): State<Control>) -> StatusCode {
    control.journal.clear();
    StatusCode::NO_CONTENT
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// `POST /__mock/keys` with an optional `{"user": 5100}`: a new key, its
/// secret shown in the answer (this is the one place that hands it out);
/// with `{"key_id": ..., "secret_key": ...}`, that key (its secret not
/// repeated).
async fn issue_key(State(control): State<Control>, body: axum::body::Bytes) -> Response {
    let object = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => object,
            _ => return bad_request("expected a JSON object such as {\"user\": 5100}"),
        }
    };
    let user = match object.get("user") {
        None | Some(Value::Null) => control.default_user,
        Some(user) => match user.as_i64() {
            Some(user) => user,
            None => return bad_request("`user` must be a userId (an integer)"),
        },
    };
    let supplied = match (object.get("key_id"), object.get("secret_key")) {
        (None, None) => None,
        (Some(Value::String(key_id)), Some(Value::String(secret))) => {
            Some(ApiKey::new(key_id.clone(), secret.clone()))
        }
        _ => return bad_request("`key_id` and `secret_key` go together, as strings"),
    };
    let generated = supplied.is_none();
    let key = match supplied.map_or_else(ApiKey::generate, Ok) {
        Ok(key) => key,
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    match add_key(&control.store, &control.directory, &key, user) {
        Ok(()) if generated => (
            StatusCode::CREATED,
            Json(json!({"key_id": key.key_id(), "secret_key": key.secret(), "user": user})),
        )
            .into_response(),
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({"key_id": key.key_id(), "user": user})),
        )
            .into_response(),
        Err(error) => bad_request(&error.to_string()),
    }
}

/// `POST /__mock/stubs` with a stub object or an array of them (the stub
/// file format): answered ahead of every other stub from now on.
async fn add_stubs(State(control): State<Control>, body: axum::body::Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    match super::stubs::Stub::from_json(&text) {
        Ok(stubs) => {
            let added = stubs.len();
            control.stubs.add(stubs);
            (StatusCode::CREATED, Json(json!({ "added": added }))).into_response()
        }
        Err(error) => bad_request(&error.describe()),
    }
}

/// `DELETE /__mock/stubs`: forgets the stubs added with `POST`.
async fn clear_stubs(State(control): State<Control>) -> StatusCode {
    control.stubs.clear();
    StatusCode::NO_CONTENT
}

async fn revoke_key(State(control): State<Control>, Path(key_id): Path<String>) -> Response {
    control.directory.remove_owner(&key_id);
    if control.store.revoke(&key_id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no_such_key", "Message": format!("no key {key_id:?}")})),
        )
            .into_response()
    }
}

/// `POST /__mock/clock` with `{"offset_seconds": -400}`.
async fn set_clock(State(control): State<Control>, body: axum::body::Bytes) -> Response {
    let offset = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|value| value.get("offset_seconds").and_then(Value::as_i64));
    match offset {
        Some(offset) => {
            control.clock.0.store(offset, Ordering::Relaxed);
            clock(State(control)).await.into_response()
        }
        None => bad_request("expected {\"offset_seconds\": <integer>}"),
    }
}

async fn clock(State(control): State<Control>) -> Json<Value> {
    use crate::protocol::clock::Clock as _;
    Json(json!({
        "offset_seconds": control.clock.0.load(Ordering::Relaxed),
        "now": control.clock.now(),
    }))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_and_others() {
        for host in [
            "localhost",
            "localhost:3000",
            "LOCALHOST.",
            "api.localhost:80",
            "127.0.0.1",
            "127.0.0.1:3000",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:3000",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "10.0.0.1:3000",
            "0.0.0.0:3000",
            "[::2]:3000",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
