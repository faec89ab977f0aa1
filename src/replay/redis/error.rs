//! What the Redis store does when Redis fails ([`FailurePolicy`]) and the
//! error it reports ([`RedisStoreError`], the URL never in its text).

/// What the store answers when Redis cannot be reached in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub enum FailurePolicy {
    /// Refuse the request: 503 `replay_store_unavailable` (the default).
    #[default]
    Closed,
    /// Let the request through without replay protection.
    ///
    /// # Security
    /// While Redis is unreachable every captured request can be replayed,
    /// as often as the attacker likes, for as long as its timestamp stays in
    /// the window. Choose it only where availability matters more than
    /// replay protection, and watch the `replay store unavailable` warnings
    /// it logs on every such request.
    Open,
}

/// Redis could not be reached when the store was made, the URL is not a
/// Redis URL, or Redis may evict the store's entries; the Redis error, if
/// any, is the [`source`](std::error::Error::source). Neither carries the
/// URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("Redis replay store: {context}")]
pub struct RedisStoreError {
    pub(super) context: String,
    #[source]
    pub(super) source: Option<redis::RedisError>,
}

impl RedisStoreError {
    pub(super) fn new(context: impl Into<String>, source: redis::RedisError) -> Self {
        Self {
            context: context.into(),
            source: Some(source),
        }
    }
}
