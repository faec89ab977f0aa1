//! What a refused request is answered with: the rejection rendered as JSON
//! and as an `http::Response`, and the response body (the inner service's
//! or the rejection's, without boxing either).

use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

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

pin_project! {
    /// The body of a response from [`ArmorPsk`](crate::ArmorPsk): the inner
    /// service's body as it is, or the rejection's bytes.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    #[derive(Debug)]
    enum Inner<B> {
        Service { #[pin] body: B },
        Rejection { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn service(body: B) -> Self {
        Self {
            inner: Inner::Service { body },
        }
    }

    pub(crate) fn rejection(data: Bytes) -> Self {
        Self {
            inner: Inner::Rejection {
                data: Some(data).filter(|data| !data.is_empty()),
            },
        }
    }
}

/// An empty body (what tower-http's `Timeout` answers with when the time
/// is up).
impl<B> Default for ResponseBody<B> {
    fn default() -> Self {
        Self::rejection(Bytes::new())
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Service { body } => body.poll_frame(cx),
            InnerProj::Rejection { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Service { body } => body.is_end_stream(),
            Inner::Rejection { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Service { body } => body.size_hint(),
            Inner::Rejection { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}
