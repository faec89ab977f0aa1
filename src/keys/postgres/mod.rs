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
//!
//! ```no_run
//! # async fn run() -> Result<(), armor_psk::keys::postgres::PostgresStoreError> {
//! use armor_psk::{ArmorPskLayer, keys::postgres::{Kek, PostgresKeyStore, Sealing}};
//!
//! let kek = Kek::from_base64(&std::env::var("ARMOR_PSK_KEK").unwrap())?;
//! let store = PostgresKeyStore::connect("postgres://app@db/app", Sealing::Kek(kek)).await?;
//! store.migrate().await?;
//! let layer = ArmorPskLayer::new(store.cached());
//! # Ok(()) }
//! ```

mod admin;
mod connection;
mod feed;
mod lookup;
mod schema;
mod seal;
mod tls;

use parking_lot::RwLock;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Duration;

use deadpool_postgres::Pool;

pub use admin::{KeyInfo, NewKey};
pub use seal::{Kek, Sealing};

use super::store::{KeyStore, KeyStoreError};
use crate::boxed::{BoxError, BoxFuture};
use crate::protocol::key::Key;

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
    /// TLS could not be set up (an unreadable `sslrootcert`); the I/O or
    /// TLS error behind it, if any, is the source.
    #[error("TLS: {problem}")]
    Tls {
        /// What could not be set up.
        problem: &'static str,
        /// Why.
        #[source]
        source: Option<BoxError>,
    },
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
