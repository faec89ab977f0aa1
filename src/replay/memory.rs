//! The default replay store: moka, one entry per digest.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::moka::sync::Cache;

use super::digest::Digester;
use super::store::{ReplayKey, ReplayStore, ReplayStoreError, Reservation};
use crate::boxed::BoxFuture;

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
    /// moka's `entry().or_insert()` let two of 100 concurrent reservations
    /// of one digest both see it fresh in about one run in 15: each
    /// reservation holds its digest's stripe of these locks.
    stripes: Arc<[Mutex<()>]>,
    digester: Digester,
    capacity: u64,
    /// When `len_hint` last brought moka's count up to date, in
    /// milliseconds since `created`.
    last_count: Arc<AtomicU64>,
    created: Instant,
}

const STRIPES: usize = 64;

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
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
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
            let stripe = &self.stripes[(digest >> 64) as usize % STRIPES];
            let _held = stripe.lock().unwrap_or_else(PoisonError::into_inner);
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
