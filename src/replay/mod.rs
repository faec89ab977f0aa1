//! Refusing replays: an atomic "reserve" on a store of recently accepted
//! nonces and signatures, and the stores that implement it.

mod memory;
#[cfg(feature = "redis")]
mod redis;
mod sharded;

use std::fmt;
use std::hash::Hasher as _;
use std::sync::Arc;
use std::time::Duration;

use siphasher::sip128::{Hasher128 as _, SipHasher13};

pub use memory::MemoryReplayStore;
#[cfg(feature = "redis")]
pub use redis::{FailurePolicy, RedisReplayStore, RedisStoreError};
pub use sharded::ShardedReplayStore;

use crate::BoxFuture;
use crate::protocol::signature::Signature;

/// One entry of the replay store: a (key id, nonce) or a (key id, signature)
/// pair, as bytes: a kind tag, the key id's length (4 bytes, big-endian), the
/// key id, then the nonce or the 64 signature bytes. Two different pairs never
/// give the same bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReplayKey(Box<[u8]>);

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
        let mut bytes = Vec::with_capacity(5 + key_id.len() + value.len());
        bytes.push(tag);
        bytes.extend_from_slice(&key_len.to_be_bytes());
        bytes.extend_from_slice(key_id.as_bytes());
        bytes.extend_from_slice(value);
        Self(bytes.into_boxed_slice())
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
        let key_len = self.0.get(1..5).map_or(0, |len| {
            u32::from_be_bytes(len.try_into().unwrap_or_default()) as usize
        });
        let key_id = self.0.get(5..5 + key_len).unwrap_or_default();
        f.debug_struct("ReplayKey")
            .field("kind", &kind)
            .field("key_id", &String::from_utf8_lossy(key_id))
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayStoreError {
    /// The store is at capacity. It refuses rather than forget a live entry
    /// (a forgotten entry is a replay that would be accepted).
    #[error("replay store is full")]
    Full,
    /// The store could not be reached or failed.
    #[error("replay store unavailable: {0}")]
    Unavailable(String),
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

/// How long a request's entries must be kept: until its timestamp leaves the
/// window (`timestamp + window`), plus one second for the clock's rounding,
/// and at least one second.
pub fn replay_ttl(timestamp: u64, now: u64, window: Duration) -> Duration {
    let until = timestamp.saturating_add(window.as_secs()).saturating_add(1);
    Duration::from_secs(until.saturating_sub(now).max(1))
}

/// Turns entries into 128-bit SipHash-1-3 digests under a random key of
/// its own, so that a client cannot craft two entries that collide. The
/// in-memory stores keep digests, not entries.
#[derive(Clone, Copy)]
pub(crate) struct Digester(u64, u64);

impl Digester {
    pub(crate) fn random() -> Self {
        let mut random = [0u8; 16];
        // Should the random generator fail, the key stays fixed: digests
        // become predictable, so a key holder could in principle craft an
        // entry that collides with another request's. A collision can only
        // refuse a request as a replay, never accept one.
        let _ = getrandom::fill(&mut random);
        let (k0, k1) = random.split_at(8);
        let key = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
        Self(key(k0), key(k1))
    }

    pub(crate) fn digest(&self, entry: &ReplayKey) -> u128 {
        let mut hasher = SipHasher13::new_with_keys(self.0, self.1);
        hasher.write(entry.as_bytes());
        hasher.finish128().as_u128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_covers_the_rest_of_the_window() {
        let window = Duration::from_secs(300);
        assert_eq!(replay_ttl(1000, 1000, window), Duration::from_secs(301));
        // Signed 300 s in the future: valid until ts + 300, 600 s from now.
        assert_eq!(replay_ttl(1300, 1000, window), Duration::from_secs(601));
        // Signed 300 s ago: one more second.
        assert_eq!(replay_ttl(700, 1000, window), Duration::from_secs(1));
        assert_eq!(replay_ttl(0, u64::MAX, window), Duration::from_secs(1));
    }
}
