//! [`PostgresKeyStore`]: keys in PostgreSQL, shared by every instance
//! (feature `postgres`).
//!
//! tokio-postgres rather than sqlx: a handful of plain queries need no
//! pool, macros or compile-time database, and its connection hands
//! `LISTEN` notifications over directly; it is one crate on tokio, well
//! kept by the rust-postgres project.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use tokio::sync::Mutex;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::cached::CachedKeyStore;
use super::store::{KeyStore, KeyStoreError};
use crate::boxed::BoxFuture;
use crate::protocol::key::{Key, KeySecret};
use crate::protocol::secret::generate_secret;

/// The channel changes are published on.
const CHANNEL: &str = "armor_psk_keys";

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

/// A key-encryption key: 32 bytes (AES-256-GCM) that seal every secret in
/// the database. `Debug` never shows it.
#[derive(Clone)]
pub struct Kek(Arc<Aes256Gcm>);

impl Kek {
    /// From 32 bytes in standard base64 (`ARMOR_PSK_KEK`).
    ///
    /// # Errors
    /// Not base64, or not 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, PostgresStoreError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| PostgresStoreError::InvalidKek("not standard base64"))?;
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| PostgresStoreError::InvalidKek("not 32 bytes"))?;
        Ok(Self(Arc::new(cipher)))
    }

    /// A new random KEK, and its base64 text (shown once, kept by the
    /// operator).
    ///
    /// # Errors
    /// The system's random generator failed.
    pub fn generate() -> Result<(Self, String), PostgresStoreError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| PostgresStoreError::Random)?;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok((Self::from_base64(&text)?, text))
    }

    fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, PostgresStoreError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| PostgresStoreError::Random)?;
        let sealed = self
            .0
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| PostgresStoreError::Crypto)?;
        Ok([&nonce[..], &sealed].concat())
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, PostgresStoreError> {
        if sealed.len() < 12 {
            return Err(PostgresStoreError::WrongKek);
        }
        let (nonce, sealed) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| PostgresStoreError::WrongKek)?;
        self.0
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .map_err(|_| PostgresStoreError::WrongKek)
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

/// How secrets are kept in the database.
#[derive(Debug, Clone)]
pub enum Sealing {
    /// Sealed with AES-256-GCM under this key-encryption key.
    Kek(Kek),
    /// In the clear.
    ///
    /// # Security
    /// Anyone who can read the table (a backup, a replica, a support
    /// query) can sign as every key. Logged as a warning when chosen.
    Plaintext,
}

/// The PostgreSQL key store could not do what was asked. Messages never
/// carry the database URL or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresStoreError {
    /// The database could not be reached or a query failed.
    #[error("PostgreSQL: {context}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The key-encryption key is not usable.
    #[error("invalid key-encryption key: {0}")]
    InvalidKek(&'static str),
    /// The key-encryption key is not the one the secrets were sealed with.
    #[error("wrong key-encryption key: it does not open what the database holds")]
    WrongKek,
    /// No key-encryption key, and plaintext was not allowed.
    #[error("no key-encryption key: set ARMOR_PSK_KEK (32 bytes, base64) or allow plaintext")]
    NoKek,
    /// No such key id (or it is revoked).
    #[error("no key {0:?}")]
    UnknownKey(String),
    /// Sealing failed.
    #[error("could not seal the secret")]
    Crypto,
    /// The system's random generator failed.
    #[error("the system's random generator failed")]
    Random,
}

fn database(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PostgresStoreError {
    move |source| PostgresStoreError::Database { context, source }
}

/// A key as `list` shows it: never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Keys in PostgreSQL: each key id with its secrets (sealed under a
/// key-encryption key), label, user, creation and revocation times. Every
/// change is published with `NOTIFY armor_psk_keys`, so that
/// [`cached`](Self::cached) stores on every instance drop the key within a
/// second.
///
/// ```no_run
/// # async fn run() -> Result<(), armor_psk::PostgresStoreError> {
/// use armor_psk::{ArmorPskLayer, Kek, PostgresKeyStore, Sealing};
///
/// let kek = Kek::from_base64(&std::env::var("ARMOR_PSK_KEK").unwrap())?;
/// let store = PostgresKeyStore::connect("postgres://app@db/app", Sealing::Kek(kek)).await?;
/// store.migrate().await?;
/// let layer = ArmorPskLayer::new(store.cached());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    client: Mutex<Client>,
    sealing: Sealing,
    queries: AtomicU64,
}

/// Connects and drives the connection on its own task.
async fn open(url: &str) -> Result<Client, PostgresStoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(database("cannot connect"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "ARMOR-PSK key store: the PostgreSQL connection ended");
        }
    });
    Ok(client)
}

impl PostgresKeyStore {
    /// Connects to `url` (`postgres://user@host:port/db`; TLS is not
    /// built in). With a KEK, checks that it opens what the database holds
    /// (after [`migrate`](Self::migrate) ran once).
    ///
    /// # Errors
    /// The database cannot be reached, or the KEK is wrong.
    pub async fn connect(url: &str, sealing: Sealing) -> Result<Self, PostgresStoreError> {
        if matches!(sealing, Sealing::Plaintext) {
            tracing::warn!("ARMOR-PSK key store keeps secrets in PostgreSQL in plaintext");
        }
        let client = open(url).await?;
        let store = Self {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                client: Mutex::new(client),
                sealing,
                queries: AtomicU64::new(0),
            }),
        };
        store.check_kek(false).await?;
        Ok(store)
    }

    /// Creates the tables if they are missing (every statement can run
    /// again), and records the KEK's check value on first use.
    ///
    /// # Errors
    /// A query failed, or the KEK is not the one recorded.
    pub async fn migrate(&self) -> Result<(), PostgresStoreError> {
        // One migration at a time, whatever the number of instances.
        let script = format!("BEGIN; SELECT pg_advisory_xact_lock(7355608); {SCHEMA} COMMIT;");
        self.client()
            .await?
            .batch_execute(&script)
            .await
            .map_err(database("migrate"))?;
        self.check_kek(true).await
    }

    /// With a KEK: opens the recorded check value (records it when
    /// `record` and there is none).
    async fn check_kek(&self, record: bool) -> Result<(), PostgresStoreError> {
        let Sealing::Kek(kek) = &self.inner.sealing else {
            return Ok(());
        };
        let client = self.client().await?;
        let exists: bool = client
            .query_one("SELECT to_regclass('armor_psk_meta') IS NOT NULL", &[])
            .await
            .map_err(database("check the schema"))?
            .get(0);
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
                let sealed: Vec<u8> = row.get(0);
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

    /// The client, connected again if the connection was lost.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, PostgresStoreError> {
        let mut client = self.inner.client.lock().await;
        if client.is_closed() {
            *client = open(&self.inner.url).await?;
        }
        Ok(client)
    }

    fn seal(
        &self,
        key_id: &str,
        version: u32,
        secret: &str,
    ) -> Result<(Vec<u8>, bool), PostgresStoreError> {
        match &self.inner.sealing {
            Sealing::Kek(kek) => Ok((kek.seal(&aad(key_id, version), secret.as_bytes())?, true)),
            Sealing::Plaintext => Ok((secret.as_bytes().to_vec(), false)),
        }
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
        let (sealed, encrypted) = self.seal(&key_id, 1, &secret)?;
        let mut client = self.client().await?;
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
        notify(&transaction, &key_id).await?;
        transaction.commit().await.map_err(database("commit"))?;
        Ok(NewKey { key_id, secret })
    }

    /// Adds a new secret to `key_id` (the next version), valid from now;
    /// the secrets it had stay valid until `now + overlap`. Returns the
    /// version and the new secret, for this once.
    ///
    /// # Errors
    /// No such (unrevoked) key, or a query failed.
    pub async fn rotate(
        &self,
        key_id: &str,
        overlap: Duration,
        now: u64,
    ) -> Result<(u32, String), PostgresStoreError> {
        let secret = generate_secret().map_err(|_| PostgresStoreError::Random)?;
        let until = i64::try_from(now.saturating_add(overlap.as_secs())).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database("begin"))?;
        transaction
            .query_opt(
                "SELECT 1 FROM armor_psk_keys WHERE key_id = $1 AND revoked_at IS NULL FOR UPDATE",
                &[&key_id],
            )
            .await
            .map_err(database("find the key"))?
            .ok_or_else(|| PostgresStoreError::UnknownKey(key_id.to_owned()))?;
        let row = transaction
            .query_one(
                "SELECT coalesce(max(version), 0) FROM armor_psk_secrets WHERE key_id = $1",
                &[&key_id],
            )
            .await
            .map_err(database("find the latest secret"))?;
        let latest: i32 = row.get(0);
        let version = latest + 1;
        let version_u32 = u32::try_from(version).unwrap_or_default();
        let (sealed, encrypted) = self.seal(key_id, version_u32, &secret)?;
        transaction
            .execute(
                "UPDATE armor_psk_secrets SET not_after = $2 \
                 WHERE key_id = $1 AND (not_after IS NULL OR not_after > $2)",
                &[&key_id, &until],
            )
            .await
            .map_err(database("limit the old secrets"))?;
        transaction
            .execute(
                "INSERT INTO armor_psk_secrets (key_id, version, sealed, encrypted) \
                 VALUES ($1, $2, $3, $4)",
                &[&key_id, &version, &sealed, &encrypted],
            )
            .await
            .map_err(database("add the secret"))?;
        notify(&transaction, key_id).await?;
        transaction.commit().await.map_err(database("commit"))?;
        Ok((version_u32, secret))
    }

    /// Revokes `key_id`; returns whether it was active.
    ///
    /// # Errors
    /// A query failed.
    pub async fn revoke(&self, key_id: &str) -> Result<bool, PostgresStoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database("begin"))?;
        let revoked = transaction
            .execute(
                "UPDATE armor_psk_keys SET revoked_at = extract(epoch FROM now())::bigint \
                 WHERE key_id = $1 AND revoked_at IS NULL",
                &[&key_id],
            )
            .await
            .map_err(database("revoke"))?;
        notify(&transaction, key_id).await?;
        transaction.commit().await.map_err(database("commit"))?;
        Ok(revoked == 1)
    }

    /// Every key, with its secrets' versions and validity; never a secret.
    ///
    /// # Errors
    /// A query failed.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, PostgresStoreError> {
        let client = self.client().await?;
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
            let key_id: String = row.get(0);
            if keys.last().is_none_or(|last| last.key_id != key_id) {
                keys.push(KeyInfo {
                    key_id,
                    label: row.get(1),
                    user_id: row.get(2),
                    created_at: row.get(3),
                    revoked_at: row.get(4),
                    secrets: Vec::new(),
                });
            }
            if let (Some(key), Some(version)) = (keys.last_mut(), row.get::<_, Option<i32>>(5)) {
                let version = u32::try_from(version).unwrap_or_default();
                key.secrets.push((version, row.get(6), row.get(7)));
            }
        }
        Ok(keys)
    }

    /// How many key lookups reached the database.
    pub fn queries(&self) -> u64 {
        self.inner.queries.load(Ordering::Relaxed)
    }

    /// This store behind a [`CachedKeyStore`] that drops a key as soon as a
    /// change to it is published (`LISTEN armor_psk_keys`, on a connection
    /// of its own that reconnects by itself). After a lost connection every
    /// cached key asks the database again ([`CachedKeyStore::expire_all`]);
    /// only if the database does not answer are the last known keys served,
    /// for the grace period. Call it inside a tokio runtime.
    pub fn cached(self) -> CachedKeyStore<Self> {
        self.cached_with(|cache| cache)
    }

    /// As [`cached`](Self::cached), with the cache's settings changed by
    /// `configure` (`|cache| cache.with_ttl(...)`) before the listener
    /// starts.
    pub fn cached_with(
        self,
        configure: impl FnOnce(CachedKeyStore<Self>) -> CachedKeyStore<Self>,
    ) -> CachedKeyStore<Self> {
        let url = self.inner.url.clone();
        let cache = configure(CachedKeyStore::new(self));
        tokio::spawn(listen(url, cache.clone()));
        cache
    }

    async fn lookup(&self, key_id: &str) -> Result<Option<Key>, PostgresStoreError> {
        self.inner.queries.fetch_add(1, Ordering::Relaxed);
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT s.version, s.sealed, s.encrypted, s.not_before, s.not_after \
                 FROM armor_psk_keys k JOIN armor_psk_secrets s USING (key_id) \
                 WHERE k.key_id = $1 AND k.revoked_at IS NULL ORDER BY s.version",
                &[&key_id],
            )
            .await
            .map_err(database("look the key up"))?;
        drop(client);
        if rows.is_empty() {
            return Ok(None);
        }
        let mut secrets = Vec::with_capacity(rows.len());
        for row in rows {
            let version = u32::try_from(row.get::<_, i32>(0)).unwrap_or_default();
            let sealed: Vec<u8> = row.get(1);
            let encrypted: bool = row.get(2);
            let plain = match (&self.inner.sealing, encrypted) {
                (Sealing::Kek(kek), true) => kek.open(&aad(key_id, version), &sealed)?,
                (_, false) => sealed,
                (Sealing::Plaintext, true) => return Err(PostgresStoreError::NoKek),
            };
            let plain = zeroize::Zeroizing::new(plain);
            let mut secret = KeySecret::new(version, crate::Secret::new(plain.as_slice()));
            if let Some(from) = row.get::<_, Option<i64>>(3) {
                secret = secret.with_not_before(u64::try_from(from).unwrap_or_default());
            }
            if let Some(until) = row.get::<_, Option<i64>>(4) {
                secret = secret.with_not_after(u64::try_from(until).unwrap_or_default());
            }
            secrets.push(secret);
        }
        Ok(Some(Key::from_secrets(secrets)))
    }
}

/// The associated data a secret is sealed with: it cannot be moved to
/// another key or version.
fn aad(key_id: &str, version: u32) -> Vec<u8> {
    format!("{key_id}:{version}").into_bytes()
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

/// Listens for changes and drops them from `cache`; reconnects after a
/// lost connection, flushing the cache (changes may have been missed).
async fn listen(url: String, cache: CachedKeyStore<PostgresKeyStore>) {
    loop {
        if let Ok((client, mut connection)) = tokio_postgres::connect(&url, NoTls).await {
            let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                loop {
                    match poll_fn(|cx| connection.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(change))) => {
                            let _ = sender.send(change.payload().to_owned());
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => return,
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await
                .is_ok()
            {
                // Whatever changed before we listened may be cached.
                cache.expire_all();
                while let Some(key_id) = changes.recv().await {
                    cache.invalidate(&key_id).await;
                }
            }
            driver.abort();
            cache.expire_all();
            tracing::warn!(
                "ARMOR-PSK key store: lost the change feed; cache expired, reconnecting"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl KeyStore for PostgresKeyStore {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        Box::pin(async move { self.lookup(key_id).await.map_err(KeyStoreError::new) })
    }
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("sealing", &self.inner.sealing)
            .field("queries", &self.queries())
            .finish_non_exhaustive()
    }
}
