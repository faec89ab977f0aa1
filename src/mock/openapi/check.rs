use axum::body::Bytes;
use serde_json::{Value, json};

use super::model::{Operation, Place, Segment};
use super::schema::{self, Doc};
use crate::mock::api::ACCOUNT_CONTEXT;

/// The request's problems against the operation, as the 400 lists them.
pub(super) fn check_request(
    doc: &Doc<'_>,
    operation: &Operation,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Vec<Value> {
    let mut problems = Vec::new();
    let path_values: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                schema::percent_decode(&name.replace('+', " ")),
                schema::percent_decode(&value.replace('+', " ")),
            )
        })
        .collect();
    for param in &operation.params {
        let value: Option<String> = match param.place {
            Place::Path => operation
                .segments
                .iter()
                .position(|segment| matches!(segment, Segment::Param(name) if *name == param.name))
                .and_then(|i| path_values.get(i))
                .map(|value| schema::percent_decode(value)),
            Place::Query => query
                .iter()
                .find(|(name, _)| *name == param.name)
                .map(|(_, value)| value.clone()),
            Place::Header => parts
                .headers
                .get(param.name.as_str())
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
        };
        // Without X-Account-Context the mock acts on the primary account.
        let account_context =
            param.place == Place::Header && param.name.eq_ignore_ascii_case(ACCOUNT_CONTEXT);
        let Some(value) = value else {
            if param.required && !account_context {
                problems.push(json!({"in": param.place.name(), "name": param.name, "message": "required, missing"}));
            }
            continue;
        };
        if let Some(message) = check_scalar(doc, &param.schema, &value) {
            problems
                .push(json!({"in": param.place.name(), "name": param.name, "message": message}));
        }
    }
    if let Some(value) = parts.headers.get(ACCOUNT_CONTEXT) {
        let documented = operation.params.iter().any(|param| {
            param.place == Place::Header && param.name.eq_ignore_ascii_case(ACCOUNT_CONTEXT)
        });
        if !documented && !value.as_bytes().iter().all(u8::is_ascii_digit) {
            problems.push(json!({"in": "header", "name": ACCOUNT_CONTEXT, "message": "must be an integer account id"}));
        }
    }
    if let Some((schema, required)) = &operation.body {
        if body.is_empty() {
            if *required {
                problems.push(
                    json!({"in": "body", "pointer": "", "message": "a JSON body is required"}),
                );
            }
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(value) => {
                    for (pointer, message) in doc.validate(schema, &value) {
                        problems
                            .push(json!({"in": "body", "pointer": pointer, "message": message}));
                    }
                }
                Err(error) => problems.push(
                    json!({"in": "body", "pointer": "", "message": format!("not JSON: {error}")}),
                ),
            }
        }
    }
    problems
}

/// A path, query or header value against a scalar schema.
fn check_scalar(doc: &Doc<'_>, schema: &Value, text: &str) -> Option<String> {
    let schema = doc.deref(schema);
    let value = match schema::schema_type(schema).as_deref() {
        Some("integer") => match text.parse::<i64>() {
            Ok(number) => json!(number),
            Err(_) => return Some(format!("{text:?} is not an integer")),
        },
        Some("number") => match text.parse::<f64>() {
            Ok(number) => json!(number),
            Err(_) => return Some(format!("{text:?} is not a number")),
        },
        Some("boolean") => match text {
            "true" => json!(true),
            "false" => json!(false),
            _ => return Some(format!("{text:?} is not true or false")),
        },
        Some("array" | "object") => return None,
        _ => json!(text),
    };
    doc.validate(schema, &value)
        .into_iter()
        .next()
        .map(|(_, message)| message)
}
