//! The in-memory store keeps keyed 64-bit digests of entries, not entries.

use std::hash::Hasher as _;

use siphasher::sip::SipHasher13;

use super::store::key_id_len;

/// Turns entries and key ids into 64-bit SipHash-1-3 digests under a
/// random key of its own, so that a client cannot craft two entries (or
/// two key ids) that collide.
#[derive(Clone, Copy)]
pub(crate) struct Digester(u64, u64);

/// Keeps the key ids' digests apart from the entries'.
const KEY_TAG: u8 = b'k';

impl Digester {
    pub(crate) fn random() -> Self {
        let mut random = [0u8; 16];
        // Should the random generator fail, the key stays fixed: digests
        // become predictable, so a key holder could in principle craft an
        // entry that collides with another request's. A collision can only
        // refuse a request as a replay, never accept one.
        let _ = getrandom::fill(&mut random);
        let [a, b, c, d, e, f, g, h, rest @ ..] = random;
        let [i, j, k, l, m, n, o, p] = rest;
        Self(
            u64::from_le_bytes([a, b, c, d, e, f, g, h]),
            u64::from_le_bytes([i, j, k, l, m, n, o, p]),
        )
    }

    /// The key, for a snapshot (digests are only meaningful under it).
    pub(crate) fn keys(&self) -> (u64, u64) {
        (self.0, self.1)
    }

    /// The digester a snapshot was written under.
    pub(crate) fn from_keys(keys: (u64, u64)) -> Self {
        Self(keys.0, keys.1)
    }

    /// The digest of an entry (never 0: the index keeps 0 for an empty
    /// slot), over the same bytes as its [`ReplayKey`](super::ReplayKey).
    pub(crate) fn entry(&self, tag: u8, key_id: &str, value: &[u8]) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(self.0, self.1);
        hasher.write_u8(tag);
        hasher.write(&key_id_len(key_id));
        hasher.write(key_id.as_bytes());
        hasher.write(value);
        hasher.finish().max(1)
    }

    /// The digest of a key id: its place in the per-key shares.
    pub(crate) fn key(&self, key_id: &str) -> u64 {
        let mut hasher = SipHasher13::new_with_keys(self.0, self.1);
        hasher.write_u8(KEY_TAG);
        hasher.write(key_id.as_bytes());
        hasher.finish()
    }
}
