//! How a rejection is written as an HTTP response.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};

use crate::protocol::header::SCHEME;
use crate::protocol::rejection::Rejection;

/// A user-supplied way to turn a [`Rejection`] into a response.
pub(crate) type RejectionResponder = Arc<dyn Fn(&Rejection) -> Response + Send + Sync>;

/// The default response: the rejection's status, a JSON body
/// `{"Message": "...", "error": "<code>"}` (plus `server_time` when the
/// timestamp was out of the window), and `WWW-Authenticate: ARMOR-PSK` on a
/// 401.
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "Message": self.message(),
            "error": self.code(),
        });
        if let Some(server_time) = self.server_time() {
            body["server_time"] = server_time.into();
        }
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.status() == http::StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(SCHEME));
        }
        response.extensions_mut().insert(self);
        response
    }
}

/// The response for `rejection`, by `custom` if given, and always with the
/// rejection in its extensions.
pub(crate) fn respond(rejection: Rejection, custom: Option<&RejectionResponder>) -> Response {
    match custom {
        Some(custom) => {
            let mut response = custom(&rejection);
            response.extensions_mut().insert(rejection);
            response
        }
        None => rejection.into_response(),
    }
}
