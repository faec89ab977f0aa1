//! Keys held in memory, changed at run time.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::future::ready;
use std::sync::Arc;

use super::store::{KeyStore, KeyStoreError};
use crate::boxed::BoxFuture;
use crate::protocol::key::{Key, KeySecret};
use crate::protocol::secret::Secret;

/// Keys held in memory, shared by every clone; keys can be added, rotated
/// and revoked while the server runs, and a change takes effect with the
/// very next request.
///
/// ```
/// use armor_psk::keys::MemoryKeyStore;
///
/// let keys = MemoryKeyStore::new();
/// keys.insert("key-1", "secret-1");
/// // Rotation: a second secret, the first valid one more hour.
/// let version = keys.rotate("key-1", "secret-2", 1_700_000_000, 3600).unwrap();
/// assert_eq!(version, 2);
/// let key = keys.lookup("key-1").unwrap();
/// assert_eq!(key.active(1_700_000_000).count(), 2);
/// assert_eq!(key.active(1_700_003_600).count(), 1);
/// assert!(keys.revoke("key-1"));
/// assert!(!keys.contains("key-1"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryKeyStore {
    keys: Arc<RwLock<HashMap<String, Key>>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key_id` with one secret (version 1), or replaces its secrets.
    pub fn insert(&self, key_id: impl Into<String>, secret: impl Into<Secret>) {
        self.insert_key(key_id, Key::new(secret));
    }

    /// Adds `key_id` with these secrets, or replaces them.
    pub fn insert_key(&self, key_id: impl Into<String>, key: Key) {
        self.keys.write().insert(key_id.into(), key);
    }

    /// Adds a secret (the next version) to `key_id`, valid from now, and
    /// limits the secrets it had to `now + overlap`: both verify during
    /// the overlap, only the new one after. Returns the new version, or
    /// `None` for an unknown key.
    pub fn rotate(
        &self,
        key_id: &str,
        secret: impl Into<Secret>,
        now: u64,
        overlap_seconds: u64,
    ) -> Option<u32> {
        let mut keys = self.keys.write();
        let key = keys.get_mut(key_id)?;
        let version = key.latest_version() + 1;
        let until = now.saturating_add(overlap_seconds);
        let mut secrets: Vec<KeySecret> = key
            .secrets()
            .iter()
            .map(|old| match old.not_after() {
                Some(end) if end <= until => old.clone(),
                _ => old.clone().with_not_after(until),
            })
            .collect();
        secrets.push(KeySecret::new(version, secret));
        *key = Key::from_secrets(secrets);
        Some(version)
    }

    /// Adds a key, builder style.
    #[must_use]
    pub fn with_key(self, key_id: impl Into<String>, secret: impl Into<Secret>) -> Self {
        self.insert(key_id, secret);
        self
    }

    /// Removes `key_id`; returns whether it was there.
    pub fn revoke(&self, key_id: &str) -> bool {
        self.keys.write().remove(key_id).is_some()
    }

    /// Whether `key_id` is present.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.read().contains_key(key_id)
    }

    /// The secrets of `key_id`, if present.
    pub fn lookup(&self, key_id: &str) -> Option<Key> {
        self.keys.read().get(key_id).cloned()
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys.read().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.read().is_empty()
    }
}

impl<K: Into<String>, S: Into<Secret>> FromIterator<(K, S)> for MemoryKeyStore {
    /// A store holding the given `(key id, secret)` pairs.
    ///
    /// ```
    /// use armor_psk::keys::MemoryKeyStore;
    ///
    /// let keys: MemoryKeyStore = [("key-1", "secret-1"), ("key-2", "secret-2")].into_iter().collect();
    /// assert_eq!(keys.len(), 2);
    /// ```
    fn from_iter<I: IntoIterator<Item = (K, S)>>(pairs: I) -> Self {
        let keys = Self::new();
        for (key_id, secret) in pairs {
            keys.insert(key_id, secret);
        }
        keys
    }
}

impl KeyStore for MemoryKeyStore {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        Box::pin(ready(Ok(self.lookup(key_id))))
    }

    fn get_ready(&self, key_id: &str) -> Option<Result<Option<Key>, KeyStoreError>> {
        Some(Ok(self.lookup(key_id)))
    }
}
