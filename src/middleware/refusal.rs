//! What a refused request is answered with by default: the [`Rejection`]
//! as JSON, and as an `http::Response` with its status and headers.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::protocol::header::SCHEME;
use crate::protocol::rejection::Rejection;

impl Rejection {
    /// The default JSON body: `{"Message": "...", "error": "<code>"}`, plus
    /// `"server_time"` when the timestamp was out of the window.
    ///
    /// ```
    /// use armor_psk::{Rejection, RejectionKind};
    ///
    /// let rejection = Rejection::new(RejectionKind::InvalidSignature, "say \"no\"");
    /// assert_eq!(rejection.to_json(), r#"{"Message":"say \"no\"","error":"invalid_signature"}"#);
    /// ```
    pub fn to_json(&self) -> String {
        let mut json = String::with_capacity(64 + self.message().len());
        json.push_str("{\"Message\":");
        push_json_string(&mut json, self.message());
        json.push_str(",\"error\":\"");
        json.push_str(self.code());
        json.push('"');
        if let Some(server_time) = self.server_time() {
            let _ = write!(json, ",\"server_time\":{server_time}");
        }
        json.push('}');
        json
    }

    /// The default response: the rejection's status, the
    /// [JSON body](Self::to_json), `Content-Type: application/json`,
    /// `WWW-Authenticate: ARMOR-PSK` on a 401, and the rejection itself in
    /// the response's extensions.
    pub fn into_http_response(self) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from(self.to_json()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(SCHEME));
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_string(json: &mut String, text: &str) {
    json.push('"');
    for c in text.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}
