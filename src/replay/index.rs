//! The in-memory store's index: 64 locked [`Table`]s of 64-bit entry
//! digests and their expiry, the per-key [`Shares`], the restart fence, and
//! the all-or-nothing reservation. Who sweeps expired entries out is the
//! store's setting (`Sweeping`: the process's thread, or the requests).

use parking_lot::{Mutex, MutexGuard};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::digest::Digester;
use super::horizon::Horizon;
use super::shares::{Limits, Shares};
use super::store::{NONCE_TAG, ReplayRequest, ReplayStoreError, Reservation, SIGNATURE_TAG};
use super::table::{Found, SLOT_BYTES, Table};

/// About how many entries a shard holds when the index is full. A shard's
/// table grows under its lock, rehashing all it holds (about 20 ns an
/// entry) while the requests that reach it wait, and a worker thread with
/// them: the more the index holds, the more shards it has, so that one
/// growth stays short. With 64 shards, 10 million requests grew tables of
/// 312,000 entries, up to 4.8 ms each; with 1,024, 20,000 entries, 0.3 ms.
const ENTRIES_PER_SHARD: u64 = 1 << 16;
const MIN_SHARDS: usize = 64;
const MAX_SHARDS: usize = 1024;

/// The shards for an index of `capacity` entries: a power of two, so that
/// a digest's shard is its low bits (its slot in the shard comes from its
/// high bits).
fn shard_count(capacity: u64) -> usize {
    usize::try_from(capacity / ENTRIES_PER_SHARD)
        .unwrap_or(usize::MAX)
        .clamp(MIN_SHARDS, MAX_SHARDS)
        .next_power_of_two()
}

/// Bytes of memory limit counted per entry of capacity: a table is at most
/// 7/8 full before it grows (13.7 bytes an entry), and shards fill
/// unevenly, so the capacity leaves them room.
pub(crate) const BYTES_PER_ENTRY: u64 = 16;

/// Entries' times are kept as seconds from a base this far before the
/// first time the index saw, so that 32 bits cover them.
const BASE_MARGIN: u64 = 1 << 31;

/// What the first request tells the index: where its 32-bit scale of
/// seconds starts, and when its memory began (Unix seconds).
#[derive(Debug, Clone, Copy)]
struct Start {
    base: u64,
    began: u64,
}

/// Whether, and from when, requests signed earlier are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fence {
    /// From when the store was made (on the layer's clock).
    FromStart,
    /// From this Unix second.
    Since(u64),
    /// Never (the store's memory is known complete).
    Off,
}

/// The index.
pub(crate) struct Index {
    shards: Box<[Mutex<Table>]>,
    shares: Shares,
    digester: Digester,
    capacity: u64,
    per_key_limit: u64,
    len: AtomicU64,
    created: Instant,
    /// The Unix second the index was made in, by the system clock.
    created_wall: u64,
    fence: Fence,
    /// With [`Fence::FromStart`], the fence begins no earlier than this
    /// second (the ceiling of a run that crashed).
    floor: u64,
    /// The scale's base and the fence's start, from the first request.
    start: OnceLock<Start>,
    /// What sweeps expire by: the layer's clock as far as its monotonic
    /// clock confirms it.
    horizon: Horizon,
    /// Per shard, the Unix second of its last inline sweep.
    swept: Box<[AtomicU64]>,
    /// The Unix second of the last sweep of everything made by a request.
    swept_all: AtomicU64,
    /// Per shard, where the next partial sweep starts.
    cursors: Box<[AtomicUsize]>,
    /// The layer's clock when the layer was made (0: not told), the
    /// store's start on a clock that is not the system's.
    begun: AtomicU64,
    /// Saved to a snapshot: no reservation is made any more (it would be
    /// lost).
    closed: AtomicBool,
}

impl Index {
    /// An index for `capacity` entries, its tables never larger than
    /// `capacity` × [`BYTES_PER_ENTRY`] bytes in all.
    pub(crate) fn new(capacity: u64, per_key_limit: u64, fence: Fence) -> Self {
        Self::with_digester(capacity, per_key_limit, fence, Digester::random())
    }

    /// An index to read a snapshot back into: its digests were made under
    /// `digester`, its times are on the scale that starts at `base`, and
    /// its memory began as `fence` says.
    pub(crate) fn restoring(
        capacity: u64,
        per_key_limit: u64,
        fence: Fence,
        digester: Digester,
        base: u64,
    ) -> Self {
        let index = Self::with_digester(capacity, per_key_limit, fence, digester);
        let began = match fence {
            Fence::Since(began) => began,
            Fence::FromStart | Fence::Off => 0,
        };
        let _ = index.start.set(Start { base, began });
        index
    }

    fn with_digester(capacity: u64, per_key_limit: u64, fence: Fence, digester: Digester) -> Self {
        let bytes = capacity.saturating_mul(BYTES_PER_ENTRY);
        let shards = shard_count(capacity);
        let max_slots = usize::try_from(bytes / SLOT_BYTES / shards as u64).unwrap_or(usize::MAX);
        Self {
            shards: (0..shards)
                .map(|_| Mutex::new(Table::new(max_slots)))
                .collect(),
            shares: Shares::new(),
            digester,
            capacity,
            per_key_limit,
            len: AtomicU64::new(0),
            created: Instant::now(),
            created_wall: unix_seconds(),
            fence,
            floor: 0,
            start: OnceLock::new(),
            horizon: Horizon::new(),
            swept: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            swept_all: AtomicU64::new(0),
            cursors: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            closed: AtomicBool::new(false),
            begun: AtomicU64::new(0),
        }
    }

    /// With [`Fence::FromStart`], refuses as issued before the restart
    /// every request signed in `second` or before, too.
    pub(crate) fn fenced_through(mut self, second: u64) -> Self {
        self.floor = second;
        self
    }

    /// The horizon: the layer's clock as far as its monotonic clock
    /// confirms it (0 before the first request).
    pub(crate) fn horizon(&self) -> u64 {
        self.horizon.now()
    }

    /// The horizon once `request` has told its time.
    pub(crate) fn horizon_with(&self, request: &ReplayRequest<'_>) -> u64 {
        self.observe(request);
        self.horizon.now()
    }

    /// What the layer's clock read when the layer was made (the first
    /// time it tells).
    pub(crate) fn begin(&self, now: u64) {
        let _ = self
            .begun
            .compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// What a snapshot must know to read the digests back: the digester,
    /// the scale's base (`None` before the first request: nothing held),
    /// and when the memory began (`None`: the fence is off).
    pub(crate) fn identity(&self) -> (Digester, Option<u64>, Option<u64>) {
        let began = match self.fence {
            Fence::Off => None,
            Fence::Since(began) => Some(began),
            // Before any request, the second the store was made in.
            Fence::FromStart => Some(
                self.began()
                    .unwrap_or_else(|| self.created_wall.max(self.floor)),
            ),
        };
        (
            self.digester,
            self.start.get().map(|start| start.base),
            began,
        )
    }

    /// Refuses every reservation from now on (answered as unavailable).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Visits each shard's live entries (digest, expiry on the scale),
    /// one shard locked at a time. Call after [`close`](Self::close): a
    /// reservation made meanwhile would be missed.
    pub(crate) fn for_each_entry(&self, mut visit: impl FnMut(u64, u32)) {
        let now = self.scaled(self.horizon.now());
        for shard in self.shards.iter() {
            shard.lock().for_each(|digest, until| {
                if until > now {
                    visit(digest, until);
                }
            });
        }
    }

    /// Visits every key's share buckets.
    pub(crate) fn for_each_share(&self, visit: impl FnMut(u64, &[(u32, u32)])) {
        self.shares.for_each(visit);
    }

    /// Holds an entry read back from a snapshot; `false` when it does not
    /// fit (the memory limit was lowered).
    pub(crate) fn restore_entry(&self, digest: u64, until: u32) -> bool {
        let mut table = self.shards[self.shard_of(digest)].lock();
        if self.len() >= self.capacity {
            return false;
        }
        match table.restore(digest, until) {
            Some(inserted) => {
                self.len.fetch_add(u64::from(inserted), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Sizes every shard for `entries` about to be read back from a
    /// snapshot (spread evenly, with a margin for the spread).
    pub(crate) fn make_room_for(&self, entries: u64) {
        let per_shard = entries / self.shards.len() as u64;
        let margin = per_shard / 16 + 64;
        let per_shard = usize::try_from(per_shard + margin).unwrap_or(usize::MAX);
        for shard in &self.shards {
            shard.lock().make_room_for(per_shard);
        }
    }

    /// A key's share buckets read back from a snapshot.
    pub(crate) fn restore_share(&self, key: u64, buckets: &[(u32, u32)]) {
        self.shares.restore(key, buckets);
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

    /// Keys holding entries.
    pub(crate) fn active_keys(&self) -> u64 {
        self.shares.active()
    }

    /// A digest's shard: its low bits.
    fn shard_of(&self, digest: u64) -> usize {
        (digest as usize) & (self.shards.len() - 1)
    }

    /// Bytes the tables take now.
    pub(crate) fn table_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.lock().slots() as u64 * SLOT_BYTES)
            .sum()
    }

    /// With [`Fence::FromStart`], the last second (on the system clock)
    /// whose requests are refused, as known before any request: the second
    /// the index was made in, or a crashed run's ceiling if later.
    pub(crate) fn fenced_through_at_start(&self) -> Option<u64> {
        (self.fence == Fence::FromStart).then(|| self.created_wall.max(self.floor))
    }

    /// When the memory began, once a request has told the time.
    pub(crate) fn began(&self) -> Option<u64> {
        match self.fence {
            Fence::Since(began) => Some(began),
            Fence::FromStart => self.start.get().map(|start| start.began),
            Fence::Off => None,
        }
    }

    /// Learns the time from a request: the scale's base and the fence's
    /// start the first time (every other thread waits for them), the
    /// horizon always.
    fn observe(&self, request: &ReplayRequest<'_>) -> Start {
        let now = request.now();
        let start = *self.start.get_or_init(|| Start {
            base: now.saturating_sub(BASE_MARGIN),
            began: match self.fence {
                // The second the store was made in, on the layer's clock.
                Fence::FromStart => began(
                    now,
                    self.created.elapsed(),
                    self.created_wall,
                    unix_seconds(),
                    self.begun.load(Ordering::Relaxed),
                )
                .max(self.floor),
                Fence::Since(began) => began,
                Fence::Off => 0,
            },
        });
        self.horizon.observe_request(request);
        start
    }

    /// A Unix second on the index's 32-bit scale (0 before the first
    /// request).
    fn scaled(&self, time: u64) -> u32 {
        let base = self.start.get().map_or(u64::MAX, |start| start.base);
        u32::try_from(time.saturating_sub(base)).unwrap_or(u32::MAX)
    }

    /// Reserves all of a request's digests, or none: a live one makes it a
    /// replay; a key over its share, a quota error; a full index,
    /// [`ReplayStoreError::Full`]. Shards are locked in ascending order, so
    /// two reservations never wait on each other in a cycle.
    ///
    /// With `inline_sweep`, the shard of the request's first digest is
    /// swept first when it was last swept a second ago or more.
    pub(crate) fn reserve(
        &self,
        request: &ReplayRequest<'_>,
        inline_sweep: bool,
    ) -> Result<Reservation, ReplayStoreError> {
        let start = self.observe(request);
        // Signed in the second the memory began, or before: it may have
        // been accepted in that second by the process that forgot it.
        let fenced = match self.fence {
            Fence::Off => None,
            _ => Some(start.began).filter(|&began| request.timestamp() <= began),
        };
        let now = self.scaled(request.now());
        let until = self.scaled(request.expires_at());
        let key_id = request.key_id();
        let mut digests: SmallVec<[u64; 2]> = SmallVec::new();
        digests.push(
            self.digester
                .entry(SIGNATURE_TAG, key_id, request.signature().as_bytes()),
        );
        if let Some(nonce) = request.nonce() {
            digests.push(self.digester.entry(NONCE_TAG, key_id, nonce.as_bytes()));
        }
        let shard_of = |digest: u64| self.shard_of(digest);
        let second = self.horizon.now();
        if inline_sweep {
            self.sweep_if_due(shard_of(digests[0]), second);
        }
        if self.len() >= self.capacity {
            // Expired entries may still take the room: sweep them out now
            // (at most once a second) rather than refuse.
            self.sweep_all_if_due(second);
        }
        let mut order: SmallVec<[usize; 2]> = digests.iter().map(|&d| shard_of(d)).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: SmallVec<[MutexGuard<'_, Table>; 2]> = order
            .iter()
            .map(|&shard| self.shards[shard].lock())
            .collect();
        // Checked under the shards' locks: a snapshot being saved sets it
        // before it locks any shard, so no reservation it misses is made.
        if self.closed.load(Ordering::SeqCst) {
            return Err(ReplayStoreError::Unavailable(Box::new(Closed)));
        }
        // `order` holds every digest's shard: the search always succeeds.
        let guard_of = |digest: u64| order.partition_point(|&shard| shard < shard_of(digest));
        for &digest in &digests {
            guards[guard_of(digest)].touch(digest);
        }

        // One probe per digest: reserve as we go, and take this request's
        // digests back if one turns out live, the index full, or the key
        // over its share.
        let full = self.len() >= self.capacity;
        let mut placed: SmallVec<[u64; 2]> = SmallVec::new();
        let mut added = 0;
        let mut refusal = None;
        for (i, &digest) in digests.iter().enumerate() {
            let table = &mut guards[guard_of(digest)];
            let found = table.reserve(digest, until, now, !full);
            match found {
                Found::Live => refusal = Some(Ok(Reservation::Replayed)),
                Found::Renewed => placed.push(digest),
                Found::Inserted => {
                    placed.push(digest);
                    added += 1;
                }
                Found::NoRoom => {
                    // Full, but a replay of a held entry is still told apart.
                    let live = digests[i + 1..]
                        .iter()
                        .any(|&later| guards[guard_of(later)].is_live(later, now));
                    refusal = Some(if live {
                        Ok(Reservation::Replayed)
                    } else {
                        Err(ReplayStoreError::Full)
                    });
                }
            }
            if refusal.is_some() {
                break;
            }
        }
        // Signed before the memory began, and not a replay of what it holds.
        let refusal =
            refusal.or_else(|| fenced.map(|began| Ok(Reservation::IssuedBeforeRestart { began })));
        let refusal = refusal.or_else(|| {
            let limits = Limits {
                under_pressure: self.len() + added >= self.capacity / 2,
                shared: self.capacity / 2,
                per_key: self.per_key_limit(),
            };
            let key = self.digester.key(key_id);
            let count = digests.len() as u32;
            self.shares
                .admit(key, count, until, now, limits)
                .err()
                .map(Err)
        });
        let Some(refusal) = refusal else {
            self.len.fetch_add(added, Ordering::Relaxed);
            return Ok(Reservation::Reserved);
        };
        for &digest in &placed {
            guards[guard_of(digest)].remove(digest);
        }
        // Renewed slots were counted before and are gone now.
        let renewed = placed.len() as u64 - added;
        self.len.fetch_sub(renewed, Ordering::Relaxed);
        refusal
    }

    /// Removes the expired entries of slots `from..to` of shard `shard`,
    /// by the horizon; returns the slots the shard has.
    pub(crate) fn sweep(&self, shard: usize, from: usize, to: usize) -> usize {
        let now = self.scaled(self.horizon.now());
        let mut table = self.shards[shard].lock();
        let removed = table.sweep(from, to, now);
        self.len.fetch_sub(removed as u64, Ordering::Relaxed);
        if to >= table.slots() {
            table.shrink_if_sparse();
        }
        table.slots()
    }

    /// Sweeps `shard` unless it was swept this second (of the horizon)
    /// already.
    fn sweep_if_due(&self, shard: usize, now: u64) {
        let swept = &self.swept[shard];
        let last = swept.load(Ordering::Relaxed);
        if now != last
            && swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep_shard(shard);
        }
    }

    /// Sweeps everything unless that was done this second already.
    fn sweep_all_if_due(&self, now: u64) {
        let last = self.swept_all.load(Ordering::Relaxed);
        if now != last
            && self
                .swept_all
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep_all(4096);
        }
    }

    /// Sweeps a whole shard, and its share of the per-key counts.
    pub(crate) fn sweep_shard(&self, shard: usize) {
        self.sweep(shard, 0, usize::MAX);
        if shard < self.shares.shards() {
            let now = self.scaled(self.horizon.now());
            self.shares.sweep_shard(shard, now);
        }
    }

    /// Sweeps every shard in steps of `step` slots, one lock at a time.
    pub(crate) fn sweep_all(&self, step: usize) {
        for shard in 0..self.shards.len() {
            let mut from = 0;
            loop {
                let slots = self.sweep(shard, from, from + step);
                from += step;
                if from >= slots {
                    break;
                }
            }
        }
        let now = self.scaled(self.horizon.now());
        for shard in 0..self.shares.shards() {
            self.shares.sweep_shard(shard, now);
        }
    }

    /// Sweeps one `parts`-th of every shard, going on from where the last
    /// partial sweep stopped, in steps of `step` slots (one lock each),
    /// and every per-key count. Called once a second with `parts` = 16,
    /// every slot is looked at every 16 seconds: an expired entry stays at
    /// most that long, and a second costs 1/16 of the tables, not all.
    pub(crate) fn sweep_part(&self, parts: usize, step: usize) {
        for (shard, cursor) in self.cursors.iter().enumerate() {
            let slots = self.shards[shard].lock().slots();
            let share = slots.div_ceil(parts);
            let mut from = cursor.load(Ordering::Relaxed) % slots;
            let end = from + share;
            while from < end {
                let to = (from + step).min(end);
                let slots = self.sweep(shard, from, to);
                from = to;
                if from >= slots {
                    from = 0;
                    break;
                }
            }
            cursor.store(from, Ordering::Relaxed);
        }
        let now = self.scaled(self.horizon.now());
        for shard in 0..self.shares.shards() {
            self.shares.sweep_shard(shard, now);
        }
    }
}

/// Why a saved store answers no more: what it would reserve now would be
/// missing from the snapshot.
#[derive(Debug, thiserror::Error)]
#[error("the replay store was saved to its snapshot and takes no more requests")]
pub(crate) struct Closed;

/// The Unix second now, by the system clock (0 before 1970).
pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The second a store began in, on the layer's clock that reads `now` at
/// its first request, `elapsed` after the store was made.
///
/// When the layer's clock is the system's (they agree within a second),
/// the second the system clock read when the store was made: exact, so a
/// request signed after the start is never fenced and one signed in an
/// earlier second always is. (`now − elapsed` in whole seconds is not: a
/// start at x.9 first served at x+1.3 gave x+1, and fenced requests signed
/// at x.95.) With another clock (a test's), the time the layer read on it
/// when it was made (`begun`, never later than `now`), or without one
/// `now − elapsed`.
fn began(now: u64, elapsed: Duration, created_wall: u64, wall_now: u64, begun: u64) -> u64 {
    if now.abs_diff(wall_now) <= 1 {
        created_wall.min(now)
    } else if begun != 0 {
        begun.min(now)
    } else {
        now.saturating_sub(elapsed.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default store (1 GiB, 67 million entries) has the most shards,
    /// a small one the fewest; always a power of two.
    #[test]
    fn shards_grow_with_capacity_so_that_one_growth_stays_small() {
        assert_eq!(shard_count(0), MIN_SHARDS);
        assert_eq!(shard_count(1 << 20), MIN_SHARDS);
        assert_eq!(shard_count((1 << 30) / BYTES_PER_ENTRY), MAX_SHARDS);
        assert_eq!(shard_count(u64::MAX), MAX_SHARDS);
        for capacity in [(1 << 22) + 1, 5 << 22, 100 << 22] {
            let shards = shard_count(capacity);
            assert!(shards.is_power_of_two(), "{capacity}: {shards}");
            assert!(capacity / shards as u64 <= 2 * ENTRIES_PER_SHARD || shards == MAX_SHARDS);
        }
    }

    /// Every true start and first-request time, on a 100 ms grid, with
    /// the layer on the system clock: the fence begins exactly in the
    /// second the store was made (a request signed after it is served, one
    /// signed before it refused).
    #[test]
    fn the_fence_begins_in_the_second_the_store_was_made() {
        for start in 1_000..1_020u64 {
            for delay in 0..40u64 {
                let (start_ms, first_ms) = (start * 100, start * 100 + delay * 100);
                let now = first_ms / 1_000;
                let elapsed = Duration::from_millis(first_ms - start_ms);
                let began = began(now, elapsed, start_ms / 1_000, now, 0);
                assert_eq!(
                    began,
                    start_ms / 1_000,
                    "start {start_ms} ms, first {first_ms} ms"
                );
            }
        }
        // Another clock (a test's, far from the system's): now − elapsed.
        assert_eq!(
            began(1_700_000_000, Duration::from_millis(300), 5, 99, 0),
            1_700_000_000
        );
        assert_eq!(
            began(1_700_000_000, Duration::from_secs(7), 5, 99, 0),
            1_699_999_993
        );
        // Told by the layer when it was made.
        assert_eq!(
            began(1_700_000_009, Duration::from_secs(1), 5, 99, 1_700_000_002),
            1_700_000_002
        );
    }
}
