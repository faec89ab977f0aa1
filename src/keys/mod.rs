//! Where secrets come from: the [`KeyStore`](crate::KeyStore) trait and the
//! stores that implement it.

mod cached;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod store;

pub use cached::{CachedKeyStore, CachedKeyStoreBuilder, WeakCachedKeyStore};
pub use memory::MemoryKeyStore;
#[cfg(feature = "postgres")]
pub use postgres::{
    Kek, KeyInfo, NewKey, PostgresKeyStore, PostgresOptions, PostgresStoreError, Sealing,
};
pub use store::{KeyStore, KeyStoreError};
