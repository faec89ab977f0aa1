//! [`MockArmorServerBuilder`]: every setting of a mock, and the start that
//! binds its listener and assembles its router (the layer, the hook, the
//! journal, the documents, the stubs).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use tokio::sync::oneshot;

use super::api::Directory;
use super::control::{Control, RequestHook, ShiftedClock, identity_to_response, record};
use super::error::FileError;
use super::error::MockError;
use super::fixtures::Fixtures;
use super::journal::{Journal, JournalEntry};
use super::key::{ApiKey, add_key};
use super::openapi::Operations;
use super::server::MockArmorServer;
use super::stubs::Stub;
use super::{admin, api, serve, stubs};
use crate::keys::MemoryKeyStore;
use crate::middleware::layer::ArmorPskLayer;
use crate::protocol::options::DEFAULT_WINDOW;
use crate::replay::MemoryReplayStore;

/// What answers every verified request when the mock records: the
/// request (its body read whole) in, the response out.
pub type Upstream = Arc<
    dyn Fn(http::Request<axum::body::Bytes>) -> crate::BoxFuture<'static, Response> + Send + Sync,
>;

/// Settings of a [`MockArmorServer`]; [`start`](Self::start) runs it.
#[must_use]
pub struct MockArmorServerBuilder {
    fixtures: Fixtures,
    keys: Vec<(ApiKey, Option<i64>)>,
    routes: Router,
    listen: SocketAddr,
    window: Duration,
    require_account_context: bool,
    stubs: Vec<Stub>,
    admin: bool,
    admin_token: Option<Arc<str>>,
    operations: Operations,
    upstream: Option<Upstream>,
    journal_limit: usize,
    journal_body_limit: usize,
    on_request: Option<RequestHook>,
    header_timeout: Duration,
    body_timeout: Duration,
    write_timeout: Duration,
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
    pub fn with_fixtures(mut self, fixtures: Fixtures) -> Self {
        self.fixtures = fixtures;
        self
    }

    /// Installs a key for the first user. Without any key (here or in the
    /// fixtures) one is generated: see [`MockArmorServer::key`].
    pub fn with_key(mut self, key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.keys.push((ApiKey::new(key_id, secret), None));
        self
    }

    /// Installs a key for the user with this `userId`.
    pub fn with_key_for(
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
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes = routes;
        self
    }

    /// Listens on this address (default `127.0.0.1:0`, a free port).
    pub fn with_listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The timestamp window (default 300 s).
    pub fn with_window(mut self, window: Duration) -> Self {
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
    pub fn with_upstream(mut self, upstream: Upstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// The operations loaded so far, and their warnings.
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// Requires `Authorization: Bearer TOKEN` on every admin request (401
    /// without it). The admin API answers only loopback hosts either way.
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(Arc::from(token.into()));
        self
    }

    /// How many bytes of each request's body the journal keeps (default
    /// 64 KiB); the journal's bodies are also held to 16 MiB in all, the
    /// oldest dropped first.
    pub fn with_journal_body_limit(mut self, bytes: usize) -> Self {
        self.journal_body_limit = bytes;
        self
    }

    /// How many journal entries are kept, newest first (default 10,000).
    pub fn with_journal_limit(mut self, limit: usize) -> Self {
        self.journal_limit = limit;
        self
    }

    /// How long a client may take to send a request's head (default
    /// 10 s): past it the connection is closed.
    pub fn with_header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a client may take to send a request's body (default
    /// 10 s): past it the request is answered 408 `body_timeout`. The
    /// bodies of requests not verified yet also hold 64 MiB at most, all
    /// connections together: past that a request with a body is answered
    /// 503 `mock_busy` (`Retry-After: 1`).
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// How long an answer may wait for the client to read it (default
    /// 10 s): past it the connection is closed (a client that sends
    /// requests and never reads would hold it for ever).
    pub fn with_write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Calls `hook` with each journal entry as it is written (the CLI logs
    /// them with it).
    pub fn on_request(mut self, hook: impl Fn(&JournalEntry) + Send + Sync + 'static) -> Self {
        self.on_request = Some(Arc::new(hook));
        self
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// Unusable fixtures or keys, or the address cannot be bound.
    pub async fn start(self) -> Result<MockArmorServer, MockError> {
        self.fixtures
            .check()
            .map_err(|problem| FileError::new(std::path::Path::new("(fixtures)"), problem))?;
        let first_user = self.fixtures.users[0].user.links.user_id;
        let mut keys: Vec<(ApiKey, i64)> = self
            .fixtures
            .keys
            .iter()
            .map(|key| (ApiKey::new(&key.key_id, &key.secret_key), key.user_id))
            .collect();
        for (key, user) in self.keys {
            keys.push((key, user.unwrap_or(first_user)));
        }
        let generated = keys.is_empty();
        if generated {
            keys.push((ApiKey::generate()?, first_user));
        }

        let directory = Directory::new(self.fixtures, self.require_account_context);
        let store = MemoryKeyStore::new();
        for (key, user_id) in &keys {
            add_key(&store, &directory, key, *user_id)?;
        }
        let clock = ShiftedClock::default();
        let journal = Journal::new(self.journal_limit);
        // A mock is restarted between test runs, and its clock shifted: no
        // restart fence (a client's clock behind the mock's is still told
        // apart by the window).
        let auth = ArmorPskLayer::new(store.clone())
            .with_clock(clock.clone())
            .with_replay_store(MemoryReplayStore::builder().memory_since(None).build())
            .with_window(self.window)?;
        let hook = self.on_request;
        let stub_list = stubs::StubList::new(self.stubs);
        let control = Control {
            store: store.clone(),
            directory: directory.clone(),
            clock: clock.clone(),
            journal: journal.clone(),
            default_user: first_user,
            nonces: Arc::default(),
            journal_body_limit: self.journal_body_limit,
            buffered: serve::Buffered::default(),
            stubs: stub_list.clone(),
            journal_answers: Arc::new(tokio::sync::Semaphore::new(1)),
            body_timeout: self.body_timeout,
        };
        let recorder = control.clone();
        let stubs = stubs::Stubs {
            stubs: stub_list.clone(),
            directory: directory.clone(),
        };
        let operations = Arc::new(self.operations);
        let served = (!operations.is_empty()).then(|| Arc::clone(&operations));
        let api = match self.upstream {
            Some(upstream) => Router::new().fallback(move |request: Request| {
                let upstream = Arc::clone(&upstream);
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX)
                        .await
                        .unwrap_or_default();
                    upstream(http::Request::from_parts(parts, body)).await
                }
            }),
            None => api::router(directory.clone(), self.routes, served)
                .layer(axum::middleware::from_fn_with_state(stubs, stubs::answer)),
        };
        let mut app = api
            .layer(axum::middleware::from_fn(identity_to_response))
            .layer(auth)
            .layer(axum::middleware::from_fn(move |request, next| {
                record(recorder.clone(), hook.clone(), request, next)
            }));
        if self.admin {
            if !self.listen.ip().is_loopback() {
                tracing::warn!(
                    listen = %self.listen,
                    "the mock's admin API (keys, clock, journal) is on and the mock listens beyond \
                     loopback; it answers loopback hosts only, but consider --admin-token or \
                     --no-admin"
                );
            }
            app = admin::router(control, self.admin_token, Arc::clone(&operations)).merge(app);
        }

        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| MockError::Listen {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve::serve(
            listener,
            app,
            serve::Timeouts {
                header: self.header_timeout,
                write: self.write_timeout,
            },
            stopped,
        ));
        Ok(MockArmorServer {
            addr,
            key: keys[0].0.clone(),
            generated,
            store,
            directory,
            clock,
            journal,
            stubs: stub_list,
            stop: Some(stop),
            task: Some(task),
        })
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
}
