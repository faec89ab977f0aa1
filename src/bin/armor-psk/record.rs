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
use sha2::Digest as _;

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
        let body = self.redacted_body(body).map_err(|why| {
            std::io::Error::other(format!(
                "{} {}: not recorded: {why}",
                request.method(),
                request.uri().path()
            ))
        })?;
        let mut kept = Map::new();
        for (name, value) in headers {
            let name = name.as_str();
            // A JSON body is played back as JSON; text keeps its type.
            let json = !body.is_text();
            if DROPPED.contains(&name)
                || self.redacted(name)
                || name == "date"
                || (json && name == "content-type")
            {
                continue;
            }
            match value.to_str() {
                Ok(value) if !carries_signature(value) => {
                    kept.insert(name.to_owned(), Value::String(value.to_owned()));
                }
                _ => {}
            }
        }
        let mut stub = json!({
            "method": request.method().as_str(),
            "path": request.uri().path(),
            "status": status,
        });
        match body {
            Recorded::Json(value) => stub["body"] = value,
            Recorded::Text(text) => stub["text"] = Value::String(text),
        }
        if !kept.is_empty() {
            stub["headers"] = Value::Object(kept);
        }
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let file = self.dir.join(file_name(
            n,
            request.method().as_str(),
            request.uri().path(),
        ));
        std::fs::write(file, serde_json::to_vec_pretty(&stub).unwrap_or_default())
    }

    /// The body as the stub file holds it: JSON (a byte-order mark
    /// skipped, each line of NDJSON) without the redacted fields, or the
    /// text as it is when it names none of them; an error when the body
    /// names a redacted field or an ARMOR-PSK value in a shape this cannot
    /// take apart (JSON nested deeper than the parser goes, say).
    fn redacted_body(&self, body: &[u8]) -> Result<Recorded, &'static str> {
        let text = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
        if let Ok(value) = serde_json::from_slice::<Value>(text) {
            return Ok(Recorded::Json(self.scrub(value)));
        }
        let text = String::from_utf8_lossy(text);
        let lines: Option<Vec<Value>> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str::<Value>(line).ok())
            .collect();
        if let Some(lines) = lines.filter(|lines| lines.len() > 1) {
            let lines: Vec<String> = lines
                .into_iter()
                .map(|line| self.scrub(line).to_string())
                .collect();
            return Ok(Recorded::Text(lines.join("\n") + "\n"));
        }
        if carries_signature(&text) {
            return Err("it holds an ARMOR-PSK value in a body that is not JSON");
        }
        let lower = text.to_ascii_lowercase();
        if self
            .redact
            .iter()
            .any(|field| lower.contains(&format!("\"{}\"", field.to_ascii_lowercase())))
        {
            return Err("it names a --redact field in a body that cannot be read as JSON");
        }
        Ok(Recorded::Text(text.into_owned()))
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

/// A response body as a stub file holds it.
#[derive(Debug, PartialEq)]
enum Recorded {
    /// Played back as JSON.
    Json(Value),
    /// Played back byte for byte (as UTF-8), with the upstream's
    /// `Content-Type`.
    Text(String),
}

impl Recorded {
    fn is_text(&self) -> bool {
        matches!(self, Self::Text(_))
    }
}

/// The stub file's name, `NNNN-METHOD-path.json`: the path's letters and
/// digits (others as `_`), and past 120 of them the first 100 and a hash
/// of the whole path, so that a long path keeps a name the file system
/// takes (255 bytes) and two long paths keep two names.
fn file_name(n: u64, method: &str, path: &str) -> String {
    let name: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let method: String = method.chars().take(16).collect();
    if name.len() <= 120 {
        return format!("{n:04}-{method}{name}.json");
    }
    let digest = sha2::Sha256::digest(path.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{n:04}-{method}{}-{hash}.json", &name[..100])
}

fn bad_gateway(message: &str) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        axum::Json(json!({"error": "upstream_unavailable", "Message": message})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> Recorder {
        Recorder {
            url: "http://upstream".into(),
            dir: PathBuf::new(),
            redact: vec!["username".into()],
            signer: Signer::new("k", "s").unwrap(),
        }
    }

    #[test]
    fn redaction_does_not_depend_on_the_body_being_one_json_value() {
        let recorder = recorder();
        let bom = "\u{feff}{\"username\": \"ann\", \"id\": 1}";
        assert_eq!(
            recorder.redacted_body(bom.as_bytes()),
            Ok(Recorded::Json(json!({"id": 1})))
        );
        let ndjson = "{\"username\": \"ann\"}\n{\"id\": 2, \"Username\": \"bob\"}\n";
        assert_eq!(
            recorder.redacted_body(ndjson.as_bytes()),
            Ok(Recorded::Text("{}\n{\"id\":2}\n".into()))
        );
        let deep = format!(
            "{}{{\"username\": \"ann\"}}{}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(recorder.redacted_body(deep.as_bytes()).is_err());
        let signed = "token=ARMOR-PSK k:sig:nonce:1";
        assert!(recorder.redacted_body(signed.as_bytes()).is_err());
        assert_eq!(
            recorder.redacted_body(b"plain text"),
            Ok(Recorded::Text("plain text".into()))
        );
    }

    #[test]
    fn a_long_path_gets_a_short_unique_name() {
        let long = format!("/{}", "a".repeat(1000));
        let other = format!("/{}b", "a".repeat(1000));
        let (one, two) = (file_name(1, "GET", &long), file_name(1, "GET", &other));
        assert!(one.len() < 160, "{one}");
        assert_ne!(one, two);
        assert_eq!(file_name(7, "GET", "/me"), "0007-GET_me.json");
    }
}
