//! Stubs: any endpoint a test needs, from JSON files, answered after the
//! request verified and before the built-in routes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use serde_json::Value;

use super::api::Directory;
use super::error::FileError;

/// One stubbed endpoint: a method and a path pattern (`{name}` matches one
/// segment), the status, headers and body to answer with (`body`, JSON,
/// or `text`, sent as it is: `text/plain` unless the stub's headers name
/// a `Content-Type`), and optionally the only account context it answers
/// in.
///
/// ```
/// use armor_psk::mock::Stub;
///
/// let stub = Stub::from_json(r#"{"method": "GET", "path": "/tickets/{id}", "body": {"id": 1}}"#).unwrap();
/// assert_eq!(stub.len(), 1);
/// assert!(stub[0].matches("GET", "/tickets/42"));
/// assert!(!stub[0].matches("GET", "/tickets/42/notes"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Stub {
    method: String,
    path: String,
    status: StatusCode,
    headers: BTreeMap<String, String>,
    body: Value,
    /// A body sent byte for byte instead of `body` as JSON.
    text: Option<String>,
    account: Option<i64>,
}

impl Stub {
    /// A stub answering `method path` with `status` and a JSON `body`.
    ///
    /// # Errors
    /// The method is not a token, the path does not start with `/`, or
    /// the status is not 100–599.
    pub fn new(method: &str, path: &str, status: u16, body: Value) -> Result<Self, FileError> {
        let stub =
            serde_json::json!({"method": method, "path": path, "status": status, "body": body});
        let mut stubs = parse(Path::new("(code)"), stub)?;
        Ok(stubs.remove(0))
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Answers only in this account context.
    #[must_use]
    pub fn for_account(mut self, account: i64) -> Self {
        self.account = Some(account);
        self
    }

    /// The stubs of a JSON text: one stub object or an array of them.
    ///
    /// # Errors
    /// Not JSON, a required field missing, or a field of the wrong type.
    pub fn from_json(text: &str) -> Result<Vec<Self>, FileError> {
        let file = Path::new("(text)");
        let value = serde_json::from_str(text)
            .map_err(|error| FileError::caused(file, "not valid JSON", error))?;
        parse(file, value)
    }

    /// The stubs of a file, or of every `*.json` file of a directory (in
    /// name order).
    ///
    /// # Errors
    /// A file cannot be read, is not JSON, misses a required field or has
    /// a field of the wrong type; the error names the file and the field.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Vec<Self>, FileError> {
        let path = path.as_ref();
        let files: Vec<PathBuf> = if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|error| FileError::caused(path, "cannot read", error))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| file.extension().is_some_and(|ext| ext == "json"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_owned()]
        };
        let mut stubs = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|error| FileError::caused(&file, "cannot read", error))?;
            let value = serde_json::from_str(&text)
                .map_err(|error| FileError::caused(&file, "not valid JSON", error))?;
            stubs.extend(parse(&file, value)?);
        }
        Ok(stubs)
    }

    /// Whether this stub answers `method path`.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method != method {
            return false;
        }
        let mut pattern = self.path.split('/');
        let mut segments = path.split('/');
        loop {
            match (pattern.next(), segments.next()) {
                (None, None) => return true,
                (Some(want), Some(got)) => {
                    let variable = want.len() > 2 && want.starts_with('{') && want.ends_with('}');
                    if !(want == got || variable && !got.is_empty()) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }

    fn respond(&self) -> Response {
        let mut response = match &self.text {
            Some(text) => (
                self.status,
                [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text.clone(),
            )
                .into_response(),
            None => (self.status, Json(self.body.clone())).into_response(),
        };
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// Reads one stub object or an array of them, naming the field at fault.
fn parse(file: &Path, value: Value) -> Result<Vec<Stub>, FileError> {
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(FileError::new(
                file,
                "expected a stub object or an array of stub objects",
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let at = |field: &str, problem: &str| {
                FileError::new(file, format!("stub {index}: `{field}` {problem}"))
            };
            let Value::Object(mut object) = item else {
                return Err(FileError::new(file, format!("stub {index}: not an object")));
            };
            let method = match object.remove("method") {
                Some(Value::String(method))
                    if !method.is_empty()
                        && method
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                {
                    method.to_ascii_uppercase()
                }
                Some(_) => return Err(at("method", "must be a method name such as \"GET\"")),
                None => return Err(at("method", "is required")),
            };
            let path = match object.remove("path") {
                Some(Value::String(path)) if path.starts_with('/') => path,
                Some(_) => return Err(at("path", "must be a string starting with '/'")),
                None => return Err(at("path", "is required")),
            };
            let status = match object.remove("status") {
                None => StatusCode::OK,
                Some(Value::Number(number)) => number
                    .as_u64()
                    .and_then(|code| u16::try_from(code).ok())
                    .filter(|code| (100..=599).contains(code))
                    .and_then(|code| StatusCode::from_u16(code).ok())
                    .ok_or_else(|| at("status", "must be an integer from 100 to 599"))?,
                Some(_) => return Err(at("status", "must be an integer from 100 to 599")),
            };
            let headers = match object.remove("headers") {
                None => BTreeMap::new(),
                Some(Value::Object(headers)) => headers
                    .into_iter()
                    .map(|(name, value)| match value {
                        Value::String(value)
                            if HeaderName::from_bytes(name.as_bytes()).is_ok()
                                && HeaderValue::from_str(&value).is_ok() =>
                        {
                            Ok((name, value))
                        }
                        _ => Err(at(
                            "headers",
                            &format!("must map header names to string values ({name:?})"),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(at("headers", "must be an object of strings")),
            };
            let text = match object.remove("text") {
                None => None,
                Some(Value::String(text)) => Some(text),
                Some(_) => return Err(at("text", "must be a string (the body as it is sent)")),
            };
            let body = match object.remove("body") {
                Some(_) if text.is_some() => {
                    return Err(at("body", "and `text` cannot both be given"));
                }
                body => body.unwrap_or_else(|| Value::Object(serde_json::Map::new())),
            };
            let account = match object.remove("account") {
                None | Some(Value::Null) => None,
                Some(Value::Number(number)) if number.as_i64().is_some() => number.as_i64(),
                Some(_) => return Err(at("account", "must be an account id (an integer)")),
            };
            if let Some(unknown) = object.keys().next() {
                return Err(at(
                    unknown,
                    "is not a stub field (method, path, status, headers, body, text, account)",
                ));
            }
            Ok(Stub {
                method,
                path,
                status,
                headers,
                body,
                text,
                account,
            })
        })
        .collect()
}

/// The stubs: those added while it runs (newest first, ahead of the
/// others), then those it started with.
#[derive(Debug, Clone, Default)]
pub(crate) struct StubList {
    added: std::sync::Arc<parking_lot::RwLock<Vec<Stub>>>,
    loaded: std::sync::Arc<[Stub]>,
}

impl StubList {
    pub(crate) fn new(loaded: Vec<Stub>) -> Self {
        Self {
            added: std::sync::Arc::default(),
            loaded: loaded.into(),
        }
    }

    /// Puts `stubs` ahead of every other (the first of them first).
    pub(crate) fn add(&self, stubs: Vec<Stub>) {
        let mut added = self.added.write();
        added.splice(0..0, stubs);
    }

    /// Forgets the stubs added while it runs.
    pub(crate) fn clear(&self) {
        self.added.write().clear();
    }

    /// The stubs that match `method path`, in the order they answer.
    fn matching(&self, method: &str, path: &str) -> Vec<Stub> {
        let added = self.added.read();
        added
            .iter()
            .chain(self.loaded.iter())
            .filter(|stub| stub.matches(method, path))
            .cloned()
            .collect()
    }
}

/// The stubs and what they need to tell account contexts apart.
#[derive(Clone)]
pub(crate) struct Stubs {
    pub(crate) stubs: StubList,
    pub(crate) directory: Directory,
}

/// Answers a verified request with the first stub that matches it (and its
/// account context, for an account-scoped stub); passes it on otherwise.
pub(crate) async fn answer(State(stubs): State<Stubs>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let candidates = stubs.stubs.matching(&method, &path);
    if candidates.is_empty() {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // A stub answers in an account context like any route: an invalid or
    // foreign `X-Account-Context` keeps its 400 or 403.
    let context = match stubs.directory.account_context(&parts) {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    let chosen = candidates
        .into_iter()
        .find(|stub| stub.account.is_none_or(|id| id == context.account.id))
        .map(|stub| stub.respond());
    match chosen {
        Some(response) => response,
        None => next.run(Request::from_parts(parts, body)).await,
    }
}
