//! Connecting: the deadpool pool with its query and connect timeouts,
//! TCP keepalive and `tcp_user_timeout`, the TLS choice, and the first read
//! of the key ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use parking_lot::RwLock;

use super::seal::Sealing;
use super::tls;
use super::{Inner, PostgresKeyStore, PostgresOptions, PostgresStoreError, database};
use crate::boxed::BoxFuture;

/// The query did not answer within the store's timeout.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
struct QueryTimeout(Duration);

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
    pub(super) async fn client(&self, timeout: Duration) -> Result<Object, PostgresStoreError> {
        match tokio::time::timeout(timeout, self.inner.pool.get()).await {
            Ok(client) => client.map_err(database("cannot connect")),
            Err(_) => Err(database("cannot connect")(QueryTimeout(timeout))),
        }
    }

    /// Runs `query` on a pooled connection within `timeout`; a connection
    /// that did not answer in time is dropped, never given back to the
    /// pool.
    pub(super) async fn timed<T>(
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
}
