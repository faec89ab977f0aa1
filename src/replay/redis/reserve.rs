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
        self.pressure.horizon.observe_request(request);
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
