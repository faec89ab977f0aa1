//! A reservation on Redis: `SET NX` of each entry with its expiry, the
//! group's epoch compared with the request's time, the per-key share, and
//! the answer under the failure policy.

use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use super::error::FailurePolicy;
use super::groups::group_of;
use super::store::RedisReplayStore;
use crate::boxed::BoxError;
use crate::replay::store::{ReplayRequest, ReplayStoreError, Reservation};

impl RedisReplayStore {
    /// The reservation, or a quota refusal; a Redis error apart.
    async fn try_reserve(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Result<Result<Reservation, ReplayStoreError>, redis::RedisError> {
        let ttl_ms = u64::try_from(request.ttl().as_millis()).unwrap_or(u64::MAX);
        let entries = request.entries();
        let owner = signature_tag(request);
        self.pressure.observe(request);
        let keys: SmallVec<[Vec<u8>; 2]> = entries.iter().map(|entry| self.key(entry)).collect();
        let fresh_epoch = request.now().saturating_add(1);
        // A restart may lose this entry: the watcher then fences through
        // this timestamp too (a client ahead signs after the horizon).
        // Noted before the entry is written, so that a watch racing it
        // sees it. Not one further ahead than an entry's lifetime: that is
        // the layer's clock glitched, whose fence would refuse everyone.
        let lifetime = request.lifetime();
        if request.timestamp() <= self.pressure.horizon.now().saturating_add(lifetime) {
            self.pressure
                .accepted
                .fetch_max(request.timestamp(), Ordering::Relaxed);
        }

        // Each entry's group epoch first, then the entry, in one slot:
        // answers the epoch, then what setting the entry answered.
        let reserve = |i: usize| {
            let group = group_of(entries[i].as_bytes());
            let keys = &keys;
            // The signature's value is a mark; the nonce's names the
            // request that holds it.
            let value: &[u8] = if i == 0 { b"1" } else { owner };
            async move {
                if self.scripts {
                    self.reserve_entry(
                        group,
                        &keys[i],
                        value,
                        i > 0,
                        fresh_epoch,
                        request.now(),
                        ttl_ms,
                    )
                    .await
                } else {
                    // Without scripts: a group without an epoch lost its
                    // memory (or never had one) and begins after this
                    // second, never dated from Redis's start.
                    let mut pipe = redis::pipe();
                    pipe.cmd("SET")
                        .arg(self.epoch_key(group))
                        .arg(fresh_epoch)
                        .arg("NX")
                        .arg("GET");
                    let command = pipe.cmd("SET").arg(&keys[i]).arg(value).arg("NX");
                    if i > 0 {
                        command.arg("GET");
                    }
                    command.arg("PX").arg(ttl_ms);
                    self.connection.pipeline(&pipe).await
                }
            }
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
        let began = |replies: &[redis::Value]| match replies.first() {
            Some(value @ (redis::Value::BulkString(_) | redis::Value::Int(_))) => number(value),
            // Just written, without scripts.
            _ => fresh_epoch,
        };
        let began = began(&signature).max(nonce.as_deref().map_or(0, began));
        if request.timestamp() < began {
            self.take_back(&keys, set_signature, set_nonce).await;
            return Ok(Ok(Reservation::IssuedBeforeRestart { began }));
        }
        // Every request reserved counts against its key's share, whatever
        // the pressure (a key that filled Redis before the pressure
        // reading rose is held to its share as soon as it does); replays
        // never count, so replaying a captured request cannot use up its
        // key's share.
        let added = entries.len() as u64;
        let held = match self.add_to_share(request, added).await {
            Ok(held) => held,
            Err(error) => {
                self.take_back(&keys, set_signature, set_nonce).await;
                return Err(error);
            }
        };
        if !(self.under_pressure() && held > self.pressure.per_key) {
            return Ok(Ok(Reservation::Reserved));
        }
        // Over its share: take this request's entries, and its count, back.
        tokio::join!(
            self.take_back(&keys, set_signature, set_nonce),
            self.take_from_share(request, added)
        );
        Ok(Err(ReplayStoreError::KeyQuotaExceeded {
            retry_after: request.ttl(),
        }))
    }

    /// Reserves one entry: its group's epoch, then what `SET NX` (with
    /// `GET` when `get`) answered. One pipeline reads the epoch and sets
    /// the entry; only when the epoch is absent (a group's first use) does
    /// `FIRST_EPOCH` write it, dated in the same script, so that no
    /// instance ever reads an epoch not yet dated. (Redis restarted
    /// between the two: the new Redis's epoch is after its start plus 4 s,
    /// later than this request's timestamp, which is then refused.)
    #[allow(clippy::too_many_arguments)]
    async fn reserve_entry(
        &self,
        group: u8,
        key: &[u8],
        value: &[u8],
        get: bool,
        fresh_epoch: u64,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Vec<redis::Value>, redis::RedisError> {
        let epoch_key = self.epoch_key(group);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&epoch_key);
        let command = pipe.cmd("SET").arg(key).arg(value).arg("NX");
        if get {
            command.arg("GET");
        }
        command.arg("PX").arg(ttl_ms);
        let mut replies = self.connection.pipeline(&pipe).await?;
        if matches!(replies.first(), Some(redis::Value::Nil)) {
            replies[0] = self
                .first_epoch(&epoch_key, group, fresh_epoch, now)
                .await?;
        }
        Ok(replies)
    }

    /// A group's epoch at its first use, by `FIRST_EPOCH`: `EVALSHA`, then
    /// `EVAL` when Redis does not hold the script yet (a restart empties
    /// its cache; a refused `EVALSHA` ran nothing).
    async fn first_epoch(
        &self,
        epoch_key: &[u8],
        group: u8,
        fresh_epoch: u64,
        now: u64,
    ) -> Result<redis::Value, redis::RedisError> {
        let invoke = |by_hash: bool| {
            let mut pipe = redis::pipe();
            let command = if by_hash {
                pipe.cmd("EVALSHA").arg(first_epoch_script().get_hash())
            } else {
                pipe.cmd("EVAL").arg(FIRST_EPOCH)
            };
            command
                .arg(2)
                .arg(epoch_key)
                .arg(self.fence_key(group))
                .arg(fresh_epoch)
                .arg(now);
            async move { self.connection.pipeline(&pipe).await }
        };
        let replies = match invoke(true).await {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                invoke(false).await?
            }
            replies => replies?,
        };
        Ok(replies.into_iter().next().unwrap_or(redis::Value::Nil))
    }

    /// Adds a request's entries to its key's count: counters by 30-second
    /// bucket, summed over the request's lifetime. Answers what the key
    /// holds, this request included.
    async fn add_to_share(
        &self,
        request: &ReplayRequest<'_>,
        added: u64,
    ) -> Result<u64, redis::RedisError> {
        let bucket = request.now() / SHARE_BUCKET;
        let covered = request.ttl().as_secs().div_ceil(SHARE_BUCKET);
        let current = self.share_counter(request, bucket);
        let mut pipe = redis::pipe();
        pipe.cmd("INCRBY").arg(&current).arg(added);
        pipe.cmd("PEXPIRE")
            .arg(&current)
            .arg((covered + 1) * SHARE_BUCKET * 1000)
            .ignore();
        let earlier: Vec<Vec<u8>> = (bucket.saturating_sub(covered)..bucket)
            .map(|bucket| self.share_counter(request, bucket))
            .collect();
        if !earlier.is_empty() {
            pipe.cmd("MGET").arg(&earlier);
        }
        let replies = self.connection.pipeline(&pipe).await?;
        let mut held = replies.first().map_or(0, number);
        if let Some(redis::Value::Array(values)) = replies.get(1) {
            held += values.iter().map(number).sum::<u64>();
        }
        Ok(held)
    }

    /// Takes a request that was not accepted off its key's count (best
    /// effort: on failure the count expires with its bucket).
    async fn take_from_share(&self, request: &ReplayRequest<'_>, added: u64) {
        let current = self.share_counter(request, request.now() / SHARE_BUCKET);
        let covered = request.ttl().as_secs().div_ceil(SHARE_BUCKET);
        let mut pipe = redis::pipe();
        pipe.cmd("DECRBY").arg(&current).arg(added).ignore();
        // A counter lost meanwhile (a restart) comes back negative: it
        // must expire all the same.
        pipe.cmd("PEXPIRE")
            .arg(&current)
            .arg((covered + 1) * SHARE_BUCKET * 1000)
            .ignore();
        let _ = self.connection.pipeline(&pipe).await;
    }

    /// The key of a key id's counter for one bucket.
    fn share_counter(&self, request: &ReplayRequest<'_>, bucket: u64) -> Vec<u8> {
        let mut key = [&self.prefix[..], b"{s:", request.key_id().as_bytes(), b"}"].concat();
        key.extend_from_slice(bucket.to_string().as_bytes());
        key
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

    pub(super) async fn reserve_with_policy(
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

/// The span of one share counter, in seconds.
const SHARE_BUCKET: u64 = 30;

/// A group's epoch `KEYS[1]`, written when absent. A group without an
/// epoch lost its memory (or never had one): the script writes it, at once dated from
/// Redis's start on the layer's clock (`ARGV[2]`, now, less
/// `uptime_in_seconds`) plus 4 s: timestamps, the uptime and the two clocks
/// each round to whole seconds, and the second Redis started in is fenced
/// (a request accepted in it by the Redis before may be lost); the rest
/// covers a client up to 3 s ahead whose request the Redis before
/// accepted (signed after that second), on another instance, until the
/// watch fences it. That is later than the second after now (`ARGV[1]`)
/// within Redis's first 3 s, and then taken; earlier only when Redis shows
/// no `FLUSHALL`, `FLUSHDB` or `SWAPDB` (their command counts), no
/// eviction (`evicted_keys`) and was no replica (`second_repl_offset`):
/// memory since the start may be gone otherwise. Never dated when a watch
/// marked the group (`KEYS[2]` exists): its fence is through what a
/// restart lost. Written and dated in one script, so no instance ever
/// reads an epoch its first use has not dated yet (the chaos harness saw
/// one served a replay that way, its clock a second ahead of the instance
/// that wrote it). Answers the epoch.
const FIRST_EPOCH: &str = "\
local epoch = redis.call('GET', KEYS[1])
if not epoch then
    epoch = tonumber(ARGV[1])
    local uptime = nil
    if redis.call('EXISTS', KEYS[2]) == 0 then
        uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
    end
    if uptime ~= nil then
        local began = tonumber(ARGV[2]) - uptime + 4
        if began > epoch then
            epoch = began
        elseif began >= 0 then
            local commands = redis.call('INFO', 'commandstats')
            local evicted = tonumber(string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)') or '1')
            local replica = not string.find(redis.call('INFO', 'replication'), 'second_repl_offset:-1', 1, true)
            if not (evicted > 0 or replica
                or string.find(commands, 'cmdstat_flushall:', 1, true)
                or string.find(commands, 'cmdstat_flushdb:', 1, true)
                or string.find(commands, 'cmdstat_swapdb:', 1, true)) then
                epoch = began
            end
        end
    end
    epoch = string.format('%d', epoch)
    redis.call('SET', KEYS[1], epoch)
end
return epoch
";

/// [`FIRST_EPOCH`], hashed once.
fn first_epoch_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(FIRST_EPOCH))
}

/// A count or an epoch as Redis answers it, an integer or its decimal
/// text (0 when unreadable: for an epoch, no fence).
fn number(value: &redis::Value) -> u64 {
    match value {
        redis::Value::Int(n) => u64::try_from(*n).unwrap_or(0),
        redis::Value::BulkString(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(0),
        _ => 0,
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
