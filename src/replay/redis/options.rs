//! [`RedisStoreOptions`]: the settings read before connecting, and the
//! connecting itself (one Redis or a cluster, its checks of eviction and
//! scripts, the watcher started).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;

use super::connection::Connection;
use super::error::{FailurePolicy, RedisStoreError};
use super::store::RedisReplayStore;
use super::watch::{Pressure, watch};

/// Bytes Redis spends on one entry (key, value, expiry, overhead), about
/// (290 measured on Redis 7.0 with a 52-byte prefix): used to turn
/// `maxmemory` into a per-key share.
const ENTRY_BYTES: u64 = 300;

/// Every setting of a [`RedisReplayStore`], given before it connects:
/// [`RedisReplayStore::options`], then [`connect`](Self::connect) or
/// [`connect_cluster`](Self::connect_cluster).
///
/// ```
/// use std::time::Duration;
/// use armor_psk::replay::redis::{FailurePolicy, RedisReplayStore};
///
/// let options = RedisReplayStore::options()
///     .prefix("my-service:armor-psk:") // one prefix per service sharing the Redis
///     .timeout(Duration::from_millis(50))
///     .failure_policy(FailurePolicy::Closed) // the default
///     .per_key_limit(100_000);
/// assert!(format!("{options:?}").contains(r#"prefix: "my-service:armor-psk:""#));
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisStoreOptions {
    prefix: Arc<[u8]>,
    timeout: Duration,
    policy: FailurePolicy,
    allow_eviction: bool,
    allow_without_scripts: bool,
    per_key_limit: Option<u64>,
}

impl std::fmt::Debug for RedisStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreOptions")
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .field("allow_eviction", &self.allow_eviction)
            .field("allow_without_scripts", &self.allow_without_scripts)
            .field("per_key_limit", &self.per_key_limit)
            .finish()
    }
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        Self {
            prefix: Arc::from(RedisReplayStore::DEFAULT_PREFIX.as_bytes()),
            timeout: RedisReplayStore::DEFAULT_TIMEOUT,
            policy: FailurePolicy::Closed,
            allow_eviction: false,
            allow_without_scripts: false,
            per_key_limit: None,
        }
    }
}

impl RedisStoreOptions {
    /// The prefix of every key (default `armor-psk:`): give each service
    /// its own when they share a Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.prefix = Arc::from(prefix.as_ref());
        self
    }

    /// The longest a reservation may take, round trip included (default
    /// 100 ms); past it the failure policy applies.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when Redis fails or is too slow (default
    /// [`FailurePolicy::Closed`]). A store connected with
    /// [`FailurePolicy::Open`] logs an error once, as it connects, so that
    /// the choice shows in the logs at start.
    ///
    /// # Security
    /// [`FailurePolicy::Open`] turns replay protection off for as long as
    /// Redis is unreachable; see its docs.
    #[must_use]
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Accept a Redis whose `maxmemory-policy` may evict keys.
    ///
    /// # Security
    /// Under any policy but `noeviction` Redis drops entries when it is
    /// full (`volatile-*` and `allkeys-*` alike: every entry has a TTL), and
    /// each dropped entry is a captured request that can be replayed. One
    /// key holder sending many requests can fill Redis on purpose and
    /// evict other clients' entries.
    #[must_use]
    pub fn allow_eviction(mut self, allow: bool) -> Self {
        self.allow_eviction = allow;
        self
    }

    /// Accept a Redis user that cannot run scripts (`EVAL`), or keys it may
    /// not write. [`connect`](Self::connect) refuses such a user by
    /// default: after a Redis restart from a snapshot the store raises
    /// every group's epoch with a script, and without it the requests the
    /// restart lost can be replayed.
    ///
    /// # Security
    /// With `true`, a Redis restarted from an RDB or AOF file that misses
    /// the latest writes brings back entries older than what it lost, and
    /// nothing fences the lost ones: each is a captured request that can be
    /// replayed until its timestamp leaves the window. The failure is
    /// logged every time the epochs cannot be raised.
    #[must_use]
    pub fn allow_without_scripts(mut self, allow: bool) -> Self {
        self.allow_without_scripts = allow;
        self
    }

    /// The most entries one key may hold while Redis is half full (default:
    /// an eighth of what `maxmemory` holds, at about 300 bytes an entry).
    #[must_use]
    pub fn per_key_limit(mut self, limit: u64) -> Self {
        self.per_key_limit = Some(limit);
        self
    }

    /// Connects to one Redis; see [`RedisReplayStore::connect`].
    ///
    /// # Errors
    /// See [`RedisReplayStore::connect`].
    pub async fn connect(self, url: &str) -> Result<RedisReplayStore, RedisStoreError> {
        let client = redis::Client::open(url)
            .map_err(|source| RedisStoreError::new("invalid Redis URL", source))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(RedisReplayStore::DEFAULT_TIMEOUT * 10))
            .set_response_timeout(Some(RedisReplayStore::DEFAULT_TIMEOUT * 10))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|source| RedisStoreError::new("cannot connect", source))?;
        self.finish(Connection::Single(connection), url).await
    }

    /// Connects to a Redis Cluster; see [`RedisReplayStore::connect_cluster`].
    ///
    /// # Errors
    /// See [`RedisReplayStore::connect_cluster`].
    pub async fn connect_cluster<U: AsRef<str>>(
        self,
        urls: &[U],
    ) -> Result<RedisReplayStore, RedisStoreError> {
        let urls: Vec<&str> = urls.iter().map(AsRef::as_ref).collect();
        let first = urls.first().copied().unwrap_or_default();
        let client = ClusterClient::builder(urls.clone())
            .connection_timeout(RedisReplayStore::DEFAULT_TIMEOUT * 10)
            .response_timeout(RedisReplayStore::DEFAULT_TIMEOUT * 10)
            .retries(2)
            .build()
            .map_err(|source| RedisStoreError::new("invalid Redis Cluster URLs", source))?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|source| RedisStoreError::new("cannot connect to the cluster", source))?;
        self.finish(Connection::Cluster(connection), first).await
    }

    /// Checks what the store needs of Redis, then starts the watcher;
    /// `url` gives the credentials of its own connections to each node.
    async fn finish(
        self,
        connection: Connection,
        url: &str,
    ) -> Result<RedisReplayStore, RedisStoreError> {
        let policies = connection
            .config_get("maxmemory-policy")
            .await
            .map_err(|source| {
                RedisStoreError::new(
                    "cannot read maxmemory-policy (CONFIG GET); if CONFIG is disabled, \
                     make sure the policy is noeviction and allow eviction explicitly",
                    source,
                )
            })?;
        if policies.is_empty() && !self.allow_eviction {
            return Err(RedisStoreError {
                context: "CONFIG GET maxmemory-policy answered nothing; make sure the policy is \
                          noeviction and allow eviction explicitly"
                    .into(),
                source: None,
            });
        }
        let evicting: Vec<&String> = policies
            .iter()
            .filter(|policy| policy.as_str() != "noeviction")
            .collect();
        if let Some(policy) = evicting.first() {
            if self.allow_eviction {
                tracing::error!(
                    policy = policy.as_str(),
                    "ARMOR-PSK Redis replay store: Redis may evict entries; an evicted entry is a \
                     replay accepted"
                );
            } else {
                return Err(RedisStoreError {
                    context: format!(
                        "maxmemory-policy is {policy}: Redis may evict entries, and an evicted \
                         entry is a replay accepted; set it to noeviction \
                         (CONFIG SET maxmemory-policy noeviction)"
                    ),
                    source: None,
                });
            }
        }
        // The fence needs scripts: try one now (it touches no key, so an
        // ACL limited to the prefix passes) rather than learn after a
        // restart.
        let scripts = match can_run_scripts(&connection).await {
            Ok(()) => true,
            Err(source) if self.allow_without_scripts => {
                tracing::error!(
                    %source,
                    "ARMOR-PSK Redis replay store: this Redis user cannot run scripts (EVAL); \
                     after a restart from a snapshot, lost requests can be replayed"
                );
                false
            }
            Err(source) => {
                return Err(RedisStoreError::new(
                    "the restart fence needs EVAL, and it failed (an ACL without +@scripting?); \
                     grant it, or accept the risk with RedisStoreOptions::allow_without_scripts",
                    source,
                ));
            }
        };
        let prefix = self.prefix;
        let (_, maxmemory) = connection
            .memory()
            .await
            .map_err(|source| RedisStoreError::new("cannot read INFO memory", source))?;
        let per_key = self
            .per_key_limit
            .unwrap_or(maxmemory / ENTRY_BYTES / 8)
            .max(2);
        let pressure = Arc::new(Pressure {
            under: AtomicBool::new(false),
            per_key,
            prefix: Arc::clone(&prefix),
            horizon: crate::replay::horizon::Horizon::new(),
            accepted: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            observed_at: AtomicU64::new(0),
        });
        let nodes = connection.watched_nodes(url).await;
        if nodes.is_empty() {
            tracing::error!(
                "ARMOR-PSK Redis replay store: no node's restarts can be watched; after a restart \
                 from a snapshot, lost requests can be replayed"
            );
        }
        let run_ids = nodes.run_ids().await;
        watch(
            connection.clone(),
            nodes,
            run_ids,
            Arc::downgrade(&pressure),
        );
        if self.policy == FailurePolicy::Open {
            tracing::error!(
                "ARMOR-PSK Redis replay store set to fail open: while Redis is unreachable, \
                 captured requests can be replayed"
            );
        }
        Ok(RedisReplayStore {
            connection,
            prefix,
            timeout: self.timeout,
            policy: self.policy,
            pressure,
            scripts,
        })
    }
}

impl RedisReplayStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "armor-psk:";
    /// The default time a reservation may take.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

    /// Every setting, before connecting: the prefix, the timeout, the
    /// failure policy, eviction and scripts allowed or not, the per-key
    /// share.
    pub fn options() -> RedisStoreOptions {
        RedisStoreOptions::default()
    }

    /// Connects to `url` (`redis://host:port/db`, `rediss://` for TLS if
    /// the `redis` crate was built with it) with every default setting
    /// ([`options`](Self::options) for others), and checks that Redis will
    /// not evict entries.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// The URL is not a Redis URL, Redis cannot be reached now (later
    /// outages are handled by the failure policy instead), or its
    /// `maxmemory-policy` is not `noeviction` (see
    /// [`RedisStoreOptions::allow_eviction`]).
    pub async fn connect(url: &str) -> Result<Self, RedisStoreError> {
        Self::options().connect(url).await
    }

    /// Connects to a Redis Cluster through any of its nodes (`redis://`
    /// URLs); the cluster's map of slots is learned from them and kept up to
    /// date. Every primary must have `maxmemory-policy noeviction`. Must be
    /// called inside a tokio runtime.
    ///
    /// # Errors
    /// A URL is not a Redis URL, no node can be reached now, or a node may
    /// evict.
    pub async fn connect_cluster<U: AsRef<str>>(urls: &[U]) -> Result<Self, RedisStoreError> {
        Self::options().connect_cluster(urls).await
    }
}

/// Whether this Redis user may run a script (one that touches no key).
async fn can_run_scripts(connection: &Connection) -> Result<(), redis::RedisError> {
    // Reservations call their script by its hash: an ACL may allow
    // `EVAL` and not `EVALSHA`.
    const PROBE: &str = "return 1";
    let mut pipe = redis::pipe();
    pipe.cmd("EVAL").arg(PROBE).arg(0).ignore();
    pipe.cmd("EVALSHA")
        .arg(redis::Script::new(PROBE).get_hash())
        .arg(0)
        .ignore();
    connection.pipeline(&pipe).await.map(drop)
}
