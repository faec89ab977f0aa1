//! `armor-psk mock --record-from URL --record-to DIR`: every request that
//! verified is re-signed with the upstream key, forwarded, answered with
//! the upstream's answer, and written to DIR as a stub file that
//! `armor-psk mock --stubs DIR` plays back. Recordings hold no
//! `Authorization` header, nonce, signature or secret, and none of the
//! headers or JSON fields named by `--redact`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use armor_psk::Signer;
use armor_psk::mock::Upstream;
use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Headers never forwarded nor recorded: the signature's, the
/// connection's, and those the client library sets again.
const DROPPED: [&str; 8] = [
    "authorization",
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
];

pub struct Recorder {
    pub url: String,
    pub dir: PathBuf,
    pub redact: Vec<String>,
    pub signer: Signer,
}

impl Recorder {
    /// The mock's upstream: forwards on a blocking thread (ureq), records.
    pub fn upstream(self) -> Result<Upstream, String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|error| format!("--record-to {}: {error}", self.dir.display()))?;
        let recorder = Arc::new(self);
        let counter = Arc::new(AtomicU64::new(0));
        Ok(Arc::new(move |request: http::Request<Bytes>| {
            let (recorder, counter) = (Arc::clone(&recorder), Arc::clone(&counter));
            Box::pin(async move {
                tokio::task::spawn_blocking(move || recorder.forward(&request, &counter))
                    .await
                    .unwrap_or_else(|_| bad_gateway("the forwarding thread failed"))
            })
        }))
    }

    fn forward(&self, request: &http::Request<Bytes>, counter: &AtomicU64) -> Response {
        let method = request.method().as_str();
        let path = request.uri().path();
        let target = request
            .uri()
            .path_and_query()
            .map_or(path, |target| target.as_str());
        let body = request.body();
        let mut upstream = http::Request::builder()
            .method(method)
            .uri(format!("{}{target}", self.url.trim_end_matches('/')))
            .header("authorization", self.signer.sign(method, path, body));
        for (name, value) in request.headers() {
            if !DROPPED.contains(&name.as_str()) {
                upstream = upstream.header(name, value);
            }
        }
        let Ok(upstream) = upstream.body(body.to_vec()) else {
            return bad_gateway("the request cannot be forwarded");
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .allow_non_standard_methods(true)
            .build()
            .into();
        let mut answer = match agent.run(upstream) {
            Ok(answer) => answer,
            Err(error) => return bad_gateway(&format!("the upstream did not answer: {error}")),
        };
        let status = answer.status();
        let headers = answer.headers().clone();
        let bytes = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default();
        if let Err(error) = self.write(request, status.as_u16(), &headers, &bytes, counter) {
            eprintln!("warning: cannot write a recording: {error}");
        }
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() =
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        for (name, value) in &headers {
            if !DROPPED.contains(&name.as_str()) {
                let value = match (name == http::header::LOCATION, value.to_str()) {
                    (true, Ok(location)) => HeaderValue::from_str(&self.local(location)).ok(),
                    _ => Some(value.clone()),
                };
                if let (Ok(name), Some(value)) =
                    (HeaderName::from_bytes(name.as_str().as_bytes()), value)
                {
                    response.headers_mut().append(name, value);
                }
            }
        }
        response
    }

    fn redacted(&self, name: &str) -> bool {
        self.redact
            .iter()
            .any(|field| field.eq_ignore_ascii_case(name))
    }

    /// Writes the answer as a stub file (`NNNN-METHOD-path.json`).
    fn write(
        &self,
        request: &http::Request<Bytes>,
        status: u16,
        headers: &http::HeaderMap,
        body: &[u8],
        counter: &AtomicU64,
    ) -> std::io::Result<()> {
        let mut kept = Map::new();
        for (name, value) in headers {
            let name = name.as_str();
            if DROPPED.contains(&name)
                || self.redacted(name)
                || name == "date"
                || name == "content-type"
            {
                continue;
            }
            if let Ok(value) = value.to_str() {
                kept.insert(name.to_owned(), Value::String(value.to_owned()));
            }
        }
        let body = match serde_json::from_slice::<Value>(body) {
            Ok(value) => self.scrub(value),
            Err(_) => Value::String(String::from_utf8_lossy(body).into_owned()),
        };
        let mut stub = json!({
            "method": request.method().as_str(),
            "path": request.uri().path(),
            "status": status,
            "body": body,
        });
        if !kept.is_empty() {
            stub["headers"] = Value::Object(kept);
        }
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let name: String = request
            .uri()
            .path()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let file = self
            .dir
            .join(format!("{n:04}-{}{}.json", request.method(), name));
        std::fs::write(file, serde_json::to_vec_pretty(&stub).unwrap_or_default())
    }

    /// The JSON body without the fields named by `--redact`, at any depth.
    fn scrub(&self, value: Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(name, value)| {
                        !self.redacted(name) && !value.as_str().is_some_and(carries_signature)
                    })
                    .map(|(name, value)| (name, self.scrub(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .filter(|item| !item.as_str().is_some_and(carries_signature))
                    .map(|item| self.scrub(item))
                    .collect(),
            ),
            other => other,
        }
    }

    /// A URL on the upstream made relative (a `Location`), so that clients
    /// stay on the mock.
    fn local(&self, value: &str) -> String {
        let origin = self.url.trim_end_matches('/');
        match value.strip_prefix(origin) {
            Some("") => "/".to_owned(),
            Some(rest) if rest.starts_with('/') || rest.starts_with('?') => rest.to_owned(),
            _ => value.to_owned(),
        }
    }
}

/// Whether a value holds an ARMOR-PSK header (its key id, signature and
/// nonce), whatever else it holds.
fn carries_signature(value: &str) -> bool {
    value.to_ascii_uppercase().contains("ARMOR-PSK")
}

fn bad_gateway(message: &str) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(json!({"error": "upstream_unavailable", "Message": message})),
    )
        .into_response()
}
