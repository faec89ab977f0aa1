//! The check itself: a pure function of the request, the key and the time.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::OriginalUri;
use http::request::Parts;
use subtle::ConstantTimeEq;

use crate::protocol::canonical::{BodyDigest, BodySlot, Canonical};
use crate::protocol::header::Credentials;
use crate::protocol::rejection::{Rejection, RejectionKind};
use crate::protocol::secret::{Secret, generate_secret};

/// The default window: a timestamp may be 300 seconds off either way.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// The settings of the check.
///
/// ```
/// use std::time::Duration;
/// use armor_psk::VerifyOptions;
///
/// let options = VerifyOptions::default().with_window(Duration::from_secs(60));
/// assert_eq!(options.window(), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    window: Duration,
    accept_hashed_empty_body: bool,
    path_prefix: Option<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            accept_hashed_empty_body: false,
            path_prefix: None,
        }
    }
}

impl VerifyOptions {
    /// How far a timestamp may be from the server's clock, either way
    /// (whole seconds; default 300).
    ///
    /// # Security
    /// A wider window keeps replay-store entries longer and lets a captured
    /// request be held back longer before it is sent.
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Also accept `base64(SHA-512(""))` as the body slot of an empty body,
    /// as some older clients send (off by default).
    ///
    /// # Security
    /// Each empty-body request then has two valid signatures; both are
    /// computed and compared in constant time, and the replay store still
    /// holds the nonce, so neither can be replayed.
    #[must_use]
    pub fn with_hashed_empty_body(mut self, accept: bool) -> Self {
        self.accept_hashed_empty_body = accept;
        self
    }

    /// A path prefix that a proxy in front of the server strips: it is put
    /// back in front of the path before checking the signature.
    ///
    /// # Errors
    /// [`ConfigError::InvalidPathPrefix`] unless the prefix starts with `/`,
    /// does not end with `/`, and has no `?` or `#`.
    pub fn with_path_prefix(mut self, prefix: impl Into<String>) -> Result<Self, ConfigError> {
        let prefix = prefix.into();
        if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains(['?', '#']) {
            return Err(ConfigError::InvalidPathPrefix(prefix));
        }
        self.path_prefix = Some(prefix);
        Ok(self)
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether the hashed-empty body slot is accepted.
    pub fn accepts_hashed_empty_body(&self) -> bool {
        self.accept_hashed_empty_body
    }

    /// The path prefix, if any.
    pub fn path_prefix(&self) -> Option<&str> {
        self.path_prefix.as_deref()
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The path prefix must start with `/`, not end with `/`, and carry no
    /// query or fragment.
    #[error(
        "invalid path prefix {0:?}: it must start with '/', not end with '/', and have no '?' or '#'"
    )]
    InvalidPathPrefix(String),
}

/// Who signed an accepted request; the layer puts it in the request's
/// extensions, and handlers take it as an axum extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The key id followed by the nonce: one allocation for both.
    ids: Box<str>,
    key_id_len: usize,
    timestamp: u64,
}

impl Identity {
    /// The API key id that signed the request.
    pub fn key_id(&self) -> &str {
        &self.ids[..self.key_id_len]
    }

    /// The request's nonce.
    pub fn nonce(&self) -> &str {
        &self.ids[self.key_id_len..]
    }

    /// The request's timestamp (Unix seconds).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
}

impl Identity {
    /// Only `verify` makes one: an `Identity` means "verified".
    fn verified(credentials: &Credentials) -> Self {
        Self {
            ids: [credentials.key_id(), credentials.nonce()]
                .concat()
                .into_boxed_str(),
            key_id_len: credentials.key_id().len(),
            timestamp: credentials.timestamp(),
        }
    }
}

/// The path that was signed: the request target's path as received, without
/// the query. Inside a nested axum router it is the original, full path
/// (`OriginalUri`); a configured prefix goes in front.
pub fn signed_path<'a>(parts: &'a Parts, options: &VerifyOptions) -> Cow<'a, str> {
    let path = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.path(), |original| original.path());
    match &options.path_prefix {
        Some(prefix) => Cow::Owned(format!("{prefix}{path}")),
        None => Cow::Borrowed(path),
    }
}

/// Checks the signature and the timestamp of a request whose header has been
/// parsed and whose key has been looked up (`None`: unknown key). No I/O and
/// no clock: `now` is given. Replay protection is not part of it.
///
/// The signature is checked first, then the window. An unknown key costs the
/// same HMAC as a known one (under a random dummy key) and is refused with
/// the same [`RejectionKind::InvalidSignature`], so key ids cannot be
/// enumerated.
///
/// ```
/// use armor_psk::{verify, BodyDigest, Credentials, RejectionKind, Secret, Signer, VerifyOptions};
///
/// let signer = Signer::new("key-1", "secret").unwrap();
/// let header = signer.sign_at("POST", "/things", b"{}", "nonce-1", 1_700_000_000).unwrap();
/// let request = http::Request::post("/things").header("authorization", header).body(()).unwrap();
/// let (parts, ()) = request.into_parts();
/// let credentials = Credentials::from_headers(&parts.headers).unwrap();
/// let options = VerifyOptions::default();
/// let secret = Secret::new("secret");
///
/// let identity = verify(&parts, &credentials, &BodyDigest::of(b"{}"), Some(&secret), 1_700_000_000, &options).unwrap();
/// assert_eq!(identity.key_id(), "key-1");
///
/// let tampered = verify(&parts, &credentials, &BodyDigest::of(b"{ }"), Some(&secret), 1_700_000_000, &options);
/// assert_eq!(tampered.unwrap_err().kind(), RejectionKind::InvalidSignature);
/// ```
///
/// # Errors
/// [`RejectionKind::InvalidSignature`] or
/// [`RejectionKind::TimestampOutOfWindow`] (carrying `now` as
/// `server_time`).
pub fn verify(
    parts: &Parts,
    credentials: &Credentials,
    body: &BodyDigest,
    key: Option<&Secret>,
    now: u64,
    options: &VerifyOptions,
) -> Result<Identity, Rejection> {
    let path = signed_path(parts, options);
    let canonical = Canonical {
        key_id: credentials.key_id(),
        method: parts.method.as_str(),
        path: &path,
        nonce: credentials.nonce(),
        timestamp: credentials.timestamp(),
    };
    let secret = key.unwrap_or(&DUMMY_SECRET);
    let slot = body.slot();
    let mut matches = canonical.sign(secret, &slot).ct_eq(credentials.signature());
    if options.accept_hashed_empty_body && *body == BodyDigest::Empty {
        let hashed = canonical.sign(secret, &BodySlot::hashed_empty());
        matches |= hashed.ct_eq(credentials.signature());
    }
    if !bool::from(matches & subtle::Choice::from(u8::from(key.is_some()))) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                key_id = credentials.key_id(),
                canonical_sha256 = canonical.sha256_hex(&slot),
                "ARMOR-PSK signature mismatch; compare with SHA-256 of the client's canonical string",
            );
        }
        return Err(Rejection::new(
            RejectionKind::InvalidSignature,
            "the signature does not match the request",
        )
        .with_key_id(credentials.key_id()));
    }
    if now.abs_diff(credentials.timestamp()) > options.window.as_secs() {
        return Err(Rejection::new(
            RejectionKind::TimestampOutOfWindow,
            "the timestamp is too far from the server's clock; see server_time",
        )
        .with_server_time(now)
        .with_key_id(credentials.key_id()));
    }
    Ok(Identity::verified(credentials))
}

/// The key an unknown key id is checked against, so that it costs the same
/// work as a known one. Random per process: nobody can sign for it. Should
/// the random generator fail, an empty key still does the same work, and an
/// unknown key is refused whatever its HMAC gives.
static DUMMY_SECRET: LazyLock<Secret> =
    LazyLock::new(|| Secret::from(generate_secret().unwrap_or_default()));
