//! [`PostgresKeyStore`]: keys in PostgreSQL, shared by every instance
//! (feature `postgres`).
//!
//! - `seal`: what the key-encryption key protects (secrets, rows);
//! - `schema`: the tables, their migration and the KEK check;
//! - `admin`: adding, rotating, revoking and listing keys (the CLI);
//! - `feed`: the change feed (`LISTEN`), its heartbeat, and the set of
//!   key ids kept in memory.
//!
//! tokio-postgres with a deadpool pool: a handful of plain queries need no
//! ORM or compile-time database, and its connection hands `LISTEN`
//! notifications over directly.

mod admin;
mod feed;
mod schema;
mod seal;
mod tls;

use parking_lot::RwLock;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};

pub use admin::{KeyInfo, NewKey};
pub use seal::{Kek, Sealing};

use super::cached::{CachedKeyStore, CachedKeyStoreBuilder};
use super::store::{KeyStore, KeyStoreError};
use crate::boxed::{BoxError, BoxFuture};
use crate::protocol::key::{Key, KeySecret};
use seal::{RowFields, secret_aad};

/// The PostgreSQL key store could not do what was asked. Messages never
/// carry the database URL or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub enum PostgresStoreError {
    /// The database could not be reached, did not answer in time, or a
    /// query failed; the driver's error is the
    /// [`source`](std::error::Error::source).
    #[error("PostgreSQL: {context}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The key-encryption key is not usable.
    #[error("invalid key-encryption key: {0}")]
    InvalidKek(&'static str),
    /// The key-encryption key is not the one the secrets were sealed with.
    #[error("wrong key-encryption key: it does not open what the database holds")]
    WrongKek,
    /// No key-encryption key, and plaintext was not allowed.
    #[error(
        "no key-encryption key: set ARMOR_PSK_KEK or ARMOR_PSK_KEK_FILE (32 bytes, base64), \
         or allow plaintext"
    )]
    NoKek,
    /// A row does not verify under the key-encryption key (changed in the
    /// database, or written in plaintext): the key is refused.
    #[error("key {0:?} does not verify under the key-encryption key; refused")]
    Tampered(String),
    /// No such key id (or it is revoked).
    #[error("no key {0:?}")]
    UnknownKey(String),
    /// TLS could not be set up (an unreadable `sslrootcert`).
    #[error("TLS: {0}")]
    Tls(String),
    /// Sealing failed.
    #[error("could not seal the secret")]
    Crypto,
    /// The system's random generator failed.
    #[error("the system's random generator failed")]
    Random,
}

fn database<E: Into<BoxError>>(context: &'static str) -> impl FnOnce(E) -> PostgresStoreError {
    move |source| PostgresStoreError::Database {
        context,
        source: source.into(),
    }
}

/// The query did not answer within the store's timeout.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
struct QueryTimeout(Duration);

/// How the store talks to the database.
#[derive(Debug, Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct PostgresOptions {
    query_timeout: Duration,
    connect_timeout: Duration,
    pool_size: usize,
    heartbeat: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            query_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            pool_size: 8,
            heartbeat: Duration::from_secs(1),
        }
    }
}

impl PostgresOptions {
    /// The longest a key lookup may take (default 500 ms): past it the
    /// lookup fails, its connection is dropped, and a cached key's grace
    /// copy serves.
    #[must_use]
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// The longest a new connection may take (default 2 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connections in the pool (default 8).
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How often the change feed's connection is checked alive (default
    /// 1 s). When it cannot be confirmed for three beats the cache stops
    /// trusting itself: every cached key asks the database again.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }
}

/// Keys in PostgreSQL: each key id with its secrets (sealed under a
/// key-encryption key), label, user, creation and revocation times. Every
/// change is published with `NOTIFY armor_psk_keys`, so that
/// [`cached`](Self::cached) stores on every instance drop the key within a
/// second.
///
/// - Lookups go through a pool of connections (deadpool), each query
///   bounded by a timeout (500 ms), connections with TCP keepalive and
///   `tcp_user_timeout`: a database that stops answering fails lookups,
///   it never hangs them.
/// - The ids of the keys that exist are kept in memory (ids are not
///   secrets), kept current by the change feed and read again every 30 s,
///   so an unknown key id is answered without a query.
/// - With a KEK, a row changed in the database (a secret written in
///   plaintext, a revocation undone, a validity changed, a secret moved to
///   another key) does not verify, and the key is refused.
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
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct PostgresKeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    pool: Pool,
    sealing: Sealing,
    options: PostgresOptions,
    queries: AtomicU64,
    /// The ids of the keys that exist (revoked ones included), once read.
    ids: RwLock<HashSet<String>>,
    ids_loaded: AtomicBool,
    /// Ids noted from the feed since the set was last read.
    noted: AtomicUsize,
    /// A read of the set is under way, and the ids noted meanwhile.
    reading: AtomicBool,
    noted_during_read: parking_lot::Mutex<Vec<String>>,
}

/// The most ids noted from the change feed between two reads of the set.
const MAX_NOTED: usize = 100_000;

impl PostgresKeyStore {
    /// Connects to `url` (`postgres://user@host:port/db`) with the default
    /// [`PostgresOptions`]. TLS (rustls) follows the URL's `sslmode`
    /// (`require`, `verify-full`: TLS or nothing, the certificate and the
    /// host name verified against the Mozilla roots, or against
    /// `sslrootcert=PATH`). With a KEK, checks that it opens what the
    /// database holds (after [`migrate`](Self::migrate) ran once).
    ///
    /// # Errors
    /// The URL is not a PostgreSQL URL, the database cannot be reached,
    /// or the KEK is wrong.
    pub async fn connect(url: &str, sealing: Sealing) -> Result<Self, PostgresStoreError> {
        Self::connect_with(url, sealing, PostgresOptions::default()).await
    }

    /// As [`connect`](Self::connect), with `options`.
    ///
    /// # Errors
    /// See [`connect`](Self::connect).
    pub async fn connect_with(
        url: &str,
        sealing: Sealing,
        options: PostgresOptions,
    ) -> Result<Self, PostgresStoreError> {
        if matches!(sealing, Sealing::Plaintext) {
            tracing::warn!("ARMOR-PSK key store keeps secrets in PostgreSQL in plaintext");
        }
        let (mut config, connector) = tls::configure(url)?;
        config
            .connect_timeout(options.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(5));
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.query_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(database("build the connection pool"))?;
        let store = Self {
            inner: Arc::new(Inner {
                config,
                tls: connector,
                pool,
                sealing,
                options,
                queries: AtomicU64::new(0),
                ids: RwLock::default(),
                ids_loaded: AtomicBool::new(false),
                noted: AtomicUsize::new(0),
                reading: AtomicBool::new(false),
                noted_during_read: parking_lot::Mutex::default(),
            }),
        };
        // Reach the database now: a wrong URL or password fails here.
        drop(store.client(store.inner.options.connect_timeout).await?);
        store.check_kek(false).await?;
        Ok(store)
    }

    /// A pooled connection, within `timeout`.
    async fn client(&self, timeout: Duration) -> Result<Object, PostgresStoreError> {
        match tokio::time::timeout(timeout, self.inner.pool.get()).await {
            Ok(client) => client.map_err(database("cannot connect")),
            Err(_) => Err(database("cannot connect")(QueryTimeout(timeout))),
        }
    }

    /// Runs `query` on a pooled connection within `timeout`; a connection
    /// that did not answer in time is dropped, never given back to the
    /// pool.
    async fn timed<T>(
        &self,
        context: &'static str,
        timeout: Duration,
        query: impl for<'c> FnOnce(
            &'c tokio_postgres::Client,
        ) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
    ) -> Result<T, PostgresStoreError> {
        let client = self.client(timeout).await?;
        let answer = tokio::time::timeout(timeout, query(&client)).await;
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(database(context)(error)),
            Err(_) => {
                drop(Object::take(client));
                Err(database(context)(QueryTimeout(timeout)))
            }
        }
    }

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
        let mut ids: HashSet<String> = rows.iter().map(|row| row.get(0)).collect();
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
    fn note_id(&self, key_id: &str) {
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
    fn forget_ids(&self) {
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

    async fn lookup(&self, key_id: &str) -> Result<Option<Key>, PostgresStoreError> {
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
        let revoked_at: Option<i64> = first.get(1);
        if let Sealing::Kek(kek) = &self.inner.sealing {
            let sealed: Vec<Option<Vec<u8>>> = rows.iter().map(|row| row.get(5)).collect();
            let digest =
                seal::secrets_digest(rows.iter().zip(&sealed).filter_map(|(row, sealed)| {
                    Some(seal::SecretRow {
                        version: row.get::<_, Option<i32>>(4)?,
                        not_before: row.get(7),
                        not_after: row.get(8),
                        encrypted: row.get(6),
                        sealed: sealed.as_deref()?,
                    })
                }));
            let row = RowFields {
                key_id,
                user_id: first.get(0),
                revoked_at,
                revision: first.get(3),
                secrets: digest,
            };
            let mac: Option<Vec<u8>> = first.get(2);
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
            let sealed: Vec<u8> = row.get(5);
            let encrypted: bool = row.get(6);
            let not_before: Option<i64> = row.get(7);
            let not_after: Option<i64> = row.get(8);
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
            let mut secret = KeySecret::new(version, crate::Secret::new(plain.as_slice()));
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

impl KeyStore for PostgresKeyStore {
    fn get<'a>(&'a self, key_id: &'a str) -> BoxFuture<'a, Result<Option<Key>, KeyStoreError>> {
        Box::pin(async move { self.lookup(key_id).await.map_err(KeyStoreError::new) })
    }

    fn might_hold(&self, key_id: &str) -> bool {
        PostgresKeyStore::might_hold(self, key_id)
    }
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresKeyStore")
            .field("sealing", &self.inner.sealing)
            .field("queries", &self.queries())
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}
