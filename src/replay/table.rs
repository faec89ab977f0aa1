//! One shard of the in-memory index: an open-addressing table of 64-bit
//! digests and their expiry, Robin Hood ordered, 12 bytes a slot.
//!
//! Why not a general-purpose map: a `HashMap<u64, u32>` slot is 16 bytes
//! (alignment) plus a control byte, and hashbrown's tables double, so at a
//! given size a table sits anywhere between 44 % and 87 % full: 19 to 39
//! bytes an entry. Here a slot packs a digest and its expiry into 12 bytes
//! (alignment 4), a table grows by half of its size, and it never holds
//! more than seven eighths of its slots: 13.7 to 20.6 bytes an entry, and
//! probes stay short because Robin Hood ordering ends a search for an
//! absent digest as soon as it meets one nearer to its home.
//!
//! Packed rather than two arrays (8 + 4 bytes, the same memory): in a
//! table far larger than the caches every reservation misses once for its
//! digest and, with two arrays, a second time for the expiry it reads or
//! writes; in one slot both come in one cache line (a slot straddles two
//! lines one time in about five).

/// A digest of 0 marks an empty slot; real digests are never 0.
const EMPTY: u64 = 0;

/// The fewest slots a table has.
pub(crate) const MIN_SLOTS: usize = 16;

/// What a reservation found at a digest's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Held and live: a replay.
    Live,
    /// Held but expired (not yet swept): its slot was taken over.
    Renewed,
    /// Absent: now inserted.
    Inserted,
    /// Absent, and the table may not grow: nothing was inserted.
    NoRoom,
}

/// A digest and its expiry (seconds on the index's scale).
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Slot {
    digest: u64,
    until: u32,
}

/// Bytes of table a slot takes: an 8-byte digest and a 4-byte expiry.
pub(crate) const SLOT_BYTES: u64 = std::mem::size_of::<Slot>() as u64;
const _: () = assert!(SLOT_BYTES == 12);

const VACANT: Slot = Slot {
    digest: EMPTY,
    until: 0,
};

/// A shard's table.
pub(crate) struct Table {
    slots: Box<[Slot]>,
    len: usize,
    /// The most slots this table may grow to.
    max_slots: usize,
}

impl Table {
    pub(crate) fn new(max_slots: usize) -> Self {
        let slots = MIN_SLOTS;
        Self {
            slots: vec![VACANT; slots].into_boxed_slice(),
            len: 0,
            max_slots: max_slots.max(MIN_SLOTS),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (for memory accounting).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// A digest's home slot: its high bits scaled to the table's size (so
    /// any size works, not only powers of two).
    fn home(&self, digest: u64) -> usize {
        ((u128::from(digest) * self.slots.len() as u128) >> 64) as usize
    }

    fn distance(&self, slot: usize, digest: u64) -> usize {
        let home = self.home(digest);
        if slot >= home {
            slot - home
        } else {
            slot + self.slots.len() - home
        }
    }

    fn next(&self, slot: usize) -> usize {
        if slot + 1 == self.slots.len() {
            0
        } else {
            slot + 1
        }
    }

    /// Where `digest` is held, if it is.
    fn find(&self, digest: u64) -> Option<usize> {
        let mut slot = self.home(digest);
        let mut distance = 0;
        loop {
            let held = self.slots[slot].digest;
            if held == digest {
                return Some(slot);
            }
            if held == EMPTY || self.distance(slot, held) < distance {
                return None;
            }
            slot = self.next(slot);
            distance += 1;
        }
    }

    /// Reads `digest`'s home slot and nothing else: for a table larger than
    /// the caches, that read is a miss, and a reservation of two digests
    /// that touches both homes first waits for the two misses at once
    /// rather than one after the other.
    pub(crate) fn touch(&self, digest: u64) {
        std::hint::black_box(self.slots[self.home(digest)].digest);
    }

    /// Whether `digest` is held and live at `now`.
    pub(crate) fn is_live(&self, digest: u64, now: u32) -> bool {
        self.find(digest)
            .is_some_and(|slot| self.slots[slot].until > now)
    }

    /// Holds `digest` until `until` unless it is held and live at `now`.
    /// An absent digest is inserted only if `may_insert`.
    pub(crate) fn reserve(&mut self, digest: u64, until: u32, now: u32, may_insert: bool) -> Found {
        debug_assert_ne!(digest, EMPTY);
        if let Some(slot) = self.find(digest) {
            if self.slots[slot].until > now {
                return Found::Live;
            }
            self.slots[slot].until = until;
            return Found::Renewed;
        }
        if !may_insert {
            return Found::NoRoom;
        }
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            let slots = self.slots.len();
            if slots < self.max_slots {
                let grown = (slots + slots / 2).min(self.max_slots);
                self.resize(grown);
            } else if (self.len + 1) * 100 > slots * 95 {
                return Found::NoRoom;
            }
        }
        self.insert(digest, until);
        Found::Inserted
    }

    /// Grows the table at once to hold `entries` (within its limit): a
    /// snapshot is read back in slot order, which is digest order, and
    /// inserting sorted digests into a table that grows as it goes piles
    /// them into one run at its start (each insert then probes the whole
    /// run: 400,000 entries took 1.6 s to load, 10 million never finished).
    pub(crate) fn make_room_for(&mut self, entries: usize) {
        let slots = entries
            .saturating_mul(8)
            .div_ceil(7)
            .saturating_add(1)
            .min(self.max_slots);
        if slots > self.slots.len() {
            self.resize(slots);
        }
    }

    /// Visits every held digest and its expiry.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(u64, u32)) {
        for &Slot { digest, until } in &self.slots {
            if digest != EMPTY {
                visit(digest, until);
            }
        }
    }

    /// Holds a digest read back from a snapshot, growing as needed within
    /// the table's limit: whether it was new, or `None` when there is no
    /// room (or the digest is 0, which no digest is).
    pub(crate) fn restore(&mut self, digest: u64, until: u32) -> Option<bool> {
        if digest == EMPTY {
            return None;
        }
        if self.find(digest).is_some() {
            return Some(false);
        }
        match self.reserve(digest, until, 0, true) {
            Found::NoRoom => None,
            _ => Some(true),
        }
    }

    /// Inserts a digest known to be absent.
    fn insert(&mut self, digest: u64, until: u32) {
        let mut moving = Slot { digest, until };
        let mut slot = self.home(digest);
        let mut distance = 0;
        loop {
            let held = self.slots[slot].digest;
            if held == EMPTY {
                self.slots[slot] = moving;
                self.len += 1;
                return;
            }
            let held_distance = self.distance(slot, held);
            if held_distance < distance {
                // Robin Hood: the poorer digest takes the slot.
                std::mem::swap(&mut self.slots[slot], &mut moving);
                distance = held_distance;
            }
            slot = self.next(slot);
            distance += 1;
        }
    }

    /// Takes `digest` out (a reservation taken back).
    pub(crate) fn remove(&mut self, digest: u64) {
        if let Some(slot) = self.find(digest) {
            self.remove_at(slot);
        }
    }

    /// Empties `slot`, shifting the digests after it back one place (so no
    /// tombstone is ever left).
    fn remove_at(&mut self, mut slot: usize) {
        loop {
            let next = self.next(slot);
            let held = self.slots[next].digest;
            if held == EMPTY || self.distance(next, held) == 0 {
                self.slots[slot] = VACANT;
                self.len -= 1;
                return;
            }
            self.slots[slot] = self.slots[next];
            slot = next;
        }
    }

    /// Removes the expired digests of slots `from..to` (bounded by the
    /// table's size) and returns how many went. A digest shifted back into
    /// a slot already passed waits for the next sweep.
    pub(crate) fn sweep(&mut self, from: usize, to: usize, now: u32) -> usize {
        let to = to.min(self.slots.len());
        let before = self.len;
        let mut slot = from;
        while slot < to {
            let Slot { digest, until } = self.slots[slot];
            if digest != EMPTY && until <= now {
                self.remove_at(slot);
                // The slot now holds the next digest, if any: look again.
                continue;
            }
            slot += 1;
        }
        before - self.len
    }

    /// Shrinks a table that is mostly empty (after a flood), keeping its
    /// live digests.
    pub(crate) fn shrink_if_sparse(&mut self) {
        let slots = self.slots.len();
        if slots > MIN_SLOTS && self.len * 4 < slots {
            let target = (self.len * 2).max(MIN_SLOTS);
            self.resize(target);
        }
    }

    /// Rebuilds the table with `slots` slots. Expired digests move too:
    /// only sweeps remove entries, so that the index's count of them stays
    /// exact.
    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![VACANT; slots].into_boxed_slice());
        self.len = 0;
        for &Slot { digest, until } in &old {
            if digest != EMPTY {
                self.insert(digest, until);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A tiny deterministic generator (xorshift), digests never 0.
    fn digests(seed: u64) -> impl Iterator<Item = u64> {
        let mut state = seed | 1;
        std::iter::from_fn(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Some(state.max(1))
        })
    }

    /// The longest probe from a digest's home to its slot.
    fn longest_probe(table: &Table) -> usize {
        (0..table.slots.len())
            .map(|slot| table.slots[slot].digest)
            .enumerate()
            .filter(|&(_, digest)| digest != EMPTY)
            .map(|(slot, digest)| table.distance(slot, digest))
            .max()
            .unwrap_or(0)
    }

    /// A snapshot gives its digests back sorted (slot order): sized up
    /// front, the table places them as well as random ones; grown as it
    /// goes, they pile into one run (the load was quadratic).
    #[test]
    fn sorted_digests_restored_into_a_table_sized_up_front_stay_near_home() {
        let mut sorted: Vec<u64> = digests(11).take(20_000).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut sized = Table::new(1 << 20);
        sized.make_room_for(sorted.len());
        let mut grown = Table::new(1 << 20);
        let (mut sized_longest, mut grown_longest) = (0, 0);
        for (i, &digest) in sorted.iter().enumerate() {
            assert_eq!(sized.restore(digest, 1), Some(true));
            assert_eq!(grown.restore(digest, 1), Some(true));
            if i % 500 == 499 {
                sized_longest = sized_longest.max(longest_probe(&sized));
                grown_longest = grown_longest.max(longest_probe(&grown));
            }
        }
        assert!(sized_longest < 64, "sized up front: {sized_longest}");
        assert!(grown_longest > 1_000, "grown as it goes: {grown_longest}");
        for &digest in &sorted {
            assert!(sized.is_live(digest, 0));
        }
    }

    #[test]
    fn agrees_with_a_hash_map_through_inserts_removals_sweeps_and_resizes() {
        let mut table = Table::new(1 << 20);
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut now = 0u32;
        for (i, digest) in digests(7).take(60_000).enumerate() {
            // Reuse earlier digests now and then (renewals and replays).
            let digest = if i % 7 == 3 { digest % 64 + 1 } else { digest };
            let until = now + 1 + (digest % 50) as u32;
            let expected = match model.get(&digest) {
                Some(&held) if held > now => Found::Live,
                Some(_) => Found::Renewed,
                None => Found::Inserted,
            };
            assert_eq!(table.reserve(digest, until, now, true), expected);
            if expected != Found::Live {
                model.insert(digest, until);
            }
            if i % 11 == 0 {
                table.remove(digest);
                model.remove(&digest);
            }
            if i % 1000 == 999 {
                now += 10;
                let slots = table.slots();
                table.sweep(0, slots / 2, now);
                table.sweep(slots / 2, slots, now);
                table.shrink_if_sparse();
                // What a sweep may leave behind is expired; drop it from
                // the model only when the table no longer has it.
                model.retain(|digest, until| *until > now || table.find(*digest).is_some());
            }
            assert_eq!(table.len(), model.len());
        }
        for (digest, until) in &model {
            assert_eq!(table.is_live(*digest, now), *until > now);
        }
    }

    #[test]
    fn never_grows_past_its_limit_and_says_so() {
        let mut table = Table::new(64);
        let mut inserted = 0;
        for digest in digests(3).take(1000) {
            match table.reserve(digest, 10, 0, true) {
                Found::Inserted => inserted += 1,
                Found::NoRoom => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(table.slots(), 64);
        assert_eq!(inserted, 60, "95 % of 64 slots");
        assert_eq!(table.len(), 60);
    }

    #[test]
    fn a_sparse_table_shrinks_and_keeps_its_live_digests() {
        let mut table = Table::new(1 << 16);
        let all: Vec<u64> = digests(11).take(10_000).collect();
        for (i, digest) in all.iter().enumerate() {
            let until = if i < 100 { 1000 } else { 5 };
            table.reserve(*digest, until, 0, true);
        }
        let slots = table.slots();
        assert_eq!(table.sweep(0, slots, 10), 9_900);
        table.shrink_if_sparse();
        assert!(table.slots() < slots / 10, "{} slots", table.slots());
        for digest in &all[..100] {
            assert!(table.is_live(*digest, 10));
        }
        assert!(!table.is_live(all[100], 10));
    }
}
