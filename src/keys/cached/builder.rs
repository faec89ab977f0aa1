//! Making a [`CachedKeyStore`]: its builder's settings and the shared
//! state every clone of the cache reads.

use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use ::moka::future::Cache;

use super::{CachedKeyStore, CachedKeyStoreBuilder, Inner, Settings};
use crate::keys::store::KeyStore;
use crate::protocol::clock::{Clock, SystemClock};

impl<S: KeyStore> CachedKeyStore<S> {
    /// `source` behind a cache with the default settings.
    pub fn new(source: S) -> Self {
        Self::builder(source).build()
    }

    /// `source` behind a cache whose settings are changed before it is
    /// built: a cache in use (or cloned) cannot have them changed under it.
    pub fn builder(source: S) -> CachedKeyStoreBuilder<S> {
        CachedKeyStoreBuilder {
            source,
            settings: Settings {
                ttl: Duration::from_secs(60),
                grace: Duration::from_secs(300),
                unknown_ttl: Duration::from_secs(5),
                unknown_capacity: 100_000,
                lookups_per_second: 1_000,
            },
            clock: Arc::new(SystemClock),
        }
    }
}

impl<S: KeyStore> CachedKeyStoreBuilder<S> {
    /// How long a key found stays cached (default 60 s): the longest a
    /// change takes to show without
    /// [`invalidate`](CachedKeyStore::invalidate).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.settings.ttl = ttl;
        self
    }

    /// How long past its TTL a key keeps working while the source fails
    /// (default 5 min).
    ///
    /// # Security
    /// A key revoked at the source keeps working for up to `ttl + grace`
    /// during an outage unless it was invalidated.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.settings.grace = grace;
        self
    }

    /// How long an unknown key id is remembered (default 5 s) and how many
    /// are at most (default 100,000).
    pub fn unknown(mut self, ttl: Duration, capacity: u64) -> Self {
        self.settings.unknown_ttl = ttl;
        self.settings.unknown_capacity = capacity;
        self
    }

    /// At most this many lookups in the source in each second of the
    /// [`clock`](Self::clock) for key ids in neither cache (default 1,000);
    /// past it, 503.
    pub fn lookups_per_second(mut self, limit: u64) -> Self {
        self.settings.lookups_per_second = limit;
        self
    }

    /// The clock whose seconds bound the lookups per second (default the
    /// system clock; tests pass a [`ManualClock`](crate::ManualClock)). Only
    /// the budget follows it: the TTLs and the grace period run on the
    /// process's monotonic time.
    ///
    /// A clock that never moves never refills the budget: once spent, every
    /// lookup of an uncached key id is refused (503) until it moves.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The cache.
    pub fn build(self) -> CachedKeyStore<S> {
        let Self {
            source,
            settings,
            clock,
        } = self;
        CachedKeyStore {
            inner: Arc::new(Inner {
                source,
                found: Cache::builder().time_to_live(settings.ttl).build(),
                last_known: Mutex::default(),
                generation: AtomicU64::new(1),
                invalidated: RwLock::default(),
                expired: AtomicU64::new(0),
                unknown: Cache::builder()
                    .time_to_live(settings.unknown_ttl)
                    .max_capacity(settings.unknown_capacity)
                    .build(),
                lookups: AtomicU64::new(0),
                limiter: Mutex::new((clock.now(), 0)),
                clock,
                settings,
            }),
        }
    }
}
