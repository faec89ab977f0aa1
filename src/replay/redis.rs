//! A replay store on Redis, shared by several server instances (cargo
//! feature `redis`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::store::{ReplayKey, ReplayStore, ReplayStoreError, Reservation};
use crate::boxed::{BoxError, BoxFuture};

/// What the store answers when Redis cannot be reached in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
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

/// Redis could not be reached when the store was made, or the URL is not a
/// Redis URL; the Redis error is the [`source`](std::error::Error::source).
/// Neither carries the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("Redis replay store: {context}")]
pub struct RedisStoreError {
    context: &'static str,
    #[source]
    source: redis::RedisError,
}

/// Checks every entry, then sets them all with the request's expiry: one
/// round trip, atomic on the server.
const RESERVE_ALL: &str = r"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], '1', 'PX', ARGV[1])
end
return 1
";

/// A [`ReplayStore`] on Redis: every server instance that uses the same
/// Redis and prefix refuses a request any of them accepted.
///
/// A request's entries are reserved in one round trip: `SET key 1 NX PX ttl`
/// for a single entry, a Lua script that checks and sets all of them
/// atomically for two. The expiry is the one the in-memory store uses
/// ([`replay_ttl`](crate::replay_ttl)): an entry lives exactly as long as
/// the window accepts its request. Keys are the prefix followed by the
/// entry's bytes ([`ReplayKey::as_bytes`]).
///
/// The connection reconnects by itself; each reservation has a timeout
/// (100 ms by default) and, past it or on any Redis error, the
/// [`FailurePolicy`] decides: closed (503) by default.
///
/// ```no_run
/// # async fn run() -> Result<(), armor_psk::RedisStoreError> {
/// use std::time::Duration;
/// use armor_psk::{ArmorPskLayer, MemoryKeyStore, RedisReplayStore};
///
/// let store = RedisReplayStore::connect("redis://127.0.0.1:6379/")
///     .await?
///     .with_prefix("my-service:armor-psk:")
///     .with_timeout(Duration::from_millis(50));
/// let layer = ArmorPskLayer::new(MemoryKeyStore::new()).with_replay_store(store);
/// # Ok(()) }
/// ```
///
/// Redis Cluster: the two entries of a request have unrelated keys, so
/// they may fall in different slots, which a script cannot span; use a
/// single Redis (with replicas or Sentinel), or `with_unique_nonces(false)`
/// on the layer (one entry, a plain `SET NX`).
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: ConnectionManager,
    script: Arc<redis::Script>,
    prefix: Arc<[u8]>,
    timeout: Duration,
    policy: FailurePolicy,
}

impl RedisReplayStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "armor-psk:";
    /// The default time a reservation may take.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

    /// Connects to `url` (`redis://host:port/db`, `rediss://` for TLS if
    /// the `redis` crate was built with it), with the default prefix,
    /// timeout and policy. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// The URL is not a Redis URL, or Redis cannot be reached now (later
    /// outages are handled by the failure policy instead).
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        let client = redis::Client::open(url).map_err(|source| RedisStoreError {
            context: "invalid Redis URL",
            source,
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Self::DEFAULT_TIMEOUT * 10))
            .set_response_timeout(Some(Self::DEFAULT_TIMEOUT * 10))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|source| RedisStoreError {
                context: "cannot connect",
                source,
            })?;
        Ok(Self {
            connection,
            script: Arc::new(redis::Script::new(RESERVE_ALL)),
            prefix: Arc::from(Self::DEFAULT_PREFIX.as_bytes()),
            timeout: Self::DEFAULT_TIMEOUT,
            policy: FailurePolicy::Closed,
        })
    }

    /// The prefix of every key (default `armor-psk:`): give each service
    /// its own when they share a Redis.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.prefix = Arc::from(prefix.as_ref());
        self
    }

    /// The longest a reservation may take, round trip included (default
    /// 100 ms); past it the failure policy applies.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis fails or is too slow (default
    /// [`FailurePolicy::Closed`]).
    ///
    /// # Security
    /// [`FailurePolicy::Open`] turns replay protection off for as long as
    /// Redis is unreachable; see its docs.
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The Redis key of an entry: the prefix, then the entry's bytes.
    pub fn key(&self, entry: &ReplayKey) -> Vec<u8> {
        [&self.prefix[..], entry.as_bytes()].concat()
    }

    async fn try_reserve(
        &self,
        entries: &[ReplayKey],
        ttl: Duration,
    ) -> Result<Reservation, redis::RedisError> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection.clone();
        let reserved = if let [entry] = entries {
            let set: Option<String> = redis::cmd("SET")
                .arg(self.key(entry))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut connection)
                .await?;
            set.is_some()
        } else {
            let mut invocation = self.script.prepare_invoke();
            for entry in entries {
                invocation.key(self.key(entry));
            }
            let done: i64 = invocation.arg(ttl_ms).invoke_async(&mut connection).await?;
            done == 1
        };
        Ok(if reserved {
            Reservation::Reserved
        } else {
            Reservation::Replayed
        })
    }

    async fn reserve_with_policy(
        &self,
        entries: &[ReplayKey],
        ttl: Duration,
    ) -> Result<Reservation, ReplayStoreError> {
        let outcome: Result<Reservation, BoxError> =
            match tokio::time::timeout(self.timeout, self.try_reserve(entries, ttl)).await {
                Ok(outcome) => outcome.map_err(Into::into),
                Err(elapsed) => Err(elapsed.into()),
            };
        match (outcome, self.policy) {
            (Ok(reservation), _) => Ok(reservation),
            (Err(error), FailurePolicy::Closed) => Err(ReplayStoreError::Unavailable(error)),
            (Err(error), FailurePolicy::Open) => {
                tracing::warn!(%error, "ARMOR-PSK replay store unavailable; failing open (no replay protection)");
                Ok(Reservation::Reserved)
            }
        }
    }
}

impl ReplayStore for RedisReplayStore {
    fn reserve<'a>(
        &'a self,
        entries: &'a [ReplayKey],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(self.reserve_with_policy(entries, ttl))
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
