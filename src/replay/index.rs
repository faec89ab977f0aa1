//! The in-memory stores' index: 64 mutex-guarded hash maps from an entry's
//! digest to its expiry and its key, a count of entries per key, and the
//! all-or-nothing reservation both in-memory stores share. When entries
//! leave is each store's own business (a sweep, or moka's groups).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;
use smallvec::SmallVec;

use super::digest::Digester;
use super::store::{ReplayKey, ReplayStoreError, Reservation};

const SHARDS: usize = 64;
const KEY_SHARDS: usize = 16;

/// 96 bits of an entry's digest, as three 32-bit words: a table slot
/// (digest, expiry and key) then takes 20 bytes. Two of a few million
/// entries share 96 bits with a chance below 10⁻¹⁶, and a collision can only
/// refuse a request as a replay. The first 64 bits alone name the entry's
/// shard and its place in the shard's table: keyed SipHash output is
/// uniform already, and clients cannot aim at it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Digest([u32; 3]);

impl Digest {
    fn new(digest: u128) -> Self {
        Self([digest as u32, (digest >> 32) as u32, (digest >> 64) as u32])
    }

    pub(crate) fn shard(self) -> usize {
        shard_of(self.word())
    }

    /// The first 64 bits, which an expiry group keeps to find the entry
    /// again.
    pub(crate) fn word(self) -> u64 {
        u64::from(self.0[0]) | u64::from(self.0[1]) << 32
    }
}

fn shard_of(word: u64) -> usize {
    (word % SHARDS as u64) as usize
}

/// The table hash of a first word: its shard's bits rotated out of the
/// low end, so that every bucket of a shard's table is used.
fn table_hash(word: u64) -> u64 {
    word.rotate_right(SHARDS.trailing_zeros())
}

/// What the index keeps per digest.
#[derive(Clone, Copy, Debug)]
struct Slot {
    digest: Digest,
    /// Seconds since the store was made after which the entry is gone.
    until: u32,
    /// The key the entry belongs to (a digest of its key id).
    key: u32,
}

type Map = HashTable<Slot>;

/// How many entries a key holds, and the earliest expiry among them (a
/// lower bound: it is not raised when that entry leaves).
#[derive(Clone, Copy)]
struct KeyCount {
    entries: u32,
    earliest: u32,
}

/// The index. `now` is the store's own monotonic clock in whole seconds.
pub(crate) struct Index {
    shards: Box<[Mutex<Map>]>,
    keys: Box<[Mutex<HashMap<u32, KeyCount>>]>,
    digester: Digester,
    capacity: u64,
    per_key_limit: u64,
    len: AtomicU64,
    created: Instant,
}

/// A request's entries, digested, with the shard of each.
pub(crate) struct Request {
    pub(crate) digests: SmallVec<[Digest; 2]>,
    key: u32,
}

impl Index {
    pub(crate) fn new(capacity: u64, per_key_limit: u64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            keys: (0..KEY_SHARDS).map(|_| Mutex::default()).collect(),
            digester: Digester::random(),
            capacity,
            per_key_limit,
            len: AtomicU64::new(0),
            created: Instant::now(),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn per_key_limit(&self) -> u64 {
        self.per_key_limit
    }

    /// When the index was made: its clock's zero.
    pub(crate) fn created(&self) -> Instant {
        self.created
    }

    /// Seconds since the index was made.
    pub(crate) fn now(&self) -> u32 {
        u32::try_from(self.created.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// The second after which an entry reserved now for `ttl` is gone
    /// (rounded up: never sooner than `ttl`).
    pub(crate) fn until(&self, ttl: Duration) -> u32 {
        let elapsed = self.created.elapsed() + ttl;
        let seconds = elapsed.as_secs() + u64::from(elapsed.subsec_nanos() > 0);
        u32::try_from(seconds).unwrap_or(u32::MAX)
    }

    pub(crate) fn digest(&self, entries: &[ReplayKey]) -> Request {
        let key = entries
            .first()
            .map_or(0, |entry| key_tag(entry.key_id_bytes()));
        let digests = entries
            .iter()
            .map(|entry| {
                let digest = self.digester.digest(entry);
                Digest::new(digest)
            })
            .collect();
        Request { digests, key }
    }

    /// Reserves all of a request's digests until `until`, or none: a live
    /// one makes it a replay; a key at its limit, a quota error; a full
    /// index, [`ReplayStoreError::Full`]. Shards are locked in ascending
    /// order, so two reservations never wait on each other in a cycle.
    pub(crate) fn reserve(
        &self,
        request: &Request,
        until: u32,
    ) -> Result<Reservation, ReplayStoreError> {
        let now = self.now();
        let mut order: SmallVec<[usize; 2]> = request.digests.iter().map(|d| d.shard()).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: SmallVec<[MutexGuard<'_, Map>; 2]> = order
            .iter()
            .map(|&shard| lock(&self.shards[shard]))
            .collect();
        let guard_of = |digest: &Digest| order.binary_search(&digest.shard()).unwrap_or_default();

        // One probe per digest: reserve as we go, and take this request's
        // slots back if a digest turns out live, the index full, or the key
        // over its share.
        let mut placed: SmallVec<[Digest; 2]> = SmallVec::new();
        let mut refusal = None;
        for (i, digest) in request.digests.iter().enumerate() {
            let slot = Slot {
                digest: *digest,
                until,
                key: request.key,
            };
            let map = &mut guards[guard_of(digest)];
            match map.entry(
                table_hash(digest.word()),
                |held| held.digest == *digest,
                |held| table_hash(held.digest.word()),
            ) {
                TableEntry::Occupied(held) if held.get().until > now => {
                    refusal = Some(Ok(Reservation::Replayed));
                }
                // Expired but not yet removed: its key lets it go.
                TableEntry::Occupied(mut held) => {
                    let old = std::mem::replace(held.get_mut(), slot);
                    self.uncount_key(old.key, 1);
                    placed.push(*digest);
                }
                TableEntry::Vacant(_) if self.len() >= self.capacity => {
                    // Full, but a replay of a held entry is still told apart.
                    let live = request.digests[i + 1..].iter().any(|later| {
                        guards[guard_of(later)]
                            .find(table_hash(later.word()), |held| held.digest == *later)
                            .is_some_and(|held| held.until > now)
                    });
                    refusal = Some(if live {
                        Ok(Reservation::Replayed)
                    } else {
                        Err(ReplayStoreError::Full)
                    });
                }
                TableEntry::Vacant(place) => {
                    place.insert(slot);
                    self.len.fetch_add(1, Ordering::Relaxed);
                    placed.push(*digest);
                }
            }
            if refusal.is_some() {
                break;
            }
        }
        let refusal = refusal.or_else(|| {
            let added = request.digests.len() as u64;
            self.count_key(request.key, added, until, now)
                .err()
                .map(Err)
        });
        let Some(refusal) = refusal else {
            return Ok(Reservation::Reserved);
        };
        for digest in &placed {
            let map = &mut guards[guard_of(digest)];
            if let Ok(held) =
                map.find_entry(table_hash(digest.word()), |held| held.digest == *digest)
            {
                held.remove();
            }
        }
        self.len.fetch_sub(placed.len() as u64, Ordering::Relaxed);
        refusal
    }

    /// Adds `added` entries to `key`'s count, unless that passes the limit.
    fn count_key(
        &self,
        key: u32,
        added: u64,
        until: u32,
        now: u32,
    ) -> Result<(), ReplayStoreError> {
        let mut keys = lock(&self.keys[key as usize % KEY_SHARDS]);
        let count = keys.entry(key).or_insert(KeyCount {
            entries: 0,
            earliest: u32::MAX,
        });
        if u64::from(count.entries) + added > self.per_key_limit {
            let retry_after = count.earliest.saturating_sub(now).max(1);
            return Err(ReplayStoreError::KeyQuotaExceeded {
                retry_after: Duration::from_secs(u64::from(retry_after)),
            });
        }
        count.entries += added as u32;
        count.earliest = count.earliest.min(until);
        Ok(())
    }

    /// Takes entries off their keys' counts, one lock per key.
    fn uncount_keys(&self, keys: impl IntoIterator<Item = u32>) {
        let mut tally: HashMap<u32, u32> = HashMap::new();
        for key in keys {
            *tally.entry(key).or_default() += 1;
        }
        for (key, removed) in tally {
            self.uncount_key(key, removed);
        }
    }

    fn uncount_key(&self, key: u32, removed: u32) {
        let mut keys = lock(&self.keys[key as usize % KEY_SHARDS]);
        if let Entry::Occupied(mut count) = keys.entry(key) {
            let left = count.get().entries.saturating_sub(removed);
            if left == 0 {
                count.remove();
            } else {
                count.get_mut().entries = left;
            }
        }
    }

    /// Removes the expired entries among those named by their first 64
    /// bits (a live one was reserved again since, and stays).
    pub(crate) fn remove_expired(&self, words: &[u64]) {
        let now = self.now();
        let mut removed = Vec::new();
        for &word in words {
            let mut shard = lock(&self.shards[shard_of(word)]);
            if let Ok(held) = shard.find_entry(table_hash(word), |slot| {
                slot.digest.word() == word && slot.until <= now
            }) {
                removed.push(held.get().key);
                held.remove();
            }
        }
        self.len.fetch_sub(removed.len() as u64, Ordering::Relaxed);
        self.uncount_keys(removed);
    }

    /// Drops every expired entry of shard `shard`.
    pub(crate) fn sweep_shard(&self, shard: usize) {
        let now = self.now();
        let mut removed: Vec<u32> = Vec::new();
        lock(&self.shards[shard]).retain(|slot| {
            let live = slot.until > now;
            if !live {
                removed.push(slot.key);
            }
            live
        });
        self.len.fetch_sub(removed.len() as u64, Ordering::Relaxed);
        self.uncount_keys(removed);
    }

    pub(crate) fn shards(&self) -> usize {
        SHARDS
    }
}

/// A 32-bit tag of a key id, for counting a key's entries (FNV-1a). Key ids
/// that reach the store signed with their key's secret, so nobody chooses
/// them to collide; two keys that share a tag share a count, nothing more.
fn key_tag(key_id: &[u8]) -> u32 {
    key_id.iter().fold(0x811c_9dc5u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// A poisoned shard is still consistent: no code path panics between a
/// check and its insert.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
