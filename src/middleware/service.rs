//! The tower `Service`: runs the checks in order, then the inner service.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;
use tracing::Span;

use super::body::{self, VerifiedBody};
use super::config::Config;
use super::future::ResponseFuture;
use super::response::ResponseBody;
use super::telemetry::Observation;
use crate::boxed::BoxError;
use crate::protocol::canonical::signed_path;
use crate::protocol::header::Credentials;
use crate::protocol::identity::Identity;
use crate::protocol::key::Key;
use crate::protocol::rejection::Rejection;
use crate::protocol::verify::{check_nonce_format, check_signature};
use crate::replay::ReplayRequest;
use crate::replay::store::refusal;

/// Verifies each request's `ARMOR-PSK` signature, then calls the inner
/// service with the verified body ([`VerifiedBody`]) and an [`Identity`] in
/// the request's extensions; the same `Identity` rides on the inner
/// service's response, as a [`Rejection`] rides on a refusal's. Made by
/// [`ArmorPskLayer`](crate::ArmorPskLayer).
///
/// The checks, in order: request target, header syntax, nonce format, the
/// body's declared size, key lookup, body (up to the limit), HMAC,
/// timestamp window, replay reservation. A refused request never reaches
/// the inner service; it gets a response, never an `Err`.
#[derive(Clone)]
pub struct ArmorPsk<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ArmorPsk<S> {
    /// `inner` behind the check, with the default settings and `keys`
    /// (tower-http's `Service::new`; [`ArmorPskLayer`](crate::ArmorPskLayer) sets the rest).
    pub fn new(inner: S, keys: impl crate::keys::KeyStore) -> Self {
        Self::with_config(inner, Arc::new(Config::new(Arc::new(keys))))
    }

    /// The layer that makes this service, with `keys` and the default
    /// settings: the same as [`ArmorPskLayer::new`](crate::ArmorPskLayer::new).
    pub fn layer(keys: impl crate::keys::KeyStore) -> crate::ArmorPskLayer {
        crate::ArmorPskLayer::new(keys)
    }

    pub(crate) fn with_config(inner: S, config: Arc<Config>) -> Self {
        config.replay.begin(config.clock.now());
        Self { inner, config }
    }

    crate::macros::inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for ArmorPsk<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmorPsk")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ArmorPsk<S>
where
    S: Service<Request<VerifiedBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError> + Send,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let observation = Observation::start();
        let span = observation.span().clone();
        let (parts, body) = request.into_parts();
        let checks = Checked {
            checks: authenticate(Arc::clone(&self.config), parts, body, span),
            config: Arc::clone(&self.config),
            observation,
        };
        ResponseFuture::new(Box::pin(checks), inner)
    }
}

pin_project! {
    /// [`authenticate`]'s future, polled in the verification's span, its
    /// outcome told to telemetry and a refusal rendered: what the response
    /// future needs of the config is done here, so that it holds none of
    /// it. (A struct rather than an async fn around `authenticate`, which
    /// would hold the request a second time, and entering the span itself
    /// rather than in `Instrumented`, which would hold the span a third.)
    struct Checked<F> {
        #[pin]
        checks: F,
        config: Arc<Config>,
        observation: Observation,
    }
}

impl<F> Future for Checked<F>
where
    F: Future<Output = Result<(Request<VerifiedBody>, Identity), Rejection>>,
{
    type Output = Result<(Request<VerifiedBody>, Identity), Response<Bytes>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.observation.span().enter();
        let outcome = ready!(this.checks.poll(cx));
        this.observation.finish(
            outcome.as_ref().map(|(_, identity)| identity),
            this.config.key_id_metric_label,
            &*this.config.replay,
        );
        Poll::Ready(outcome.map_err(|rejection| this.config.respond(rejection)))
    }
}

/// The checks, in order; on success the request for the inner service and
/// who signed it (the future puts the [`Identity`] where the service and
/// the response can see it). A body left unread by a rejection is drained
/// first (within bounds), so that a client still writing it reads the
/// answer instead of a reset.
// An async block rather than an async fn (what clippy asks for): an async
// fn's future keeps each argument twice, as passed and as moved into its
// body (rust-lang/rust#62958), and these are the most of its size.
#[allow(clippy::manual_async_fn)]
fn authenticate<B>(
    config: Arc<Config>,
    parts: Parts,
    body: B,
    span: Span,
) -> impl Future<Output = Result<(Request<VerifiedBody>, Identity), Rejection>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    // With `Checked` and the body's read boxed on its own, the boxed
    // checks are 896 bytes (they were 1,776; echo example, axum's body).
    async move {
        let config = &*config;
        let declared = body::declared_size(&parts.headers, &body);
        let (path, credentials, key) = match before_body(config, &parts, declared, &span).await {
            Ok(checked) => checked,
            Err(rejection) => {
                // Boxed: a refusal's path, kept out of the size of every
                // request's future.
                Box::pin(config.drain.discard(&parts.headers, body)).await;
                return Err(rejection);
            }
        };
        let ids = credentials.ids();
        // Boxed on its own (544 bytes): in the checks' future it made them
        // 1,184 bytes, and glibc serves an allocation past 1,008 bytes
        // from its large bins, consolidating its fast bins first; two small
        // boxes cost less than one large one.
        let reading = Box::pin(body::read(
            &parts.headers,
            body,
            config.body_limit,
            &config.drain,
        ));
        let (body, digest) = reading.await.map_err(|rejection| rejection.with_ids(ids))?;
        let now = config.clock.now();
        let identity = check_signature(
            parts.method.as_str(),
            &path,
            &credentials,
            &digest,
            key.as_ref(),
            now,
            &config.options,
        )?;
        drop(path);

        let mut claim = ReplayRequest::new(
            credentials.key_id(),
            credentials.signature(),
            credentials.timestamp(),
            now,
            config.options.replay_lifetime(),
        )
        .with_monotonic(config.clock.monotonic());
        if config.unique_nonces {
            claim = claim.with_nonce(credentials.nonce());
        }
        let reservation = match config.replay.reserve_ready(&claim) {
            Some(reservation) => reservation,
            None => config.replay.reserve(&claim).await,
        };
        match refusal(reservation, credentials.key_id()) {
            None => Ok((Request::from_parts(parts, body), identity)),
            Some(rejection) => Err(rejection.with_ids(ids)),
        }
    }
}

/// What can be checked before the body is read: the request target, the
/// header, the nonce's format, the body's declared size (`declared`, from
/// `Content-Length` or the body's size hint), and last the key's lookup:
/// a request refused by what it says of itself costs no query.
async fn before_body<'a>(
    config: &Config,
    parts: &'a Parts,
    declared: u64,
    span: &Span,
) -> Result<(Cow<'a, str>, Credentials, Option<Key>), Rejection> {
    let path = signed_path((config.request_target)(parts), &config.options)?;
    let credentials = Credentials::from_headers(&parts.headers)?;
    let ids = credentials.ids();
    // On the span as soon as it is known: the store's warnings and a
    // request dropped half-way carry it too. (No subscriber wants the span:
    // nothing to record.)
    if !span.is_disabled() {
        span.record("key_id", ids.key_id());
    }
    check_nonce_format(&credentials, &config.options)?;
    if declared > config.body_limit as u64 {
        return Err(body::too_large(config.body_limit).with_ids(ids));
    }
    let key = match config.keys.get_ready(ids.key_id()) {
        Some(key) => key,
        None => config.keys.get(ids.key_id()).await,
    };
    let key = key.map_err(|error| error.into_rejection(ids.key_id()).with_ids(ids))?;
    Ok((path, credentials, key))
}
