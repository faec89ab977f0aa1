//! The key life cycle as the CLI drives it: add, rotate, revoke, list.
//! Every change is published on the change feed in its transaction.

use std::fmt;
use std::time::Duration;

use super::schema::ADMIN_TIMEOUT;
use super::seal::{RowFields, SecretRow, secret_aad, secrets_digest};
use super::{PostgresKeyStore, PostgresStoreError, Sealing, database};
use crate::protocol::secret::generate_secret;

/// The channel changes are published on.
pub(super) const CHANNEL: &str = "armor_psk_keys";

/// A key as `list` shows it: never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct KeyInfo {
    /// The key id.
    pub key_id: String,
    /// Its label.
    pub label: String,
    /// The user it belongs to, if any.
    pub user_id: Option<i64>,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Its secrets' versions and validity: (version, not before, not after).
    pub secrets: Vec<(u32, Option<i64>, Option<i64>)>,
}

/// A key as handed out once: its id and secret.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct NewKey {
    /// The Key ID.
    pub key_id: String,
    /// The Secret Key: print it once, where a person asked for it.
    pub secret: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("key_id", &self.key_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl PostgresKeyStore {
    /// A secret as stored: sealed with its validity under the KEK, or in
    /// the clear.
    fn seal_secret(
        &self,
        key_id: &str,
        version: u32,
        not_after: Option<i64>,
        secret: &[u8],
    ) -> Result<(Vec<u8>, bool), PostgresStoreError> {
        match &self.inner.sealing {
            Sealing::Kek(kek) => Ok((
                kek.seal(&secret_aad(key_id, version, None, not_after), secret)?,
                true,
            )),
            Sealing::Plaintext => Ok((secret.to_vec(), false)),
        }
    }

    /// Raises a key's revision and writes its MAC over the row and the
    /// secrets it has now (none in plaintext), inside `transaction`.
    pub(super) async fn seal_row(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        key_id: &str,
    ) -> Result<(), PostgresStoreError> {
        let row = transaction
            .query_one(
                "SELECT user_id, revoked_at, revision FROM armor_psk_keys WHERE key_id = $1 \
                 FOR UPDATE",
                &[&key_id],
            )
            .await
            .map_err(database("read the key"))?;
        let secrets = transaction
            .query(
                "SELECT version, not_before, not_after, encrypted, sealed FROM armor_psk_secrets \
                 WHERE key_id = $1",
                &[&key_id],
            )
            .await
            .map_err(database("read the secrets"))?;
        let sealed: Vec<Vec<u8>> = secrets.iter().map(|secret| secret.get("sealed")).collect();
        let digest =
            secrets_digest(
                secrets
                    .iter()
                    .zip(&sealed)
                    .map(|(secret, sealed)| SecretRow {
                        version: secret.get("version"),
                        not_before: secret.get("not_before"),
                        not_after: secret.get("not_after"),
                        encrypted: secret.get("encrypted"),
                        sealed,
                    }),
            );
        let revision: i64 = row.get::<_, i64>("revision") + 1;
        let mac = match &self.inner.sealing {
            Sealing::Kek(kek) => Some(kek.row_mac(&RowFields {
                key_id,
                user_id: row.get("user_id"),
                revoked_at: row.get("revoked_at"),
                revision,
                secrets: digest,
            })),
            Sealing::Plaintext => None,
        };
        transaction
            .execute(
                "UPDATE armor_psk_keys SET revision = $2, row_mac = $3 WHERE key_id = $1",
                &[&key_id, &revision, &mac],
            )
            .await
            .map_err(database("authenticate the key"))?;
        Ok(())
    }

    /// Adds a key (a UUID v4 key id and a new secret, version 1) and
    /// returns it, the secret for this once.
    ///
    /// # Errors
    /// A query failed.
    pub async fn add_key(
        &self,
        label: &str,
        user_id: Option<i64>,
    ) -> Result<NewKey, PostgresStoreError> {
        let key_id = crate::protocol::signer::new_uuid_v4();
        let secret = generate_secret().map_err(|_| PostgresStoreError::Random)?;
        let (sealed, encrypted) = self.seal_secret(&key_id, 1, None, secret.as_bytes())?;
        let mut client = self.client(ADMIN_TIMEOUT).await?;
        let transaction = client.transaction().await.map_err(database("begin"))?;
        transaction
            .execute(
                "INSERT INTO armor_psk_keys (key_id, label, user_id) VALUES ($1, $2, $3)",
                &[&key_id, &label, &user_id],
            )
            .await
            .map_err(database("add the key"))?;
        transaction
            .execute(
                "INSERT INTO armor_psk_secrets (key_id, version, sealed, encrypted) \
                 VALUES ($1, 1, $2, $3)",
                &[&key_id, &sealed, &encrypted],
            )
            .await
            .map_err(database("add the secret"))?;
        self.seal_row(&transaction, &key_id).await?;
        notify(&transaction, &key_id).await?;
        transaction.commit().await.map_err(database("commit"))?;
        self.note_id(&key_id);
        Ok(NewKey { key_id, secret })
    }

    /// Adds a new secret to `key_id` (the next version), valid from now;
    /// the secrets it had stay valid until `now + overlap` (re-sealed with
    /// that bound). Returns the version and the new secret, for this once.
    ///
    /// # Errors
    /// No such (unrevoked) key, a secret that does not verify, or a query
    /// failed.
    pub async fn rotate(
        &self,
        key_id: &str,
        overlap: Duration,
        now: u64,
    ) -> Result<(u32, String), PostgresStoreError> {
        let secret = generate_secret().map_err(|_| PostgresStoreError::Random)?;
        let until = i64::try_from(now.saturating_add(overlap.as_secs())).unwrap_or(i64::MAX);
        let mut client = self.client(ADMIN_TIMEOUT).await?;
        let transaction = client.transaction().await.map_err(database("begin"))?;
        transaction
            .query_opt(
                "SELECT 1 FROM armor_psk_keys WHERE key_id = $1 AND revoked_at IS NULL FOR UPDATE",
                &[&key_id],
            )
            .await
            .map_err(database("find the key"))?
            .ok_or_else(|| PostgresStoreError::UnknownKey(key_id.to_owned()))?;
        let old = transaction
            .query(
                "SELECT version, sealed, encrypted, not_before, not_after FROM armor_psk_secrets \
                 WHERE key_id = $1 ORDER BY version",
                &[&key_id],
            )
            .await
            .map_err(database("read the secrets"))?;
        let mut latest = 0;
        for row in &old {
            let version: i32 = row.get("version");
            latest = latest.max(version);
            let not_after: Option<i64> = row.get("not_after");
            if not_after.is_some_and(|not_after| not_after <= until) {
                continue;
            }
            // Bound it to the overlap, re-sealed with the new bound.
            let sealed: Vec<u8> = row.get("sealed");
            let encrypted: bool = row.get("encrypted");
            let not_before: Option<i64> = row.get("not_before");
            let version_u32 = u32::try_from(version).unwrap_or_default();
            let resealed = match (&self.inner.sealing, encrypted) {
                (Sealing::Kek(kek), true) => {
                    let plain = zeroize::Zeroizing::new(
                        kek.open(
                            &secret_aad(key_id, version_u32, not_before, not_after),
                            &sealed,
                        )
                        .map_err(|_| PostgresStoreError::Tampered(key_id.to_owned()))?,
                    );
                    kek.seal(
                        &secret_aad(key_id, version_u32, not_before, Some(until)),
                        &plain,
                    )?
                }
                (Sealing::Plaintext, false) => sealed,
                _ => return Err(PostgresStoreError::Tampered(key_id.to_owned())),
            };
            transaction
                .execute(
                    "UPDATE armor_psk_secrets SET not_after = $3, sealed = $4 \
                     WHERE key_id = $1 AND version = $2",
                    &[&key_id, &version, &until, &resealed],
                )
                .await
                .map_err(database("limit the old secrets"))?;
        }
        let version = latest + 1;
        let version_u32 = u32::try_from(version).unwrap_or_default();
        let (sealed, encrypted) = self.seal_secret(key_id, version_u32, None, secret.as_bytes())?;
        transaction
            .execute(
                "INSERT INTO armor_psk_secrets (key_id, version, sealed, encrypted) \
                 VALUES ($1, $2, $3, $4)",
                &[&key_id, &version, &sealed, &encrypted],
            )
            .await
            .map_err(database("add the secret"))?;
        self.seal_row(&transaction, key_id).await?;
        notify(&transaction, key_id).await?;
        transaction.commit().await.map_err(database("commit"))?;
        Ok((version_u32, secret))
    }

    /// Revokes `key_id`: marks it revoked (the mark authenticated under the
    /// KEK) and deletes its secrets, so that no row left in the database can
    /// make it work again. Returns whether it was active.
    ///
    /// # Errors
    /// A query failed.
    pub async fn revoke(&self, key_id: &str) -> Result<bool, PostgresStoreError> {
        let mut client = self.client(ADMIN_TIMEOUT).await?;
        let transaction = client.transaction().await.map_err(database("begin"))?;
        let row = transaction
            .query_opt(
                "SELECT user_id, extract(epoch FROM now())::bigint AS now FROM armor_psk_keys \
                 WHERE key_id = $1 AND revoked_at IS NULL FOR UPDATE",
                &[&key_id],
            )
            .await
            .map_err(database("find the key"))?;
        let Some(row) = row else {
            transaction.commit().await.map_err(database("commit"))?;
            return Ok(false);
        };
        let at: i64 = row.get("now");
        transaction
            .execute(
                "UPDATE armor_psk_keys SET revoked_at = $2 WHERE key_id = $1",
                &[&key_id, &at],
            )
            .await
            .map_err(database("revoke"))?;
        transaction
            .execute(
                "DELETE FROM armor_psk_secrets WHERE key_id = $1",
                &[&key_id],
            )
            .await
            .map_err(database("delete the secrets"))?;
        self.seal_row(&transaction, key_id).await?;
        notify(&transaction, key_id).await?;
        transaction.commit().await.map_err(database("commit"))?;
        Ok(true)
    }

    /// Every key, with its secrets' versions and validity; never a secret.
    ///
    /// # Errors
    /// A query failed.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, PostgresStoreError> {
        let client = self.client(ADMIN_TIMEOUT).await?;
        let rows = client
            .query(
                "SELECT k.key_id, k.label, k.user_id, k.created_at, k.revoked_at, \
                        s.version, s.not_before, s.not_after \
                 FROM armor_psk_keys k LEFT JOIN armor_psk_secrets s USING (key_id) \
                 ORDER BY k.created_at, k.key_id, s.version",
                &[],
            )
            .await
            .map_err(database("list the keys"))?;
        let mut keys: Vec<KeyInfo> = Vec::new();
        for row in rows {
            let key_id: String = row.get("key_id");
            if keys.last().is_none_or(|last| last.key_id != key_id) {
                keys.push(KeyInfo {
                    key_id,
                    label: row.get("label"),
                    user_id: row.get("user_id"),
                    created_at: row.get("created_at"),
                    revoked_at: row.get("revoked_at"),
                    secrets: Vec::new(),
                });
            }
            if let (Some(key), Some(version)) = (keys.last_mut(), row.get::<_, Option<i32>>(5)) {
                let version = u32::try_from(version).unwrap_or_default();
                key.secrets
                    .push((version, row.get("not_before"), row.get("not_after")));
            }
        }
        Ok(keys)
    }
}

async fn notify(
    transaction: &tokio_postgres::Transaction<'_>,
    key_id: &str,
) -> Result<(), PostgresStoreError> {
    transaction
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &key_id])
        .await
        .map_err(database("publish the change"))?;
    Ok(())
}
