//! Reading keys: one key's secrets, opened and checked under the KEK, the
//! set of existing key ids read again, and the store behind a cache.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::seal::{self, RowFields, Sealing, secret_aad};
use super::{PostgresKeyStore, PostgresStoreError, feed};
use crate::keys::cached::{CachedKeyStore, CachedKeyStoreBuilder};
use crate::protocol::key::{Key, KeySecret};

/// The most ids noted from the change feed between two reads of the set.
const MAX_NOTED: usize = 100_000;

impl PostgresKeyStore {
    /// How many key lookups reached the database.
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(Ordering::Relaxed)
    }

    /// Whether `key_id` may exist: `false` only when the set of key ids has
    /// been read and does not hold it.
    pub fn might_hold(&self, key_id: &str) -> bool {
        !self.inner.ids_loaded.load(Ordering::Acquire) || self.inner.ids.read().contains(key_id)
    }

    /// Reads the set of key ids anew.
    ///
    /// # Errors
    /// A query failed.
    pub async fn reload_ids(&self) -> Result<usize, PostgresStoreError> {
        // Ids noted while the read runs are kept beside what it returns.
        self.inner.noted_during_read.lock().clear();
        self.inner.reading.store(true, Ordering::Release);
        let rows = self
            .timed("read the key ids", Duration::from_secs(10), |client| {
                Box::pin(client.query("SELECT key_id FROM armor_psk_keys", &[]))
            })
            .await?;
        let mut ids: HashSet<String> = rows.iter().map(|row| row.get("key_id")).collect();
        let mut held = self.inner.ids.write();
        self.inner.reading.store(false, Ordering::Release);
        ids.extend(self.inner.noted_during_read.lock().drain(..));
        let count = ids.len();
        *held = ids;
        drop(held);
        self.inner.noted.store(0, Ordering::Relaxed);
        self.inner.ids_loaded.store(true, Ordering::Release);
        Ok(count)
    }

    /// Notes that `key_id` may exist (a change published for it), among
    /// at most [`MAX_NOTED`] ids noted since the set was last read: a
    /// flood of notifications cannot grow it further (a real key pushed out
    /// is found at the next read).
    pub(super) fn note_id(&self, key_id: &str) {
        let mut ids = self.inner.ids.write();
        if ids.contains(key_id) {
            return;
        }
        let noted = self.inner.noted.fetch_add(1, Ordering::Relaxed);
        if noted < MAX_NOTED {
            ids.insert(key_id.to_owned());
            if self.inner.reading.load(Ordering::Acquire) {
                self.inner.noted_during_read.lock().push(key_id.to_owned());
            }
        }
    }

    /// Stops trusting the set of ids (the feed is lost, or a read failed):
    /// lookups ask the database again, within the cache's lookup budget.
    pub(super) fn forget_ids(&self) {
        self.inner.ids_loaded.store(false, Ordering::Release);
    }

    /// This store behind a [`CachedKeyStore`] that drops a key as soon as a
    /// change to it is published (`LISTEN armor_psk_keys`, on a connection
    /// of its own that reconnects by itself and is checked alive every
    /// heartbeat). After a lost or silent feed every cached key asks the
    /// database again ([`CachedKeyStore::expire_all`]); only if the
    /// database does not answer are the last known keys served, for the
    /// grace period. Call it inside a tokio runtime.
    pub fn cached(self) -> CachedKeyStore<Self> {
        self.cached_with(|cache| cache)
    }

    /// As [`cached`](Self::cached), with the cache's settings changed by
    /// `configure` (`|cache| cache.ttl(...)`) before it is built and the
    /// listener starts.
    pub fn cached_with(
        self,
        configure: impl FnOnce(CachedKeyStoreBuilder<Self>) -> CachedKeyStoreBuilder<Self>,
    ) -> CachedKeyStore<Self> {
        let cache = configure(CachedKeyStore::builder(self)).build();
        tokio::spawn(feed::listen(cache.downgrade()));
        cache
    }

    pub(super) async fn lookup(&self, key_id: &str) -> Result<Option<Key>, PostgresStoreError> {
        if !self.might_hold(key_id) {
            return Ok(None);
        }
        self.inner.queries.fetch_add(1, Ordering::Relaxed);
        let owned = key_id.to_owned();
        let rows = self
            .timed(
                "look the key up",
                self.inner.options.query_timeout,
                move |client| {
                    Box::pin(async move {
                        client
                            .query(
                                "SELECT k.user_id, k.revoked_at, k.row_mac, k.revision, \
                                        s.version, s.sealed, s.encrypted, s.not_before, \
                                        s.not_after \
                                 FROM armor_psk_keys k \
                                 LEFT JOIN armor_psk_secrets s USING (key_id) \
                                 WHERE k.key_id = $1 ORDER BY s.version",
                                &[&owned],
                            )
                            .await
                    })
                },
            )
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let revoked_at: Option<i64> = first.get("revoked_at");
        if let Sealing::Kek(kek) = &self.inner.sealing {
            let sealed: Vec<Option<Vec<u8>>> = rows.iter().map(|row| row.get("sealed")).collect();
            let digest =
                seal::secrets_digest(rows.iter().zip(&sealed).filter_map(|(row, sealed)| {
                    Some(seal::SecretRow {
                        version: row.get::<_, Option<i32>>(4)?,
                        not_before: row.get("not_before"),
                        not_after: row.get("not_after"),
                        encrypted: row.get("encrypted"),
                        sealed: sealed.as_deref()?,
                    })
                }));
            let row = RowFields {
                key_id,
                user_id: first.get("user_id"),
                revoked_at,
                revision: first.get("revision"),
                secrets: digest,
            };
            let mac: Option<Vec<u8>> = first.get("row_mac");
            if !kek.row_is_authentic(&row, mac.as_deref()) {
                tracing::error!(
                    key_id,
                    "ARMOR-PSK key store: a key's row does not verify; refused"
                );
                return Ok(None);
            }
        }
        if revoked_at.is_some() {
            return Ok(None);
        }
        let mut secrets = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(version) = row.get::<_, Option<i32>>(4) else {
                continue;
            };
            let version = u32::try_from(version).unwrap_or_default();
            let sealed: Vec<u8> = row.get("sealed");
            let encrypted: bool = row.get("encrypted");
            let not_before: Option<i64> = row.get("not_before");
            let not_after: Option<i64> = row.get("not_after");
            let plain = match (&self.inner.sealing, encrypted) {
                (Sealing::Kek(kek), true) => {
                    match kek.open(&secret_aad(key_id, version, not_before, not_after), &sealed) {
                        Ok(plain) => plain,
                        Err(_) => {
                            tracing::error!(
                                key_id,
                                version,
                                "ARMOR-PSK key store: a secret does not verify; key refused"
                            );
                            return Ok(None);
                        }
                    }
                }
                (Sealing::Kek(_), false) => {
                    tracing::error!(
                        key_id,
                        version,
                        "ARMOR-PSK key store: a plaintext secret under a KEK; key refused"
                    );
                    return Ok(None);
                }
                (Sealing::Plaintext, false) => sealed,
                (Sealing::Plaintext, true) => return Err(PostgresStoreError::NoKek),
            };
            let plain = zeroize::Zeroizing::new(plain);
            let mut secret = KeySecret::new(version, crate::keys::Secret::new(plain.as_slice()));
            if let Some(from) = not_before {
                secret = secret.with_not_before(u64::try_from(from).unwrap_or_default());
            }
            if let Some(until) = not_after {
                secret = secret.with_not_after(u64::try_from(until).unwrap_or_default());
            }
            secrets.push(secret);
        }
        if secrets.is_empty() {
            return Ok(None);
        }
        Ok(Some(Key::from_secrets(secrets)))
    }
}
