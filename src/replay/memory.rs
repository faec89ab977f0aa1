//! The in-memory replay store: the shared index, sized by a memory budget,
//! swept by a thread of the process or by its requests, set up by its one
//! builder.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Once};
use std::time::Duration;

use super::index::{BYTES_PER_ENTRY, Fence, Index};
use super::snapshot::{self, Lease, Memory, Saved, SnapshotError};
use super::store::{ReplayRequest, ReplayStore, ReplayStoreError, Reservation};
use crate::boxed::BoxFuture;

/// How often expired entries are swept out, by the process's sweeping
/// thread.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Slots a sweep looks at under one lock.
const SWEEP_STEP: usize = 4096;

/// Each second the thread sweeps this fraction of every table: every slot
/// is looked at within 16 s.
const SWEEP_PARTS: usize = 16;

/// The default replay store, in this process's memory.
///
/// # What it holds, and why not a cache of nonces
///
/// Membership lives in a compact index: 64 locked open-addressing tables
/// of 64-bit keyed digests of the entries, each with its expiry second (12
/// bytes a slot, at most 7/8 full: **about 37 bytes a request** with both
/// entries at 10 million live requests, BENCHMARKS.md). A cache such as
/// moka keeping each nonce as an entry of its own costs about 740 bytes a
/// request (measured in this crate's first version), and moka groups of
/// digests by expiry second 116: at the full speed of one server (30,000
/// requests a second, each held 361 s) the first needs 8 GiB, this index
/// 400 MiB. Expiry is a sweep, by default by a thread off the request path
/// (one thread for every store of the process): each second it looks at a
/// sixteenth of every table, 4,096 slots per lock, so an expired entry
/// stays at most 16 s and a second costs 1/16 of the tables
/// ([`Sweeping::Requests`] has the requests sweep instead); moka is not
/// used.
///
/// # Capacity, pressure and shares
///
/// The tables never take more than the memory limit (1 GiB by default,
/// [`MemoryReplayStoreBuilder::memory_limit`]): 16 bytes of limit per
/// entry, so 67 million entries, 33 million requests. Sized for a server's
/// full rate × an entry's lifetime (361 s with the defaults) × 2 entries:
/// 1 GiB holds 90,000 requests a second sustained.
///
/// **No key is refused while the store holds less than half its capacity;
/// above that a key is refused (429 `key_quota_exceeded`, with
/// `Retry-After`) only while it holds more than half the capacity divided
/// by the number of keys holding entries.** So a few keys flooding at full
/// speed stop at their share and the other half of the store stays for
/// everyone else: a key holding less than its share is never refused. The
/// cost: a per-key count (a few hundred bytes per key with entries) and,
/// under pressure, 429s for the busiest keys. Past the capacity (which the
/// shares make hard to reach) every new request gets 503
/// `replay_store_full`; a live entry is never dropped to make room.
///
/// # Restarts
///
/// The store's memory begins in the second it is made: requests signed in
/// that second or before (on the layer's clock) are refused with 401
/// `issued_before_restart`, as they may have been accepted by the process
/// before a restart and forgotten (timestamps have one-second resolution,
/// so a restart within the second of a captured request would otherwise
/// let it through). A client whose clock is `d` seconds behind is refused
/// for at most `d + 1` seconds after a start. A graceful restart that
/// hands the memory on through a snapshot refuses no one: see
/// [`MemoryReplayStoreBuilder::restore`]. SECURITY.md says what the fence does not
/// cover; [`MemoryReplayStoreBuilder::memory_since`] is for tests.
///
/// # Settings
///
/// [`new`](Self::new) is the store with every default;
/// [`builder`](Self::builder) sets the memory limit, the per-key limit,
/// the memory's start (or a snapshot to restore) and who sweeps
/// ([`Sweeping`]). A store is never changed once built: clones share one
/// memory, and no setting can swap it for a fresh one.
///
/// ```
/// use armor_psk::{ArmorPskLayer, keys::MemoryKeyStore, replay::{MemoryReplayStore, Sweeping}};
///
/// let store = MemoryReplayStore::builder()
///     .memory_limit(256 << 20)
///     .per_key_limit(1_000_000)
///     .sweeping(Sweeping::Requests) // no thread
///     .build();
/// assert_eq!(store.capacity(), 16_777_216); // entries: 16 bytes of limit each
/// let layer = ArmorPskLayer::new(MemoryKeyStore::new()).with_replay_store(store);
/// ```
///
/// Settings live on the builder only:
///
/// ```compile_fail
/// # use armor_psk::replay::MemoryReplayStore;
/// let store = MemoryReplayStore::new().with_memory_since(None); // no such method
/// ```
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    /// A restored store's running marker, whose ceiling the store raises
    /// before it accepts a later timestamp.
    lease: Option<Lease>,
    sweeping: Sweeping,
    housekeeper: Once,
}

/// Who sweeps a [`MemoryReplayStore`]'s expired entries out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sweeping {
    /// One thread of the process, shared by every store: each second it
    /// looks at a sixteenth of every table, 4,096 slots per lock, off the
    /// request path (the default). Should the thread fail to start, the
    /// requests sweep.
    #[default]
    Thread,
    /// The requests themselves: a reservation sweeps its shard (1/64 of
    /// the entries) when that shard was last swept a second ago or more,
    /// so a request now and then pays for it. For runtimes where a
    /// background thread is unwelcome. A restored store's running marker
    /// is then raised by the requests that pass its ceiling.
    Requests,
}

impl MemoryReplayStore {
    /// The default memory limit of the tables: 1 GiB.
    pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

    /// The default capacity in entries (the default memory limit's).
    pub const DEFAULT_CAPACITY: u64 = Self::DEFAULT_MEMORY_LIMIT / BYTES_PER_ENTRY;

    /// A store with every default: within [`Self::DEFAULT_MEMORY_LIMIT`],
    /// no per-key limit, its memory beginning now, swept by the process's
    /// thread.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, for every setting (and a store restored from a
    /// snapshot).
    pub fn builder() -> MemoryReplayStoreBuilder {
        MemoryReplayStoreBuilder::default()
    }

    fn from_index(index: Index, lease: Option<Lease>, sweeping: Sweeping) -> Self {
        Self {
            inner: Arc::new(Inner {
                index,
                lease,
                sweeping,
                housekeeper: Once::new(),
            }),
        }
    }

    /// Writes the store's live entries, and the shares' counts, to the
    /// snapshot file at `path` (a temporary file synced and renamed over
    /// it), for [`MemoryReplayStoreBuilder::restore`] to read at the next
    /// start. The store then takes no more requests: a request accepted
    /// after it would be missing from the file, so every later one is
    /// answered as unavailable (503). Call it once the server has stopped
    /// accepting and its requests in flight have finished.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] when the file cannot be written; the running
    /// marker the start left then stays, and the next start is fenced.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<Saved, SnapshotError> {
        snapshot::save(&self.inner.index, self.inner.lease.as_ref(), path.as_ref())
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

    /// The most entries one key may hold whatever the pressure
    /// (`u64::MAX`: no such limit).
    pub fn per_key_limit(&self) -> u64 {
        self.inner.index.per_key_limit()
    }

    /// Keys holding entries now.
    pub fn active_keys(&self) -> u64 {
        self.inner.index.active_keys()
    }

    /// Bytes the tables take now (within the memory limit).
    pub fn table_bytes(&self) -> u64 {
        self.inner.index.table_bytes()
    }

    /// When this store's memory began (Unix seconds on the layer's clock),
    /// once a request has told the time; requests signed before are
    /// refused.
    pub fn began(&self) -> Option<u64> {
        self.inner.index.began()
    }

    /// The last second (Unix, on the system clock) whose requests this
    /// store refuses as issued before its start, as known before any
    /// request: the second it was made in, or after a crash the crashed
    /// run's ceiling if later. `None` when the memory is complete (a clean
    /// stop's snapshot, a first start) or its start was given
    /// ([`MemoryReplayStoreBuilder::memory_since`]). A server that
    /// starts serving after this second refuses no client in step.
    pub fn fenced_through(&self) -> Option<u64> {
        self.inner.index.fenced_through_at_start()
    }

    /// Removes every expired entry now, by the latest time a request
    /// brought (it also happens as [`Sweeping`] says).
    pub fn sweep(&self) {
        self.inner.index.sweep_all(SWEEP_STEP);
    }

    fn reserve_now(&self, request: &ReplayRequest<'_>) -> Result<Reservation, ReplayStoreError> {
        let inline_sweep = match self.inner.sweeping {
            Sweeping::Thread => {
                self.inner.start_housekeeping();
                sweeper::inline()
            }
            Sweeping::Requests => true,
        };
        if let Some(lease) = &self.inner.lease {
            let horizon = self.inner.index.horizon_with(request);
            let lifetime = request.lifetime();
            // A timestamp past what the marker promises: a crash after
            // this request is accepted must fence it. One synced write of a
            // small file, rare: the sweeping thread keeps the ceiling ahead
            // of clients in step. One further ahead of the horizon than an
            // entry's lifetime is refused: the layer's clock stepped forward
            // and not yet confirmed (or glitched), and a ceiling through it
            // would refuse everyone after a crash.
            let timestamp = request.timestamp();
            if !lease.covers(timestamp) {
                if timestamp > horizon.saturating_add(lifetime) {
                    return Err(ReplayStoreError::Unavailable(Box::new(Unconfirmed)));
                }
                lease
                    .raise(timestamp.max(horizon).saturating_add(Lease::AHEAD))
                    .map_err(|error| ReplayStoreError::Unavailable(Box::new(error)))?;
            }
        }
        self.inner.index.reserve(request, inline_sweep)
    }
}

impl Inner {
    /// Keeps a restored store's ceiling [`Lease::AHEAD`] seconds ahead of
    /// the horizon (once a second, from the sweeping thread).
    fn keep_lease_ahead(&self) {
        let (Some(lease), horizon) = (&self.lease, self.index.horizon()) else {
            return;
        };
        if horizon == 0 {
            return;
        }
        if let Err(error) = lease.raise(horizon.saturating_add(Lease::AHEAD)) {
            tracing::error!(
                %error,
                "ARMOR-PSK replay store: cannot raise the running marker's ceiling; requests \
                 signed later are refused as unavailable until it can"
            );
        }
    }

    /// Registers the store with the process's sweeping thread the first
    /// time it is used.
    fn start_housekeeping(self: &Arc<Self>) {
        self.housekeeper
            .call_once(|| sweeper::register(Arc::downgrade(self)));
    }
}

/// Why a restored store refuses a request signed far ahead of its clock.
#[derive(Debug, thiserror::Error)]
#[error(
    "signed further ahead of the replay store's confirmed clock than an entry's lifetime: \
     the clock stepped forward, or glitched, and the running marker cannot promise that far"
)]
struct Unconfirmed;

/// One thread sweeps every default store of the process, once a second;
/// it holds them weakly, so a dropped store is forgotten at the next turn.
mod sweeper {
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Once, Weak};

    use super::{HOUSEKEEPING, Inner, SWEEP_PARTS, SWEEP_STEP};

    static STORES: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
    static STARTED: Once = Once::new();
    /// The thread could not be started: requests sweep instead.
    static INLINE: AtomicBool = AtomicBool::new(false);

    pub(super) fn register(store: Weak<Inner>) {
        STORES.lock().push(store);
        STARTED.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("armor-psk-replay-sweep".into())
                .spawn(run);
            if spawned.is_err() {
                INLINE.store(true, Ordering::Relaxed);
            }
        });
    }

    pub(super) fn inline() -> bool {
        INLINE.load(Ordering::Relaxed)
    }

    fn run() {
        loop {
            std::thread::sleep(HOUSEKEEPING);
            let live: Vec<_> = {
                let mut stores = STORES.lock();
                stores.retain(|store| store.strong_count() > 0);
                stores.iter().filter_map(Weak::upgrade).collect()
            };
            for store in live {
                store.keep_lease_ahead();
                store.index.sweep_part(SWEEP_PARTS, SWEEP_STEP);
            }
        }
    }
}

/// Every setting of a [`MemoryReplayStore`], then
/// [`build`](Self::build), or [`restore`](Self::restore) from a snapshot.
///
/// ```
/// use armor_psk::{replay::{Memory, MemoryReplayStore}};
///
/// let dir = std::env::temp_dir().join(format!("armor-psk-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("replay.snapshot");
/// # let _ = std::fs::remove_file(&path);
/// let builder = MemoryReplayStore::builder().memory_limit(64 << 20).per_key_limit(10_000);
///
/// // No file: a first start, nothing fenced.
/// let (store, memory) = builder.clone().restore(&path).unwrap();
/// assert!(matches!(memory, Memory::FirstStart));
/// // One store at a time on a file: a second one is refused while it lives.
/// assert!(builder.clone().restore(&path).is_err());
/// store.save(&path).unwrap();
/// drop(store);
///
/// // A clean stop's snapshot: the memory is complete.
/// let (store, memory) = builder.clone().restore(&path).unwrap();
/// assert!(matches!(memory, Memory::Complete { .. }));
/// drop(store); // not saved: as after a crash
///
/// // Started again without a clean stop: fenced.
/// let (_store, memory) = builder.restore(&path).unwrap();
/// assert!(matches!(memory, Memory::Crashed) && memory.fenced());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryReplayStoreBuilder {
    capacity: u64,
    per_key_limit: u64,
    fence: Fence,
    sweeping: Sweeping,
}

impl Default for MemoryReplayStoreBuilder {
    fn default() -> Self {
        Self {
            capacity: MemoryReplayStore::DEFAULT_CAPACITY,
            per_key_limit: u64::MAX,
            fence: Fence::FromStart,
            sweeping: Sweeping::Thread,
        }
    }
}

impl MemoryReplayStoreBuilder {
    /// The tables never take more than `bytes` (16 bytes of it per entry
    /// of capacity; default 1 GiB).
    #[must_use]
    pub fn memory_limit(self, bytes: u64) -> Self {
        self.capacity(bytes / BYTES_PER_ENTRY)
    }

    /// At most `capacity` entries (two per request with unique nonces).
    #[must_use]
    pub fn capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// At most `limit` entries for any one key, whatever the pressure (by
    /// default none: a key is held to its share only under pressure). A key
    /// over it gets 429 `key_quota_exceeded` with `Retry-After`.
    #[must_use]
    pub fn per_key_limit(mut self, limit: u64) -> Self {
        self.per_key_limit = limit;
        self
    }

    /// Declares that the store's memory began in the second `began` (Unix
    /// seconds on the layer's clock), holding every request accepted after
    /// it: requests signed in that second or before are refused with
    /// `issued_before_restart`, later ones are served. Tests that sign
    /// requests in the past use it. `None` turns the fence off. Ignored by
    /// [`restore`](Self::restore), which reads the memory's start from the
    /// file.
    ///
    /// # Security
    /// With `None`, or a `began` earlier than the store's real start, a
    /// request accepted before a restart can be replayed after it, until
    /// its timestamp leaves the window.
    #[must_use]
    pub fn memory_since(mut self, began: Option<u64>) -> Self {
        self.fence = began.map_or(Fence::Off, Fence::Since);
        self
    }

    /// Who sweeps the expired entries out: the process's thread (the
    /// default) or the requests.
    #[must_use]
    pub fn sweeping(mut self, sweeping: Sweeping) -> Self {
        self.sweeping = sweeping;
        self
    }

    /// The store.
    pub fn build(self) -> MemoryReplayStore {
        let index = Index::new(self.capacity, self.per_key_limit, self.fence);
        MemoryReplayStore::from_index(index, None, self.sweeping)
    }

    /// The store whose memory a clean stop saved to `path` with
    /// [`MemoryReplayStore::save`], and what the file told of it
    /// ([`Memory`]). The file is then replaced by a small running marker,
    /// so that a start after a crash of this process knows its memory is
    /// lost. A missing, truncated, corrupt or foreign file, or one that
    /// does not fit the memory limit, is never trusted: the store's memory
    /// then begins now, and requests signed in this second or before are
    /// refused with `issued_before_restart` ([`Memory::fenced`]). After a
    /// crash the fence reaches the marker's ceiling, the latest timestamp
    /// the crashed run could accept (about 2 s ahead of its clock, or of
    /// its furthest client's): see the `snapshot` module's docs.
    ///
    /// The store holds an exclusive lock on `path` with `.lock` appended
    /// for as long as it lives.
    ///
    /// # Errors
    /// [`SnapshotError::InUse`] when another store holds the lock;
    /// [`SnapshotError::Io`] when the lock or the running marker cannot be
    /// written (a crash of this process could then not be told apart from
    /// a clean stop, so the store must not run). The file is left as it
    /// was.
    pub fn restore(
        self,
        path: impl AsRef<Path>,
    ) -> Result<(MemoryReplayStore, Memory), SnapshotError> {
        let (index, memory, lease) =
            snapshot::restore(path.as_ref(), self.capacity, self.per_key_limit)?;
        Ok((
            MemoryReplayStore::from_index(index, Some(lease), self.sweeping),
            memory,
        ))
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
            .field("capacity", &self.capacity())
            .field("active_keys", &self.active_keys())
            .field("began", &self.began())
            .field("sweeping", &self.inner.sweeping)
            .finish_non_exhaustive()
    }
}

impl ReplayStore for MemoryReplayStore {
    fn reserve<'a>(
        &'a self,
        request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(std::future::ready(self.reserve_now(request)))
    }

    fn reserve_ready(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Option<Result<Reservation, ReplayStoreError>> {
        Some(self.reserve_now(request))
    }

    fn len_hint(&self) -> Option<u64> {
        Some(self.len())
    }

    fn begin(&self, now: u64) {
        self.inner.index.begin(now);
    }
}
