//! A replay store on Redis, shared by several server instances (cargo
//! feature `redis`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use smallvec::SmallVec;

use super::store::{ReplayKey, ReplayRequest, ReplayStore, ReplayStoreError, Reservation};
use crate::boxed::{BoxError, BoxFuture};

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
    context: String,
    #[source]
    source: Option<redis::RedisError>,
}

impl RedisStoreError {
    fn new(context: impl Into<String>, source: redis::RedisError) -> Self {
        Self {
            context: context.into(),
            source: Some(source),
        }
    }
}

/// How many groups the entries' keys fall in: each group's keys share a
/// Redis Cluster hash slot with the group's epoch key, so that a node that
/// loses its data loses the epoch of every entry it held.
const GROUPS: u8 = 64;

/// Bytes Redis spends on one entry (key, value, expiry, overhead), about
/// (290 measured on Redis 7.0 with a 52-byte prefix): used to turn
/// `maxmemory` into a per-key share.
const ENTRY_BYTES: u64 = 300;

/// How often Redis's memory is read.
const MEMORY_POLL: Duration = Duration::from_millis(250);

/// A [`ReplayStore`] on Redis or Redis Cluster: every server instance
/// that uses the same Redis and prefix refuses a request any of them
/// accepted.
///
/// Each entry is its own key: the prefix, a hash tag `{g..}` naming one of
/// 64 groups (from the entry's bytes), then the entry's bytes
/// ([`ReplayKey::as_bytes`]); it is set with `SET key value NX PX ttl`
/// until the request's [`expires_at`](ReplayRequest::expires_at), in one
/// pipeline with its group's epoch (one hash slot). A request's entries are
/// sent at once: a reservation costs one round trip, on a cluster too.
///
/// With unique nonces (two entries, signature first) the nonce key holds
/// the first 16 bytes of the request's signature and is set with `NX GET`
/// (Redis 7.0 or later): a request is reserved when its signature key was
/// new and its nonce key was new or held by a copy of the same request.
///
/// # Restarts and data loss
///
/// Each group has an epoch key (no expiry) holding the time its memory
/// began; every reservation sets it if absent (`SET NX GET`) in the same
/// pipeline. When Redis restarts without persistence, or a cluster node
/// loses its data, the epoch goes with the entries: the next request
/// writes a new one, and requests signed before it are refused with 401
/// `issued_before_restart`, by every instance (they read the epoch from
/// Redis). A failover to a replica that had not received the latest
/// writes keeps the epoch and loses those writes: see SECURITY.md.
///
/// # Eviction, memory and shares
///
/// [`connect`](Self::connect) refuses a Redis whose `maxmemory-policy` is
/// not `noeviction` (an evicted entry is a replay accepted), unless
/// [`RedisStoreOptions::allow_eviction`]. Under `noeviction` a full Redis
/// answers `OOM`: the request gets 503 `replay_store_full` and nothing held
/// is lost. While Redis is at least half full (`used_memory` against
/// `maxmemory`, read four times a second) a key is held to its share: each key
/// counts its entries (`INCRBY`/`PEXPIRE`, beside the reservation), and one
/// that holds more than an eighth of what `maxmemory` can hold gets 429
/// `key_quota_exceeded`, so one key's flood cannot fill Redis.
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
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisReplayStore {
    connection: Connection,
    prefix: Arc<[u8]>,
    timeout: Duration,
    policy: FailurePolicy,
    pressure: Arc<Pressure>,
}

/// What the store knows of Redis: its memory, and who it is.
struct Pressure {
    /// Redis holds at least half its `maxmemory`.
    under: AtomicBool,
    /// The most entries one key may hold under pressure.
    per_key: u64,
    /// The prefix, for the watcher to rewrite the epochs.
    prefix: parking_lot::Mutex<Arc<[u8]>>,
    /// The latest time a request brought (the layer's clock): what the
    /// watcher writes as the epoch after a restart.
    latest: AtomicU64,
    /// Restarts the watcher has fenced.
    restarts: AtomicU64,
}

/// How to connect: [`RedisReplayStore::options`].
#[derive(Debug, Clone, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisStoreOptions {
    allow_eviction: bool,
    per_key_limit: Option<u64>,
}

impl RedisStoreOptions {
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
        self.finish(Connection::Single(connection)).await
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
        let client = ClusterClient::builder(urls)
            .connection_timeout(RedisReplayStore::DEFAULT_TIMEOUT * 10)
            .response_timeout(RedisReplayStore::DEFAULT_TIMEOUT * 10)
            .retries(2)
            .build()
            .map_err(|source| RedisStoreError::new("invalid Redis Cluster URLs", source))?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|source| RedisStoreError::new("cannot connect to the cluster", source))?;
        self.finish(Connection::Cluster(connection)).await
    }

    async fn finish(self, connection: Connection) -> Result<RedisReplayStore, RedisStoreError> {
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
        let (_, maxmemory) = connection
            .memory()
            .await
            .map_err(|source| RedisStoreError::new("cannot read INFO memory", source))?;
        let per_key = self
            .per_key_limit
            .unwrap_or(maxmemory / ENTRY_BYTES / 8)
            .max(2);
        let prefix: Arc<[u8]> = Arc::from(RedisReplayStore::DEFAULT_PREFIX.as_bytes());
        let pressure = Arc::new(Pressure {
            under: AtomicBool::new(false),
            per_key,
            prefix: parking_lot::Mutex::new(Arc::clone(&prefix)),
            latest: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        });
        let run_ids = connection.run_ids().await.unwrap_or_default();
        watch(connection.clone(), Arc::downgrade(&pressure), run_ids);
        Ok(RedisReplayStore {
            connection,
            prefix,
            timeout: RedisReplayStore::DEFAULT_TIMEOUT,
            policy: FailurePolicy::Closed,
            pressure,
        })
    }
}

/// Four times a second, for as long as the store lives: reads Redis's
/// memory (pressure), and each node's `run_id`. A node that restarted
/// from a snapshot brings back epochs older than the entries it lost, so
/// when a `run_id` changes every epoch is written anew with the time now:
/// requests signed before are refused from then on.
fn watch(connection: Connection, pressure: Weak<Pressure>, mut run_ids: HashMap<String, String>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(MEMORY_POLL).await;
            let Some(pressure) = pressure.upgrade() else {
                return;
            };
            if let Ok((used, max)) = connection.memory().await {
                let under = max > 0 && used.saturating_mul(2) >= max;
                pressure.under.store(under, Ordering::Relaxed);
            }
            // One Redis only: a cluster connection reaches a restarted node
            // again only when a command needs it, so its run_id is not
            // seen reliably (see SECURITY.md).
            if matches!(connection, Connection::Cluster(_)) {
                continue;
            }
            let Ok(now_ids) = connection.run_ids().await else {
                continue;
            };
            // A node down is not a restart yet; one that answers with
            // another run_id is.
            let restarted = now_ids
                .iter()
                .any(|(node, id)| run_ids.get(node).is_some_and(|before| before != id));
            if restarted {
                let prefix = Arc::clone(&*pressure.prefix.lock());
                // On the layer's clock, as the requests tell it; past the
                // latest second, which the lost writes may have used.
                let now = match pressure.latest.load(Ordering::Relaxed) {
                    0 => crate::protocol::clock::Clock::now(&crate::protocol::clock::SystemClock),
                    latest => latest + 1,
                };
                match write_epochs(&connection, &prefix, now).await {
                    Ok(()) => {
                        pressure.restarts.fetch_add(1, Ordering::SeqCst);
                        tracing::warn!(
                            "ARMOR-PSK Redis replay store: a Redis node restarted; requests signed \
                         before now are refused"
                        );
                    }
                    Err(error) => {
                        tracing::error!(%error, "ARMOR-PSK Redis replay store: cannot write the epochs");
                        continue;
                    }
                }
            }
            run_ids.extend(now_ids);
        }
    });
}

/// Raises every group's epoch to `began` (an epoch is never lowered: that
/// would let through requests a fence refuses).
async fn write_epochs(
    connection: &Connection,
    prefix: &[u8],
    began: u64,
) -> Result<(), redis::RedisError> {
    const RAISE: &str = "local held = tonumber(redis.call('GET', KEYS[1]) or '0') \
                         if held < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end \
                         return 1";
    for group in 0..GROUPS {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(RAISE)
            .arg(1)
            .arg([prefix, &group_name(group)[..], b"epoch"].concat())
            .arg(began)
            .ignore();
        connection.pipeline(&pipe).await?;
    }
    Ok(())
}

/// One Redis or a cluster: both multiplexed, cloned per command.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn pipeline(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<Vec<redis::Value>, redis::RedisError> {
        match self {
            Self::Single(connection) => pipe.query_async(&mut connection.clone()).await,
            Self::Cluster(connection) => pipe.query_async(&mut connection.clone()).await,
        }
    }

    /// A configuration value of every (primary) node.
    async fn config_get(&self, name: &str) -> Result<Vec<String>, redis::RedisError> {
        let mut command = redis::cmd("CONFIG");
        command.arg("GET").arg(name);
        let values = match self {
            Self::Single(connection) => {
                let value: HashMap<String, String> =
                    command.query_async(&mut connection.clone()).await?;
                vec![value]
            }
            Self::Cluster(connection) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let value = connection.clone().route_command(command, routing).await?;
                let nodes: HashMap<String, HashMap<String, String>> =
                    redis::from_redis_value(value)?;
                nodes.into_values().collect()
            }
        };
        Ok(values
            .into_iter()
            .filter_map(|mut value| value.remove(name))
            .collect())
    }

    /// `INFO section` of every (primary) node, by node address.
    async fn info(
        &self,
        section: &str,
    ) -> Result<Vec<(String, redis::InfoDict)>, redis::RedisError> {
        let mut command = redis::cmd("INFO");
        command.arg(section);
        Ok(match self {
            Self::Single(connection) => vec![(
                String::new(),
                command.query_async(&mut connection.clone()).await?,
            )],
            Self::Cluster(connection) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let value = connection.clone().route_command(command, routing).await?;
                let nodes: HashMap<String, redis::InfoDict> = redis::from_redis_value(value)?;
                nodes.into_iter().collect()
            }
        })
    }

    /// Each node's `run_id`, by node address.
    async fn run_ids(&self) -> Result<HashMap<String, String>, redis::RedisError> {
        Ok(self
            .info("server")
            .await?
            .into_iter()
            .filter_map(|(node, info)| info.get("run_id").map(|id| (node, id)))
            .collect())
    }

    /// `used_memory` and `maxmemory` of the fullest node (by share).
    async fn memory(&self) -> Result<(u64, u64), redis::RedisError> {
        let infos = self.info("memory").await?;
        let infos = infos.into_iter().map(|(_, info)| info);
        let mut fullest = (0, 0);
        for info in infos {
            let used: u64 = info.get("used_memory").unwrap_or(0);
            let max: u64 = info.get("maxmemory").unwrap_or(0);
            let share = |(used, max): (u64, u64)| {
                if max == 0 {
                    0.0
                } else {
                    used as f64 / max as f64
                }
            };
            if fullest == (0, 0) || share((used, max)) > share(fullest) {
                fullest = (used, max);
            }
        }
        Ok(fullest)
    }
}

impl RedisReplayStore {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "armor-psk:";
    /// The default time a reservation may take.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

    /// Connection options: eviction allowed or not, the per-key share.
    pub fn options() -> RedisStoreOptions {
        RedisStoreOptions::default()
    }

    /// Connects to `url` (`redis://host:port/db`, `rediss://` for TLS if
    /// the `redis` crate was built with it), with the default prefix,
    /// timeout and policy, and checks that Redis will not evict entries.
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

    /// The prefix of every key (default `armor-psk:`): give each service
    /// its own when they share a Redis.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.prefix = Arc::from(prefix.as_ref());
        *self.pressure.prefix.lock() = Arc::clone(&self.prefix);
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

    /// How many Redis restarts (a node's new `run_id`) this store has seen
    /// and fenced.
    pub fn restarts_seen(&self) -> u64 {
        self.pressure.restarts.load(Ordering::SeqCst)
    }

    /// Whether the store holds keys to their share now (Redis at least
    /// half full, as last read).
    pub fn under_pressure(&self) -> bool {
        self.pressure.under.load(Ordering::Relaxed)
    }

    /// Writes every group's epoch: this store's memory holds everything
    /// since `began` (Unix seconds). For tests that sign in the past, and
    /// for a Redis restored from a snapshot taken at `began`.
    ///
    /// # Errors
    /// Redis failed.
    #[doc(hidden)]
    pub async fn set_memory_since(&self, began: u64) -> Result<(), RedisStoreError> {
        write_epochs(&self.connection, &self.prefix, began)
            .await
            .map_err(|source| RedisStoreError::new("cannot write the epoch", source))
    }

    /// The Redis key of an entry: the prefix, its group's hash tag, then
    /// the entry's bytes.
    #[doc(hidden)]
    pub fn key(&self, entry: &ReplayKey) -> Vec<u8> {
        let group = group_name(group_of(entry.as_bytes()));
        [&self.prefix[..], &group[..], entry.as_bytes()].concat()
    }

    /// The epoch key of a group: in the same hash slot as its entries.
    fn epoch_key(&self, group: u8) -> Vec<u8> {
        [&self.prefix[..], &group_name(group)[..], b"epoch"].concat()
    }

    /// The reservation, or a quota refusal; a Redis error apart.
    async fn try_reserve(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Result<Result<Reservation, ReplayStoreError>, redis::RedisError> {
        let ttl_ms = u64::try_from(request.ttl().as_millis()).unwrap_or(u64::MAX);
        let entries = request.entries();
        let owner = signature_tag(request);
        if self.pressure.latest.load(Ordering::Relaxed) < request.now() {
            self.pressure
                .latest
                .fetch_max(request.now(), Ordering::Relaxed);
        }
        let keys: SmallVec<[Vec<u8>; 2]> = entries.iter().map(|entry| self.key(entry)).collect();

        // Each entry's group epoch first, then the entry, in one slot.
        let reserve = |i: usize| {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(self.epoch_key(group_of(entries[i].as_bytes())))
                .arg(request.now())
                .arg("NX")
                .arg("GET");
            let command = pipe.cmd("SET").arg(&keys[i]);
            if i == 0 {
                command.arg(b"1").arg("NX");
            } else {
                // The nonce's value names the request that holds it.
                command.arg(owner).arg("NX").arg("GET");
            }
            command.arg("PX").arg(ttl_ms);
            async move { self.connection.pipeline(&pipe).await }
        };
        let (signature, nonce) = if entries.len() > 1 {
            let (signature, nonce) = tokio::join!(reserve(0), reserve(1));
            (signature, Some(nonce))
        } else {
            (reserve(0).await, None)
        };
        let set_signature = signature
            .as_ref()
            .is_ok_and(|replies| replies.get(1).is_some_and(is_ok));
        let set_nonce = nonce.as_ref().is_some_and(|replies| {
            replies
                .as_ref()
                .is_ok_and(|replies| matches!(replies.get(1), Some(redis::Value::Nil)))
        });
        let (signature, nonce) = match (signature, nonce.transpose()) {
            (Ok(signature), Ok(nonce)) => (signature, nonce),
            (Err(error), _) | (_, Err(error)) => {
                // Half done: take back what was set, so that a retry of
                // this request is not refused as a replay of itself.
                self.take_back(&keys, set_signature, set_nonce).await;
                return Err(error);
            }
        };
        let nonce_free = match nonce.as_ref().map(|replies| replies.get(1)) {
            None | Some(Some(redis::Value::Nil)) => true,
            Some(Some(redis::Value::BulkString(held))) => held == owner,
            Some(_) => false,
        };
        if !(set_signature && nonce_free) {
            return Ok(Ok(Reservation::Replayed));
        }
        // Redis's memory began at the later of the two groups' epochs.
        let began = std::iter::once(&signature)
            .chain(nonce.as_ref())
            .map(|replies| match replies.first() {
                Some(redis::Value::BulkString(began)) => std::str::from_utf8(began)
                    .ok()
                    .and_then(|began| began.parse().ok())
                    .unwrap_or(0),
                // Just written: this group's memory begins now.
                _ => request.now(),
            })
            .max()
            .unwrap_or(0);
        let refusal = if request.timestamp() < began {
            Ok(Reservation::IssuedBeforeRestart { began })
        } else if self.under_pressure() {
            match self.count(request, entries.len() as u64).await {
                Ok(true) => return Ok(Ok(Reservation::Reserved)),
                Ok(false) => Err(ReplayStoreError::KeyQuotaExceeded {
                    retry_after: request.ttl(),
                }),
                Err(error) => {
                    self.take_back(&keys, set_signature, set_nonce).await;
                    return Err(error);
                }
            }
        } else {
            return Ok(Ok(Reservation::Reserved));
        };
        // Not accepted: take this request's entries back.
        self.take_back(&keys, set_signature, set_nonce).await;
        Ok(refusal)
    }

    /// Counts an accepted request's entries against its key's share:
    /// counters by 30-second bucket, summed over the request's lifetime.
    /// `false` (and the count taken back) when the key holds more.
    async fn count(
        &self,
        request: &ReplayRequest<'_>,
        added: u64,
    ) -> Result<bool, redis::RedisError> {
        const BUCKET: u64 = 30;
        let bucket = request.now() / BUCKET;
        let covered = request.ttl().as_secs().div_ceil(BUCKET);
        let counter = |bucket: u64| {
            let mut key = [&self.prefix[..], b"{s:", request.key_id().as_bytes(), b"}"].concat();
            key.extend_from_slice(bucket.to_string().as_bytes());
            key
        };
        let current = counter(bucket);
        let mut pipe = redis::pipe();
        pipe.cmd("INCRBY").arg(&current).arg(added);
        pipe.cmd("PEXPIRE")
            .arg(&current)
            .arg((covered + 1) * BUCKET * 1000)
            .ignore();
        let earlier: Vec<Vec<u8>> = (bucket.saturating_sub(covered)..bucket)
            .map(counter)
            .collect();
        if !earlier.is_empty() {
            pipe.cmd("MGET").arg(&earlier);
        }
        let replies = self.connection.pipeline(&pipe).await?;
        let number = |value: &redis::Value| match value {
            redis::Value::Int(n) => u64::try_from(*n).unwrap_or(0),
            redis::Value::BulkString(text) => std::str::from_utf8(text)
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or(0),
            _ => 0,
        };
        let mut held = replies.first().map_or(0, number);
        if let Some(redis::Value::Array(values)) = replies.get(1) {
            held += values.iter().map(number).sum::<u64>();
        }
        if held <= self.pressure.per_key {
            return Ok(true);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DECRBY").arg(&current).arg(added).ignore();
        self.connection.pipeline(&pipe).await?;
        Ok(false)
    }

    /// Deletes the entries this request set (best effort: on failure they
    /// expire with their TTL).
    async fn take_back(&self, keys: &[Vec<u8>], signature: bool, nonce: bool) {
        // One command each: on a cluster the two may live on two nodes.
        let delete = |i: usize, set: bool| {
            let key = keys.get(i).filter(|_| set).cloned();
            async move {
                if let Some(key) = key {
                    let mut pipe = redis::pipe();
                    pipe.cmd("DEL").arg(key).ignore();
                    let _ = self.connection.pipeline(&pipe).await;
                }
            }
        };
        tokio::join!(delete(0, signature), delete(1, nonce));
    }

    async fn reserve_with_policy(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Result<Reservation, ReplayStoreError> {
        let outcome = tokio::time::timeout(self.timeout, self.try_reserve(request)).await;
        let error: BoxError = match outcome {
            Ok(Ok(answer)) => return answer,
            Ok(Err(error)) if is_oom(&error) => {
                // Full is pressure too, whatever the last reading said.
                self.pressure.under.store(true, Ordering::Relaxed);
                return Err(ReplayStoreError::Full);
            }
            Ok(Err(error)) => error.into(),
            Err(elapsed) => elapsed.into(),
        };
        match self.policy {
            FailurePolicy::Closed => Err(ReplayStoreError::Unavailable(error)),
            FailurePolicy::Open => {
                tracing::warn!(%error, "ARMOR-PSK replay store unavailable; failing open (no replay protection)");
                Ok(Reservation::Reserved)
            }
        }
    }
}

/// Whether Redis answered `OOM` (`maxmemory` reached under `noeviction`),
/// alone or inside a pipeline's errors.
fn is_oom(error: &redis::RedisError) -> bool {
    error.code() == Some("OOM")
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, error)| error.code() == "OOM"))
}

/// The group of an entry: FNV-1a of its bytes, the same on every
/// instance (who can choose a group gains nothing: it only places a key).
fn group_of(entry: &[u8]) -> u8 {
    let hash = entry.iter().fold(0x811c_9dc5u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    (hash % u32::from(GROUPS)) as u8
}

fn group_name(group: u8) -> [u8; 5] {
    [b'{', b'g', b'0' + group / 10, b'0' + group % 10, b'}']
}

/// Whether a `SET` answered `OK` (set) rather than nil (`NX`: it existed).
fn is_ok(reply: &redis::Value) -> bool {
    matches!(reply, redis::Value::Okay)
        || matches!(reply, redis::Value::SimpleString(text) if text == "OK")
}

/// The value a nonce key holds: the first 16 bytes of the request's
/// signature.
fn signature_tag<'a>(request: &ReplayRequest<'a>) -> &'a [u8] {
    &request.signature().as_bytes()[..16]
}

impl ReplayStore for RedisReplayStore {
    fn reserve<'a>(
        &'a self,
        request: &'a ReplayRequest<'a>,
    ) -> BoxFuture<'a, Result<Reservation, ReplayStoreError>> {
        Box::pin(self.reserve_with_policy(request))
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
            .field("per_key_limit", &self.pressure.per_key)
            .finish_non_exhaustive()
    }
}
