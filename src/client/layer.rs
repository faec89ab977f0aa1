//! [`SignLayer`]: signs each outgoing request with a fresh nonce.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http::header::AUTHORIZATION;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tower_layer::Layer;
use tower_service::Service;

use super::signing::RequestSigner;
use crate::boxed::{BoxError, BoxFuture};
use crate::middleware::body::VerifiedBody;
use crate::protocol::clock::Clock;
use crate::protocol::signer::{SignError, Signer};

/// The body a signed request carries on: the bytes that were signed, in
/// one frame.
#[derive(Debug, Clone, Default)]
pub struct SignedBody(VerifiedBody);

impl From<Bytes> for SignedBody {
    fn from(bytes: Bytes) -> Self {
        Self(VerifiedBody::from_bytes(bytes))
    }
}

impl SignedBody {
    /// The bytes that were signed, without polling.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

impl Body for SignedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A [`Layer`] that signs every request: it reads the body (to hash it),
/// signs method, path and body with a fresh UUID v4 nonce and the clock's
/// time, sets `Authorization`, and sends the same bytes on.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use armor_psk::client::{SignLayer, SignedBody};
/// use armor_psk::Signer;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let client = ServiceBuilder::new()
///     .layer(SignLayer::new(Signer::new("key-1", "secret-1").unwrap()))
///     .service(service_fn(|request: Request<SignedBody>| async move {
///         // A real client sends it; this one shows what it would send.
///         let header = request.headers()["authorization"].to_str().unwrap().to_owned();
///         Ok::<_, std::convert::Infallible>(Response::new(header))
///     }));
/// let response = client.oneshot(Request::post("/things").body("{}".to_owned()).unwrap()).await.unwrap();
/// assert!(response.body().starts_with("ARMOR-PSK key-1:"));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SignLayer {
    signing: RequestSigner,
}

impl SignLayer {
    /// Signs with `signer`, at the system clock's time.
    pub fn new(signer: Signer) -> Self {
        Self {
            signing: RequestSigner::new(signer),
        }
    }

    /// Signs with the key in `ARMOR_PSK_KEY_ID` and `ARMOR_PSK_SECRET`.
    ///
    /// # Errors
    /// A variable is missing, or the key id cannot travel in the header.
    pub fn from_env() -> Result<Self, SignError> {
        Ok(Self {
            signing: RequestSigner::from_env()?,
        })
    }

    /// Takes the time from `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.signing = self.signing.with_clock(clock);
        self
    }
}

impl<S> Layer<S> for SignLayer {
    type Service = SignRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignRequests {
            inner,
            layer: self.clone(),
        }
    }
}

/// Signs each request, then calls the inner client service. Made by
/// [`SignLayer`].
#[derive(Clone, Debug)]
pub struct SignRequests<S> {
    inner: S,
    layer: SignLayer,
}

impl<S> SignRequests<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for SignRequests<S>
where
    S: Service<Request<SignedBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let signing = self.layer.signing.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let header = signing.header(parts.method.as_str(), parts.uri.path(), &body);
            parts.headers.insert(AUTHORIZATION, header);
            inner
                .call(Request::from_parts(parts, SignedBody::from(body)))
                .await
                .map_err(Into::into)
        })
    }
}
