//! Signing outgoing requests: a tower layer that puts an `ARMOR-PSK`
//! `Authorization` header on every request a client sends (hyper-util's
//! client, or any tower service over `http` types).

mod layer;

pub use layer::{SignLayer, SignRequests, SignedBody};
