//! The [`ReplayStore`] trait: an atomic "reserve" on a store of recently
//! accepted nonces and signatures, its entries and their lifetime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::boxed::{BoxError, BoxFuture};
use crate::protocol::signature::Signature;

/// One entry of the replay store: a (key id, nonce) or a (key id, signature)
/// pair, as bytes: a kind tag, the key id's length (4 bytes, big-endian), the
/// key id, then the nonce or the 64 signature bytes. Two different pairs never
/// give the same bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReplayKey(SmallVec<[u8; INLINE]>);

/// Entries up to this many bytes stay on the stack: a UUID key id with a
/// signature is 105. (A size smallvec supports without its const-generics
/// feature.)
const INLINE: usize = 128;

impl ReplayKey {
    /// The entry for a key's nonce.
    pub fn nonce(key_id: &str, nonce: &str) -> Self {
        Self::build(b'n', key_id, nonce.as_bytes())
    }

    /// The entry for a key's signature: it closes the path/nonce hole, where a
    /// captured signature is resent with a new nonce.
    pub fn signature(key_id: &str, signature: &Signature) -> Self {
        Self::build(b's', key_id, signature.as_bytes())
    }

    fn build(tag: u8, key_id: &str, value: &[u8]) -> Self {
        let key_len = u32::try_from(key_id.len()).unwrap_or(u32::MAX);
        let mut bytes = SmallVec::with_capacity(5 + key_id.len() + value.len());
        bytes.push(tag);
        bytes.extend_from_slice(&key_len.to_be_bytes());
        bytes.extend_from_slice(key_id.as_bytes());
        bytes.extend_from_slice(value);
        Self(bytes)
    }

    /// The key id the entry belongs to.
    pub(crate) fn key_id_bytes(&self) -> &[u8] {
        let len = self.0.get(1..5).map_or(0, |len| {
            u32::from_be_bytes(len.try_into().unwrap_or_default()) as usize
        });
        self.0.get(5..5 + len).unwrap_or_default()
    }

    /// The entry as bytes, for stores that keep binary keys.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The kind and the key id; never the nonce or the signature.
        let kind = if self.0.first() == Some(&b's') {
            "signature"
        } else {
            "nonce"
        };
        f.debug_struct("ReplayKey")
            .field("kind", &kind)
            .field("key_id", &String::from_utf8_lossy(self.key_id_bytes()))
            .finish_non_exhaustive()
    }
}

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// None of the entries existed; all are now held until their expiry.
    Reserved,
    /// At least one entry already existed: the request is a replay.
    Replayed,
}

/// The replay store could not reserve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayStoreError {
    /// The store is at capacity. It refuses rather than forget a live entry
    /// (a forgotten entry is a replay that would be accepted).
    #[error("replay store is full")]
    Full,
    /// This key holds its whole share of the store (its per-key limit):
    /// the layer answers 429 `key_quota_exceeded` with `Retry-After`, and
    /// other keys are still served.
    #[error("this key holds its whole share of the replay store")]
    KeyQuotaExceeded {
        /// When the key's oldest entries leave, about.
        retry_after: Duration,
    },
    /// The store could not be reached or failed; the cause is the
    /// error's [`source`](std::error::Error::source).
    #[error("replay store unavailable")]
    Unavailable(#[source] BoxError),
}

/// A store of recently accepted requests.
///
/// Implementations must make `reserve` atomic per entry: of any number of
/// concurrent reservations of one entry, exactly one may see it absent. They
/// must keep each entry for at least its `ttl`, and never drop a live entry
/// to make room (answer [`ReplayStoreError::Full`] instead).
pub trait ReplayStore: Send + Sync + 'static {
    /// Reserves every entry of `entries` for `ttl`, in order.
    ///
    /// Returns [`Reservation::Reserved`] when none existed, and
    /// [`Reservation::Replayed`] as soon as one did (the entries before it may
    /// stay reserved).
    ///
    /// # Errors
    /// [`ReplayStoreError`] when the store is full or unavailable; the layer
    /// then refuses the request with 503.
    fn reserve<'a>(
        &'a self,
        entries: &'a [ReplayKey],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>>;

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
        entries: &'a [ReplayKey],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        (**self).reserve(entries, ttl)
    }

    fn len_hint(&self) -> Option<u64> {
        (**self).len_hint()
    }
}
