//! [`CachedKeyStore`]: any key store behind moka's cache.

mod builder;
mod lookup;

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::moka::future::Cache;

use super::store::{KeyStore, KeyStoreError};
use crate::boxed::BoxFuture;
use crate::protocol::clock::Clock;
use crate::protocol::key::Key;

/// A [`KeyStore`] in front of another (a database, a secrets manager):
///
/// - keys found are cached for `ttl` (default 60 s), and concurrent misses
///   for one key id make one lookup in the source;
/// - unknown key ids are cached too, for `unknown_ttl` (default 5 s), in at
///   most `unknown_capacity` entries (default 100,000), and lookups of key
///   ids found in neither cache are limited to `lookups_per_second` in each
///   second of the clock (default 1,000; past it the layer answers 503
///   `key_store_unavailable`),
///   so that random key ids flood neither the source nor the cache;
/// - when the source fails, keys it answered in the last `ttl + grace`
///   (grace: default 5 min) keep working, and others get 503;
/// - [`invalidate`](Self::invalidate) drops a key at once (a revocation, a
///   rotation); a store that publishes changes calls it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use armor_psk::{keys::{CachedKeyStore, KeyStore, MemoryKeyStore}};
///
/// let source = MemoryKeyStore::new().with_key("key-1", "secret-1");
/// let keys = CachedKeyStore::builder(source.clone())
///     .ttl(Duration::from_secs(30))
///     .build();
/// assert!(keys.get("key-1").await.unwrap().is_some());
/// assert!(keys.get("key-1").await.unwrap().is_some());
/// assert_eq!(keys.lookups(), 1);
/// source.revoke("key-1");
/// keys.invalidate("key-1").await;
/// assert!(keys.get("key-1").await.unwrap().is_none());
/// # }
/// ```
pub struct CachedKeyStore<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    source: S,
    /// Keys found, each with the generation its lookup started at.
    found: Cache<String, (Key, u64)>,
    /// What the source last said of each key found, when, and the
    /// generation its lookup started at: served for `ttl + grace` when the
    /// source fails. Only keys the source found go in, so it is as large
    /// as the set of real keys in use.
    last_known: Mutex<HashMap<String, (Key, Instant, u64)>>,
    /// Unknown key ids, with the generation their lookup started at.
    unknown: Cache<String, u64>,
    /// Counts invalidations; a lookup notes it when it starts.
    generation: AtomicU64,
    /// The generation of each key id's last invalidation: an answer from a
    /// lookup that started before it is never used.
    invalidated: RwLock<HashMap<String, u64>>,
    /// The generation of the last `expire_all`/`invalidate_all`.
    expired: AtomicU64,
    lookups: AtomicU64,
    /// The second of the clock and the lookups counted in it.
    limiter: Mutex<(u64, u64)>,
    clock: Arc<dyn Clock>,
    settings: Settings,
}

/// The most invalidations remembered one by one (a flood of change
/// notifications cannot grow the map past it).
const MAX_INVALIDATED: usize = 100_000;

impl<S: KeyStore> CachedKeyStore<S> {
    /// Drops `key_id` from every cache, its grace copy too: its next
    /// request asks the source. A lookup of it already under way when this
    /// is called is not used, even if it answers after: a revocation cannot
    /// be overtaken by a slow lookup.
    pub async fn invalidate(&self, key_id: &str) {
        let inner = &self.inner;
        {
            let mut known = inner.known();
            let generation = inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
            let mut invalidated = inner.invalidated.write();
            if invalidated.len() >= MAX_INVALIDATED {
                // Past the bound, one expiry of everything stands for all
                // the invalidations remembered (the grace copies stay).
                invalidated.clear();
                inner.expired.fetch_max(generation, Ordering::SeqCst);
            }
            invalidated.insert(key_id.to_owned(), generation);
            drop(invalidated);
            known.remove(key_id);
        }
        inner.found.invalidate(key_id).await;
        inner.unknown.invalidate(key_id).await;
    }

    /// Makes every cached key ask the source again on its next use (and
    /// lookups under way not count), but keeps what the source last said
    /// for the grace period, should the source be down (what a lost change
    /// feed calls for: nothing stale is served while the source answers).
    pub fn expire_all(&self) {
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.inner.expired.fetch_max(generation, Ordering::SeqCst);
        self.inner.found.invalidate_all();
        self.inner.unknown.invalidate_all();
    }

    /// Drops every cached key, the grace copies too.
    pub fn invalidate_all(&self) {
        let mut known = self.inner.known();
        self.expire_all();
        known.clear();
    }

    /// How many lookups reached the source.
    pub fn lookups(&self) -> u64 {
        self.inner.lookups.load(Ordering::Relaxed)
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.inner.source
    }

    /// A handle that does not keep the store alive (for a change feed's
    /// task, which should end with the store).
    pub fn downgrade(&self) -> WeakCachedKeyStore<S> {
        WeakCachedKeyStore {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    ttl: Duration,
    grace: Duration,
    unknown_ttl: Duration,
    unknown_capacity: u64,
    lookups_per_second: u64,
}

/// The settings of a [`CachedKeyStore`], before it is built
/// ([`CachedKeyStore::builder`]).
#[must_use = "a builder does nothing until `build`"]
pub struct CachedKeyStoreBuilder<S> {
    source: S,
    settings: Settings,
    clock: Arc<dyn Clock>,
}

impl<S: fmt::Debug> fmt::Debug for CachedKeyStoreBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStoreBuilder")
            .field("source", &self.source)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: KeyStore> KeyStore for CachedKeyStore<S> {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        Box::pin(self.lookup(key_id))
    }

    fn might_hold(&self, key_id: &str) -> bool {
        self.inner.source.might_hold(key_id)
    }
}

/// A [`CachedKeyStore`] that does not keep it alive:
/// [`upgrade`](Self::upgrade) gives it back while it lives.
pub struct WeakCachedKeyStore<S> {
    inner: std::sync::Weak<Inner<S>>,
}

impl<S> WeakCachedKeyStore<S> {
    /// The store, if it still lives.
    pub fn upgrade(&self) -> Option<CachedKeyStore<S>> {
        self.inner.upgrade().map(|inner| CachedKeyStore { inner })
    }
}

impl<S> fmt::Debug for WeakCachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakCachedKeyStore").finish_non_exhaustive()
    }
}

impl<S> Clone for CachedKeyStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> fmt::Debug for CachedKeyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKeyStore")
            .field("cached", &self.inner.found.entry_count())
            .field("unknown", &self.inner.unknown.entry_count())
            .field("lookups", &self.inner.lookups.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
