//! A lookup through the cache: a fresh entry served, a stale one kept
//! within its grace while the source fails, concurrent misses for one key
//! joined into one source lookup, and the budget of lookups per second.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{CachedKeyStore, Inner};
use crate::keys::store::{KeyStore, KeyStoreError};
use crate::protocol::key::Key;

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
    fn admit_lookup(&self) -> bool {
        let mut window = self.inner.limiter.lock();
        // Read under the lock: a thread that read the clock just before a
        // second turned cannot reset the new second's count afterwards.
        // (A clock stepped back starts a new window; it never freezes one.)
        let now = self.inner.clock.now();
        if window.0 != now {
            *window = (now, 0);
        }
        window.1 += 1;
        window.1 <= self.inner.settings.lookups_per_second
    }

    pub(super) async fn lookup(&self, key_id: &str) -> Result<Option<Key>, KeyStoreError> {
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
        if let Some((key, generation)) = inner.found.get(key_id).await
            && inner.is_current(key_id, generation)
        {
            return Ok(Some(key));
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
    pub(super) fn known(
        &self,
    ) -> parking_lot::MutexGuard<'_, HashMap<String, (Key, Instant, u64)>> {
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
