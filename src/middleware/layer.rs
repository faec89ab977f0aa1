//! The tower `Layer` and its settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use tower_layer::Layer;

use crate::keys::KeyStore;
use crate::middleware::body::DEFAULT_BODY_LIMIT;
use crate::middleware::response::RejectionResponder;
use crate::middleware::service::ArmorPsk;
use crate::protocol::clock::{Clock, SystemClock};
use crate::protocol::rejection::Rejection;
use crate::protocol::verify::{ConfigError, VerifyOptions};
use crate::replay::{MemoryReplayStore, ReplayStore};

/// Everything the service needs, shared by every clone of it.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) keys: Arc<dyn KeyStore>,
    pub(crate) replay: Arc<dyn ReplayStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) options: VerifyOptions,
    pub(crate) body_limit: usize,
    pub(crate) unique_nonces: bool,
    #[cfg(feature = "metrics")]
    pub(crate) key_id_metric_label: bool,
    pub(crate) on_rejection: Option<RejectionResponder>,
}

/// A [`Layer`] that verifies `ARMOR-PSK` signed requests before they reach
/// the inner service.
///
/// Defaults: a ±300 s window, a 2 MiB body limit, an in-memory
/// [`MemoryReplayStore`], the system clock, JSON rejections.
///
/// ```
/// use armor_psk::{ArmorPskLayer, MemoryKeyStore};
/// use axum::{routing::get, Router};
///
/// let keys = MemoryKeyStore::new().with_key("key-1", "secret");
/// let app: Router = Router::new()
///     .route("/me", get(|| async { "hello" }))
///     .layer(ArmorPskLayer::new(keys).with_body_limit(64 * 1024));
/// ```
#[derive(Clone)]
pub struct ArmorPskLayer {
    config: Arc<Config>,
}

impl ArmorPskLayer {
    /// A layer that looks secrets up in `keys`, with the default settings.
    pub fn new(keys: impl KeyStore) -> Self {
        Self {
            config: Arc::new(Config {
                keys: Arc::new(keys),
                replay: Arc::new(MemoryReplayStore::new()),
                clock: Arc::new(SystemClock),
                options: VerifyOptions::default(),
                body_limit: DEFAULT_BODY_LIMIT,
                unique_nonces: true,
                #[cfg(feature = "metrics")]
                key_id_metric_label: false,
                on_rejection: None,
            }),
        }
    }

    fn update(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// Uses `store` to refuse replays, e.g. one shared by several instances.
    #[must_use]
    pub fn with_replay_store(self, store: impl ReplayStore) -> Self {
        self.update(|config| config.replay = Arc::new(store))
    }

    /// Takes the time from `clock` (tests use a
    /// [`ManualClock`](crate::ManualClock)).
    #[must_use]
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.update(|config| config.clock = Arc::new(clock))
    }

    /// How far a timestamp may be from the server's clock (default 300 s).
    ///
    /// # Security
    /// See [`VerifyOptions::with_window`].
    #[must_use]
    pub fn with_window(self, window: Duration) -> Self {
        self.update(|config| config.options = config.options.clone().with_window(window))
    }

    /// The largest body accepted, in bytes (default 2 MiB); larger bodies get
    /// 413 `body_too_large`.
    #[must_use]
    pub fn with_body_limit(self, limit: usize) -> Self {
        self.update(|config| config.body_limit = limit)
    }

    /// Also accept `base64(SHA-512(""))` as the body slot of an empty body.
    ///
    /// # Security
    /// See [`VerifyOptions::with_hashed_empty_body`].
    #[must_use]
    pub fn with_hashed_empty_body(self, accept: bool) -> Self {
        self.update(|config| {
            config.options = config.options.clone().with_hashed_empty_body(accept);
        })
    }

    /// A prefix that a proxy in front of the server strips from the path;
    /// it is put back before the signature is checked.
    ///
    /// # Errors
    /// See [`VerifyOptions::with_path_prefix`].
    pub fn with_path_prefix(self, prefix: impl Into<String>) -> Result<Self, ConfigError> {
        let options = self.config.options.clone().with_path_prefix(prefix)?;
        Ok(self.update(|config| config.options = options))
    }

    /// Whether a nonce may be accepted only once per key within the window
    /// (default `true`). Each accepted request then reserves two replay-store
    /// entries, its signature and its nonce; with `false`, only the
    /// signature, which halves the store's memory and time per request.
    ///
    /// # Security
    /// Replays stay refused either way: a replayed request carries a
    /// signature already held, and so does a request whose nonce was cut at
    /// another place (the path/nonce hole). What `false` gives up is the
    /// refusal of a nonce that its own key holder reuses on a *different*
    /// request, which only the holder of the secret can sign: a client bug
    /// that Armor's API would refuse, not an attack. Keep the default in a
    /// mock or test server, so that clients' nonce bugs show.
    #[must_use]
    pub fn with_unique_nonces(self, unique: bool) -> Self {
        self.update(|config| config.unique_nonces = unique)
    }

    /// Adds the key id as a `key_id` label to the accepted and rejected
    /// counters (off by default).
    ///
    /// # Security
    /// Rejected requests carry whatever key id the sender wrote, so the
    /// label set grows with every made-up key id an attacker sends: a
    /// memory and cost risk for the metrics pipeline. Turn it on only where
    /// the exporter bounds its series, or the keys are few and trusted.
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn with_key_id_metric_label(self, label: bool) -> Self {
        self.update(|config| config.key_id_metric_label = label)
    }

    /// Replaces all verification settings at once.
    #[must_use]
    pub fn with_options(self, options: VerifyOptions) -> Self {
        self.update(|config| config.options = options)
    }

    /// Builds rejection responses with `respond` instead of the default JSON
    /// body. The [`Rejection`] is still put in the response's extensions.
    #[must_use]
    pub fn with_rejection_response(
        self,
        respond: impl Fn(&Rejection) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.update(|config| config.on_rejection = Some(Arc::new(respond)))
    }

    /// The verification settings in force.
    pub fn options(&self) -> &VerifyOptions {
        &self.config.options
    }
}

impl<S> Layer<S> for ArmorPskLayer {
    type Service = ArmorPsk<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ArmorPsk::new(inner, Arc::clone(&self.config))
    }
}

impl fmt::Debug for ArmorPskLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArmorPskLayer")
            .field("options", &self.options)
            .field("body_limit", &self.body_limit)
            .field("unique_nonces", &self.unique_nonces)
            .field("custom_rejection", &self.on_rejection.is_some())
            .finish_non_exhaustive()
    }
}
