#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod body;
mod canonical;
mod clock;
mod extract;
mod future;
mod header;
mod key_store;
mod layer;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
#[cfg(feature = "redis")]
mod redis_store;
mod rejection;
mod replay;
mod response;
mod secret;
mod service;
mod sharded;
mod signature;
mod signer;
mod telemetry;
mod verify;

pub use body::DEFAULT_BODY_LIMIT;
pub use canonical::{BodyDigest, BodyHasher, BodySlot, Canonical, HASHED_EMPTY_BODY_SLOT};
pub use clock::{Clock, ManualClock, SystemClock};
pub use extract::MissingIdentity;
pub use future::ResponseFuture;
pub use header::{Credentials, MAX_NONCE_LEN, SCHEME};
pub use key_store::{BoxFuture, KeyStore, KeyStoreError, MemoryKeyStore};
pub use layer::ArmorPskLayer;
#[cfg(feature = "redis")]
pub use redis_store::{FailurePolicy, RedisReplayStore, RedisStoreError};
pub use rejection::{Rejection, RejectionKind};
pub use replay::{
    MemoryReplayStore, ReplayKey, ReplayStore, ReplayStoreError, Reservation, replay_ttl,
};
pub use secret::{Secret, generate_secret};
pub use service::ArmorPsk;
pub use sharded::ShardedReplayStore;
pub use signature::{InvalidSignatureEncoding, Signature};
pub use signer::{SignError, Signer};
#[cfg(feature = "metrics")]
pub use telemetry::describe_metrics;
pub use verify::{ConfigError, DEFAULT_WINDOW, Identity, VerifyOptions, signed_path, verify};
