//! A replay store on Redis, shared by several server instances (cargo
//! feature `redis`).

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
