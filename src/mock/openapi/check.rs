//! Checking a request against its operation: the parameters, the body's
//! media type and schema, and the documented status for a refusal.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::model::{Body, Operation, Place, Segment};
use super::schema::{self, Doc};
use crate::mock::api::ACCOUNT_CONTEXT;

/// Why a request does not follow its operation: 400 with the problems,
/// or 415 when its body's media type is not one documented.
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) problems: Vec<Value>,
}

/// The request's problems against the operation.
pub(super) fn check_request(
    doc: &Doc<'_>,
    operation: &Operation,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<(), Refusal> {
    let mut problems = Vec::new();
    let path_values: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let query = form_pairs(parts.uri.query().unwrap_or_default());
    let cookies: Vec<(String, String)> = parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect();
    for param in &operation.params {
        let values: Vec<String> = match param.place {
            Place::Path => operation
                .segments
                .iter()
                .position(|segment| matches!(segment, Segment::Param(name) if *name == param.name))
                .and_then(|i| path_values.get(i))
                .map(|value| schema::percent_decode(value))
                .into_iter()
                .collect(),
            Place::Query => query
                .iter()
                .filter(|(name, _)| *name == param.name)
                .map(|(_, value)| value.clone())
                .collect(),
            Place::Header => parts
                .headers
                .get_all(param.name.as_str())
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect(),
            Place::Cookie => cookies
                .iter()
                .filter(|(name, _)| *name == param.name)
                .map(|(_, value)| value.clone())
                .collect(),
        };
        // A required X-Account-Context is required as documented (the
        // built-in routes act on the primary account without one).
        if values.is_empty() {
            if param.required {
                problems.push(json!({"in": param.place.name(), "name": param.name, "message": "required, missing"}));
            }
            continue;
        }
        let problem = if schema::schema_type(doc.deref(&param.schema)).as_deref() == Some("array") {
            check_array(doc, param, &values)
        } else {
            check_scalar(doc, &param.schema, &values[0])
        };
        if let Some(message) = problem {
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
    if let Some(documented) = &operation.body {
        check_body(doc, documented, parts, body, &mut problems)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            problems,
        })
    }
}

/// The body against the documented media types: 415 naming them when its
/// `Content-Type` is none of them; JSON, form and multipart bodies checked
/// against their schema, other documented types taken as they are.
fn check_body(
    doc: &Doc<'_>,
    documented: &Body,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    problems: &mut Vec<Value>,
) -> Result<(), Refusal> {
    let given = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(essence);
    // An empty form is a form without fields, not a missing body.
    let form_given = given.as_deref() == Some("application/x-www-form-urlencoded");
    if body.is_empty() && !form_given {
        if documented.required {
            problems.push(json!({"in": "body", "pointer": "", "message": "a body is required"}));
        }
        return Ok(());
    }
    // Without a Content-Type: the first documented type (clients of a
    // JSON API often leave it out).
    let media = match &given {
        None => documented.media.first(),
        Some(given) => documented
            .media
            .iter()
            .find(|(media, _)| essence(media) == *given)
            .or_else(|| {
                documented
                    .media
                    .iter()
                    .find(|(media, _)| media_range_covers(&essence(media), given))
            }),
    };
    let Some((media, schema)) = media else {
        let types: Vec<&str> = documented.media.iter().map(|(m, _)| m.as_str()).collect();
        return Err(Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            problems: vec![json!({
                "in": "header",
                "name": "content-type",
                "message": format!(
                    "{} is not documented for this body; documented: {}",
                    given.unwrap_or_default(),
                    types.join(", ")
                ),
            })],
        });
    };
    let media = essence(media);
    let value = if is_json(&media) || (media.contains('*') && given.as_deref().is_some_and(is_json))
    {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => value,
            Err(error) => {
                problems.push(
                    json!({"in": "body", "pointer": "", "message": format!("not JSON: {error}")}),
                );
                return Ok(());
            }
        }
    } else if media == "application/x-www-form-urlencoded" {
        let Ok(text) = std::str::from_utf8(body) else {
            problems.push(json!({"in": "body", "pointer": "", "message": "not UTF-8 form data"}));
            return Ok(());
        };
        form_value(doc, schema, &form_pairs(text))
    } else if media == "multipart/form-data" {
        let content_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        match multipart_pairs(body, content_type) {
            Ok(pairs) => form_value(doc, schema, &pairs),
            Err(why) => {
                problems.push(json!({"in": "body", "pointer": "", "message": format!("not multipart/form-data: {why}")}));
                return Ok(());
            }
        }
    } else {
        // text/plain, octet streams: as they are.
        return Ok(());
    };
    if schema.is_null() {
        return Ok(());
    }
    for (pointer, message) in doc.validate(schema, &value, schema::budget_for(body.len())) {
        problems.push(json!({"in": "body", "pointer": pointer, "message": message}));
    }
    Ok(())
}

/// A media type without its parameters, lowercase.
fn essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json") || media.ends_with("/json")
}

/// Whether a documented range (`*/*`, `text/*`) covers `given`.
fn media_range_covers(range: &str, given: &str) -> bool {
    match range.split_once('/') {
        Some(("*", "*")) => true,
        Some((kind, "*")) => given.split_once('/').is_some_and(|(g, _)| g == kind),
        _ => false,
    }
}

/// `a=1&b=x+y` decoded, in order (names repeat).
fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                schema::percent_decode(&name.replace('+', " ")),
                schema::percent_decode(&value.replace('+', " ")),
            )
        })
        .collect()
}

/// The parts of a `multipart/form-data` body (RFC 7578) as name and value
/// (a file's content read as text, lossily), in order; or what is wrong.
/// (The body is in memory already and checked synchronously: `multer`, a
/// stream parser, would need a runtime for what splitting does here.)
fn multipart_pairs(body: &[u8], content_type: &str) -> Result<Vec<(String, String)>, String> {
    let boundary = parameter(content_type, "boundary").ok_or("no boundary parameter")?;
    let delimiter = format!("--{boundary}");
    let starts: Vec<usize> = memchr::memmem::find_iter(body, delimiter.as_bytes()).collect();
    let (Some(first), Some(last)) = (starts.first(), starts.last()) else {
        return Err(format!("no {delimiter} line"));
    };
    if !body[..*first].is_empty() && !body[..*first].ends_with(b"\r\n") {
        return Err("text before the first boundary".to_owned());
    }
    if !body[last + delimiter.len()..].starts_with(b"--") {
        return Err(format!("no closing {delimiter}--"));
    }
    let mut pairs = Vec::with_capacity(starts.len().saturating_sub(1));
    for window in starts.windows(2) {
        let part = &body[window[0] + delimiter.len()..window[1]];
        let part = part
            .strip_prefix(b"\r\n")
            .ok_or("a boundary not followed by a line break")?;
        let part = part.strip_suffix(b"\r\n").unwrap_or(part);
        let blank = memchr::memmem::find(part, b"\r\n\r\n")
            .map(|at| (at, at + 4))
            .or_else(|| part.starts_with(b"\r\n").then_some((0, 2)))
            .ok_or("a part whose headers end in no blank line")?;
        let head = std::str::from_utf8(&part[..blank.0]).map_err(|_| "part headers not UTF-8")?;
        let name = head
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .find(|(header, _)| header.trim().eq_ignore_ascii_case("content-disposition"))
            .and_then(|(_, value)| parameter(value, "name"))
            .ok_or("a part without a Content-Disposition name")?;
        let content = String::from_utf8_lossy(&part[blank.1..]).into_owned();
        pairs.push((name, content));
    }
    Ok(pairs)
}

/// The parameter `name` of a header value (`form-data; name="a"`,
/// `multipart/form-data; boundary=x`), unquoted.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, value) = param.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// Form fields as the object their schema describes: each value read as
/// its property's type (a number, a boolean), a repeated or array-typed
/// field as an array.
fn form_value(doc: &Doc<'_>, schema: &Value, pairs: &[(String, String)]) -> Value {
    let schema = doc.deref(schema);
    let properties = schema.get("properties").and_then(Value::as_object);
    let mut object = Map::new();
    for (name, text) in pairs {
        let property = properties.and_then(|p| p.get(name)).map(|p| doc.deref(p));
        let property_type = property.and_then(schema::schema_type);
        let item_schema = match property_type.as_deref() {
            Some("array") => property.and_then(|p| p.get("items")).map(|i| doc.deref(i)),
            _ => property,
        };
        let value = typed(item_schema.and_then(schema::schema_type).as_deref(), text);
        match (object.get_mut(name), property_type.as_deref()) {
            (Some(Value::Array(items)), Some("array")) => items.push(value),
            (None, Some("array")) => {
                object.insert(name.clone(), json!([value]));
            }
            (Some(existing), _) => {
                // Repeated where one is documented: kept as an array, so
                // the schema's type says what is wrong.
                let first = existing.take();
                *existing = json!([first, value]);
            }
            (None, _) => {
                object.insert(name.clone(), value);
            }
        }
    }
    Value::Object(object)
}

/// Whether `text` is an integer as JSON Schema reads one: digits of any
/// size, or a number without a fraction (`5.0`, `1e3`).
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    plain
        || (text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && text
                .parse::<f64>()
                .is_ok_and(|n| n.is_finite() && n.fract() == 0.0))
}

/// A text value read as `kind` would be written, or as text when it is not
/// (an integer too large for 64 bits as the nearest double: its bounds and
/// format are then checked, not refused as not an integer).
fn typed(kind: Option<&str>, text: &str) -> Value {
    match kind {
        Some("integer") => match text.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) if is_integer(text) => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| json!(text), Value::Number),
            Err(_) => json!(text),
        },
        Some("number") => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map_or_else(|| json!(text), |n| json!(n)),
        Some("boolean") => match text {
            "true" => json!(true),
            "false" => json!(false),
            _ => json!(text),
        },
        _ => json!(text),
    }
}

/// An array parameter's values (the name repeated, or items joined by a
/// separator), each item read as its type, checked as one array.
fn check_array(doc: &Doc<'_>, param: &super::model::Param, values: &[String]) -> Option<String> {
    let schema = doc.deref(&param.schema);
    let items = schema.get("items").map(|items| doc.deref(items));
    let kind = items.and_then(schema::schema_type);
    let texts: Vec<&str> = match param.joined_by {
        // A header's list is comma-separated whatever the style.
        // `ids=` is the empty array.
        Some(separator) => values
            .iter()
            .filter(|value| !value.is_empty())
            .flat_map(|value| value.split(separator))
            .collect(),
        None if param.place == Place::Header => {
            values.iter().flat_map(|value| value.split(',')).collect()
        }
        None => values.iter().map(String::as_str).collect(),
    };
    if let Some(problem) = texts
        .iter()
        .find_map(|text| scalar_problem(kind.as_deref(), text))
    {
        return Some(problem);
    }
    let value = Value::Array(
        texts
            .iter()
            .map(|text| typed(kind.as_deref(), text))
            .collect(),
    );
    let bytes = values.iter().map(String::len).sum();
    doc.validate(schema, &value, schema::budget_for(bytes))
        .into_iter()
        .next()
        .map(|(pointer, message)| {
            if pointer.is_empty() {
                message
            } else {
                format!("item {}: {message}", pointer.trim_start_matches('/'))
            }
        })
}

/// Why `text` cannot be a value of `kind`, if it cannot.
fn scalar_problem(kind: Option<&str>, text: &str) -> Option<String> {
    match kind {
        Some("integer") if !is_integer(text) => Some(format!("{text:?} is not an integer")),
        Some("number") if text.parse::<f64>().is_err() => Some(format!("{text:?} is not a number")),
        Some("boolean") if text != "true" && text != "false" => {
            Some(format!("{text:?} is not true or false"))
        }
        _ => None,
    }
}

/// A path, query, header or cookie value against a scalar schema.
fn check_scalar(doc: &Doc<'_>, schema: &Value, text: &str) -> Option<String> {
    let schema = doc.deref(schema);
    let kind = schema::schema_type(schema);
    if let Some(problem) = scalar_problem(kind.as_deref(), text) {
        return Some(problem);
    }
    if kind.as_deref() == Some("object") {
        return None;
    }
    let value = typed(kind.as_deref(), text);
    doc.validate(schema, &value, schema::budget_for(text.len()))
        .into_iter()
        .next()
        .map(|(_, message)| message)
}
