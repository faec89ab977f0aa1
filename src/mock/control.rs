//! What the admin API and the journal share with the running mock
//! ([`Control`]), and the hook every journal entry is handed to.

use std::sync::Arc;

use super::api::Directory;
use super::clock::ShiftedClock;
use super::journal::{Journal, JournalEntry};
use super::nonces::SeenNonces;
use super::serve::{self, Unread};
use crate::keys::MemoryKeyStore;

pub(crate) type RequestHook = Arc<dyn Fn(&JournalEntry) + Send + Sync>;

/// What the admin API and the journal share with the server.
/// (`journal_body_limit`: how many bytes of each body the journal keeps.)
#[derive(Clone)]
pub(crate) struct Control {
    pub(crate) store: MemoryKeyStore,
    pub(crate) directory: Directory,
    pub(crate) clock: ShiftedClock,
    pub(crate) journal: Journal,
    pub(crate) default_user: i64,
    /// (key id, nonce) of accepted requests, to notice a reused nonce.
    pub(crate) nonces: Arc<parking_lot::Mutex<SeenNonces>>,
    /// How many bytes of each body the journal keeps.
    pub(crate) journal_body_limit: usize,
    /// The body bytes held by requests not verified yet.
    pub(crate) buffered: serve::Buffered,
    /// How long a body may take to arrive.
    pub(crate) body_timeout: std::time::Duration,
    /// The stubs, to add to while it runs.
    pub(crate) stubs: super::stubs::StubList,
    /// One journal answer built at a time.
    pub(crate) journal_answers: Arc<tokio::sync::Semaphore>,
}

impl Control {
    /// Reads the body of a request not verified yet: within the layer's
    /// limit (a larger `Content-Length` refused before a byte is read),
    /// the body timeout, and the bytes all such requests may hold
    /// together. What it holds is given back when the `Held` is dropped.
    pub(crate) async fn read_unverified(
        &self,
        parts: &http::request::Parts,
        body: axum::body::Body,
    ) -> Result<(axum::body::Bytes, serve::Held), Unread> {
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        self.buffered
            .read(
                body,
                declared,
                crate::middleware::body::DEFAULT_BODY_LIMIT,
                self.body_timeout,
                serve::BUFFERED_BYTES,
            )
            .await
    }
}
