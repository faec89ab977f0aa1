//! Refusing replays: an atomic "reserve" on a store of recently accepted
//! nonces and signatures, with an in-memory store on moka.

use std::fmt;
use std::hash::Hasher as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use siphasher::sip128::{Hasher128 as _, SipHasher13};

use crate::key_store::BoxFuture;
use crate::signature::Signature;

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

/// The default replay store: a moka cache of 128-bit digests of the entries,
/// each expiring on its own when the window no longer accepts its request.
///
/// It never forgets a live entry to make room (moka's size-bounded policy
/// may decline new entries, and each declined one would be an accepted
/// replay): the cache is unbounded, and the store refuses new reservations
/// with [`ReplayStoreError::Full`] once it holds `capacity` entries.
///
/// Entries are SipHash-1-3 128-bit digests under a random key of this
/// store's own, so a client cannot craft two entries that collide, and the
/// chance of an accidental collision among a billion entries is below
/// 10⁻²⁰. A digest costs a few tens of nanoseconds; moka's bookkeeping is the
/// rest (see BENCHMARKS.md).
///
/// Size it as peak accepted requests per second × entries per request (two
/// with unique nonces, one without) × the time an entry lives (up to twice
/// the window).
#[derive(Clone)]
pub struct MemoryReplayStore {
    cache: Cache<u128, u32>,
    digester: Digester,
    capacity: u64,
    /// When `len_hint` last brought moka's count up to date, in
    /// milliseconds since `created`.
    last_count: Arc<AtomicU64>,
    created: Instant,
}

impl MemoryReplayStore {
    /// The default capacity in entries.
    pub const DEFAULT_CAPACITY: u64 = 1_000_000;

    /// A store holding at most [`Self::DEFAULT_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` entries (checked against moka's
    /// entry count, which may trail the last few hundred insertions: the
    /// bound is approximate by that much, never a reason to forget).
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            cache: Cache::builder().expire_after(TtlExpiry).build(),
            digester: Digester::random(),
            capacity,
            last_count: Arc::default(),
            created: Instant::now(),
        }
    }

    /// Entries held, including expired ones not yet swept. It first runs
    /// moka's pending maintenance so that the latest insertions are counted:
    /// meant for tests and gauges, not for every request.
    pub fn len(&self) -> u64 {
        self.sweep();
        self.cache.entry_count()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the store will hold.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Sweeps expired entries and brings [`len`](Self::len) up to date (it
    /// also happens as the store is used).
    pub fn sweep(&self) {
        self.cache.run_pending_tasks();
    }

    fn has_room(&self) -> bool {
        // moka's count trails the latest insertions (by its pending write
        // log, a few hundred at most) and still holds expired entries. Far
        // from the capacity that does not matter; near it, bring the count
        // up to date before deciding.
        const NEAR: u64 = 4096;
        if self.cache.entry_count().saturating_add(NEAR) < self.capacity {
            return true;
        }
        self.sweep();
        self.cache.entry_count() < self.capacity
    }

    fn reserve_all(
        &self,
        entries: &[ReplayKey],
        ttl: Duration,
    ) -> Result<Reservation, ReplayStoreError> {
        let ttl_ms = u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX).max(1);
        for entry in entries {
            let digest = self.digester.digest(entry);
            if !self.has_room() {
                // Full, but a replay of a held entry is still told apart.
                if self.cache.contains_key(&digest) {
                    return Ok(Reservation::Replayed);
                }
                return Err(ReplayStoreError::Full);
            }
            let fresh = self.cache.entry(digest).or_insert(ttl_ms).is_fresh();
            if !fresh {
                return Ok(Reservation::Replayed);
            }
        }
        Ok(Reservation::Reserved)
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ReplayStore for MemoryReplayStore {
    fn reserve<'a>(
        &'a self,
        entries: &'a [ReplayKey],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(std::future::ready(self.reserve_all(entries, ttl)))
    }

    /// moka's entry count, brought up to date at most once a second (its
    /// pending maintenance run then): it may trail by that second.
    fn len_hint(&self) -> Option<u64> {
        // 0: never counted yet.
        let now = u64::try_from(self.created.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let last = self.last_count.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 1_000)
            && self
                .last_count
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep();
        }
        Some(self.cache.entry_count())
    }
}

/// Each entry expires after the ttl it was stored with (milliseconds);
/// reads and updates do not extend it.
struct TtlExpiry;

impl moka::Expiry<u128, u32> for TtlExpiry {
    fn expire_after_create(&self, _: &u128, ttl_ms: &u32, _: Instant) -> Option<Duration> {
        Some(Duration::from_millis(u64::from(*ttl_ms)))
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
