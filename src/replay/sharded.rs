//! A replay store on plain sharded hash maps, swept as it is used.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::index::Index;
use super::store::{ReplayKey, ReplayStore, ReplayStoreError, Reservation};
use crate::boxed::BoxFuture;

/// An in-memory [`ReplayStore`] on 64 mutex-guarded hash tables of 96-bit
/// entry digests, each with its expiry: the same index as
/// [`MemoryReplayStore`](crate::MemoryReplayStore), without moka. Expired
/// entries are dropped by a sweep of one shard (1/64 of the entries) that
/// a reservation runs when that shard was last swept a second ago or more,
/// so a request may now and then pay for it.
///
/// Like every store of the crate it never forgets a live entry (at
/// `capacity` it answers [`ReplayStoreError::Full`]), holds each key to its
/// share (`with_per_key_limit`), and reserves a request's entries all or
/// none.
///
/// ```
/// use armor_psk::{ArmorPskLayer, MemoryKeyStore, ShardedReplayStore};
///
/// let layer = ArmorPskLayer::new(MemoryKeyStore::new())
///     .with_replay_store(ShardedReplayStore::with_capacity(2_000_000));
/// ```
#[derive(Clone)]
pub struct ShardedReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    /// Per shard, the second of its last sweep.
    swept: Box<[AtomicU32]>,
}

impl ShardedReplayStore {
    /// The default capacity in entries.
    pub const DEFAULT_CAPACITY: u64 = 1_000_000;

    /// A store holding at most [`Self::DEFAULT_CAPACITY`] entries.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A store holding at most `capacity` entries, half of them at most for
    /// any one key.
    pub fn with_capacity(capacity: u64) -> Self {
        Self::build(capacity, capacity / 2)
    }

    /// At most `limit` entries for any one key (default: half the
    /// capacity); a key over it gets 429 `key_quota_exceeded`.
    #[must_use]
    pub fn with_per_key_limit(self, limit: u64) -> Self {
        Self::build(self.capacity(), limit)
    }

    fn build(capacity: u64, per_key_limit: u64) -> Self {
        let index = Index::new(capacity, per_key_limit);
        let swept = (0..index.shards()).map(|_| AtomicU32::new(0)).collect();
        Self {
            inner: Arc::new(Inner { index, swept }),
        }
    }

    /// Entries held, including expired ones not yet swept.
    pub fn len(&self) -> u64 {
        self.inner.index.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the store will hold.
    pub fn capacity(&self) -> u64 {
        self.inner.index.capacity()
    }

    /// The most entries one key may hold.
    pub fn per_key_limit(&self) -> u64 {
        self.inner.index.per_key_limit()
    }

    /// Drops every expired entry now (it also happens as the store is used).
    pub fn sweep(&self) {
        for shard in 0..self.inner.index.shards() {
            self.inner.index.sweep_shard(shard);
        }
    }

    fn reserve_now(
        &self,
        entries: &[ReplayKey],
        ttl: Duration,
    ) -> Result<Reservation, ReplayStoreError> {
        let index = &self.inner.index;
        let request = index.digest(entries);
        let now = index.now();
        if let Some(first) = request.digests.first() {
            let shard = first.shard();
            let swept = &self.inner.swept[shard];
            let last = swept.load(Ordering::Relaxed);
            if now > last
                && swept
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                index.sweep_shard(shard);
            }
        }
        index.reserve(&request, index.until(ttl))
    }
}

impl Default for ShardedReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ShardedReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedReplayStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("per_key_limit", &self.per_key_limit())
            .finish()
    }
}

impl ReplayStore for ShardedReplayStore {
    fn reserve<'a>(
        &'a self,
        entries: &'a [ReplayKey],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(std::future::ready(self.reserve_now(entries, ttl)))
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.len())
    }
}
