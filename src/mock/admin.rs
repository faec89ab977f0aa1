//! The admin API under `/__mock/`, for test suites in any language: the
//! journal, keys, the clock. No authentication: the mock is a test tool on
//! loopback. Off with `--no-admin` (`MockArmorServerBuilder::without_admin`).

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use super::journal::{JournalEntry, Outcome};
use super::{ApiKey, Control, add_key};

/// The admin routes, to merge beside the API (outside its authentication).
pub(crate) fn router(control: Control) -> Router {
    Router::new()
        .route("/__mock/journal", get(journal).delete(clear_journal))
        .route("/__mock/keys", post(issue_key))
        .route("/__mock/keys/{key_id}", delete(revoke_key))
        .route("/__mock/clock", post(set_clock).get(clock))
        .with_state(control)
}

/// A journal entry as JSON.
pub(crate) fn entry_json(entry: &JournalEntry) -> Value {
    json!({
        "time": humantime::format_rfc3339_millis(entry.time).to_string(),
        "method": entry.method,
        "path": entry.path,
        "query": entry.query,
        "key_id": entry.key_id,
        "nonce": entry.nonce,
        "account": entry.account_context,
        "status": entry.status,
        "outcome": match &entry.outcome {
            Outcome::Accepted => "accepted",
            Outcome::Rejected(code) => code,
        },
        "error_code": entry.error_code,
        "client_issues": entry.client_issues,
    })
}

async fn journal(State(control): State<Control>) -> Json<Value> {
    Json(Value::Array(
        control.journal.entries().iter().map(entry_json).collect(),
    ))
}

async fn clear_journal(State(control): State<Control>) -> StatusCode {
    control.journal.clear();
    StatusCode::NO_CONTENT
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

/// `POST /__mock/keys` with an optional `{"user": 5100}`: a new key, its
/// secret shown in the answer (this is the one place that hands it out).
async fn issue_key(State(control): State<Control>, body: axum::body::Bytes) -> Response {
    let user = if body.iter().all(u8::is_ascii_whitespace) {
        control.default_user
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(object)) => match object.get("user") {
                None | Some(Value::Null) => control.default_user,
                Some(user) => match user.as_i64() {
                    Some(user) => user,
                    None => return bad_request("`user` must be a userId (an integer)"),
                },
            },
            _ => return bad_request("expected a JSON object such as {\"user\": 5100}"),
        }
    };
    let key = match ApiKey::generate() {
        Ok(key) => key,
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    match add_key(&control.store, &control.directory, &key, user) {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({"key_id": key.key_id(), "secret_key": key.secret(), "user": user})),
        )
            .into_response(),
        Err(error) => bad_request(&error.to_string()),
    }
}

async fn revoke_key(State(control): State<Control>, Path(key_id): Path<String>) -> StatusCode {
    control.directory.remove_owner(&key_id);
    if control.store.revoke(&key_id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
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
