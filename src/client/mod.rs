//! Signing outgoing requests: a tower layer that puts an `ARMOR-PSK`
//! `Authorization` header on every request a client sends (hyper-util's
//! client, or any tower service over `http` types), and with the `reqwest`
//! feature the same as reqwest-middleware middleware.

mod layer;
#[cfg(feature = "reqwest")]
mod reqwest;
mod signing;

#[cfg(feature = "reqwest")]
pub use self::reqwest::{SignMiddleware, StreamingBody};
pub use layer::{SignLayer, SignRequests, SignedBody};
