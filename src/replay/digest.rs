//! The in-memory stores keep keyed 128-bit digests of entries, not entries.

use std::hash::Hasher as _;

use siphasher::sip128::{Hasher128 as _, SipHasher13};

use super::store::ReplayKey;

/// Turns entries into 128-bit SipHash-1-3 digests under a random key of
/// its own, so that a client cannot craft two entries that collide. The
/// in-memory stores keep digests, not entries.
#[derive(Clone, Copy)]
pub(crate) struct Digester(u64, u64);

impl Digester {
    pub(crate) fn random() -> Self {
        let mut random = [0u8; 16];
        // Should the random generator fail, the key stays fixed: digests
        // become predictable, so a key holder could in principle craft an
        // entry that collides with another request's. A collision can only
        // refuse a request as a replay, never accept one.
        let _ = getrandom::fill(&mut random);
        let (k0, k1) = random.split_at(8);
        let key = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
        Self(key(k0), key(k1))
    }

    pub(crate) fn digest(&self, entry: &ReplayKey) -> u128 {
        self.digest_bytes(entry.as_bytes())
    }

    pub(crate) fn digest_bytes(&self, bytes: &[u8]) -> u128 {
        let mut hasher = SipHasher13::new_with_keys(self.0, self.1);
        hasher.write(bytes);
        hasher.finish128().as_u128()
    }
}
