//! The [`KeyStore`] trait: where the layer finds a key id's secret.

use std::sync::Arc;

use crate::boxed::{BoxError, BoxFuture};
use crate::protocol::key::Key;
use crate::protocol::rejection::{Rejection, RejectionKind};

/// Where the layer finds the secret of a key id.
///
/// Implement it over a database, a secrets manager or a configuration
/// service; [`MemoryKeyStore`](crate::keys::MemoryKeyStore) is the in-process
/// one.
pub trait KeyStore: Send + Sync + 'static {
    /// The secrets of `key_id`, or `None` when the key is unknown or
    /// revoked.
    ///
    /// # Errors
    /// [`KeyStoreError`] when the store cannot answer; the layer then
    /// responds 503 `key_store_unavailable` rather than 401.
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>>;

    /// The key, looked up at once, by a store that never waits (a map in
    /// memory); the layer then skips [`get`](Self::get)'s future. `None`
    /// (the default): the store has to wait, call `get`.
    ///
    /// A store that answers here must answer as `get` would.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    fn get_ready(&self, key_id: &str) -> Option<Result<Option<Key>, KeyStoreError>> {
        let _ = key_id;
        None
    }

    /// Whether `key_id` may exist, answered locally at no cost: `false`
    /// only when the store knows it does not hold it (the PostgreSQL store
    /// keeps the set of key ids in memory). A cache in front answers such
    /// ids at once, without a lookup or a share of its lookup budget.
    /// `true` by default.
    fn might_hold(&self, key_id: &str) -> bool {
        let _ = key_id;
        true
    }
}

/// The key store could not answer (it is not "the key is unknown"); the
/// cause is its [`source`](std::error::Error::source).
///
/// ```
/// use std::error::Error as _;
/// use armor_psk::keys::KeyStoreError;
///
/// let error = KeyStoreError::new(std::io::Error::other("connection refused"));
/// assert_eq!(error.to_string(), "key store unavailable");
/// assert_eq!(error.source().unwrap().to_string(), "connection refused");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("key store unavailable")]
pub struct KeyStoreError {
    #[source]
    source: BoxError,
}

impl KeyStoreError {
    /// A failure caused by `source` (any error, or a message).
    pub fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }

    /// The refusal this failure makes (503 `key_store_unavailable`, a
    /// fixed message), its cause logged here.
    pub(crate) fn into_rejection(self, key_id: &str) -> Rejection {
        tracing::warn!(
            key_id,
            error = &self as &dyn std::error::Error,
            "ARMOR-PSK key store failed"
        );
        Rejection::new(
            RejectionKind::KeyStoreUnavailable,
            "the key store is unavailable",
        )
    }
}

impl<K: KeyStore + ?Sized> KeyStore for Box<K> {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        (**self).get(key_id)
    }

    fn get_ready(&self, key_id: &str) -> Option<Result<Option<Key>, KeyStoreError>> {
        (**self).get_ready(key_id)
    }

    fn might_hold(&self, key_id: &str) -> bool {
        (**self).might_hold(key_id)
    }
}

impl<K: KeyStore + ?Sized> KeyStore for Arc<K> {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        (**self).get(key_id)
    }

    fn get_ready(&self, key_id: &str) -> Option<Result<Option<Key>, KeyStoreError>> {
        (**self).get_ready(key_id)
    }

    fn might_hold(&self, key_id: &str) -> bool {
        (**self).might_hold(key_id)
    }
}
