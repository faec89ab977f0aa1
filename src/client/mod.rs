//! Signing outgoing requests: a tower layer that puts an `ARMOR-PSK`
//! `Authorization` header on every request a client sends (hyper-util's
//! client, or any tower service over `http` types), and with the `reqwest`
//! feature the same as reqwest-middleware middleware.
//!
//! A client signs, a server verifies:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use armor_psk::client::{SignLayer, SignedBody};
//! use armor_psk::{ArmorPskLayer, Clock, Signer, SystemClock, VerifiedBody, keys::MemoryKeyStore, replay::MemoryReplayStore};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // The server: the layer in front of a handler. A server refuses what
//! // was signed in the second its replay memory began; this one's began a
//! // minute ago (as a graceful restart from a snapshot would say).
//! let store = MemoryReplayStore::builder().memory_since(Some(SystemClock.now() - 60)).build();
//! let server = ServiceBuilder::new()
//!     .layer(ArmorPskLayer::new(MemoryKeyStore::new().with_key("key-1", "secret-1")).with_replay_store(store))
//!     .service(service_fn(|request: Request<VerifiedBody>| async move {
//!         Ok::<_, std::convert::Infallible>(Response::new(request.into_body().into_bytes()))
//!     }));
//! // The client: every request signed with a fresh nonce, then sent to it.
//! let client = ServiceBuilder::new()
//!     .layer(SignLayer::new(Signer::new("key-1", "secret-1").unwrap()))
//!     .service(service_fn(move |request: Request<SignedBody>| server.clone().oneshot(request)));
//!
//! let response = client.oneshot(Request::post("/things").body("{}".to_owned()).unwrap()).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! # }
//! ```

mod layer;
#[cfg(feature = "reqwest")]
mod reqwest;
mod signing;

#[cfg(feature = "reqwest")]
pub use self::reqwest::{SignMiddleware, StreamingBody};
pub use layer::{Sign, SignFuture, SignLayer, SignedBody};
