//! Where secrets come from: the [`KeyStore`] trait and the stores that
//! implement it.

mod memory;

use std::sync::Arc;

pub use memory::MemoryKeyStore;

use crate::BoxFuture;
use crate::protocol::secret::Secret;

/// Where the layer finds the secret of a key id.
///
/// Implement it over a database, a secrets manager or a configuration
/// service; [`MemoryKeyStore`] is the in-process one.
pub trait KeyStore: Send + Sync + 'static {
    /// The secret of `key_id`, or `None` when the key is unknown or revoked.
    ///
    /// # Errors
    /// [`KeyStoreError`] when the store cannot answer; the layer then
    /// responds 503 `key_store_unavailable` rather than 401.
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Secret>, KeyStoreError>>;
}

/// The key store could not answer (it is not "the key is unknown").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key store unavailable: {0}")]
pub struct KeyStoreError(pub String);

impl<K: KeyStore> KeyStore for Arc<K> {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Secret>, KeyStoreError>> {
        (**self).get(key_id)
    }
}
