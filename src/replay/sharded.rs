//! The index without a thread: requests sweep it as they go.

use std::fmt;
use std::sync::Arc;

use super::index::{BYTES_PER_ENTRY, Fence, Index};
use super::store::{ReplayRequest, ReplayStore, ReplayStoreError, Reservation};
use crate::boxed::BoxFuture;

/// An in-memory [`ReplayStore`] with no thread of its own: the same index,
/// shares and restart fence as [`MemoryReplayStore`](crate::replay::MemoryReplayStore),
/// its expired entries swept by the requests themselves (a reservation
/// sweeps its shard, 1/64 of the entries, when that shard was last swept a
/// second ago or more), so a request may now and then pay for it. For
/// runtimes where a background thread is unwelcome.
///
/// ```
/// use armor_psk::{ArmorPskLayer, keys::MemoryKeyStore, replay::ShardedReplayStore};
///
/// let layer = ArmorPskLayer::new(MemoryKeyStore::new())
///     .with_replay_store(ShardedReplayStore::with_memory_limit(64 << 20));
/// ```
#[derive(Clone)]
pub struct ShardedReplayStore {
    index: Arc<Index>,
}

impl ShardedReplayStore {
    /// The default memory limit of the tables: 1 GiB.
    pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

    /// The default capacity in entries (the default memory limit's).
    pub const DEFAULT_CAPACITY: u64 = Self::DEFAULT_MEMORY_LIMIT / BYTES_PER_ENTRY;

    /// A store within [`Self::DEFAULT_MEMORY_LIMIT`].
    pub fn new() -> Self {
        Self::with_memory_limit(Self::DEFAULT_MEMORY_LIMIT)
    }

    /// A store whose tables never take more than `bytes` (16 bytes of it
    /// per entry of capacity).
    pub fn with_memory_limit(bytes: u64) -> Self {
        Self::with_capacity(bytes / BYTES_PER_ENTRY)
    }

    /// A store holding at most `capacity` entries.
    pub fn with_capacity(capacity: u64) -> Self {
        Self::build(capacity, u64::MAX, Fence::FromStart)
    }

    /// At most `limit` entries for any one key, whatever the pressure; see
    /// [`MemoryReplayStore::with_per_key_limit`](crate::replay::MemoryReplayStore::with_per_key_limit).
    #[must_use]
    pub fn with_per_key_limit(self, limit: u64) -> Self {
        self.index.set_per_key_limit(limit);
        self
    }

    /// See [`MemoryReplayStore::with_memory_since`](crate::replay::MemoryReplayStore::with_memory_since).
    ///
    /// # Security
    /// With `None`, a request accepted before a restart can be replayed
    /// after it.
    #[must_use]
    pub fn with_memory_since(self, began: Option<u64>) -> Self {
        let fence = began.map_or(Fence::Off, Fence::Since);
        Self::build(self.capacity(), self.per_key_limit(), fence)
    }

    fn build(capacity: u64, per_key_limit: u64, fence: Fence) -> Self {
        Self {
            index: Arc::new(Index::new(capacity, per_key_limit, fence)),
        }
    }

    /// Entries held, including expired ones not yet swept.
    pub fn len(&self) -> u64 {
        self.index.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the store will hold.
    pub fn capacity(&self) -> u64 {
        self.index.capacity()
    }

    /// The most entries one key may hold whatever the pressure.
    pub fn per_key_limit(&self) -> u64 {
        self.index.per_key_limit()
    }

    /// When this store's memory began, once a request has told the time.
    pub fn began(&self) -> Option<u64> {
        self.index.began()
    }

    /// Drops every expired entry now (it also happens as the store is used).
    pub fn sweep(&self) {
        for shard in 0..self.index.shards() {
            self.index.sweep_shard(shard);
        }
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
            .field("began", &self.began())
            .finish_non_exhaustive()
    }
}

impl ReplayStore for ShardedReplayStore {
    fn reserve<'a>(
        &'a self,
        request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(std::future::ready(self.index.reserve(request, true)))
    }

    fn reserve_ready(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Option<Result<Reservation, ReplayStoreError>> {
        Some(self.index.reserve(request, true))
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.len())
    }

    fn begin(&self, now: u64) {
        self.index.begin(now);
    }
}
