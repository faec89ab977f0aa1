//! [`SignLayer`]: signs each outgoing request with a fresh nonce.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::boxed::{BoxError, BoxFuture};
use crate::protocol::clock::{Clock, SystemClock};
use crate::protocol::signer::{SignError, Signer};

/// The body a signed request carries on: the bytes that were signed.
pub type SignedBody = Full<Bytes>;

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
#[derive(Clone)]
pub struct SignLayer {
    signer: Arc<Signer>,
    clock: Arc<dyn Clock>,
}

impl SignLayer {
    /// Signs with `signer`, at the system clock's time.
    pub fn new(signer: Signer) -> Self {
        Self {
            signer: Arc::new(signer),
            clock: Arc::new(SystemClock),
        }
    }

    /// Signs with the key in `ARMOR_PSK_KEY_ID` and `ARMOR_PSK_SECRET`.
    ///
    /// # Errors
    /// A variable is missing, or the key id cannot travel in the header.
    pub fn from_env() -> Result<Self, SignError> {
        Ok(Self::new(Signer::from_env()?))
    }

    /// Takes the time from `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

impl fmt::Debug for SignLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignLayer")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
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
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, the layer removed.
    pub fn into_inner(self) -> S {
        self.inner
    }
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
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let header = layer.signer.sign_with_clock(
                parts.method.as_str(),
                parts.uri.path(),
                &body,
                &*layer.clock,
            );
            parts
                .headers
                .insert(AUTHORIZATION, HeaderValue::try_from(header)?);
            inner
                .call(Request::from_parts(parts, Full::new(body)))
                .await
                .map_err(Into::into)
        })
    }
}
