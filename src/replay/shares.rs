//! How many entries each key holds, so that a store under pressure can
//! refuse a key that holds more than its share while serving the others.

use parking_lot::Mutex;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::store::ReplayStoreError;

const KEY_SHARDS: usize = 16;

/// A key's entries are counted in buckets of this many seconds of expiry:
/// a key holds at most `lifetime / BUCKET + 1` buckets (24 for the default
/// 361 s), however fast it sends.
const BUCKET: u32 = 16;

/// One key's held entries, by the bucket in which they expire.
#[derive(Default)]
struct Held {
    entries: u64,
    /// (end of the bucket, entries expiring in it), ends ascending.
    buckets: VecDeque<(u32, u32)>,
}

impl Held {
    /// Forgets the buckets that ended by `now`.
    fn expire(&mut self, now: u32) {
        while let Some(&(end, count)) = self.buckets.front() {
            if end > now {
                break;
            }
            self.entries -= u64::from(count);
            self.buckets.pop_front();
        }
    }

    fn add(&mut self, added: u32, until: u32) {
        let end = until.div_ceil(BUCKET).saturating_mul(BUCKET);
        self.entries += u64::from(added);
        // Nearly always the last bucket or a new one after it.
        let place = self
            .buckets
            .iter()
            .rposition(|&(held, _)| held <= end)
            .map_or(0, |i| i + 1);
        match self.buckets.get_mut(place.wrapping_sub(1)) {
            Some((held, count)) if *held == end => *count += added,
            _ => self.buckets.insert(place, (end, added)),
        }
    }
}

/// What a key may hold at the moment of a reservation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The store holds at least half its capacity.
    pub(crate) under_pressure: bool,
    /// Half the capacity: what the keys share under pressure.
    pub(crate) shared: u64,
    /// The hard limit for one key, whatever the pressure.
    pub(crate) per_key: u64,
}

/// Every key's held entries, in 16 locked maps keyed by the key id's
/// keyed digest (no two keys share a count by accident: 64 bits under a
/// random key).
pub(crate) struct Shares {
    shards: Box<[Mutex<HashMap<u64, Held>>]>,
    /// Keys holding at least one entry.
    active: AtomicU64,
}

impl Shares {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..KEY_SHARDS).map(|_| Mutex::default()).collect(),
            active: AtomicU64::new(0),
        }
    }

    /// Keys holding at least one entry.
    pub(crate) fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts `added` entries expiring at `until` for `key`, unless the key
    /// holds entries and would pass its hard limit, or the store is under
    /// pressure and the key already holds its share: half the capacity
    /// divided by the keys holding entries.
    pub(crate) fn admit(
        &self,
        key: u64,
        added: u32,
        until: u32,
        now: u32,
        limits: Limits,
    ) -> Result<(), ReplayStoreError> {
        let mut shard = self.shards[(key % KEY_SHARDS as u64) as usize].lock();
        // A key is in the map (and counted active) from its first entry
        // until a sweep finds it holding none.
        let held = match shard.entry(key) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(place) => {
                self.active.fetch_add(1, Ordering::Relaxed);
                place.insert(Held::default())
            }
        };
        held.expire(now);
        let holding = held.entries > 0;
        let after = held.entries + u64::from(added);
        // A key holding nothing is always served; under pressure, a key
        // that already holds its share waits.
        let over = holding
            && (after > limits.per_key
                || (limits.under_pressure && {
                    let share = limits.shared / self.active().max(1);
                    held.entries >= share.max(u64::from(added))
                }));
        if over {
            let oldest = held.buckets.front().map_or(now + 1, |&(end, _)| end);
            return Err(ReplayStoreError::KeyQuotaExceeded {
                retry_after: Duration::from_secs(u64::from(oldest.saturating_sub(now).max(1))),
            });
        }
        held.add(added, until);
        Ok(())
    }

    /// Forgets expired buckets in one of the maps, and the keys left with
    /// nothing.
    pub(crate) fn sweep_shard(&self, shard: usize, now: u32) {
        let mut map = self.shards[shard % KEY_SHARDS].lock();
        let before = map.len();
        map.retain(|_, held| {
            held.expire(now);
            held.entries > 0
        });
        let gone = before - map.len();
        self.active.fetch_sub(gone as u64, Ordering::Relaxed);
    }

    pub(crate) fn shards(&self) -> usize {
        KEY_SHARDS
    }

    /// Visits every key's buckets (end, entries), ends ascending.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(u64, &[(u32, u32)])) {
        for shard in self.shards.iter() {
            let shard = shard.lock();
            for (&key, held) in shard.iter() {
                let (front, back) = held.buckets.as_slices();
                let buckets: Vec<(u32, u32)> = front.iter().chain(back).copied().collect();
                visit(key, &buckets);
            }
        }
    }

    /// A key's buckets read back from a snapshot, ends ascending.
    pub(crate) fn restore(&self, key: u64, buckets: &[(u32, u32)]) {
        let mut shard = self.shards[(key % KEY_SHARDS as u64) as usize].lock();
        let held = match shard.entry(key) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(place) => {
                self.active.fetch_add(1, Ordering::Relaxed);
                place.insert(Held::default())
            }
        };
        for &(end, count) in buckets {
            held.add(count, end);
        }
    }

    /// The entries `key` holds (tests).
    #[cfg(test)]
    pub(crate) fn held(&self, key: u64, now: u32) -> u64 {
        let mut shard = self.shards[(key % KEY_SHARDS as u64) as usize].lock();
        shard.get_mut(&key).map_or(0, |held| {
            held.expire(now);
            held.entries
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALM: Limits = Limits {
        under_pressure: false,
        shared: 1000,
        per_key: u64::MAX,
    };
    const PRESSED: Limits = Limits {
        under_pressure: true,
        ..CALM
    };

    #[test]
    fn a_key_is_refused_only_under_pressure_and_over_its_share() {
        let shares = Shares::new();
        for _ in 0..600 {
            shares.admit(1, 2, 100, 0, CALM).unwrap();
        }
        assert_eq!(shares.held(1, 0), 1200);
        // Alone under pressure, key 1 holds more than the 1000 shared.
        assert!(matches!(
            shares.admit(1, 2, 100, 0, PRESSED),
            Err(ReplayStoreError::KeyQuotaExceeded { .. })
        ));
        // A new key is served, and keeps being served up to its share
        // (1000 / 2 keys).
        for _ in 0..250 {
            shares.admit(2, 2, 100, 0, PRESSED).unwrap();
        }
        assert_eq!(shares.held(2, 0), 500);
        assert!(shares.admit(2, 2, 100, 0, PRESSED).is_err());
        assert_eq!(shares.active(), 2);
    }

    #[test]
    fn entries_leave_with_their_bucket_and_keys_with_their_entries() {
        let shares = Shares::new();
        shares.admit(1, 2, 10, 0, CALM).unwrap();
        shares.admit(1, 2, 40, 0, CALM).unwrap();
        shares.admit(1, 2, 20, 0, CALM).unwrap();
        assert_eq!(shares.held(1, 15), 6, "buckets end at 16, 32 and 48");
        assert_eq!(shares.held(1, 16), 4);
        assert_eq!(shares.held(1, 32), 2);
        for shard in 0..shares.shards() {
            shares.sweep_shard(shard, 48);
        }
        assert_eq!(shares.held(1, 48), 0);
        assert_eq!(shares.active(), 0);
    }

    #[test]
    fn retry_after_names_the_oldest_bucket() {
        let shares = Shares::new();
        let tight = Limits { per_key: 2, ..CALM };
        shares.admit(1, 2, 30, 0, tight).unwrap();
        let Err(ReplayStoreError::KeyQuotaExceeded { retry_after }) =
            shares.admit(1, 2, 30, 5, tight)
        else {
            panic!("not refused");
        };
        assert_eq!(retry_after, Duration::from_secs(27));
    }
}

#[cfg(test)]
mod counting {
    use super::*;

    const CALM: Limits = Limits {
        under_pressure: false,
        shared: 1000,
        per_key: u64::MAX,
    };

    #[test]
    fn a_key_is_counted_active_once_whatever_expires() {
        let shares = Shares::new();
        shares.admit(1, 2, 10, 0, CALM).unwrap();
        // Its entries expired before its next request: still one key.
        shares.admit(1, 2, 100, 50, CALM).unwrap();
        shares.admit(2, 2, 100, 50, CALM).unwrap();
        assert_eq!(shares.active(), 2);
        for shard in 0..shares.shards() {
            shares.sweep_shard(shard, 200);
        }
        assert_eq!(shares.active(), 0);
        // A refused key stays counted until swept, and only once.
        let tight = Limits { per_key: 2, ..CALM };
        shares.admit(3, 2, 300, 200, tight).unwrap();
        assert!(shares.admit(3, 2, 300, 200, tight).is_err());
        assert!(shares.admit(3, 2, 300, 200, tight).is_err());
        assert_eq!(shares.active(), 1);
        for shard in 0..shares.shards() {
            shares.sweep_shard(shard, 400);
        }
        assert_eq!(shares.active(), 0);
    }

    #[test]
    fn a_hard_limit_below_one_request_still_lets_one_through() {
        let shares = Shares::new();
        let one = Limits { per_key: 1, ..CALM };
        shares.admit(1, 2, 300, 0, one).unwrap();
        assert!(shares.admit(1, 2, 300, 0, one).is_err());
    }
}
