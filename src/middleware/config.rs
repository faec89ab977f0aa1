//! The settings every clone of the service shares.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::body::{DEFAULT_BODY_LIMIT, Drain};
use crate::keys::KeyStore;
use crate::protocol::clock::{Clock, SystemClock};
use crate::protocol::options::VerifyOptions;
use crate::protocol::rejection::Rejection;
use crate::replay::{MemoryReplayStore, ReplayStore};

/// A user-supplied way to turn a [`Rejection`] into a response.
pub(crate) type Responder = Arc<dyn Fn(&Rejection) -> http::Response<Bytes> + Send + Sync>;

/// Where the service finds the path a request was signed over: the
/// request target's path, or, with the axum glue, the path of the original
/// URI inside a nested router.
pub(crate) type RequestTarget = fn(&http::request::Parts) -> &str;

/// The request target's path as received.
#[cfg(not(feature = "axum"))]
fn uri_path(parts: &http::request::Parts) -> &str {
    parts.uri.path()
}

/// Everything the service needs, behind one `Arc`.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) options: VerifyOptions,
    pub(crate) body_limit: usize,
    pub(crate) drain: Drain,
    pub(crate) unique_nonces: bool,
    pub(crate) key_id_metric_label: bool,
    pub(crate) on_rejection: Option<Responder>,
    pub(crate) request_target: RequestTarget,
}

impl Config {
    pub(crate) fn new(keys: Arc<dyn KeyStore>) -> Self {
        Self {
            keys,
            replay: Arc::new(MemoryReplayStore::new()),
            clock: Arc::new(SystemClock),
            options: VerifyOptions::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            drain: Drain::default(),
            unique_nonces: true,
            key_id_metric_label: false,
            on_rejection: None,
            #[cfg(feature = "axum")]
            request_target: crate::axum::request_target,
            #[cfg(not(feature = "axum"))]
            request_target: uri_path,
        }
    }

    /// The response for `rejection`: the custom one if set, the JSON one
    /// otherwise; the rejection is in its extensions either way.
    pub(crate) fn respond(&self, rejection: Rejection) -> http::Response<Bytes> {
        match &self.on_rejection {
            Some(custom) => {
                let mut response = custom(&rejection);
                response.extensions_mut().insert(rejection);
                response
            }
            None => rejection.into_http_response(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmorPskLayer")
            .field("options", &self.options)
            .field("body_limit", &self.body_limit)
            .field("drain", &self.drain)
            .field("unique_nonces", &self.unique_nonces)
            .field("custom_rejection", &self.on_rejection.is_some())
            .finish_non_exhaustive()
    }
}
