//! The tower `Layer` and its settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tower_layer::Layer;

use super::body::Drain;
use super::config::Config;
use super::service::ArmorPsk;
use crate::keys::KeyStore;
use crate::protocol::clock::Clock;
use crate::protocol::options::{ConfigError, NonceFormat, VerifyOptions};
use crate::protocol::rejection::Rejection;
use crate::replay::ReplayStore;

/// A [`Layer`] that verifies `ARMOR-PSK` signed requests before they reach
/// the inner service.
///
/// It wraps any tower service that takes `http::Request<VerifiedBody>`
/// and answers `http::Response<B>` (an axum `Router`, a hyper
/// `service_fn`, ...): the inner service receives exactly the verified bytes
/// as a [`VerifiedBody`](crate::VerifiedBody), and the response body is
/// [`ResponseBody<B>`](crate::ResponseBody): the inner body or the
/// rejection's, nothing boxed.
///
/// Defaults: a ±300 s window, a 2 MiB body limit, an in-memory
/// [`MemoryReplayStore`](crate::replay::MemoryReplayStore), the system clock, JSON
/// rejections.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::convert::Infallible;
/// use armor_psk::{ArmorPskLayer, Identity, ManualClock, Signer, VerifiedBody, keys::MemoryKeyStore};
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// let keys = MemoryKeyStore::new().with_key("key-1", "secret");
/// let clock = ManualClock::new(1_700_000_000);
/// let service = ServiceBuilder::new()
///     .layer(ArmorPskLayer::new(keys).with_clock(clock.clone()))
///     .service(service_fn(|request: Request<VerifiedBody>| async move {
///         let who = request.extensions().get::<Identity>().unwrap().key_id().to_owned();
///         Ok::<_, Infallible>(Response::new(format!("{who} sent {} bytes", request.body().len())))
///     }));
///
/// // What was signed in the second the layer was made is refused (a
/// // restart may have forgotten it): a second later, all is served.
/// clock.advance(1);
/// let header = Signer::new("key-1", "secret").unwrap()
///     .sign_at("POST", "/things", b"{}", "n-1", 1_700_000_001).unwrap();
/// let signed = Request::post("/things").header("authorization", header).body("{}".to_owned()).unwrap();
/// assert_eq!(service.clone().oneshot(signed).await.unwrap().status(), StatusCode::OK);
///
/// let unsigned = Request::post("/things").body("{}".to_owned()).unwrap();
/// assert_eq!(service.oneshot(unsigned).await.unwrap().status(), StatusCode::UNAUTHORIZED);
/// # }
/// ```
#[derive(Clone)]
pub struct ArmorPskLayer {
    config: Arc<Config>,
}

impl ArmorPskLayer {
    /// A layer that looks secrets up in `keys`, with the default settings.
    pub fn new(keys: impl KeyStore) -> Self {
        Self {
            config: Arc::new(Config::new(Arc::new(keys))),
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

    /// How far a timestamp may be from the server's clock (default 300 s,
    /// at most 24 h).
    ///
    /// # Security
    /// See [`VerifyOptions::with_window`].
    ///
    /// # Errors
    /// [`ConfigError::WindowTooLong`] above 24 hours.
    pub fn with_window(self, window: Duration) -> Result<Self, ConfigError> {
        let options = self.config.options.clone().with_window(window)?;
        Ok(self.update(|config| config.options = options))
    }

    /// How long replay entries outlive the window (default 60 s, at most
    /// 24 h), so that instances sharing a replay store with clocks apart,
    /// or a server whose clock steps back, still refuse replays.
    ///
    /// # Security
    /// See [`VerifyOptions::with_clock_skew_allowance`].
    ///
    /// # Errors
    /// [`ConfigError::SkewAllowanceTooLong`] above 24 hours.
    pub fn with_clock_skew_allowance(self, allowance: Duration) -> Result<Self, ConfigError> {
        let options = self
            .config
            .options
            .clone()
            .with_clock_skew_allowance(allowance)?;
        Ok(self.update(|config| config.options = options))
    }

    /// The largest body accepted, in bytes (default 2 MiB); larger bodies get
    /// 413 `body_too_large`. A body whose `Content-Length` declares more is
    /// refused before its key is looked up, unread.
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

    /// Accept only nonces of `format`; any other is refused with 401
    /// `invalid_nonce` before the body is read.
    ///
    /// # Security
    /// [`NonceFormat::Uuid`] refuses every path/nonce re-cut, even one that
    /// reaches the server before the genuine request (the replay store alone
    /// refuses it only after). Set it when all clients send UUID nonces, as
    /// Armor's samples do.
    #[must_use]
    pub fn with_nonce_format(self, format: NonceFormat) -> Self {
        self.update(|config| {
            config.options = config.options.clone().with_nonce_format(format);
        })
    }

    /// Accept the request target `*` (`OPTIONS * HTTP/1.1`), signed as the
    /// path `*` (off by default: 401 `malformed_request`, as for any target
    /// that is not a path starting with `/`).
    #[must_use]
    pub fn with_asterisk_form(self, accept: bool) -> Self {
        self.update(|config| {
            config.options = config.options.clone().with_asterisk_form(accept);
        })
    }

    /// How much of a refused request's unread body is read and thrown away
    /// before the answer (default 4 MiB, 5 s). A client that writes its
    /// whole body before it reads (most do) then sees the 401 or 413
    /// instead of a connection reset. A body that declares more than
    /// `max_bytes` is not read at all, and nothing read is kept. The time is
    /// checked as frames arrive: a body that stalls is ended by the server's
    /// own read timeout (the crate docs' "Serving it", `docs/server.md`).
    #[must_use]
    pub fn with_drain_limit(self, max_bytes: u64, max_time: Duration) -> Self {
        self.update(|config| {
            config.drain = Drain {
                max_bytes,
                max_time,
            };
        })
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
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn with_key_id_metric_label(self, label: bool) -> Self {
        self.update(|config| config.key_id_metric_label = label)
    }

    /// Replaces all verification settings at once.
    #[must_use]
    pub fn with_options(self, options: VerifyOptions) -> Self {
        self.update(|config| config.options = options)
    }

    /// Builds rejection responses with `respond` instead of the default JSON
    /// body; any body that turns into `Bytes` (`String`, `&'static str`,
    /// `Vec<u8>`, ...). The [`Rejection`] is still put in the response's
    /// extensions.
    ///
    /// ```
    /// use armor_psk::{ArmorPskLayer, keys::MemoryKeyStore};
    ///
    /// let layer = ArmorPskLayer::new(MemoryKeyStore::new()).with_rejection_response(|rejection| {
    ///     http::Response::builder()
    ///         .status(rejection.status())
    ///         .body(format!("refused: {}", rejection.code()))
    ///         .unwrap()
    /// });
    /// ```
    #[must_use]
    pub fn with_rejection_response<F, B>(self, respond: F) -> Self
    where
        F: Fn(&Rejection) -> http::Response<B> + Send + Sync + 'static,
        B: Into<Bytes>,
    {
        let respond = move |rejection: &Rejection| respond(rejection).map(Into::into);
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
        ArmorPsk::with_config(inner, Arc::clone(&self.config))
    }
}

impl fmt::Debug for ArmorPskLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}
