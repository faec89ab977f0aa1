//! The axum glue (feature `axum`, on by default): [`Identity`] as an
//! extractor, [`IntoResponse`] for [`Rejection`], and the original path of
//! a request inside a nested router.

use std::convert::Infallible;

use ::axum::body::Body;
use ::axum::extract::{FromRequestParts, OptionalFromRequestParts, OriginalUri};
use ::axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::protocol::identity::Identity;
use crate::protocol::rejection::Rejection;

/// Takes the [`Identity`] that [`ArmorPsk`](crate::ArmorPsk) put in the
/// request's extensions.
///
/// ```
/// use armor_psk::Identity;
///
/// async fn handler(identity: Identity) -> String {
///     format!("hello {}", identity.key_id())
/// }
/// let app: axum::Router = axum::Router::new().route("/me", axum::routing::get(handler));
/// # let _ = app;
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = MissingIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or(MissingIdentity)
    }
}

/// `Option<Identity>`: `None` on a route the layer does not cover.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// A handler asked for an [`Identity`] on a route the layer does not cover:
/// a server bug, answered with 500 `missing_identity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no ARMOR-PSK identity on this request: is the layer applied to this route?")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub struct MissingIdentity;

#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl IntoResponse for MissingIdentity {
    fn into_response(self) -> Response {
        let body = format!(r#"{{"Message":"{self}","error":"missing_identity"}}"#);
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// The layer's default response ([`Rejection::into_http_response`]), for a
/// handler or a middleware that refuses with a [`Rejection`] itself.
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.into_http_response().map(Body::from)
    }
}

/// The path the client sent: inside a nested router, the request's own
/// URI has lost the outer prefix, and axum keeps the original. The layer's
/// source of the signed path when this glue is compiled in.
pub(crate) fn request_target(parts: &Parts) -> &str {
    match parts.extensions.get::<OriginalUri>() {
        Some(original) => original.path(),
        None => parts.uri.path(),
    }
}
