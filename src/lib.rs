#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod axum;
mod keys;
mod middleware;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
mod protocol;
mod replay;

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, as returned by the store traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use crate::axum::MissingIdentity;
pub use keys::{KeyStore, KeyStoreError, MemoryKeyStore};
pub use middleware::body::DEFAULT_BODY_LIMIT;
pub use middleware::future::ResponseFuture;
pub use middleware::layer::ArmorPskLayer;
pub use middleware::service::ArmorPsk;
#[cfg(feature = "metrics")]
pub use middleware::telemetry::describe_metrics;
pub use protocol::canonical::{
    BodyDigest, BodyHasher, BodySlot, Canonical, HASHED_EMPTY_BODY_SLOT,
};
pub use protocol::clock::{Clock, ManualClock, SystemClock};
pub use protocol::header::{Credentials, MAX_NONCE_LEN, SCHEME};
pub use protocol::rejection::{Rejection, RejectionKind};
pub use protocol::secret::{Secret, generate_secret};
pub use protocol::signature::{InvalidSignatureEncoding, Signature};
pub use protocol::signer::{SignError, Signer};
pub use protocol::verify::{
    ConfigError, DEFAULT_WINDOW, Identity, VerifyOptions, signed_path, verify,
};
#[cfg(feature = "redis")]
pub use replay::{FailurePolicy, RedisReplayStore, RedisStoreError};
pub use replay::{
    MemoryReplayStore, ReplayKey, ReplayStore, ReplayStoreError, Reservation, ShardedReplayStore,
    replay_ttl,
};
