//! Where secrets come from: the [`KeyStore`] trait the layer asks for a key
//! id's [`Key`], and the stores that implement it: [`MemoryKeyStore`] (in
//! the process, changed at run time), [`CachedKeyStore`] (in front of a
//! slow store, with a stated revocation bound) and, with the `postgres`
//! feature, `postgres::PostgresKeyStore` (sealed under a key-encryption
//! key, shared by every instance).
//!
//! A key holds one or more secrets, each with the seconds it signs in, so
//! a rotation has no window in which requests fail:
//!
//! ```
//! use armor_psk::keys::{KeyStore, MemoryKeyStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let keys = MemoryKeyStore::new().with_key("key-1", "secret-1");
//! let version = keys.rotate("key-1", "secret-2", 1_700_000_000, 3600).unwrap();
//! let key = keys.get("key-1").await.unwrap().unwrap();
//! assert_eq!(version, 2);
//! assert_eq!(key.active(1_700_000_000).count(), 2); // both, for an hour
//! assert_eq!(key.active(1_700_003_600).count(), 1); // then the new one
//!
//! assert!(keys.revoke("key-1"));
//! assert!(keys.get("key-1").await.unwrap().is_none()); // refused from the next request
//! # }
//! ```
#![doc = include_str!("../../docs/keys.md")]

mod cached;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
mod store;

pub use crate::protocol::key::{Key, KeySecret};
pub use crate::protocol::secret::{Secret, generate_secret};
pub use cached::{CachedKeyStore, CachedKeyStoreBuilder, WeakCachedKeyStore};
pub use memory::MemoryKeyStore;
pub use store::{KeyStore, KeyStoreError};
