//! Where secrets come from: the [`KeyStore`](crate::KeyStore) trait and the
//! stores that implement it.

mod memory;
mod store;

pub use memory::MemoryKeyStore;
pub use store::{KeyStore, KeyStoreError};
