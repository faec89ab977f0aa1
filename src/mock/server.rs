//! [`MockArmorServer`]: a running mock, what a test reads of it (its URL,
//! key, journal) and changes on it (its clock, keys, stubs), and its stop.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::api::Directory;
use super::builder::MockArmorServerBuilder;
use super::clock::ShiftedClock;
use super::error::MockError;
use super::fixtures::Fixtures;
use super::journal::{Journal, JournalEntry};
use super::key::{ApiKey, add_key};
use super::stubs::{Stub, StubList};
use crate::keys::MemoryKeyStore;
use crate::protocol::clock::Clock;

/// A running mock of Armor's API; see the [module docs](crate::mock).
///
/// Dropping it stops the server; [`shutdown`](Self::shutdown) stops it and
/// waits until it has.
pub struct MockArmorServer {
    pub(crate) addr: SocketAddr,
    pub(crate) key: ApiKey,
    pub(crate) generated: bool,
    pub(crate) store: MemoryKeyStore,
    pub(crate) directory: Directory,
    pub(crate) clock: ShiftedClock,
    pub(crate) journal: Journal,
    pub(crate) stubs: StubList,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: Option<JoinHandle<std::io::Result<()>>>,
}

impl fmt::Debug for MockArmorServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockArmorServer")
            .field("addr", &self.addr)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl MockArmorServer {
    /// Starts a server with the default fixtures and one generated key.
    ///
    /// # Errors
    /// See [`MockArmorServerBuilder::start`].
    pub async fn start() -> Result<Self, MockError> {
        Self::builder().start().await
    }

    /// The settings, to change before starting.
    pub fn builder() -> MockArmorServerBuilder {
        MockArmorServerBuilder::default()
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first key: the generated one, or the first one supplied.
    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// Whether [`key`](Self::key) was generated (no key was supplied).
    pub fn key_was_generated(&self) -> bool {
        self.generated
    }

    /// Issues a new key for the user with this `userId`, as AMP does.
    ///
    /// # Errors
    /// No such user, or the random generator failed.
    pub fn issue_key(&self, user_id: i64) -> Result<ApiKey, MockError> {
        let key = ApiKey::generate()?;
        self.add_key(key.clone(), user_id)?;
        Ok(key)
    }

    /// Installs a key for the user with this `userId`, taking effect with
    /// the next request.
    ///
    /// # Errors
    /// No such user, or a key id that cannot travel in the header.
    pub fn add_key(&self, key: ApiKey, user_id: i64) -> Result<(), MockError> {
        add_key(&self.store, &self.directory, &key, user_id)
    }

    /// Revokes a key: the next request signed with it is refused
    /// (`invalid_signature`, as for any unknown key). Returns whether it
    /// existed.
    pub fn revoke_key(&self, key_id: &str) -> bool {
        self.directory.remove_owner(key_id);
        self.store.revoke(key_id)
    }

    /// Moves the server's clock by `seconds` (negative: back) from the
    /// system clock, to test how a client handles skew.
    pub fn set_clock_offset(&self, seconds: i64) {
        self.clock.0.store(seconds, Ordering::Relaxed);
    }

    /// The server's time, Unix seconds (the system clock plus the offset).
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The requests received so far, oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.journal.entries()
    }

    /// Forgets the requests received so far.
    pub fn clear_journal(&self) {
        self.journal.clear();
    }

    /// Adds stubs while it runs, ahead of every other stub (the first of
    /// them first); [`clear_stubs`](Self::clear_stubs) removes them.
    pub fn add_stubs(&self, stubs: impl IntoIterator<Item = Stub>) {
        self.stubs.add(stubs.into_iter().collect());
    }

    /// Removes the stubs added with [`add_stubs`](Self::add_stubs) (or
    /// `POST /__mock/stubs`); those it started with stay.
    pub fn clear_stubs(&self) {
        self.stubs.clear();
    }

    /// The fixtures it serves.
    pub fn fixtures(&self) -> &Fixtures {
        self.directory.fixtures()
    }

    /// Stops accepting connections, lets open ones finish, and waits.
    ///
    /// # Errors
    /// Serving failed.
    pub async fn shutdown(self) -> Result<(), MockError> {
        self.shutdown_within(Self::SHUTDOWN_DEADLINE).await
    }

    /// How long [`shutdown`](Self::shutdown) lets requests in progress
    /// finish before it drops their connections.
    pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(3);

    /// Stops accepting connections, lets requests in progress finish for
    /// at most `deadline`, then drops the connections still open (a
    /// client holding a half-sent request cannot keep the mock running).
    ///
    /// # Errors
    /// Serving failed.
    pub async fn shutdown_within(mut self, deadline: Duration) -> Result<(), MockError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(deadline, &mut task).await {
                Ok(Ok(result)) => result?,
                Ok(Err(join)) => return Err(std::io::Error::other(join.to_string()).into()),
                Err(_) => task.abort(),
            }
        }
        Ok(())
    }

    /// Serves until `signal` completes (the CLI passes Ctrl-C).
    ///
    /// # Errors
    /// Serving failed.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), MockError> {
        signal.await;
        self.shutdown().await
    }
}

impl Drop for MockArmorServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
