//! Refusing replays: the [`ReplayStore`](crate::ReplayStore) trait and
//! the stores that implement it (moka, the default; sharded maps; Redis).

mod digest;
mod index;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod sharded;
mod store;

pub use memory::MemoryReplayStore;
#[cfg(feature = "redis")]
pub use redis::{FailurePolicy, RedisReplayStore, RedisStoreError};
pub use sharded::ShardedReplayStore;
pub use store::{ReplayKey, ReplayStore, ReplayStoreError, Reservation};
