//! Verify `ARMOR-PSK` signed HTTP requests: a tower [`Layer`](tower_layer::Layer)
//! in front of any tower service (an axum `Router` first among them), the
//! signer and signing clients for the other side, and replay and key
//! stores for production.
//!
//! A request carries `Authorization: ARMOR-PSK key_id:signature:nonce:timestamp`,
//! the signature being `base64(HMAC-SHA512(secret, key_id + METHOD + path +
//! nonce + timestamp + body_slot))`. [`ArmorPskLayer`] checks it, refuses a
//! replay, and hands the inner service the verified body and an
//! [`Identity`]; a refused request gets a JSON answer naming a
//! [`RejectionKind`].
//!
//! ```
//! use armor_psk::{ArmorPskLayer, Identity, ManualClock, Signer, keys::MemoryKeyStore};
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = ManualClock::new(1_700_000_000); // leave out for the system clock
//! let app = Router::new()
//!     .route("/me", get(|who: Identity| async move { who.key_id().to_owned() }))
//!     .layer(
//!         ArmorPskLayer::new(MemoryKeyStore::new().with_key("key-1", "secret-1"))
//!             .with_clock(clock.clone()),
//!     );
//! // What was signed in the second the server started is refused (a
//! // restart may have forgotten it): a second later, all is served.
//! clock.advance(1);
//!
//! let header = Signer::new("key-1", "secret-1").unwrap()
//!     .sign_at("GET", "/me", b"", "nonce-1", 1_700_000_001).unwrap();
//! let signed = || Request::get("/me").header("authorization", &header).body(Body::empty()).unwrap();
//! assert_eq!(app.clone().oneshot(signed()).await.unwrap().status(), StatusCode::OK);
//! // The same request again is a replay.
//! assert_eq!(app.oneshot(signed()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```
//!
#![doc = include_str!("../docs/server.md")]
#![doc = include_str!("../docs/cli.md")]
//! # Where to go next
//!
//! - **The layer**, here at the root: [`ArmorPskLayer`] (its settings),
//!   [`ArmorPsk`] (the service), [`Rejection`] and [`RejectionKind`] (why a
//!   request was refused), [`Identity`] (who signed), [`Signer`] (the other
//!   side) and the [`Clock`]s.
//! - [`protocol`]: the protocol on plain values, without tower
//!   ([`Credentials::parse`](protocol::Credentials::parse),
//!   [`signed_path`](protocol::signed_path), [`verify`](fn@protocol::verify)),
//!   and [`protocol::diagnose`], which names a client's mistake.
//! - [`keys`]: the [`KeyStore`](keys::KeyStore) trait,
//!   [`MemoryKeyStore`](keys::MemoryKeyStore),
//!   [`CachedKeyStore`](keys::CachedKeyStore), and with the `postgres`
//!   feature `keys::postgres` (keys sealed under a KEK, changes published
//!   within a second).
//! - [`replay`]: the [`ReplayStore`](replay::ReplayStore) trait,
//!   [`MemoryReplayStore`](replay::MemoryReplayStore) (the default),
//!   and with the
//!   `redis` feature `replay::redis`, shared by several instances.
//! - [`client`]: a tower layer that signs requests and, with the `reqwest`
//!   feature, reqwest middleware.
//! - **Tests of client code**: the `mock` of Armor's API (feature `mock`)
//!   and the `armor-psk` command line (feature `cli`).
//!
//! SECURITY.md holds the threat model, BENCHMARKS.md the measured
//! performance, CHANGELOG.md what moved where.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`Identity`] as an extractor, `IntoResponse` for [`Rejection`], the original path inside nested routers |
//! | `redis` | no | `replay::redis`: a replay store on Redis or Redis Cluster |
//! | `postgres` | no | `keys::postgres`: keys in PostgreSQL, sealed under a KEK, and their administration |
//! | `reqwest` | no | `client::SignMiddleware` for reqwest-middleware |
//! | `metrics` | no | counters, a histogram and a gauge through `metrics` |
//! | `mock` | no | the `mock` module: Armor's API behind ARMOR-PSK |
//! | `cli` | no | the `armor-psk` binary |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "axum")]
mod axum;
mod boxed;
pub mod client;
pub mod keys;
mod macros;
mod middleware;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
pub mod protocol;
pub mod replay;

#[cfg(feature = "axum")]
pub use crate::axum::MissingIdentity;
pub use boxed::{BoxError, BoxFuture};
pub use middleware::body::{DEFAULT_BODY_LIMIT, VerifiedBody};
pub use middleware::future::ResponseFuture;
pub use middleware::layer::ArmorPskLayer;
pub use middleware::response::ResponseBody;
pub use middleware::service::ArmorPsk;
#[cfg(feature = "metrics")]
pub use middleware::telemetry::describe_metrics;
pub use protocol::clock::{Clock, ManualClock, SystemClock};
pub use protocol::identity::Identity;
pub use protocol::options::ConfigError;
pub use protocol::rejection::{Rejection, RejectionKind};
pub use protocol::signer::{SignError, Signer};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
