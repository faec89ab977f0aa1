//! The settings of the check: the window, the clock-skew allowance, the
//! nonce format, the path prefix, and the errors of a setting that cannot
//! work.

use std::time::Duration;

use super::rejection::{Rejection, RejectionKind};

/// The default window: a timestamp may be 300 seconds off either way.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// The longest window (and the longest clock-skew allowance) accepted:
/// 24 hours.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The default clock-skew allowance: 60 seconds. Servers kept by NTP agree
/// within milliseconds; 60 s covers a server whose clock was stepped back
/// (a VM restored, an NTP step after a long drift) and instances that share
/// a replay store with clocks apart, at the cost of holding each entry a
/// minute longer.
pub const DEFAULT_CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// What nonces a deployment's clients send.
///
/// The wire format does not delimit the path from the nonce in the signed
/// string, so a captured request `GET /accounts/12` with nonce `abc` also
/// signs `GET /accounts/1` with nonce `2abc` (ARMOR-PSK.md, "the path/nonce
/// hole"). The replay store refuses such a re-cut once the genuine request
/// was accepted; a fixed nonce format refuses it whatever arrives first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonceFormat {
    /// Any nonce of 1 to 128 visible ASCII characters without a colon (the
    /// default: what the protocol allows).
    #[default]
    Any,
    /// A UUID, hex digits of either case: the 36-character text form
    /// (`8-4-4-4-12`) that the seed's sample and Armor's scripts send
    /// (`uuid4()`), or the 32 hex digits without dashes that Armor's
    /// published contract recommends. Each form is checked strictly, and no
    /// re-cut turns one into the other (the dashes of one would have to be
    /// hex digits of the other), so the path/nonce boundary cannot move:
    /// every re-cut is refused, even one that arrives before the genuine
    /// request.
    Uuid,
}

impl NonceFormat {
    /// Whether `nonce` has this format.
    ///
    /// ```
    /// use armor_psk::protocol::NonceFormat;
    ///
    /// assert!(NonceFormat::Uuid.matches("0e2ad5d5-4b7e-4a1c-9a52-05b4c2b0e1f3"));
    /// assert!(NonceFormat::Uuid.matches("0e2ad5d54b7e4a1c9a5205b4c2b0e1f3"));
    /// assert!(!NonceFormat::Uuid.matches("20e2ad5d5-4b7e-4a1c-9a52-05b4c2b0e1f"));
    /// assert!(!NonceFormat::Uuid.matches("0e2ad5d5-4b7e4a1c9a5205b4c2b0e1f3"));
    /// assert!(NonceFormat::Any.matches("n-1"));
    /// ```
    pub fn matches(self, nonce: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Uuid => {
                let bytes = nonce.as_bytes();
                match bytes.len() {
                    36 => bytes.iter().enumerate().all(|(i, &b)| match i {
                        8 | 13 | 18 | 23 => b == b'-',
                        _ => b.is_ascii_hexdigit(),
                    }),
                    32 => bytes.iter().all(u8::is_ascii_hexdigit),
                    _ => false,
                }
            }
        }
    }
}

/// The settings of the check.
///
/// ```
/// use std::time::Duration;
/// use armor_psk::protocol::VerifyOptions;
///
/// let options = VerifyOptions::default().with_window(Duration::from_secs(60)).unwrap();
/// assert_eq!(options.window(), Duration::from_secs(60));
/// assert!(VerifyOptions::default().with_window(Duration::from_secs(25 * 3600)).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    window: Duration,
    accept_hashed_empty_body: bool,
    path_prefix: Option<String>,
    nonce_format: NonceFormat,
    asterisk_form: bool,
    skew_allowance: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            skew_allowance: DEFAULT_CLOCK_SKEW_ALLOWANCE,
            accept_hashed_empty_body: false,
            path_prefix: None,
            nonce_format: NonceFormat::Any,
            asterisk_form: false,
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
    ///
    /// # Errors
    /// [`ConfigError::WindowTooLong`] above [`MAX_WINDOW`] (24 h).
    pub fn with_window(mut self, window: Duration) -> Result<Self, ConfigError> {
        if window > MAX_WINDOW {
            return Err(ConfigError::WindowTooLong(window));
        }
        self.window = window;
        Ok(self)
    }

    /// How far apart the clocks of the servers that share a replay store
    /// may be, or how far one server's clock may step back (default 60 s):
    /// every replay entry is kept that much longer than the window, so that
    /// it outlives its request on every instance.
    ///
    /// # Security
    /// What remains: a clock that is behind the one that stored an entry by
    /// more than the allowance (or that steps back by more) accepts the
    /// request again once the entry expired. Keep clocks synchronised;
    /// raise the allowance rather than lower it.
    ///
    /// # Errors
    /// [`ConfigError::SkewAllowanceTooLong`] above [`MAX_WINDOW`] (24 h).
    pub fn with_clock_skew_allowance(mut self, allowance: Duration) -> Result<Self, ConfigError> {
        if allowance > MAX_WINDOW {
            return Err(ConfigError::SkewAllowanceTooLong(allowance));
        }
        self.skew_allowance = allowance;
        Ok(self)
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

    /// Accept only nonces of `format` (default [`NonceFormat::Any`]); any
    /// other nonce is `invalid_nonce`, refused before the body is read.
    ///
    /// # Security
    /// [`NonceFormat::Uuid`] closes the path/nonce re-cut for good; set it
    /// when every client of the deployment sends UUID nonces.
    #[must_use]
    pub fn with_nonce_format(mut self, format: NonceFormat) -> Self {
        self.nonce_format = format;
        self
    }

    /// Accept the request target `*` (as in `OPTIONS * HTTP/1.1`), signed as
    /// the path `*` (off by default: `*` is `malformed_request`).
    #[must_use]
    pub fn with_asterisk_form(mut self, accept: bool) -> Self {
        self.asterisk_form = accept;
        self
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The clock-skew allowance.
    pub fn clock_skew_allowance(&self) -> Duration {
        self.skew_allowance
    }

    /// How long past its timestamp a request's replay entries are kept:
    /// the window plus the clock-skew allowance (what the layer hands
    /// [`ReplayRequest::new`](crate::replay::ReplayRequest::new), which
    /// works out each entry's expiry from it).
    pub fn replay_lifetime(&self) -> Duration {
        self.window + self.skew_allowance
    }

    /// Whether the hashed-empty body slot is accepted.
    pub fn accepts_hashed_empty_body(&self) -> bool {
        self.accept_hashed_empty_body
    }

    /// The path prefix, if any.
    pub fn path_prefix(&self) -> Option<&str> {
        self.path_prefix.as_deref()
    }

    /// The nonce format accepted.
    pub fn nonce_format(&self) -> NonceFormat {
        self.nonce_format
    }

    /// Whether the request target `*` is accepted.
    pub fn accepts_asterisk_form(&self) -> bool {
        self.asterisk_form
    }

    /// Checks that `timestamp` is within the window of `now`, either way.
    ///
    /// ```
    /// use armor_psk::{RejectionKind, protocol::VerifyOptions};
    ///
    /// let options = VerifyOptions::default();
    /// assert!(options.check_window(1_700_000_300, 1_700_000_000).is_ok());
    /// let late = options.check_window(1_700_000_000, 1_700_000_301).unwrap_err();
    /// assert_eq!((late.kind(), late.server_time()), (RejectionKind::TimestampOutOfWindow, Some(1_700_000_301)));
    /// ```
    ///
    /// # Errors
    /// [`RejectionKind::TimestampOutOfWindow`], carrying `now` as
    /// `server_time`.
    pub fn check_window(&self, timestamp: u64, now: u64) -> Result<(), Rejection> {
        if now.abs_diff(timestamp) <= self.window.as_secs() {
            return Ok(());
        }
        Err(Rejection::new(
            RejectionKind::TimestampOutOfWindow,
            "the timestamp is too far from the server's clock; see server_time",
        )
        .with_server_time(now))
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
    /// The window is longer than [`MAX_WINDOW`] (24 h).
    #[error("window of {0:?} is longer than 24 hours")]
    WindowTooLong(Duration),
    /// The clock-skew allowance is longer than [`MAX_WINDOW`] (24 h).
    #[error("clock-skew allowance of {0:?} is longer than 24 hours")]
    SkewAllowanceTooLong(Duration),
}
