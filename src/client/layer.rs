//! [`SignLayer`]: signs each outgoing request with a fresh nonce.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Request;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http_body::Body;
use http_body_util::BodyExt;
use http_body_util::combinators::Collect;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::signing::RequestSigner;
use crate::boxed::BoxError;
use crate::protocol::clock::Clock;
use crate::protocol::signer::{SignError, Signer};

/// The body a signed request carries on: the bytes that were signed, in
/// one frame.
#[derive(Debug, Clone, Default)]
pub struct SignedBody {
    data: Option<Bytes>,
}

impl From<Bytes> for SignedBody {
    fn from(bytes: Bytes) -> Self {
        Self {
            data: Some(bytes).filter(|bytes| !bytes.is_empty()),
        }
    }
}

impl SignedBody {
    /// The bytes that were signed, without polling.
    pub fn into_bytes(self) -> Bytes {
        self.data.unwrap_or_default()
    }
}

crate::macros::one_frame_body!(SignedBody);

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
    type Service = Sign<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Sign {
            inner,
            signing: self.signing.clone(),
        }
    }
}

/// Signs each request, then calls the inner client service. Made by
/// [`SignLayer`].
#[derive(Clone, Debug)]
pub struct Sign<S> {
    inner: S,
    signing: RequestSigner,
}

impl<S> Sign<S> {
    crate::macros::inner_service_accessors!();
}

impl<S, B> Service<Request<B>> for Sign<S>
where
    S: Service<Request<SignedBody>> + Clone,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = SignFuture<B, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was made ready goes with the request (tower's
        // rule for services called later); its clone stays for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        SignFuture {
            state: State::Reading {
                body: body.collect(),
                parts: Some(parts),
                inner: Some(inner),
                signing: self.signing.clone(),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Sign`]: the body read (to hash it), the
    /// request signed, then the inner service's answer.
    pub struct SignFuture<B, S>
    where
        B: Body,
        S: Service<Request<SignedBody>>,
    {
        #[pin]
        state: State<B, S>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<B, S>
    where
        B: Body,
        S: Service<Request<SignedBody>>,
    {
        Reading {
            #[pin]
            body: Collect<B>,
            parts: Option<Parts>,
            inner: Option<S>,
            signing: RequestSigner,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
    }
}

impl<B, S> Future for SignFuture<B, S>
where
    B: Body,
    B::Error: Into<BoxError>,
    S: Service<Request<SignedBody>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let future = match self.as_mut().project().state.project() {
                StateProjection::Reading {
                    body,
                    parts,
                    inner,
                    signing,
                } => {
                    let body = ready!(body.poll(cx)).map_err(Into::into)?.to_bytes();
                    let (mut parts, mut inner) = match (parts.take(), inner.take()) {
                        (Some(parts), Some(inner)) => (parts, inner),
                        _ => unreachable!("a signing future polled after it read its body"),
                    };
                    let header = signing.header(parts.method.as_str(), parts.uri.path(), &body);
                    parts.headers.insert(AUTHORIZATION, header);
                    inner.call(Request::from_parts(parts, SignedBody::from(body)))
                }
                StateProjection::Calling { future } => {
                    return future.poll(cx).map_err(Into::into);
                }
            };
            self.as_mut().project().state.set(State::Calling { future });
        }
    }
}

impl<B: Body, S: Service<Request<SignedBody>>> std::fmt::Debug for SignFuture<B, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignFuture").finish_non_exhaustive()
    }
}
