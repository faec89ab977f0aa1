//! The tables, their migration, and the check that the KEK is the one the
//! database was sealed with.

use std::time::Duration;

use super::seal::{legacy_secret_aad, secret_aad};
use super::{PostgresKeyStore, PostgresStoreError, Sealing, database};

/// The schema, applied by [`PostgresKeyStore::migrate`]; every statement
/// can run again.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS armor_psk_keys (
    key_id     text PRIMARY KEY,
    label      text NOT NULL DEFAULT '',
    user_id    bigint,
    created_at bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    revoked_at bigint
);
ALTER TABLE armor_psk_keys ADD COLUMN IF NOT EXISTS row_mac bytea;
ALTER TABLE armor_psk_keys ADD COLUMN IF NOT EXISTS revision bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS armor_psk_secrets (
    key_id     text NOT NULL REFERENCES armor_psk_keys (key_id) ON DELETE CASCADE,
    version    integer NOT NULL,
    sealed     bytea NOT NULL,
    encrypted  boolean NOT NULL,
    not_before bigint,
    not_after  bigint,
    created_at bigint NOT NULL DEFAULT extract(epoch FROM now())::bigint,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS armor_psk_meta (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
";

/// What the key-encryption key seals, to tell a wrong KEK at start.
const KEK_CHECK: &[u8] = b"armor-psk key-encryption key check";

/// The most a migration or an administrative command may take.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

impl PostgresKeyStore {
    /// Creates the tables if they are missing (every statement can run
    /// again), records the KEK's check value on first use, and, with a
    /// KEK, authenticates rows written by an earlier release (secrets
    /// sealed without their validity, key rows without a MAC).
    ///
    /// # Security
    /// Rows are authenticated as they are when it runs: run it from a
    /// trusted deployment, not after the database may have been changed.
    ///
    /// # Errors
    /// A query failed, or the KEK is not the one recorded.
    pub async fn migrate(&self) -> Result<(), PostgresStoreError> {
        // One migration at a time, whatever the number of instances.
        let script = format!("BEGIN; SELECT pg_advisory_xact_lock(7355608); {SCHEMA} COMMIT;");
        self.timed("migrate", ADMIN_TIMEOUT, move |client| {
            Box::pin(async move { client.batch_execute(&script).await })
        })
        .await?;
        self.check_kek(true).await?;
        self.authenticate_legacy_rows().await
    }

    /// With a KEK: opens the recorded check value (records it when
    /// `record` and there is none).
    pub(super) async fn check_kek(&self, record: bool) -> Result<(), PostgresStoreError> {
        let Sealing::Kek(kek) = &self.inner.sealing else {
            return Ok(());
        };
        let client = self.client(ADMIN_TIMEOUT).await?;
        let exists: bool = client
            .query_one(
                "SELECT to_regclass('armor_psk_meta') IS NOT NULL AS present",
                &[],
            )
            .await
            .map_err(database("check the schema"))?
            .get("present");
        if !exists {
            return Ok(());
        }
        let row = client
            .query_opt(
                "SELECT value FROM armor_psk_meta WHERE name = 'kek_check'",
                &[],
            )
            .await
            .map_err(database("read the KEK check"))?;
        match row {
            Some(row) => {
                let sealed: Vec<u8> = row.get("value");
                kek.open(b"kek_check", &sealed).map(|_| ())
            }
            None if record => {
                let sealed = kek.seal(b"kek_check", KEK_CHECK)?;
                client
                    .execute(
                        "INSERT INTO armor_psk_meta (name, value) VALUES ('kek_check', $1) \
                         ON CONFLICT (name) DO NOTHING",
                        &[&sealed],
                    )
                    .await
                    .map_err(database("record the KEK check"))?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Once per database (recorded in `armor_psk_meta` as `rows_v2`): seals
    /// the first release's secrets with their validity, and MACs every key
    /// row. Later migrations never authenticate a row: a row changed
    /// afterwards stays refused.
    async fn authenticate_legacy_rows(&self) -> Result<(), PostgresStoreError> {
        let Sealing::Kek(kek) = &self.inner.sealing else {
            return Ok(());
        };
        let mut client = self.client(ADMIN_TIMEOUT).await?;
        let transaction = client.transaction().await.map_err(database("begin"))?;
        let recorded = transaction
            .execute(
                "INSERT INTO armor_psk_meta (name, value) VALUES ('rows_v2', '\\x01') \
                 ON CONFLICT (name) DO NOTHING",
                &[],
            )
            .await
            .map_err(database("record the row format"))?;
        if recorded == 0 {
            // Done before: nothing is blessed again.
            return transaction.commit().await.map_err(database("commit"));
        }
        let secrets = transaction
            .query(
                "SELECT key_id, version, sealed, not_before, not_after FROM armor_psk_secrets \
                 WHERE encrypted FOR UPDATE",
                &[],
            )
            .await
            .map_err(database("read the secrets"))?;
        for row in secrets {
            let key_id: String = row.get("key_id");
            let version = u32::try_from(row.get::<_, i32>("version")).unwrap_or_default();
            let sealed: Vec<u8> = row.get("sealed");
            let (not_before, not_after): (Option<i64>, Option<i64>) =
                (row.get("not_before"), row.get("not_after"));
            let aad = secret_aad(&key_id, version, not_before, not_after);
            if kek.open(&aad, &sealed).is_ok() {
                continue;
            }
            let Ok(plain) = kek.open(&legacy_secret_aad(&key_id, version), &sealed) else {
                continue; // neither form: left as it is, and refused on use
            };
            let plain = zeroize::Zeroizing::new(plain);
            let resealed = kek.seal(&aad, &plain)?;
            transaction
                .execute(
                    "UPDATE armor_psk_secrets SET sealed = $3 WHERE key_id = $1 AND version = $2",
                    &[&key_id, &row.get::<_, i32>("version"), &resealed],
                )
                .await
                .map_err(database("re-seal a secret"))?;
        }
        let keys = transaction
            .query("SELECT key_id FROM armor_psk_keys", &[])
            .await
            .map_err(database("read the keys"))?;
        for row in keys {
            let key_id: String = row.get("key_id");
            self.seal_row(&transaction, &key_id).await?;
        }
        transaction.commit().await.map_err(database("commit"))
    }
}
