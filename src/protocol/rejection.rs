//! Why a request was refused: a value with a machine-readable kind.

use std::borrow::Cow;
use std::fmt;

use http::StatusCode;

use super::ids::Ids;

/// The reason a request was refused. Each kind has a stable machine-readable
/// [`code`](Self::code) (the `error` field of the JSON body) and an HTTP
/// [`status`](Self::status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// The request target is not a path starting with `/` (authority form
    /// `host:port`, or `*` unless allowed), so there is no path to check the
    /// signature against. 401.
    MalformedRequest,
    /// No `Authorization` header. 401.
    MissingAuthorization,
    /// The header does not follow `ARMOR-PSK key_id:signature:nonce:timestamp`
    /// (wrong scheme, field count, empty field, bad base64, non-ASCII,
    /// several headers). 401.
    MalformedAuthorization,
    /// The nonce is empty, longer than 128 characters, or not of the
    /// configured [`NonceFormat`](crate::protocol::NonceFormat). 401.
    InvalidNonce,
    /// The timestamp is not canonical decimal digits fitting in a `u64`. 401.
    InvalidTimestamp,
    /// The signature is valid but the timestamp is too far from the server's
    /// clock. 401; the body carries `server_time`.
    TimestampOutOfWindow,
    /// The signature does not match, or the key id is unknown (the two are
    /// indistinguishable on purpose). 401.
    InvalidSignature,
    /// The nonce or the signature was already accepted within the window. 401.
    ReplayedRequest,
    /// The request was signed before the replay store's memory began (the
    /// server or its Redis restarted): it may have been accepted before and
    /// forgotten. A request signed again is served. 401.
    IssuedBeforeRestart,
    /// The body is larger than the configured limit. 413.
    BodyTooLarge,
    /// The body could not be read from the connection. 400.
    InvalidBody,
    /// The key store failed. 503.
    KeyStoreUnavailable,
    /// The replay store failed. 503.
    ReplayStoreUnavailable,
    /// The replay store is at capacity and refuses to forget a live entry. 503.
    ReplayStoreFull,
    /// The key holds its whole share of the replay store; other keys are
    /// still served. 429, with `Retry-After`.
    KeyQuotaExceeded,
}

impl RejectionKind {
    /// The machine-readable code, as sent in the `error` field.
    pub const fn code(self) -> &'static str {
        match self {
            Self::MalformedRequest => "malformed_request",
            Self::MissingAuthorization => "missing_authorization",
            Self::MalformedAuthorization => "malformed_authorization",
            Self::InvalidNonce => "invalid_nonce",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::TimestampOutOfWindow => "timestamp_out_of_window",
            Self::InvalidSignature => "invalid_signature",
            Self::ReplayedRequest => "replayed_request",
            Self::IssuedBeforeRestart => "issued_before_restart",
            Self::BodyTooLarge => "body_too_large",
            Self::InvalidBody => "invalid_body",
            Self::KeyStoreUnavailable => "key_store_unavailable",
            Self::ReplayStoreUnavailable => "replay_store_unavailable",
            Self::ReplayStoreFull => "replay_store_full",
            Self::KeyQuotaExceeded => "key_quota_exceeded",
        }
    }

    /// The HTTP status of the rejection.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidBody => StatusCode::BAD_REQUEST,
            Self::KeyQuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::KeyStoreUnavailable | Self::ReplayStoreUnavailable | Self::ReplayStoreFull => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// Every kind, for tables and tests (a slice: a new kind does not
    /// change its type).
    pub const ALL: &'static [RejectionKind] = &[
        Self::MalformedRequest,
        Self::MissingAuthorization,
        Self::MalformedAuthorization,
        Self::InvalidNonce,
        Self::InvalidTimestamp,
        Self::TimestampOutOfWindow,
        Self::InvalidSignature,
        Self::ReplayedRequest,
        Self::IssuedBeforeRestart,
        Self::BodyTooLarge,
        Self::InvalidBody,
        Self::KeyStoreUnavailable,
        Self::ReplayStoreUnavailable,
        Self::ReplayStoreFull,
        Self::KeyQuotaExceeded,
    ];
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refused request: its [`RejectionKind`], a human-readable message and,
/// for [`RejectionKind::TimestampOutOfWindow`], the server's time.
///
/// The layer attaches it to the response's extensions, so outer layers and
/// tests can read why a request was refused. It never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    message: Cow<'static, str>,
    server_time: Option<u64>,
    retry_after: Option<u64>,
    ids: Option<Ids>,
}

impl Rejection {
    /// A rejection of `kind` with a human-readable `message`.
    pub fn new(kind: RejectionKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            server_time: None,
            retry_after: None,
            ids: None,
        }
    }

    pub(crate) fn with_server_time(mut self, now: u64) -> Self {
        self.server_time = Some(now);
        self
    }

    /// Tells the client when to try again (`Retry-After`, in seconds).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// When the client may try again, in seconds, if the rejection says.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The key id (and nonce) the request claimed, shared, not copied.
    pub(crate) fn with_ids(mut self, ids: &Ids) -> Self {
        self.ids = Some(ids.clone());
        self
    }

    /// Why the request was refused.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// Shorthand for `self.kind().code()`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// Shorthand for `self.kind().status()`.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The human-readable explanation (the `Message` field of the JSON body,
    /// see [`to_json`](Self::to_json)).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server's clock (Unix seconds), set when the timestamp was out of
    /// the window so a client can correct its clock.
    pub fn server_time(&self) -> Option<u64> {
        self.server_time
    }

    /// The key id the request claimed, once the header was parsed. It is not
    /// proof of anything: for an invalid signature it is whatever the client
    /// sent.
    pub fn key_id(&self) -> Option<&str> {
        self.ids.as_ref().map(Ids::key_id)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for Rejection {}
