//! A replay store on Redis, shared by several server instances (cargo
//! feature `redis`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

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

/// A [`ReplayStore`] on Redis or Redis Cluster: every server instance
/// that uses the same Redis and prefix refuses a request any of them
/// accepted.
///
/// Each entry is its own key (the prefix followed by the entry's bytes,
/// [`ReplayKey::as_bytes`]), set with `SET key value NX PX ttl`; a
/// request's entries are sent at once, so a reservation costs one round
/// trip, and no command ever spans two keys: on a cluster the entries may
/// live on different nodes. The expiry is
/// [`VerifyOptions::replay_ttl`](crate::VerifyOptions::replay_ttl): the
/// window and the clock-skew allowance, counted by Redis.
///
/// With unique nonces (two entries, signature first) the nonce key holds
/// the first 16 bytes of the request's signature and is set with `NX GET`
/// (Redis 7.0 or later): a request is reserved when its signature key was
/// new and its nonce key was new or held by a copy of the same request.
/// Of any number of concurrent copies exactly one is accepted, and a nonce
/// reused on another request is refused.
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
///
/// // Or a Redis Cluster, from any of its nodes:
/// let cluster = RedisReplayStore::connect_cluster(&["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: Connection,
    prefix: Arc<[u8]>,
    timeout: Duration,
    policy: FailurePolicy,
}

/// One Redis or a cluster: both multiplexed, cloned per command.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn query(&self, command: &redis::Cmd) -> Result<redis::Value, redis::RedisError> {
        match self {
            Self::Single(connection) => command.query_async(&mut connection.clone()).await,
            Self::Cluster(connection) => command.query_async(&mut connection.clone()).await,
        }
    }
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
        Ok(Self::with_connection(Connection::Single(connection)))
    }

    /// Connects to a Redis Cluster through any of its nodes (`redis://`
    /// URLs); the cluster's map of slots is learned from them and kept up to
    /// date. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// A URL is not a Redis URL, or no node can be reached now.
    pub async fn connect_cluster<U: AsRef<str>>(urls: &[U]) -> Result<Self, RedisStoreError> {
        let urls: Vec<&str> = urls.iter().map(AsRef::as_ref).collect();
        let client = ClusterClient::builder(urls)
            .connection_timeout(Self::DEFAULT_TIMEOUT * 10)
            .response_timeout(Self::DEFAULT_TIMEOUT * 10)
            .retries(2)
            .build()
            .map_err(|source| RedisStoreError {
                context: "invalid Redis Cluster URLs",
                source,
            })?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|source| RedisStoreError {
                context: "cannot connect to the cluster",
                source,
            })?;
        Ok(Self::with_connection(Connection::Cluster(connection)))
    }

    fn with_connection(connection: Connection) -> Self {
        Self {
            connection,
            prefix: Arc::from(Self::DEFAULT_PREFIX.as_bytes()),
            timeout: Self::DEFAULT_TIMEOUT,
            policy: FailurePolicy::Closed,
        }
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
    /// [`FailurePolicy::Closed`]). Setting [`FailurePolicy::Open`] logs an
    /// error once, here, so that the choice shows in the logs at start.
    ///
    /// # Security
    /// [`FailurePolicy::Open`] turns replay protection off for as long as
    /// Redis is unreachable; see its docs.
    #[must_use]
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        if policy == FailurePolicy::Open {
            tracing::error!(
                "ARMOR-PSK Redis replay store set to fail open: while Redis is unreachable, \
                 captured requests can be replayed"
            );
        }
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
        let set = |entry: &ReplayKey, value: &[u8]| {
            let mut command = redis::cmd("SET");
            command.arg(self.key(entry)).arg(value).arg("NX");
            command
        };
        let reserved = match entries {
            [] => true,
            [entry] => {
                let mut command = set(entry, b"1");
                command.arg("PX").arg(ttl_ms);
                is_ok(&self.connection.query(&command).await?)
            }
            [signature, nonce] => {
                // The nonce's value names the request that holds it.
                let owner = signature_tag(signature);
                let mut first = set(signature, b"1");
                first.arg("PX").arg(ttl_ms);
                let mut second = set(nonce, owner);
                second.arg("GET").arg("PX").arg(ttl_ms);
                let (signature, nonce) = tokio::join!(
                    self.connection.query(&first),
                    self.connection.query(&second)
                );
                let nonce_free = match nonce? {
                    redis::Value::Nil => true,
                    redis::Value::BulkString(held) => held == owner,
                    _ => false,
                };
                is_ok(&signature?) && nonce_free
            }
            more => {
                // Not made by the layer; each must be new.
                let mut all_new = true;
                for entry in more {
                    let mut command = set(entry, b"1");
                    command.arg("PX").arg(ttl_ms);
                    all_new &= is_ok(&self.connection.query(&command).await?);
                    if !all_new {
                        break;
                    }
                }
                all_new
            }
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

/// Whether a `SET` answered `OK` (set) rather than nil (`NX`: it existed).
fn is_ok(reply: &redis::Value) -> bool {
    matches!(reply, redis::Value::Okay)
        || matches!(reply, redis::Value::SimpleString(text) if text == "OK")
}

/// The value a nonce key holds: the first 16 bytes of the request's
/// signature entry's signature (its last 64 bytes are the signature).
fn signature_tag(signature: &ReplayKey) -> &[u8] {
    let bytes = signature.as_bytes();
    let start = bytes.len().saturating_sub(64);
    &bytes[start..(start + 16).min(bytes.len())]
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
        let kind = match self.connection {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisReplayStore")
            .field("kind", &kind)
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
