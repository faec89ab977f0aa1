//! The default replay store: the shared index, with moka expiring whole
//! groups of entries (one moka entry per second of expiry).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

use ::moka::notification::RemovalCause;
use ::moka::sync::Cache;

use super::index::{Index, lock};
use super::store::{ReplayKey, ReplayStore, ReplayStoreError, Reservation};
use crate::boxed::BoxFuture;

/// How often expired groups are swept out, by a thread of the store's own.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// The default replay store: an index of 96-bit entry digests (64
/// mutex-guarded hash tables, 20 bytes a slot) whose expiry moka schedules
/// by the group: every entry that expires in the same second is in one
/// moka entry, so moka holds a few hundred entries whatever the request
/// rate, and each request costs two map inserts and a push onto its
/// second's group. moka's housekeeping, and the removal of an expired
/// second's entries, run on a thread of the store's own, once a second,
/// off the request path.
///
/// It never forgets a live entry to make room: at `capacity` entries it
/// refuses new reservations with [`ReplayStoreError::Full`] (503), and a
/// replay of a held entry is still told apart. No key may hold more than
/// its share (`with_per_key_limit`, half the capacity by default): a key
/// over it gets 429 `key_quota_exceeded` while other keys are served.
///
/// Entries are 96 bits of SipHash-1-3 digests under a random key of this
/// store's own, so a client cannot craft two entries that collide, and the
/// chance of an accidental collision among ten million entries is below
/// 10⁻¹⁴ (a collision could only refuse a request as a replay). Expiry is counted on a monotonic clock from the time each
/// request was accepted; the layer's lifetimes include the clock-skew
/// allowance.
///
/// Size it as peak accepted requests per second × entries per request (two
/// with unique nonces, one without) × the time an entry lives (up to twice
/// the window plus the allowance). About 100 bytes a request
/// (BENCHMARKS.md).
///
/// ```
/// use armor_psk::{ArmorPskLayer, MemoryKeyStore, MemoryReplayStore};
///
/// let store = MemoryReplayStore::with_capacity(4_000_000).with_per_key_limit(500_000);
/// let layer = ArmorPskLayer::new(MemoryKeyStore::new()).with_replay_store(store);
/// ```
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    index: Index,
    /// Second of expiry → the digests that expire in it.
    groups: Cache<u32, Arc<Group>>,
    /// Groups moka expired, waiting for their entries' removal.
    expired: Arc<Mutex<Vec<Arc<Group>>>>,
    /// The group used last: most requests of a second share it.
    recent: Mutex<Option<Arc<Group>>>,
    housekeeper: Once,
    /// With no housekeeping thread, the second of the last inline run.
    inline_housekeeping: AtomicU32,
}

struct Group {
    until: u32,
    expires: Instant,
    /// The first word of each digest (enough to find it again).
    words: Mutex<Vec<u64>>,
}

/// Each group expires at its second.
struct GroupExpiry;

impl ::moka::Expiry<u32, Arc<Group>> for GroupExpiry {
    fn expire_after_create(&self, _: &u32, group: &Arc<Group>, now: Instant) -> Option<Duration> {
        Some(group.expires.saturating_duration_since(now))
    }
}

impl MemoryReplayStore {
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
    /// capacity); a key over it gets 429 `key_quota_exceeded` with
    /// `Retry-After`, and the others keep being served.
    #[must_use]
    pub fn with_per_key_limit(self, limit: u64) -> Self {
        Self::build(self.capacity(), limit)
    }

    fn build(capacity: u64, per_key_limit: u64) -> Self {
        let expired: Arc<Mutex<Vec<Arc<Group>>>> = Arc::default();
        let queue = Arc::clone(&expired);
        let groups = Cache::builder()
            .expire_after(GroupExpiry)
            .eviction_listener(move |_, group, cause| {
                if cause == RemovalCause::Expired {
                    lock(&queue).push(group);
                }
            })
            .build();
        Self {
            inner: Arc::new(Inner {
                index: Index::new(capacity, per_key_limit),
                groups,
                expired,
                recent: Mutex::new(None),
                housekeeper: Once::new(),
                inline_housekeeping: AtomicU32::new(0),
            }),
        }
    }

    /// Entries held, including expired ones not yet removed.
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

    /// Removes every expired group's entries now (it also happens once a
    /// second on the store's own thread).
    pub fn sweep(&self) {
        self.inner.housekeep();
    }

    fn reserve_now(
        &self,
        entries: &[ReplayKey],
        ttl: Duration,
    ) -> Result<Reservation, ReplayStoreError> {
        let inner = &self.inner;
        inner.start_housekeeping();
        let index = &inner.index;
        let request = index.digest(entries);
        let until = index.until(ttl);
        let reservation = index.reserve(&request, until)?;
        if reservation == Reservation::Reserved {
            let group = inner.group(until);
            let mut words = lock(&group.words);
            if words.capacity() - words.len() < request.digests.len() {
                // Grow by at most 4096 words: a busy second wastes little.
                let step = words.capacity().clamp(16, 4096);
                words.reserve_exact(step.max(request.digests.len()));
            }
            words.extend(request.digests.iter().map(|digest| digest.word()));
        }
        Ok(reservation)
    }
}

impl Inner {
    /// The group of the second `until`, made on first use.
    fn group(&self, until: u32) -> Arc<Group> {
        let mut recent = lock(&self.recent);
        if let Some(group) = recent.as_ref().filter(|group| group.until == until) {
            return Arc::clone(group);
        }
        let expires = self.index.created() + Duration::from_secs(u64::from(until) + 1);
        let group = self.groups.get_with(until, || {
            Arc::new(Group {
                until,
                expires,
                words: Mutex::default(),
            })
        });
        *recent = Some(Arc::clone(&group));
        group
    }

    /// Runs moka's pending work (which queues expired groups) and removes
    /// the queued groups' entries from the index.
    fn housekeep(&self) {
        self.groups.run_pending_tasks();
        let expired = std::mem::take(&mut *lock(&self.expired));
        for group in expired {
            let words = std::mem::take(&mut *lock(&group.words));
            self.index.remove_expired(&words);
        }
    }

    /// Starts the housekeeping thread the first time the store is used;
    /// without one (it could not be spawned), housekeeps inline once a
    /// second.
    fn start_housekeeping(self: &Arc<Self>) {
        self.housekeeper.call_once(|| {
            let store: Weak<Inner> = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("armor-psk-replay-store".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(HOUSEKEEPING);
                        let Some(store) = store.upgrade() else {
                            return;
                        };
                        store.housekeep();
                    }
                })
                .is_ok();
            if !spawned {
                self.inline_housekeeping.store(1, Ordering::Relaxed);
            }
        });
        let last = self.inline_housekeeping.load(Ordering::Relaxed);
        if last != 0 {
            let now = self.index.now().max(2);
            if now > last
                && self
                    .inline_housekeeping
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.housekeep();
            }
        }
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
            .field("per_key_limit", &self.per_key_limit())
            .finish()
    }
}

impl ReplayStore for MemoryReplayStore {
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
