//! The boxed types of the store traits.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future, as returned by the store traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any error, as the cause of a store's failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
