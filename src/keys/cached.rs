//! [`CachedKeyStore`]: any key store behind moka's cache.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::moka::future::Cache;

use super::store::{KeyStore, KeyStoreError};
use crate::boxed::BoxFuture;
use crate::protocol::key::Key;

/// A [`KeyStore`] in front of another (a database, a secrets manager):
///
/// - keys found are cached for `ttl` (default 60 s), and concurrent misses
///   for one key id make one lookup in the source;
/// - unknown key ids are cached too, for `unknown_ttl` (default 5 s), in at
///   most `unknown_capacity` entries (default 100,000), and lookups of key
///   ids found in neither cache are limited to `lookups_per_second`
///   (default 1,000; past it the layer answers 503 `key_store_unavailable`),
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
/// use armor_psk::{CachedKeyStore, KeyStore, MemoryKeyStore};
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
    limiter: Mutex<(Instant, u64)>,
    settings: Settings,
}

/// The most invalidations remembered one by one (a flood of change
/// notifications cannot grow the map past it).
const MAX_INVALIDATED: usize = 100_000;

/// Why a lookup produced no key.
#[derive(Debug, thiserror::Error)]
enum Miss {
    #[error("unknown key")]
    Unknown,
    #[error(transparent)]
    Failed(KeyStoreError),
}

/// A failure shared by the callers a lookup served (with the generation
/// the lookup started at).
#[derive(Debug)]
struct SharedFailure(Arc<(Miss, u64)>);

impl fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the key source failed")
    }
}

impl std::error::Error for SharedFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.0)
    }
}

/// More key ids looked up in a second than allowed.
#[derive(Debug, thiserror::Error)]
#[error("too many lookups of uncached key ids this second")]
struct TooManyLookups;

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
        }
    }

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

    fn admit_lookup(&self) -> bool {
        let mut window = self.inner.limiter.lock();
        if window.0.elapsed() >= Duration::from_secs(1) {
            *window = (Instant::now(), 0);
        }
        window.1 += 1;
        window.1 <= self.inner.settings.lookups_per_second
    }

    async fn lookup(&self, key_id: &str) -> Result<Option<Key>, KeyStoreError> {
        let inner = &self.inner;
        // The source knows at no cost that it does not hold this id: no
        // lookup, no share of the lookup budget, nothing cached.
        if !inner.source.might_hold(key_id) {
            return Ok(None);
        }
        if let Some(generation) = inner.unknown.get(key_id).await {
            if inner.is_current(key_id, generation) {
                return Ok(None);
            }
            inner.unknown.invalidate(key_id).await;
        }
        if let Some((key, generation)) = inner.found.get(key_id).await {
            if inner.is_current(key_id, generation) {
                return Ok(Some(key));
            }
        }
        let known_before = inner.last_known_key(key_id).is_some();
        if !known_before && !self.admit_lookup() {
            return Err(KeyStoreError::new(TooManyLookups));
        }
        // A lookup overtaken by an invalidation is dropped and made again
        // (a few times at most: invalidations of one key are rare).
        for _ in 0..4 {
            let fetched = inner
                .found
                .try_get_with_by_ref(key_id, async {
                    let generation = inner.generation.load(Ordering::SeqCst);
                    inner.lookups.fetch_add(1, Ordering::Relaxed);
                    match inner.source.get(key_id).await {
                        Ok(Some(key)) => Ok((key, generation)),
                        Ok(None) => Err((Miss::Unknown, generation)),
                        Err(error) => Err((Miss::Failed(error), generation)),
                    }
                })
                .await;
            match fetched {
                Ok((key, generation)) => {
                    if !inner.is_current(key_id, generation) {
                        inner.found.invalidate(key_id).await;
                        continue;
                    }
                    inner.remember(key_id, &key, generation);
                    return Ok(Some(key));
                }
                Err(shared) => {
                    let (miss, generation) = &*shared;
                    match miss {
                        Miss::Unknown => {
                            if !inner.is_current(key_id, *generation) {
                                // Overtaken (the key may have been added
                                // since): not remembered, and not looked up
                                // again outside the lookup budget. Whatever
                                // grace copy it had goes: unknown is unknown.
                                inner.forget(key_id);
                                return Ok(None);
                            }
                            inner.forget(key_id);
                            inner.unknown.insert(key_id.to_owned(), *generation).await;
                            return Ok(None);
                        }
                        Miss::Failed(_) => {
                            return match inner.last_known_key(key_id) {
                                Some(key) => {
                                    tracing::warn!(
                                        key_id,
                                        "ARMOR-PSK key store failed; serving the key it last gave"
                                    );
                                    Ok(Some(key))
                                }
                                None => Err(KeyStoreError::new(SharedFailure(Arc::clone(&shared)))),
                            };
                        }
                    }
                }
            }
        }
        Err(KeyStoreError::new(TooManyLookups))
    }
}

impl<S> Inner<S> {
    fn known(&self) -> parking_lot::MutexGuard<'_, HashMap<String, (Key, Instant, u64)>> {
        self.last_known.lock()
    }

    /// Whether an answer from a lookup that started at `generation` still
    /// holds: no invalidation of `key_id`, and no expiry of everything,
    /// came after it started.
    fn is_current(&self, key_id: &str, generation: u64) -> bool {
        if generation < self.expired.load(Ordering::SeqCst) {
            return false;
        }
        self.invalidated
            .read()
            .get(key_id)
            .is_none_or(|&invalidated| generation >= invalidated)
    }

    /// Keeps the answer as the grace copy, unless an invalidation came
    /// after its lookup started (checked under the lock `invalidate` takes).
    fn remember(&self, key_id: &str, key: &Key, generation: u64) {
        let mut known = self.known();
        if generation < self.expired.load(Ordering::SeqCst) {
            return;
        }
        let revoked_since = self
            .invalidated
            .read()
            .get(key_id)
            .is_some_and(|&invalidated| generation < invalidated);
        if !revoked_since {
            known.insert(key_id.to_owned(), (key.clone(), Instant::now(), generation));
        }
    }

    /// What the source last said of `key_id`, if within `ttl + grace`.
    fn last_known_key(&self, key_id: &str) -> Option<Key> {
        let limit = self.settings.ttl + self.settings.grace;
        let mut known = self.known();
        match known.get(key_id) {
            Some((key, at, _)) if at.elapsed() <= limit => Some(key.clone()),
            Some(_) => {
                known.remove(key_id);
                None
            }
            None => None,
        }
    }

    fn forget(&self, key_id: &str) {
        self.known().remove(key_id);
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
#[derive(Debug)]
#[must_use = "a builder does nothing until `build`"]
pub struct CachedKeyStoreBuilder<S> {
    source: S,
    settings: Settings,
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

    /// At most this many lookups in the source per second for key ids in
    /// neither cache (default 1,000); past it, 503.
    pub fn lookups_per_second(mut self, limit: u64) -> Self {
        self.settings.lookups_per_second = limit;
        self
    }

    /// The cache.
    pub fn build(self) -> CachedKeyStore<S> {
        let Self { source, settings } = self;
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
                limiter: Mutex::new((Instant::now(), 0)),
                settings,
            }),
        }
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
