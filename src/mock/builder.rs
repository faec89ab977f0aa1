//! [`MockArmorServerBuilder`]: every setting of a mock. Its `start` (the
//! listener bound, the router assembled) is in `start.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Response;

use super::control::RequestHook;
use super::error::FileError;
use super::fixtures::Fixtures;
use super::journal::JournalEntry;
use super::key::ApiKey;
use super::openapi::Operations;
use super::serve;
use super::stubs::Stub;
use crate::protocol::options::DEFAULT_WINDOW;

/// What answers every verified request when the mock records: the
/// request (its body read whole) in, the response out.
pub type Upstream = Arc<
    dyn Fn(http::Request<axum::body::Bytes>) -> crate::BoxFuture<'static, Response> + Send + Sync,
>;

/// Settings of a [`MockArmorServer`](super::MockArmorServer); [`start`](Self::start) runs it.
#[must_use]
pub struct MockArmorServerBuilder {
    pub(super) fixtures: Fixtures,
    pub(super) keys: Vec<(ApiKey, Option<i64>)>,
    pub(super) routes: Router,
    pub(super) listen: SocketAddr,
    pub(super) window: Duration,
    pub(super) require_account_context: bool,
    pub(super) stubs: Vec<Stub>,
    pub(super) admin: bool,
    pub(super) admin_token: Option<Arc<str>>,
    pub(super) operations: Operations,
    pub(super) upstream: Option<Upstream>,
    pub(super) journal_limit: usize,
    pub(super) journal_body_limit: usize,
    pub(super) on_request: Option<RequestHook>,
    pub(super) header_timeout: Duration,
    pub(super) body_timeout: Duration,
    pub(super) write_timeout: Duration,
}

impl fmt::Debug for MockArmorServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockArmorServerBuilder")
            .field("keys", &self.keys)
            .field("listen", &self.listen)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Default for MockArmorServerBuilder {
    fn default() -> Self {
        Self {
            fixtures: Fixtures::default(),
            keys: Vec::new(),
            routes: Router::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            window: DEFAULT_WINDOW,
            require_account_context: false,
            stubs: Vec::new(),
            admin: true,
            admin_token: None,
            operations: Operations::default(),
            upstream: None,
            journal_limit: 10_000,
            journal_body_limit: 64 << 10,
            on_request: None,
            header_timeout: serve::HEAD_TIMEOUT,
            body_timeout: serve::BODY_TIMEOUT,
            write_timeout: serve::WRITE_TIMEOUT,
        }
    }
}

impl MockArmorServerBuilder {
    /// Serves these users and accounts (and installs their keys) instead of
    /// the default fixtures.
    pub fn fixtures(mut self, fixtures: Fixtures) -> Self {
        self.fixtures = fixtures;
        self
    }

    /// Installs a key for the first user. Without any key (here or in the
    /// fixtures) one is generated: see [`MockArmorServer::key`](super::MockArmorServer::key).
    pub fn key(mut self, key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.keys.push((ApiKey::new(key_id, secret), None));
        self
    }

    /// Installs a key for the user with this `userId`.
    pub fn key_for(
        mut self,
        user_id: i64,
        key_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.keys.push((ApiKey::new(key_id, secret), Some(user_id)));
        self
    }

    /// Mounts the test's own routes next to the API's, behind the same
    /// authentication and account-context check. Their handlers can take
    /// [`Identity`](crate::Identity) and [`AccountContext`](crate::mock::AccountContext). A route the API already has
    /// (`/me`, `/accounts`, `/accounts/{id}`) makes `start` panic, as
    /// axum's `merge` does.
    pub fn routes(mut self, routes: Router) -> Self {
        self.routes = routes;
        self
    }

    /// Listens on this address (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The timestamp window (default 300 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// A request without `X-Account-Context` gets 400
    /// `MissingAccountContext` (except on `/me`), as the contract reads,
    /// instead of acting on the user's primary account.
    pub fn require_account_context(mut self) -> Self {
        self.require_account_context = true;
        self
    }

    /// Answers `stub`'s method and path with its status, headers and body,
    /// once the request verified, before the built-in routes.
    pub fn stub(mut self, stub: Stub) -> Self {
        self.stubs.push(stub);
        self
    }

    /// Adds the stubs of a JSON file, or of every `*.json` file of a
    /// directory ([`Stub::from_path`]).
    ///
    /// # Errors
    /// A stub file is unusable; the error names the file and the field.
    pub fn stubs_from(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, FileError> {
        self.stubs.extend(Stub::from_path(path)?);
        Ok(self)
    }

    /// Turns the admin API under `/__mock/` off (it is on by default: the
    /// journal, keys and clock for test suites in any language).
    pub fn without_admin(mut self) -> Self {
        self.admin = false;
        self
    }

    /// Serves every operation of the OpenAPI 3.x or Swagger 2.0 documents
    /// at `path` (a file, or a directory of `*.json`/`*.yaml`/`*.yml`),
    /// behind ARMOR-PSK, at the path a client calls (the first server
    /// URL's path, or `basePath`, then the operation's path). Built-in
    /// routes and stubs come first. Flaws in the documents are warnings
    /// ([`Operations::warnings`]).
    ///
    /// # Errors
    /// A file that is not JSON or YAML, or neither OpenAPI nor Swagger.
    pub fn openapi(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, FileError> {
        self.operations.load(path)?;
        Ok(self)
    }

    /// Hands every request that verified to `upstream` instead of the
    /// built-in routes, stubs and documents: what `armor-psk mock
    /// --record-from` uses to forward requests (re-signed) to a real API
    /// and record the answers. The journal, the admin API and the client
    /// diagnosis work as usual.
    pub fn upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// The operations loaded so far, and their warnings.
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// Requires `Authorization: Bearer TOKEN` on every admin request (401
    /// without it). The admin API answers only loopback hosts either way.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(Arc::from(token.into()));
        self
    }

    /// How many bytes of each request's body the journal keeps (default
    /// 64 KiB); the journal's bodies are also held to 16 MiB in all, the
    /// oldest dropped first.
    pub fn journal_body_limit(mut self, bytes: usize) -> Self {
        self.journal_body_limit = bytes;
        self
    }

    /// How many journal entries are kept, newest first (default 10,000).
    pub fn journal_limit(mut self, limit: usize) -> Self {
        self.journal_limit = limit;
        self
    }

    /// How long a client may take to send a request's head (default
    /// 10 s): past it the connection is closed.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a client may take to send a request's body (default
    /// 10 s): past it the request is answered 408 `body_timeout`. The
    /// bodies of requests not verified yet also hold 64 MiB at most, all
    /// connections together: past that a request with a body is answered
    /// 503 `mock_busy` (`Retry-After: 1`).
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// How long an answer may wait for the client to read it (default
    /// 10 s): past it the connection is closed (a client that sends
    /// requests and never reads would hold it for ever).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Calls `hook` with each journal entry as it is written (the CLI logs
    /// them with it).
    pub fn on_request(mut self, hook: impl Fn(&JournalEntry) + Send + Sync + 'static) -> Self {
        self.on_request = Some(Arc::new(hook));
        self
    }
}
