//! The tower `Service`: runs the checks in order, then the inner service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::Request;
use http::request::Parts;
use tower_service::Service;
use tracing::Instrument as _;

use crate::middleware::body;
use crate::middleware::future::ResponseFuture;
use crate::middleware::layer::Config;
use crate::middleware::response::respond;
use crate::middleware::telemetry::Observation;
use crate::protocol::header::Credentials;
use crate::protocol::rejection::{Rejection, RejectionKind};
use crate::protocol::verify::{Identity, verify};
use crate::replay::{ReplayKey, ReplayStoreError, Reservation, replay_ttl};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Verifies each request's `ARMOR-PSK` signature, then calls the inner
/// service with the verified body and an [`Identity`] in the request's
/// extensions. Made by [`ArmorPskLayer`](crate::ArmorPskLayer).
///
/// The checks, in order: header syntax, key lookup, body (up to the limit),
/// HMAC, timestamp window, replay reservation. A refused request never
/// reaches the inner service; it gets a response, never an `Err`.
#[derive(Clone)]
pub struct ArmorPsk<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ArmorPsk<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ArmorPsk<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmorPsk")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, B, ResBody> Service<Request<B>> for ArmorPsk<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: fmt::Display,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Take the service that was driven to readiness; leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        ResponseFuture {
            inner: Box::pin(async move {
                let (mut parts, body) = request.into_parts();
                let observation = Observation::start();
                let outcome = authenticate(&config, &parts, body)
                    .instrument(observation.span().clone())
                    .await;
                observation.finish(outcome.as_ref().map(|(identity, _)| identity), &config);
                match outcome {
                    Ok((identity, body)) => {
                        parts.extensions.insert(identity);
                        let request = Request::from_parts(parts, Body::new(body));
                        let response = inner.call(request).await?;
                        Ok(response.map(Body::new))
                    }
                    Err(rejection) => {
                        log_rejection(&rejection);
                        Ok(respond(rejection, config.on_rejection.as_ref()))
                    }
                }
            }),
        }
    }
}

/// The checks, in order; on success the identity and the verified body.
async fn authenticate<B>(
    config: &Config,
    parts: &Parts,
    body: B,
) -> Result<(Identity, body::Buffered), Rejection>
where
    B: http_body::Body,
    B::Error: fmt::Display,
{
    let credentials = Credentials::from_headers(&parts.headers)?;
    let key_id = credentials.key_id();
    tracing::Span::current().record("key_id", key_id);
    let key = config.keys.get(key_id).await.map_err(|error| {
        tracing::warn!(key_id, %error, "ARMOR-PSK key store failed");
        Rejection::new(
            RejectionKind::KeyStoreUnavailable,
            "the key store is unavailable",
        )
        .with_key_id(key_id)
    })?;
    let (bytes, digest) = body::buffer(&parts.headers, body, config.body_limit)
        .await
        .map_err(|rejection| rejection.with_key_id(key_id))?;
    let now = config.clock.now();
    let identity = verify(
        parts,
        &credentials,
        &digest,
        key.as_ref(),
        now,
        &config.options,
    )?;

    // Signature first: a replayed signature then never burns a nonce.
    let signature = ReplayKey::signature(key_id, credentials.signature());
    let both;
    let entries = if config.unique_nonces {
        both = [signature, ReplayKey::nonce(key_id, credentials.nonce())];
        &both[..]
    } else {
        std::slice::from_ref(&signature)
    };
    let ttl = replay_ttl(credentials.timestamp(), now, config.options.window());
    let refused = |kind, message| Err(Rejection::new(kind, message).with_key_id(key_id));
    match config.replay.reserve(entries, ttl).await {
        Ok(Reservation::Reserved) => Ok((identity, bytes)),
        Ok(Reservation::Replayed) => refused(
            RejectionKind::ReplayedRequest,
            "this nonce or signature was already used",
        ),
        Err(ReplayStoreError::Full) => refused(
            RejectionKind::ReplayStoreFull,
            "the replay store is full; try again later",
        ),
        Err(error) => {
            tracing::warn!(key_id, %error, "ARMOR-PSK replay store failed");
            refused(
                RejectionKind::ReplayStoreUnavailable,
                "the replay store is unavailable",
            )
        }
    }
}

fn log_rejection(rejection: &Rejection) {
    let key_id = rejection.key_id().unwrap_or("-");
    let reason = rejection.code();
    if rejection.status().is_server_error() {
        tracing::warn!(key_id, reason, "ARMOR-PSK request refused");
    } else {
        tracing::info!(key_id, reason, "ARMOR-PSK request refused");
    }
}
