//! Serving a loaded document: the operation a request matches, its checks,
//! and the answer (the `Prefer` header's choice, else the documented
//! success).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use super::check::check_request;
use super::model::{Operation, Operations, Segment};
use super::schema::Doc;

impl Operations {
    /// Answers `request` if an operation matches it: its response, a 400
    /// `request_invalid`, or a 405 for a known path and another method.
    /// `None` when no document has the path.
    pub(crate) fn answer(
        &self,
        parts: &axum::http::request::Parts,
        body: &Bytes,
    ) -> Option<Response> {
        let path = parts.uri.path();
        let matching: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|operation| matches(&operation.segments, path))
            .collect();
        if matching.is_empty() {
            return None;
        }
        let method = parts.method.as_str();
        let Some(operation) = matching
            .iter()
            .filter(|operation| operation.method == method)
            .max_by_key(|operation| literal_count(&operation.segments))
        else {
            let mut allowed: Vec<&str> = matching.iter().map(|op| op.method.as_str()).collect();
            allowed.sort_unstable();
            allowed.dedup();
            let allow = allowed.join(", ");
            return Some(
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(ALLOW, HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("GET")))],
                    Json(json!({
                        "error": "method_not_allowed",
                        "Message": format!("{method} is not documented for {path}; documented: {allow}"),
                    })),
                )
                    .into_response(),
            );
        };
        let doc = Doc {
            root: &self.documents[operation.document],
        };
        if let Err(refusal) = check_request(&doc, operation, parts, body) {
            let problems = refusal.problems;
            let error = if refusal.status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                "unsupported_media_type"
            } else {
                "request_invalid"
            };
            let status = refusal_status(operation, refusal.status);
            let message = format!(
                "the request does not follow {} {} as {} documents it",
                operation.method, operation.path, operation.source
            );
            let envelope = json!({"error": error, "Message": message, "errors": problems});
            // In the media type documented for that status, if not JSON.
            let documented = operation
                .answers
                .iter()
                .find(|answer| answer.status == status.as_u16())
                .and_then(|answer| answer.media.as_deref())
                .filter(|media| !media.contains("json") && !media.contains('*'));
            let mut response = match documented.map(HeaderValue::from_str) {
                Some(Ok(media)) => {
                    let lines: Vec<String> = problems
                        .iter()
                        .map(|problem| {
                            format!(
                                "{error}: {}",
                                problem["message"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    (
                        status,
                        [(CONTENT_TYPE, media)],
                        format!("{message}\n{}\n", lines.join("\n")),
                    )
                        .into_response()
                }
                _ => (status, Json(envelope)).into_response(),
            };
            let summary: Vec<String> = problems
                .iter()
                .map(|problem| {
                    let at = problem
                        .get("name")
                        .or_else(|| problem.get("pointer"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    format!(
                        "{} {at}: {}",
                        problem["in"].as_str().unwrap_or_default(),
                        problem["message"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            response.extensions_mut().insert(RequestProblems(summary));
            return Some(response);
        }
        Some(respond(&doc, operation, &parts.headers))
    }
}

/// What was wrong with a request the mock refused as `request_invalid`,
/// for the journal.
#[derive(Debug, Clone)]
pub(crate) struct RequestProblems(pub(crate) Vec<String>);

/// The status a refusal is answered with: `wanted` (400, or 415 for a
/// media type) where the operation documents it or documents neither 400
/// nor 422, else the one of those it documents, so that a client checked
/// against the document meets a status it declares.
fn refusal_status(operation: &Operation, wanted: StatusCode) -> StatusCode {
    let documented = |status: StatusCode| {
        operation
            .answers
            .iter()
            .any(|answer| answer.status == status.as_u16())
    };
    [
        wanted,
        StatusCode::BAD_REQUEST,
        StatusCode::UNPROCESSABLE_ENTITY,
    ]
    .into_iter()
    .find(|status| documented(*status))
    .unwrap_or(wanted)
}

fn literal_count(segments: &[Segment]) -> usize {
    segments
        .iter()
        .filter(|segment| matches!(segment, Segment::Literal(_)))
        .count()
}

fn matches(template: &[Segment], path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    parts.len() == template.len()
        && template
            .iter()
            .zip(&parts)
            .all(|(segment, part)| match segment {
                Segment::Literal(literal) => literal == part,
                Segment::Param(_) => !part.is_empty(),
            })
}

/// The operation's response: the one `Prefer` asks for, else the first
/// 2xx; its example, else a value generated from its schema.
fn respond(doc: &Doc<'_>, operation: &Operation, headers: &HeaderMap) -> Response {
    let prefer = headers
        .get("prefer")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let wanted_code = prefer_value(prefer, "code").and_then(|code| code.parse::<u16>().ok());
    let wanted_example = prefer_value(prefer, "example");
    // Prism's `Prefer: dynamic=true`: a value generated from the schema,
    // whatever the examples say.
    let dynamic = prefer_value(prefer, "dynamic").is_some_and(|value| value == "true");
    let chosen = match (wanted_code, &wanted_example) {
        (Some(code), _) => operation
            .answers
            .iter()
            .find(|answer| answer.status == code),
        (None, Some(name)) => operation
            .answers
            .iter()
            .find(|answer| answer.examples.iter().any(|(example, _)| example == name)),
        // The first success, else the first answer documented at all.
        (None, None) => operation
            .answers
            .iter()
            .find(|answer| (200..300).contains(&answer.status))
            .or_else(|| operation.answers.first()),
    };
    let Some(answer) = chosen else {
        if let Some(code) = wanted_code {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({
                    "error": "no_such_response",
                    "Message": format!("{} {} documents no {code} response", operation.method, operation.path),
                })),
            )
                .into_response();
        }
        if let Some(name) = wanted_example {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({
                    "error": "no_such_example",
                    "Message": format!("{} {} documents no example {name:?}", operation.method, operation.path),
                })),
            )
                .into_response();
        }
        return StatusCode::OK.into_response();
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let body = match &wanted_example {
        _ if dynamic => None,
        Some(name) => answer
            .examples
            .iter()
            .find(|(example, _)| example == name)
            .map(|(_, value)| value.clone()),
        None => answer.examples.first().map(|(_, value)| value.clone()),
    }
    .or_else(|| answer.schema.as_ref().map(|schema| doc.generate(schema)));
    let Some(media) = answer
        .media
        .as_deref()
        .filter(|_| status != StatusCode::NO_CONTENT)
    else {
        return status.into_response();
    };
    // The documented type, a wildcard sent as JSON; a string example of a
    // type that is not JSON is sent as it is, anything else as JSON.
    let content_type = if media.contains('*') {
        "application/json"
    } else {
        media
    };
    let bytes = match body {
        Some(Value::String(text)) if !content_type.contains("json") => text,
        Some(body) => body.to_string(),
        None => String::new(),
    };
    let content_type =
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json"));
    (status, [(CONTENT_TYPE, content_type)], bytes).into_response()
}

/// `code=404` in `Prefer: code=404, example=missing`.
fn prefer_value(prefer: &str, name: &str) -> Option<String> {
    prefer
        .split([',', ';'])
        .filter_map(|part| part.trim().split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
}

/// The request, read whole (it was verified and limited by the layer
/// already), and the operation's answer if a document has its path.
pub(crate) async fn serve(
    operations: Arc<Operations>,
    request: Request,
) -> Result<Response, Request> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    match operations.answer(&parts, &bytes) {
        Some(response) => Ok(response),
        None => Err(Request::from_parts(parts, axum::body::Body::from(bytes))),
    }
}
