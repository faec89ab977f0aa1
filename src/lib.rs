#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(feature = "axum")]
mod axum;
mod boxed;
pub mod client;
mod keys;
mod middleware;
#[cfg(feature = "mock")]
pub mod mock;
#[cfg(any(feature = "postgres", feature = "mock"))]
mod percent;
mod protocol;
mod replay;

#[cfg(feature = "axum")]
pub use crate::axum::MissingIdentity;
pub use boxed::{BoxError, BoxFuture};
pub use keys::{CachedKeyStore, KeyStore, KeyStoreError, MemoryKeyStore, WeakCachedKeyStore};
#[cfg(feature = "postgres")]
pub use keys::{
    Kek, KeyInfo, NewKey, PostgresKeyStore, PostgresOptions, PostgresStoreError, Sealing,
};
pub use middleware::body::{DEFAULT_BODY_LIMIT, VerifiedBody};
pub use middleware::future::ResponseFuture;
pub use middleware::layer::ArmorPskLayer;
pub use middleware::response::ResponseBody;
pub use middleware::service::ArmorPsk;
#[cfg(feature = "metrics")]
pub use middleware::telemetry::describe_metrics;
pub use protocol::canonical::{
    BodyDigest, BodyHasher, BodySlot, Canonical, HASHED_EMPTY_BODY_SLOT, signed_path,
};
pub use protocol::clock::{Clock, ManualClock, SystemClock};
pub use protocol::diagnose::{ClientMistake, RefusedRequest};
pub use protocol::header::{Credentials, MAX_KEY_ID_LEN, MAX_NONCE_LEN, SCHEME};
pub use protocol::identity::Identity;
pub use protocol::key::{Key, KeySecret};
pub use protocol::options::{
    ConfigError, DEFAULT_CLOCK_SKEW_ALLOWANCE, DEFAULT_WINDOW, MAX_WINDOW, NonceFormat,
    VerifyOptions, replay_ttl,
};
pub use protocol::rejection::{Rejection, RejectionKind};
pub use protocol::secret::{Secret, generate_secret};
pub use protocol::signature::{InvalidSignatureEncoding, Signature};
pub use protocol::signer::{SignError, Signer, new_uuid_v4};
pub use protocol::verify::verify;
#[cfg(feature = "redis")]
pub use replay::{FailurePolicy, RedisReplayStore, RedisStoreError, RedisStoreOptions};
pub use replay::{
    MemoryReplayStore, ReplayKey, ReplayRequest, ReplayStore, ReplayStoreError, Reservation,
    ShardedReplayStore,
};
