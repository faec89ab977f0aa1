//! Where secrets come from: the [`KeyStore`](crate::KeyStore) trait and the
//! stores that implement it.

mod cached;
mod memory;
mod store;

pub use cached::CachedKeyStore;
pub use memory::MemoryKeyStore;
pub use store::{KeyStore, KeyStoreError};
