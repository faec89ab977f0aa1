//! The journal's recorder: one entry per request, with the client
//! mistakes it shows (a reused nonce, a clock off, and for a refused
//! signature the common mistake that reproduces it); and the bounded read
//! of a body not verified yet, for the routes outside the layer.

use std::time::SystemTime;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::{ACCOUNT_CONTEXT, ErrorCode};
use super::control::{Control, RequestHook};
use super::journal::{JournalEntry, Outcome};
use super::openapi;
use crate::protocol::clock::Clock as _;
use crate::protocol::identity::Identity;
use crate::protocol::rejection::Rejection;

/// The client bugs a request shows, served or not.
fn client_issues(
    control: &Control,
    parts: &http::request::Parts,
    credentials: &crate::protocol::header::Credentials,
    outcome: &Outcome,
    body: &[u8],
) -> Vec<&'static str> {
    let mut issues = Vec::new();
    let (key_id, nonce) = (credentials.key_id(), credentials.nonce());
    let mut seen = control.nonces.lock();
    if seen.contains(key_id, nonce) {
        issues.push("nonce_reused");
    }
    if *outcome == Outcome::Accepted {
        seen.insert(key_id, nonce);
    }
    drop(seen);
    // Named past the skew the layer allows between instances' clocks (60 s
    // by default): a client further off is out of step with any server.
    let skew = crate::protocol::options::DEFAULT_CLOCK_SKEW_ALLOWANCE.as_secs();
    if credentials.timestamp().abs_diff(control.clock.now()) > skew {
        issues.push("clock_skew");
    }
    // What made a signature fail: the common client mistakes, each
    // re-signed with the request's body under the key's secrets.
    let refused_signature = *outcome == Outcome::Rejected("invalid_signature");
    if let (true, Some(key)) = (refused_signature, control.store.lookup(key_id)) {
        let refused = crate::protocol::diagnose::RefusedRequest {
            key_id,
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            body,
            nonce,
            timestamp: credentials.timestamp(),
            signature: credentials.signature(),
        };
        // The mock's own diagnosis, not the check: any secret will do.
        let secrets = key.secrets().iter().map(|secret| secret.secret());
        issues.extend(
            refused
                .mistakes(secrets)
                .into_iter()
                .map(|mistake| mistake.code()),
        );
    }
    issues
}

/// Writes one journal entry per request.
pub(crate) async fn record(
    control: Control,
    hook: Option<RequestHook>,
    request: Request,
    next: Next,
) -> Response {
    let time = SystemTime::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let credentials = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| crate::protocol::header::Credentials::parse(value.as_bytes()).ok());
    let (parts, body) = request.into_parts();
    let request_parts = parts.clone();
    // The body is kept for the diagnosis and the journal: read whole
    // before the signature is checked, so within the layer's limit (past
    // it the layer answers 413 anyway), the body timeout, and the bytes
    // all unverified requests may hold together.
    let read = control.read_unverified(&parts, body).await;
    let (body, _held) = match read {
        Ok(read) => read,
        Err(unread) => {
            let response = unread.into_response();
            let entry = JournalEntry {
                status: response.status().as_u16(),
                outcome: Outcome::Rejected(unread.code()),
                ..JournalEntry::unread(time, &request_parts, credentials.as_ref())
            };
            if let Some(hook) = &hook {
                hook(&entry);
            }
            control.journal.push(entry);
            return response;
        }
    };
    let request = Request::from_parts(parts, axum::body::Body::from(body.clone()));
    let account_context = request
        .headers()
        .get(ACCOUNT_CONTEXT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let response = next.run(request).await;
    let extensions = response.extensions();
    let rejection = extensions.get::<Rejection>();
    let journal = &control.journal;
    let (outcome, key_id) = match (extensions.get::<Identity>(), rejection) {
        (Some(identity), _) => (Outcome::Accepted, Some(identity.key_id().to_owned())),
        (None, Some(rejection)) => (
            Outcome::Rejected(rejection.code()),
            rejection.key_id().map(str::to_owned),
        ),
        (None, None) => (Outcome::Rejected("internal_error"), None),
    };
    let client_issues = credentials
        .as_ref()
        .map(|credentials| client_issues(&control, &request_parts, credentials, &outcome, &body))
        .unwrap_or_default();
    let kept = body.len().min(control.journal_body_limit);
    let entry = JournalEntry {
        time,
        method,
        path,
        query,
        nonce: credentials
            .as_ref()
            .map(|credentials| credentials.nonce().to_owned()),
        key_id,
        account_context,
        status: response.status().as_u16(),
        outcome,
        error_code: extensions.get::<ErrorCode>().map(|code| code.0.to_owned()),
        client_issues,
        request_errors: extensions
            .get::<openapi::RequestProblems>()
            .map(|problems| problems.0.clone())
            .unwrap_or_default(),
        body: (!body.is_empty()).then(|| body.slice(..kept)),
        body_len: body.len(),
    };
    if let Some(hook) = &hook {
        hook(&entry);
    }
    journal.push(entry);
    response
}

/// Reads a request's body as [`record`] does (within the limit, the body
/// timeout and the bytes all unverified requests may hold), for the routes
/// outside it: the admin API.
pub(crate) async fn bounded_body(
    axum::extract::State(control): axum::extract::State<Control>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let read = control.read_unverified(&parts, body).await;
    match read {
        Ok((bytes, _held)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(unread) => unread.into_response(),
    }
}
