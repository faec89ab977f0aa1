//! The [`ReplayStore`] trait, the [`ReplayRequest`] the layer hands every
//! store, and what a reservation answers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::boxed::{BoxError, BoxFuture};
use crate::protocol::rejection::{Rejection, RejectionKind};
use crate::protocol::signature::Signature;

/// One verified request's claim on a replay store: who signed it, its
/// signature and (with unique nonces) its nonce, its timestamp, the
/// server's time when it was verified, and when its entries may go.
///
/// The layer builds it once per accepted request and every store reads it
/// the same way: the signature entry first, then the nonce entry. Times are
/// Unix seconds on the layer's [`Clock`](crate::Clock), so a test that
/// moves a [`ManualClock`](crate::ManualClock) moves the stores' expiry and
/// restart fence with it.
///
/// ```
/// use std::time::Duration;
/// use armor_psk::{replay::ReplayRequest, protocol::Signature};
///
/// let signature = Signature::from_bytes([7; 64]);
/// let request = ReplayRequest::new("key-1", &signature, 1_000, 1_002, Duration::from_secs(361))
///     .with_nonce("9f0c2d1e-0b6a-4a43-9d1c-2f6b1f8a7c55");
/// assert_eq!(request.expires_at(), 1_362); // timestamp + lifetime + 1
/// assert_eq!(request.ttl(), Duration::from_secs(360));
/// assert_eq!(request.entries().len(), 2);
/// ```
#[derive(Clone, Copy)]
pub struct ReplayRequest<'a> {
    key_id: &'a str,
    signature: &'a Signature,
    nonce: Option<&'a str>,
    timestamp: u64,
    now: u64,
    expires_at: u64,
    monotonic: Option<Duration>,
}

impl<'a> ReplayRequest<'a> {
    /// A request signed by `key_id` with `signature` at `timestamp`,
    /// verified at `now`, whose entries must be kept for `lifetime` past
    /// its timestamp (the window plus the clock-skew allowance). It holds
    /// its signature only; add the nonce with [`with_nonce`](Self::with_nonce).
    pub fn new(
        key_id: &'a str,
        signature: &'a Signature,
        timestamp: u64,
        now: u64,
        lifetime: Duration,
    ) -> Self {
        let expires_at = timestamp
            .saturating_add(lifetime.as_secs())
            .saturating_add(1)
            .max(now.saturating_add(1));
        Self {
            key_id,
            signature,
            nonce: None,
            timestamp,
            now,
            expires_at,
            monotonic: None,
        }
    }

    /// The layer's clock's [monotonic](crate::Clock::monotonic) reading
    /// when it read `now`. The in-memory store expires entries by `now`
    /// only as far as this confirms it (a step of the wall clock forward
    /// is believed once it has lasted an entry's lifetime), so one glitch
    /// cannot make them forget. Without it, the process's monotonic clock
    /// read at the reservation.
    #[must_use]
    pub fn with_monotonic(mut self, monotonic: Duration) -> Self {
        self.monotonic = Some(monotonic);
        self
    }

    /// The monotonic reading given with
    /// [`with_monotonic`](Self::with_monotonic), if one was.
    pub fn monotonic(&self) -> Option<Duration> {
        self.monotonic
    }

    /// Also holds the nonce, so that a key reusing it on another request
    /// is refused.
    #[must_use]
    pub fn with_nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The key id that signed the request.
    pub fn key_id(&self) -> &'a str {
        self.key_id
    }

    /// The request's signature.
    pub fn signature(&self) -> &'a Signature {
        self.signature
    }

    /// The nonce, when nonces are held too.
    pub fn nonce(&self) -> Option<&'a str> {
        self.nonce
    }

    /// The request's timestamp (Unix seconds, as signed).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The server's time when the request was verified (Unix seconds).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The first second (Unix) at which the entries may be gone: past it
    /// the request is out of the window, allowance included.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Seconds from the timestamp to [`expires_at`](Self::expires_at): the
    /// window and the skew allowance, an entry's lifetime.
    pub(crate) fn lifetime(&self) -> u64 {
        self.expires_at.saturating_sub(self.timestamp)
    }

    /// How long from `now` the entries must be kept (at least 1 s).
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(self.now).max(1))
    }

    /// How many entries the request holds: 1 or 2.
    pub fn len(&self) -> usize {
        1 + usize::from(self.nonce.is_some())
    }

    /// Never: a request always holds its signature.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The entries as bytes, signature first, for stores that keep binary
    /// keys ([`ReplayKey`]).
    pub fn entries(&self) -> SmallVec<[ReplayKey; 2]> {
        let mut entries = SmallVec::new();
        entries.push(ReplayKey::signature(self.key_id, self.signature));
        if let Some(nonce) = self.nonce {
            entries.push(ReplayKey::nonce(self.key_id, nonce));
        }
        entries
    }
}

impl fmt::Debug for ReplayRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the signature or the nonce.
        f.debug_struct("ReplayRequest")
            .field("key_id", &self.key_id)
            .field("nonce", &self.nonce.is_some())
            .field("timestamp", &self.timestamp)
            .field("now", &self.now)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One entry of a replay store as bytes: a (key id, nonce) or a (key id,
/// signature) pair: a kind tag, the key id's length (4 bytes, big-endian),
/// the key id, then the nonce or the 64 signature bytes. Two different
/// pairs never give the same bytes. The Redis store's keys are these bytes
/// behind its prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReplayKey(SmallVec<[u8; INLINE]>);

/// Entries up to this many bytes stay on the stack: a UUID key id with a
/// signature is 105. (A size smallvec supports without its const-generics
/// feature.)
const INLINE: usize = 128;

/// The kind tags.
pub(crate) const NONCE_TAG: u8 = b'n';
pub(crate) const SIGNATURE_TAG: u8 = b's';

impl ReplayKey {
    /// The entry for a key's nonce.
    pub fn nonce(key_id: &str, nonce: &str) -> Self {
        Self::build(NONCE_TAG, key_id, nonce.as_bytes())
    }

    /// The entry for a key's signature: it closes the path/nonce hole, where a
    /// captured signature is resent with a new nonce.
    pub fn signature(key_id: &str, signature: &Signature) -> Self {
        Self::build(SIGNATURE_TAG, key_id, signature.as_bytes())
    }

    fn build(tag: u8, key_id: &str, value: &[u8]) -> Self {
        let mut bytes = SmallVec::with_capacity(5 + key_id.len() + value.len());
        bytes.push(tag);
        bytes.extend_from_slice(&key_id_len(key_id));
        bytes.extend_from_slice(key_id.as_bytes());
        bytes.extend_from_slice(value);
        Self(bytes)
    }

    /// The entry as bytes, for stores that keep binary keys.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key id, as [`build`](Self::build) wrote it: a tag byte, four
    /// bytes of length, the key id.
    fn key_id(&self) -> &[u8] {
        let len: [u8; 4] = self.0[1..5]
            .try_into()
            .expect("build writes four length bytes after the tag");
        &self.0[5..5 + u32::from_be_bytes(len) as usize]
    }
}

/// A key id's length as the entries encode it. Key ids are at most 256
/// bytes (the header parser's limit), so the length always fits.
pub(crate) fn key_id_len(key_id: &str) -> [u8; 4] {
    u32::try_from(key_id.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The kind and the key id; never the nonce or the signature.
        let kind = if self.0.first() == Some(&SIGNATURE_TAG) {
            "signature"
        } else {
            "nonce"
        };
        f.debug_struct("ReplayKey")
            .field("kind", &kind)
            .field("key_id", &String::from_utf8_lossy(self.key_id()))
            .finish_non_exhaustive()
    }
}

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reservation {
    /// None of the entries existed; all are now held until they expire.
    Reserved,
    /// At least one entry already existed: the request is a replay.
    Replayed,
    /// The request was signed before the store's memory began (the
    /// process started, or Redis lost its data): it may have been accepted
    /// before and forgotten, so it is refused (401
    /// `issued_before_restart`). Requests signed since are served.
    IssuedBeforeRestart {
        /// When the store's memory began (Unix seconds, the layer's clock).
        began: u64,
    },
}

/// The replay store could not reserve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayStoreError {
    /// The store is at capacity. It refuses rather than forget a live entry
    /// (a forgotten entry is a replay that would be accepted).
    #[error("replay store is full")]
    Full,
    /// The store is under pressure and this key holds more than its share:
    /// the layer answers 429 `key_quota_exceeded` with `Retry-After`, and
    /// other keys are still served.
    #[error("this key holds more than its share of the replay store")]
    KeyQuotaExceeded {
        /// When the key's oldest entries leave, about.
        retry_after: Duration,
    },
    /// The store could not be reached or failed; the cause is the
    /// error's [`source`](std::error::Error::source).
    #[error("replay store unavailable")]
    Unavailable(#[source] BoxError),
}

/// The refusal a reservation's outcome makes, with what the client is
/// told (`None`: reserved, serve it). A store's own failure is logged here
/// with its cause; the client gets a fixed message.
pub(crate) fn refusal(
    outcome: Result<Reservation, ReplayStoreError>,
    key_id: &str,
) -> Option<Rejection> {
    let refused = Rejection::new;
    Some(match outcome {
        Ok(Reservation::Reserved) => return None,
        Ok(Reservation::IssuedBeforeRestart { .. }) => refused(
            RejectionKind::IssuedBeforeRestart,
            "this request was signed before the server's replay memory began (a restart); sign it again",
        ),
        Ok(Reservation::Replayed) => refused(
            RejectionKind::ReplayedRequest,
            "this nonce or signature was already used",
        ),
        Err(ReplayStoreError::Full) => refused(
            RejectionKind::ReplayStoreFull,
            "the replay store is full; try again later",
        ),
        Err(ReplayStoreError::KeyQuotaExceeded { retry_after }) => refused(
            RejectionKind::KeyQuotaExceeded,
            "this key has too many requests in flight within the window; try again later",
        )
        .with_retry_after(retry_after.as_secs().max(1)),
        Err(error) => {
            tracing::warn!(
                key_id,
                error = &error as &dyn std::error::Error,
                "ARMOR-PSK replay store failed"
            );
            refused(
                RejectionKind::ReplayStoreUnavailable,
                "the replay store is unavailable",
            )
        }
    })
}

/// A store of recently accepted requests.
///
/// Implementations must make `reserve` atomic per entry: of any number of
/// concurrent reservations of one entry, exactly one may see it absent. They
/// must keep each entry until the request's
/// [`expires_at`](ReplayRequest::expires_at), and never drop a live entry
/// to make room (answer [`ReplayStoreError::Full`] instead). A store whose
/// memory can be lost (a restart, a Redis without persistence) answers
/// [`Reservation::IssuedBeforeRestart`] for requests signed before its
/// memory began.
pub trait ReplayStore: Send + Sync + 'static {
    /// Reserves the request's entries, signature first.
    ///
    /// Returns [`Reservation::Reserved`] when none existed, and
    /// [`Reservation::Replayed`] when one did.
    ///
    /// # Errors
    /// [`ReplayStoreError`] when the store is full, the key over its share,
    /// or the store unavailable; the layer then refuses the request (503,
    /// or 429 for the share).
    fn reserve<'a>(
        &'a self,
        request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>>;

    /// The reservation, made at once, by a store that never waits (one in
    /// memory); the layer then skips [`reserve`](Self::reserve)'s future.
    /// `None` (the default): the store has to wait, call `reserve`.
    ///
    /// A store that answers here must answer as `reserve` would.
    ///
    /// # Errors
    /// As [`reserve`](Self::reserve).
    fn reserve_ready(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Option<Result<Reservation, ReplayStoreError>> {
        let _ = request;
        None
    }

    /// Told by the layer, as it makes its service, what the layer's clock
    /// reads: a store whose memory begins when it is made takes the first
    /// such time as its start when that clock is not the system's (a
    /// test's). The default does nothing.
    fn begin(&self, now: u64) {
        let _ = now;
    }

    /// About how many entries the store holds, if it can tell cheaply
    /// (reported as the `armor_psk_replay_store_entries` gauge). `None` by
    /// default.
    fn len_hint(&self) -> Option<u64> {
        None
    }
}

impl<R: ReplayStore> ReplayStore for Arc<R> {
    fn reserve<'a>(
        &'a self,
        request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        (**self).reserve(request)
    }

    fn reserve_ready(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Option<Result<Reservation, ReplayStoreError>> {
        (**self).reserve_ready(request)
    }

    fn begin(&self, now: u64) {
        (**self).begin(now);
    }

    fn len_hint(&self) -> Option<u64> {
        (**self).len_hint()
    }
}
