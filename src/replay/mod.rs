//! Refusing replays: the [`ReplayStore`] trait, the [`ReplayRequest`] every
//! store is handed, and the stores: [`MemoryReplayStore`] (the default, in
//! this process) and, with the `redis` feature, `redis::RedisReplayStore`,
//! shared by several instances.
//!
//! The in-memory store keeps a compact index of 64-bit keyed digests (12
//! bytes a slot) rather than a cache of nonces: see [`MemoryReplayStore`]
//! for the measured costs and the reason.
//!
//! A store answers each request once: the first reservation of a nonce is
//! served, any later one within its lifetime is a replay.
//!
//! ```
//! use std::time::Duration;
//! use armor_psk::protocol::Signature;
//! use armor_psk::replay::{MemoryReplayStore, ReplayRequest, ReplayStore, Reservation};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let now = 1_700_000_000;
//! let store = MemoryReplayStore::builder().memory_limit(1 << 20).memory_since(Some(now - 60)).build();
//! let signature = Signature::from_bytes([7; 64]);
//! let request = ReplayRequest::new("key-1", &signature, now, now, Duration::from_secs(361))
//!     .with_nonce("nonce-1");
//! assert_eq!(store.reserve(&request).await.unwrap(), Reservation::Reserved);
//! assert_eq!(store.reserve(&request).await.unwrap(), Reservation::Replayed);
//! # }
//! ```
#![doc = include_str!("../../docs/replay.md")]

mod digest;
mod horizon;
mod index;
mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod shares;
mod snapshot;
pub(crate) mod store;
mod table;

pub use memory::{MemoryReplayStore, MemoryReplayStoreBuilder, Sweeping};
pub use snapshot::{Memory, Saved, SnapshotError};
pub use store::{ReplayKey, ReplayRequest, ReplayStore, ReplayStoreError, Reservation};
