use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use super::error::FailurePolicy;
use super::groups::group_of;
use super::store::RedisReplayStore;
use crate::boxed::BoxError;
use crate::replay::store::{ReplayKey, ReplayRequest, ReplayStoreError, Reservation};

impl RedisReplayStore {
    /// The reservation, or a quota refusal; a Redis error apart.
    async fn try_reserve(
        &self,
        request: &ReplayRequest<'_>,
    ) -> Result<Result<Reservation, ReplayStoreError>, redis::RedisError> {
        let ttl_ms = u64::try_from(request.ttl().as_millis()).unwrap_or(u64::MAX);
        let entries = request.entries();
        let owner = signature_tag(request);
        self.pressure.horizon.observe_request(request);
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

        // Each entry's group epoch first, then the entry, in one slot.
        let reserve = |i: usize| {
            let mut pipe = redis::pipe();
            // A group without an epoch lost its memory (or never had
            // one): it begins after this second, until `date_epoch`
            // dates it from Redis's start.
            pipe.cmd("SET")
                .arg(self.epoch_key(group_of(entries[i].as_bytes())))
                .arg(fresh_epoch)
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
        let (signature_began, nonce_began) = tokio::join!(
            self.began(&signature, &entries[0], fresh_epoch, request.now()),
            async {
                match (&nonce, entries.get(1)) {
                    (Some(replies), Some(entry)) => {
                        self.began(replies, entry, fresh_epoch, request.now()).await
                    }
                    _ => 0,
                }
            }
        );
        let began = signature_began.max(nonce_began);
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

    /// When the memory of `entry`'s group began, from the epoch the
    /// reservation's `SET NX GET` answered.
    async fn began(
        &self,
        replies: &[redis::Value],
        entry: &ReplayKey,
        written: u64,
        now: u64,
    ) -> u64 {
        let group = group_of(entry.as_bytes());
        match replies.first() {
            // An epoch after now was just written, by a first use in this
            // second (this request's other entry, or another instance's
            // request) or by a watch: dated from Redis's start too, else a
            // request racing the first use would be refused.
            Some(value @ redis::Value::BulkString(_)) => match number(value) {
                began if began > now => self.date_epoch(group, began, now).await,
                began => began,
            },
            // Just written: dated from Redis's start where that is sound.
            _ => self.date_epoch(group, written, now).await,
        }
    }

    /// Dates a group's epoch that is still `written` (just written, a
    /// second or more after `now`) from Redis's start plus 4 s instead:
    /// later when Redis started less than 2 s ago; earlier when everything
    /// accepted since Redis started is still there (no flush, eviction or
    /// promotion; otherwise the epoch stays). Only an epoch still holding `written` is
    /// replaced, so a fence another instance raised meanwhile stands. Any
    /// failure (a user without scripts) leaves `written`.
    async fn date_epoch(&self, group: u8, written: u64, now: u64) -> u64 {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(DATE_EPOCH)
            .arg(2)
            .arg(self.epoch_key(group))
            .arg(self.fence_key(group))
            .arg(written)
            .arg(now);
        match self.connection.pipeline(&pipe).await.as_deref() {
            Ok([value @ (redis::Value::BulkString(_) | redis::Value::Int(_))]) => number(value),
            _ => written,
        }
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

/// Replaces a group's epoch `ARGV[1]` (just written) by Redis's start
/// on the layer's clock (`ARGV[2]`, now, less `uptime_in_seconds`), plus
/// 4 s: timestamps, the uptime and the two clocks each round to whole
/// seconds, and the second Redis started in is fenced (a request accepted
/// in it by the Redis before may be lost); the rest covers a client up to
/// 3 s ahead whose request the Redis before accepted (signed after that
/// second), on another instance, until the watch fences it. Later than
/// `ARGV[1]` (a first use within 3 s of the start) always; earlier only when Redis shows no
/// `FLUSHALL`, `FLUSHDB` or `SWAPDB` (their command counts), no eviction
/// (`evicted_keys`) and was no replica (`second_repl_offset`): memory since
/// the start may be gone otherwise. Never when a watch wrote the epoch
/// (`KEYS[2]` exists): a fence through what a restart lost.
const DATE_EPOCH: &str = "\
local held = redis.call('GET', KEYS[1])
if held ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1 then return held end
local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)'))
if uptime == nil then return held end
local began = tonumber(ARGV[2]) - uptime + 4
if began < 0 then return held end
if began > tonumber(held) then
    began = string.format('%d', began)
    redis.call('SET', KEYS[1], began)
    return began
end
local commands = redis.call('INFO', 'commandstats')
local evicted = tonumber(string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)') or '1')
local replica = not string.find(redis.call('INFO', 'replication'), 'second_repl_offset:-1', 1, true)
if evicted > 0 or replica
    or string.find(commands, 'cmdstat_flushall:', 1, true)
    or string.find(commands, 'cmdstat_flushdb:', 1, true)
    or string.find(commands, 'cmdstat_swapdb:', 1, true)
    then
    return held
end
if began >= tonumber(held) then return held end
began = string.format('%d', began)
redis.call('SET', KEYS[1], began)
return began
";

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
