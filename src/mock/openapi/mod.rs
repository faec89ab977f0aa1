//! The mock serves every operation of OpenAPI 3.x and Swagger 2.0
//! documents: loaded as they are published (flaws warned about, not
//! fatal), matched by method and path template, requests checked as the
//! document says (400 `request_invalid` naming every problem), answered
//! with the operation's example or a value generated from its schema.

mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};

use schema::{Doc, RefProblem};

/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];

/// A document that cannot be served at all: the file and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct OpenApiError {
    file: String,
    problem: String,
}

fn refuse(file: &Path, problem: impl Into<String>) -> OpenApiError {
    OpenApiError {
        file: file.display().to_string(),
        problem: problem.into(),
    }
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Path,
    Query,
    Header,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
        }
    }
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    place: Place,
    required: bool,
    schema: Value,
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    /// Named examples, in document order (`example` is named "default").
    examples: Vec<(String, Value)>,
    schema: Option<Value>,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One operation of one document.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    path: String,
    segments: Vec<Segment>,
    operation_id: Option<String>,
    source: String,
    document: usize,
    params: Vec<Param>,
    body: Option<(Value, bool)>,
    answers: Vec<Answer>,
}

/// The operations of every document loaded, and what was wrong with them.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    documents: Vec<Arc<Value>>,
    operations: Vec<Operation>,
    warnings: BTreeMap<String, (usize, String)>,
}

impl Operations {
    /// Loads `path`: a `*.json`/`*.yaml`/`*.yml` file, or a directory of
    /// them (in name order).
    ///
    /// # Errors
    /// A file that is not JSON or YAML, or is neither OpenAPI 3.x nor
    /// Swagger 2.0 (named in the error). Flaws in a document are warnings
    /// ([`warnings`](Self::warnings)), never errors.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), OpenApiError> {
        let path = path.as_ref();
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|error| refuse(path, error.to_string()))?
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| {
                    file.extension()
                        .and_then(|ext| ext.to_str())
                        .is_some_and(|ext| matches!(ext, "json" | "yaml" | "yml"))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            self.load_file(&file)?;
        }
        Ok(())
    }

    fn load_file(&mut self, file: &Path) -> Result<(), OpenApiError> {
        let text =
            std::fs::read_to_string(file).map_err(|error| refuse(file, error.to_string()))?;
        if text.trim().is_empty() {
            return Err(refuse(file, "the file is empty"));
        }
        let json_looking = text.trim_start().starts_with(['{', '[']);
        let document: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            // JSON that does not parse is not tried as YAML (a deep one
            // would take long): its JSON error is the answer.
            Err(json_error) if json_looking => {
                return Err(refuse(file, format!("not JSON: {json_error}")));
            }
            Err(json_error) => match serde_norway::from_str::<serde_norway::Value>(&text) {
                Ok(yaml) => yaml_to_json(yaml),
                Err(yaml_error) => {
                    return Err(refuse(
                        file,
                        format!("neither JSON ({json_error}) nor YAML ({yaml_error})"),
                    ));
                }
            },
        };
        let source = file.file_name().map_or_else(
            || file.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let version = if let Some(version) = document.get("openapi").and_then(Value::as_str) {
            if !version.starts_with('3') {
                return Err(refuse(
                    file,
                    format!("OpenAPI {version} is not supported (3.x)"),
                ));
            }
            3
        } else if document.get("swagger").and_then(Value::as_str) == Some("2.0") {
            2
        } else {
            return Err(refuse(
                file,
                "neither an OpenAPI 3.x document (`openapi: 3...`) nor a Swagger 2.0 one \
                 (`swagger: \"2.0\"`)",
            ));
        };
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return Err(refuse(file, "no `paths`"));
        };
        let index = self.documents.len();
        let base = if version == 3 {
            document
                .pointer("/servers/0/url")
                .and_then(Value::as_str)
                .map(server_path)
                .unwrap_or_default()
        } else {
            document
                .get("basePath")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned()
        };
        let doc = Doc { root: &document };
        let mut found = Vec::new();
        let mut warnings = Vec::new();
        check_refs(&document, "", &doc, &mut warnings);
        for (template, item) in paths {
            let item = doc.deref(item);
            let shared = item.get("parameters").and_then(Value::as_array);
            for method in METHODS {
                let Some(operation) = item.get(method) else {
                    continue;
                };
                let full = format!("{base}{template}");
                let mut params = Vec::new();
                let mut body = None;
                for raw in shared.into_iter().flatten().chain(
                    operation
                        .get("parameters")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                ) {
                    let param = doc.deref(raw);
                    let name = param
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let required = param
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let place = match param.get("in").and_then(Value::as_str) {
                        Some("path") => Place::Path,
                        Some("query") => Place::Query,
                        Some("header") => Place::Header,
                        Some("body") => {
                            body = Some((
                                param.get("schema").cloned().unwrap_or(Value::Null),
                                required,
                            ));
                            continue;
                        }
                        _ => continue,
                    };
                    // Swagger 2.0 puts the type on the parameter itself.
                    let schema = param.get("schema").cloned().unwrap_or_else(|| {
                        let mut schema = serde_json::Map::new();
                        for field in ["type", "format", "enum", "items"] {
                            if let Some(value) = param.get(field) {
                                schema.insert(field.to_owned(), value.clone());
                            }
                        }
                        Value::Object(schema)
                    });
                    params.retain(|existing: &Param| {
                        !(existing.name == name && existing.place == place)
                    });
                    params.push(Param {
                        name: name.to_owned(),
                        place,
                        required: required || place == Place::Path,
                        schema,
                    });
                }
                if let Some(request_body) = operation.get("requestBody").map(|b| doc.deref(b)) {
                    let required = request_body
                        .get("required")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if let Some(schema) =
                        json_media(request_body).and_then(|media| media.get("schema"))
                    {
                        body = Some((schema.clone(), required));
                    }
                }
                let answers = answers(&doc, operation, version, &full, &mut warnings);
                if let Some(schemes) = operation
                    .get("security")
                    .or_else(|| document.get("security"))
                    .and_then(Value::as_array)
                {
                    let names: Vec<&str> = schemes
                        .iter()
                        .filter_map(Value::as_object)
                        .flat_map(|scheme| scheme.keys().map(String::as_str))
                        .filter(|name| !name.to_ascii_lowercase().contains("psk"))
                        .collect();
                    if !names.is_empty() {
                        warnings.push((
                            "operations declare security schemes other than ARMOR-PSK; served behind ARMOR-PSK".to_owned(),
                            format!("{} {full}: {}", method.to_uppercase(), names.join(", ")),
                        ));
                    }
                }
                found.push(Operation {
                    method: method.to_uppercase(),
                    segments: segments(&full),
                    path: full,
                    operation_id: operation
                        .get("operationId")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    source: source.clone(),
                    document: index,
                    params,
                    body,
                    answers,
                });
            }
        }
        // The same position named differently in two templates.
        for (i, a) in found.iter().enumerate() {
            for b in &found[i + 1..] {
                if a.segments.len() == b.segments.len() && a.path != b.path {
                    let clash = a.segments.iter().zip(&b.segments).all(|pair| match pair {
                        (Segment::Literal(x), Segment::Literal(y)) => x == y,
                        (Segment::Param(_), Segment::Param(_)) => true,
                        _ => false,
                    });
                    if clash {
                        warnings.push((
                            "one path position is named differently in two templates (served by the first)".to_owned(),
                            format!("{} and {}", a.path, b.path),
                        ));
                    }
                }
            }
        }
        for (kind, example) in warnings {
            let entry = self.warnings.entry(kind).or_insert((0, example));
            entry.0 += 1;
        }
        self.documents.push(Arc::new(document));
        self.operations.extend(found);
        Ok(())
    }

    /// How many operations are served.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// One line per kind of flaw found: how many, and the first.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|(kind, (count, example))| format!("{count} × {kind} (first: {example})"))
            .collect()
    }

    /// What is served, as `GET /__mock/operations` lists it.
    pub fn listing(&self) -> Value {
        Value::Array(
            self.operations
                .iter()
                .map(|operation| {
                    json!({
                        "method": operation.method,
                        "path": operation.path,
                        "operation_id": operation.operation_id,
                        "source": operation.source,
                    })
                })
                .collect(),
        )
    }

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
        let problems = check_request(&doc, operation, parts, body);
        if !problems.is_empty() {
            let mut response = (
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": "request_invalid",
                    "Message": format!("the request does not follow {} {} as {} documents it", operation.method, operation.path, operation.source),
                    "errors": problems,
                })),
            )
                .into_response();
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

fn literal_count(segments: &[Segment]) -> usize {
    segments
        .iter()
        .filter(|segment| matches!(segment, Segment::Literal(_)))
        .count()
}

fn segments(path: &str) -> Vec<Segment> {
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_owned()),
                None => Segment::Literal(segment.to_owned()),
            },
        )
        .collect()
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

/// The path of a server URL (`https://host/containers` → `/containers`).
fn server_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| {
        rest.find('/').map_or("", |slash| &rest[slash..])
    });
    rest.trim_end_matches('/').to_owned()
}

/// The JSON media type of a `content` map (or the first one).
fn json_media(holder: &Value) -> Option<&Value> {
    let content = holder.get("content")?.as_object()?;
    content
        .iter()
        .find(|(media, _)| media.contains("json"))
        .or_else(|| content.iter().next())
        .map(|(_, media)| media)
}

fn answers(
    doc: &Doc<'_>,
    operation: &Value,
    version: u8,
    path: &str,
    warnings: &mut Vec<(String, String)>,
) -> Vec<Answer> {
    let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut answers = Vec::new();
    for (code, response) in responses {
        let status = match code.parse::<u16>() {
            Ok(status) => status,
            Err(_) if code == "default" => continue,
            Err(_) => continue,
        };
        let response = doc.deref(response);
        let (mut examples, schema) = if version == 3 {
            let media = json_media(response);
            let mut examples = Vec::new();
            if let Some(example) = media.and_then(|media| media.get("example")) {
                examples.push(("default".to_owned(), example.clone()));
            }
            if let Some(named) = media
                .and_then(|media| media.get("examples"))
                .and_then(Value::as_object)
            {
                for (name, example) in named {
                    let example = doc.deref(example);
                    if let Some(value) = example.get("value") {
                        examples.push((name.clone(), value.clone()));
                    }
                }
            }
            (
                examples,
                media.and_then(|media| media.get("schema")).cloned(),
            )
        } else {
            let mut examples = Vec::new();
            if let Some(named) = response.get("examples").and_then(Value::as_object) {
                for (media, example) in named {
                    if media.contains("json") {
                        examples.push(("default".to_owned(), example.clone()));
                    }
                }
            }
            (examples, response.get("schema").cloned())
        };
        if let Some(schema) = &schema {
            for (name, example) in &examples {
                if !doc.validate(schema, example).is_empty() {
                    warnings.push((
                        "examples contradict their schema (the example is served)".to_owned(),
                        format!("{path} {status} example {name:?}"),
                    ));
                }
            }
        }
        examples.dedup_by(|a, b| a.0 == b.0);
        answers.push(Answer {
            status,
            examples,
            schema,
        });
    }
    answers.sort_by_key(|answer| answer.status);
    answers
}

/// Every `$ref` in the document that does not resolve, as a warning.
fn check_refs(value: &Value, at: &str, doc: &Doc<'_>, warnings: &mut Vec<(String, String)>) {
    match value {
        Value::Object(fields) => {
            if let Some(reference) = fields.get("$ref").and_then(Value::as_str) {
                match doc.resolve(reference) {
                    Ok(_) => {}
                    Err(RefProblem::Empty) => warnings.push((
                        "empty $ref (treated as any value)".to_owned(),
                        at.to_owned(),
                    )),
                    Err(RefProblem::Missing(name)) => warnings.push((
                        "$ref to a definition that does not exist (treated as any value)"
                            .to_owned(),
                        name,
                    )),
                    Err(RefProblem::External(name)) => warnings.push((
                        "$ref to another document (not followed; treated as any value)".to_owned(),
                        name,
                    )),
                }
            }
            for (name, field) in fields {
                check_refs(field, &format!("{at}/{name}"), doc, warnings);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_refs(item, &format!("{at}/{i}"), doc, warnings);
            }
        }
        _ => {}
    }
}

/// The request's problems against the operation, as the 400 lists them.
fn check_request(
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
            param.place == Place::Header && param.name.eq_ignore_ascii_case(super::ACCOUNT_CONTEXT);
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
    if let Some(value) = parts.headers.get(super::ACCOUNT_CONTEXT) {
        let documented = operation.params.iter().any(|param| {
            param.place == Place::Header && param.name.eq_ignore_ascii_case(super::ACCOUNT_CONTEXT)
        });
        if !documented && !value.as_bytes().iter().all(u8::is_ascii_digit) {
            problems.push(json!({"in": "header", "name": super::ACCOUNT_CONTEXT, "message": "must be an integer account id"}));
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

/// The operation's response: the one `Prefer` asks for, else the first
/// 2xx; its example, else a value generated from its schema.
fn respond(doc: &Doc<'_>, operation: &Operation, headers: &HeaderMap) -> Response {
    let prefer = headers
        .get("prefer")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let wanted_code = prefer_value(prefer, "code").and_then(|code| code.parse::<u16>().ok());
    let wanted_example = prefer_value(prefer, "example");
    let chosen = match (wanted_code, &wanted_example) {
        (Some(code), _) => operation
            .answers
            .iter()
            .find(|answer| answer.status == code),
        (None, Some(name)) => operation
            .answers
            .iter()
            .find(|answer| answer.examples.iter().any(|(example, _)| example == name)),
        (None, None) => operation
            .answers
            .iter()
            .find(|answer| (200..300).contains(&answer.status)),
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
        Some(name) => answer
            .examples
            .iter()
            .find(|(example, _)| example == name)
            .map(|(_, value)| value.clone()),
        None => answer.examples.first().map(|(_, value)| value.clone()),
    }
    .or_else(|| answer.schema.as_ref().map(|schema| doc.generate(schema)));
    match body {
        Some(body) if status != StatusCode::NO_CONTENT => {
            (status, [(CONTENT_TYPE, "application/json")], Json(body)).into_response()
        }
        _ => status.into_response(),
    }
}

/// `code=404` in `Prefer: code=404, example=missing`.
fn prefer_value(prefer: &str, name: &str) -> Option<String> {
    prefer
        .split([',', ';'])
        .filter_map(|part| part.trim().split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
}

/// YAML's values as JSON's (keys that are numbers, as `200:`, become
/// strings).
fn yaml_to_json(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Yaml;
    match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(flag) => Value::Bool(flag),
        Yaml::Number(number) => {
            if let Some(n) = number.as_i64() {
                json!(n)
            } else if let Some(n) = number.as_u64() {
                json!(n)
            } else {
                json!(number.as_f64().unwrap_or(0.0))
            }
        }
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(text) => text,
                        other => match yaml_to_json(other) {
                            Value::String(text) => text,
                            other => other.to_string(),
                        },
                    };
                    (key, yaml_to_json(value))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => yaml_to_json(tagged.value),
    }
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
