//! [`RedisReplayStore`]: its settings after connecting, what it reports,
//! and the [`ReplayStore`] it implements.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::connection::Connection;
use super::error::{FailurePolicy, RedisStoreError};
use super::groups::{group_name, group_of};
use super::watch::{Pressure, write_epochs};
use crate::boxed::BoxFuture;
use crate::replay::store::{ReplayKey, ReplayRequest, ReplayStore, ReplayStoreError, Reservation};

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
/// began; every reservation reads it in the pipeline that sets its entry,
/// and where it is absent a script writes it: dated from Redis's start (`uptime_in_seconds`,
/// on the layer's clock, plus 4 s for the roundings and a client up to 3 s
/// ahead); within Redis's first 3 s that is after the request's second, so
/// a request accepted by the Redis before a restart in that very second is
/// refused.
/// Written and dated in one step, no instance reads an epoch not yet
/// dated. A Redis up for *U* seconds serves a client up to *U* − 4 s
/// behind, in every group, the first time it is used. Not after a
/// `FLUSHALL`, `FLUSHDB` or `SWAPDB`, an eviction, or on a promoted
/// replica: there the epoch is the second after the first use. (A Redis
/// user without scripts, allowed with
/// [`allow_without_scripts`](crate::replay::redis::RedisStoreOptions::allow_without_scripts),
/// sets it with `SET NX GET`, never dated.)
///
/// When Redis restarts without persistence, or a cluster node loses its
/// data, the epoch goes with the entries: requests signed before the new
/// one are refused with 401 `issued_before_restart`, by every instance
/// (they read the epoch from Redis). A failover to a replica that had not
/// received the latest writes keeps the epoch and loses those writes: see
/// SECURITY.md.
///
/// # Eviction, memory and shares
///
/// [`connect`](Self::connect) refuses a Redis whose `maxmemory-policy` is
/// not `noeviction` (an evicted entry is a replay accepted), unless
/// [`RedisStoreOptions::allow_eviction`](crate::replay::redis::RedisStoreOptions::allow_eviction). Under `noeviction` a full Redis
/// answers `OOM`: the request gets 503 `replay_store_full` and nothing held
/// is lost. Each key counts its entries from the first one
/// (`INCRBY`/`PEXPIRE` by 30-second bucket, once a request is reserved;
/// replays never count); while Redis is at least
/// half full (`used_memory` against `maxmemory`, read four times a second)
/// a key that holds more than an eighth of what `maxmemory` can hold gets
/// 429 `key_quota_exceeded`, so a few keys' flood cannot fill Redis and a
/// key holding little is served (`tests/it/redis_store.rs`: four keys at full
/// speed leave Redis at 53 % and a fifth key served 339 times of 339).
///
/// The connection reconnects by itself; each reservation has a timeout
/// (100 ms by default) and, past it or on any Redis error, the
/// [`FailurePolicy`] decides: closed (503) by default.
///
/// ```no_run
/// # async fn run() -> Result<(), armor_psk::replay::redis::RedisStoreError> {
/// use std::time::Duration;
/// use armor_psk::{ArmorPskLayer, keys::MemoryKeyStore, replay::redis::RedisReplayStore};
///
/// let store = RedisReplayStore::options()
///     .prefix("my-service:armor-psk:")
///     .timeout(Duration::from_millis(50))
///     .connect("redis://127.0.0.1:6379/")
///     .await?;
/// let layer = ArmorPskLayer::new(MemoryKeyStore::new()).with_replay_store(store);
///
/// // Or a Redis Cluster, from any of its nodes:
/// let cluster = RedisReplayStore::connect_cluster(&["redis://10.0.0.1:7000/", "redis://10.0.0.2:7000/"]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisReplayStore {
    pub(super) connection: Connection,
    pub(super) prefix: Arc<[u8]>,
    pub(super) timeout: Duration,
    pub(super) policy: FailurePolicy,
    pub(super) pressure: Arc<Pressure>,
    /// Whether this Redis user may run scripts: a group's first use then
    /// dates its epoch in the script that writes it (see `FIRST_EPOCH`).
    pub(super) scripts: bool,
}

impl RedisReplayStore {
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
        write_epochs(&self.connection, &self.prefix, began, None)
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
    pub(super) fn epoch_key(&self, group: u8) -> Vec<u8> {
        [&self.prefix[..], &group_name(group)[..], b"epoch"].concat()
    }

    /// The key that marks a group's epoch as a watch's fence, never to be
    /// dated from Redis's start.
    pub(super) fn fence_key(&self, group: u8) -> Vec<u8> {
        fence_key(&self.prefix, group)
    }
}

/// See [`RedisReplayStore::fence_key`].
pub(super) fn fence_key(prefix: &[u8], group: u8) -> Vec<u8> {
    [prefix, &group_name(group)[..], b"fence"].concat()
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
