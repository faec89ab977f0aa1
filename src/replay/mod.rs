//! Refusing replays: the [`ReplayStore`](crate::ReplayStore) trait, the
//! [`ReplayRequest`](crate::ReplayRequest) every store is handed, and the
//! stores (in memory, the default; the same without a thread; Redis).
//!
//! The in-memory stores keep a compact index of 64-bit keyed digests (12
//! bytes a slot) rather than a cache of nonces: see
//! [`MemoryReplayStore`](crate::MemoryReplayStore) for the measured costs
//! and the reason.

mod digest;
mod horizon;
mod index;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod sharded;
mod shares;
mod snapshot;
mod store;
mod table;

pub use memory::{MemoryReplayStore, MemoryReplayStoreBuilder};
#[cfg(feature = "redis")]
pub use redis::{FailurePolicy, RedisReplayStore, RedisStoreError, RedisStoreOptions};
pub use sharded::ShardedReplayStore;
pub use snapshot::{Memory, Saved, SnapshotError};
pub use store::{ReplayKey, ReplayRequest, ReplayStore, ReplayStoreError, Reservation};
