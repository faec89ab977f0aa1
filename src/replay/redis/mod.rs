//! A replay store on Redis, shared by several server instances (cargo
//! feature `redis`): [`RedisReplayStore`], on one Redis or a Redis
//! Cluster, set up by [`RedisStoreOptions`] and failing as its
//! [`FailurePolicy`] says.
//!
//! Every instance that serves the same keys shares one store, so a request
//! accepted by one is a replay to all; the store's restart fence follows
//! Redis's own restarts (a Redis that lost its data refuses what it may
//! have forgotten).
//!
//! ```no_run
//! # async fn run() -> Result<(), armor_psk::replay::redis::RedisStoreError> {
//! use armor_psk::ArmorPskLayer;
//! use armor_psk::keys::MemoryKeyStore;
//! use armor_psk::replay::redis::{FailurePolicy, RedisReplayStore};
//!
//! let store = RedisReplayStore::options()
//!     .per_key_limit(100_000)
//!     .failure_policy(FailurePolicy::Closed)
//!     .connect("redis://127.0.0.1:6379/")
//!     .await?;
//! let layer = ArmorPskLayer::new(MemoryKeyStore::new()).with_replay_store(store);
//! # Ok(()) }
//! ```
#![doc = include_str!("../../../docs/redis.md")]

mod connection;
mod error;
mod groups;
mod options;
mod reserve;
mod store;
mod watch;

pub use error::{FailurePolicy, RedisStoreError};
pub use options::RedisStoreOptions;
pub use store::RedisReplayStore;
