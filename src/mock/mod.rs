//! A mock of Armor's API behind ARMOR-PSK, for the test suites of clients
//! (cargo feature `mock`).
//!
//! [`MockArmorServer`] listens on an ephemeral loopback port and answers like
//! Armor's API: `GET /me`, `GET /accounts`, `GET /accounts/{id}`, the
//! `X-Account-Context` header, 403 on the endpoints PSK keys may not call,
//! and Armor's error envelope `{"ErrorCode", "Message", "Detail",
//! "ReferenceId"}`. Requests are verified by this crate's layer, so a
//! client's signing bugs show up exactly as they would against Armor, and
//! every request is written to a journal the test can read.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use armor_psk::mock::{MockArmorServer, Outcome};
//!
//! let server = MockArmorServer::start().await?;
//! let signer = server.key().signer();
//! // A client would now send `GET {server.url()}/me` with
//! // `Authorization: {signer.sign("GET", "/me", b"")}` and
//! // `X-Account-Context: 1024`.
//! # let _ = signer;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert!(server.journal().is_empty());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # `X-Account-Context`
//! The header names the account a request acts on: digits naming one of the
//! key's user's accounts. Not digits is 400 `InvalidAccountContext`, and
//! another user's account is 403 `AccountContextForbidden`. Without the
//! header a request acts on the user's primary (first) account, as clients
//! written from Armor's own samples expect (they send no header);
//! [`MockArmorServerBuilder::require_account_context`] makes it 400
//! `MissingAccountContext` instead, for client suites that want to prove
//! they send it, except on `/me`, which answers without it always (it is how
//! a client finds its accounts). The forbidden endpoints and unknown paths
//! (404 `NotFound`) answer the same with or without it.

mod admin;
mod api;
mod fixtures;
mod journal;
mod openapi;
mod stubs;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use api::{ACCOUNT_CONTEXT, AccountContext, ApiError};
pub use fixtures::{
    Account, Feature, FixtureKey, Fixtures, FixturesError, MeResponse, User, UserLinks,
};
pub use journal::{JournalEntry, Outcome};
pub use openapi::{OpenApiError, Operations};
pub use stubs::{Stub, StubError};

use crate::keys::MemoryKeyStore;
use crate::middleware::layer::ArmorPskLayer;
use crate::protocol::clock::{Clock, SystemClock};
use crate::protocol::identity::Identity;
use crate::protocol::options::DEFAULT_WINDOW;
use crate::protocol::rejection::Rejection;
use crate::protocol::secret::generate_secret;
use crate::protocol::signer::Signer;
use crate::replay::MemoryReplayStore;
use api::{Directory, ErrorCode};
use journal::Journal;

/// An API key as the Armor Management Portal shows it once: a Key ID (a
/// UUID) and a Secret Key. `Debug` does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    key_id: String,
    secret: String,
}

impl ApiKey {
    /// A new key: a UUID v4 Key ID and a Secret Key of 32 random bytes
    /// (43 characters of URL-safe base64).
    ///
    /// # Errors
    /// The system's random generator failed.
    pub fn generate() -> std::io::Result<Self> {
        Ok(Self {
            key_id: crate::new_uuid_v4(),
            secret: generate_secret()?,
        })
    }

    /// A key with the id and secret given.
    pub fn new(key_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
            secret: secret.into(),
        }
    }

    /// The Key ID.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The Secret Key. Handle with care: print it only where a person asked
    /// for it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// A signer for this key.
    ///
    /// # Panics
    /// Only for a key id that cannot travel in the header (empty, a colon,
    /// not visible ASCII); the mock refuses such keys when they are added.
    pub fn signer(&self) -> Signer {
        #[allow(clippy::expect_used)]
        Signer::new(self.key_id.clone(), self.secret.as_str())
            .expect("the mock only holds key ids that can be signed with")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("key_id", &self.key_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Something the mock cannot do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// Serving failed.
    #[error("mock server I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The address cannot be listened on (in use, not this machine's).
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The fixtures are unusable.
    #[error(transparent)]
    Fixtures(#[from] FixturesError),
    /// A key id cannot travel in the header.
    #[error("invalid key id {0:?}: it must be non-empty visible ASCII without a colon")]
    InvalidKeyId(String),
    /// No such user in the fixtures.
    #[error("no user with id {0} in the fixtures")]
    UnknownUser(i64),
    /// A setting the layer refuses (a window over 24 hours).
    #[error(transparent)]
    Config(#[from] crate::protocol::options::ConfigError),
    /// A stub file is unusable (named, with the field at fault).
    #[error(transparent)]
    Stubs(#[from] StubError),
}

type RequestHook = Arc<dyn Fn(&JournalEntry) + Send + Sync>;

/// What answers every verified request when the mock records: the
/// request (its body read whole) in, the response out.
pub type Upstream = Arc<
    dyn Fn(http::Request<axum::body::Bytes>) -> crate::BoxFuture<'static, Response> + Send + Sync,
>;

/// The system clock moved by an offset the test sets.
#[derive(Debug, Clone, Default)]
struct ShiftedClock(Arc<AtomicI64>);

impl Clock for ShiftedClock {
    fn now(&self) -> u64 {
        SystemClock
            .now()
            .saturating_add_signed(self.0.load(Ordering::Relaxed))
    }
}

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
    /// [`Identity`] and [`AccountContext`]. A route the API already has
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
    pub fn stubs_from(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, StubError> {
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
    pub fn openapi(mut self, path: impl AsRef<std::path::Path>) -> Result<Self, OpenApiError> {
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
        self.fixtures.check()?;
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
            .with_replay_store(MemoryReplayStore::new().with_memory_since(None))
            .with_window(self.window)?;
        let hook = self.on_request;
        let control = Control {
            store: store.clone(),
            directory: directory.clone(),
            clock: clock.clone(),
            journal: journal.clone(),
            default_user: first_user,
            nonces: Arc::default(),
            journal_body_limit: self.journal_body_limit,
        };
        let recorder = control.clone();
        let stubs = stubs::Stubs {
            stubs: self.stubs.into(),
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
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(MockArmorServer {
            addr,
            key: keys[0].0.clone(),
            generated,
            store,
            directory,
            clock,
            journal,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

fn add_key(
    store: &MemoryKeyStore,
    directory: &Directory,
    key: &ApiKey,
    user_id: i64,
) -> Result<(), MockError> {
    Signer::new(key.key_id(), key.secret())
        .map_err(|_| MockError::InvalidKeyId(key.key_id.clone()))?;
    if directory.fixtures().user(user_id).is_none() {
        return Err(MockError::UnknownUser(user_id));
    }
    directory.set_owner(key.key_id(), user_id);
    store.insert(key.key_id(), key.secret());
    Ok(())
}

/// Copies the verified identity into the response, for the journal.
async fn identity_to_response(request: Request, next: Next) -> Response {
    let identity = request.extensions().get::<Identity>().cloned();
    let mut response = next.run(request).await;
    if let Some(identity) = identity {
        response.extensions_mut().insert(identity);
    }
    response
}

/// What the admin API and the journal share with the server.
/// (`journal_body_limit`: how many bytes of each body the journal keeps.)
#[derive(Clone)]
pub(crate) struct Control {
    store: MemoryKeyStore,
    directory: Directory,
    clock: ShiftedClock,
    journal: Journal,
    default_user: i64,
    /// (key id, nonce) of accepted requests, to notice a reused nonce.
    nonces: Arc<parking_lot::Mutex<SeenNonces>>,
    /// How many bytes of each body the journal keeps.
    journal_body_limit: usize,
}

/// The most recent accepted (key id, nonce) pairs, bounded.
#[derive(Default)]
struct SeenNonces {
    set: std::collections::HashSet<(String, String)>,
    order: std::collections::VecDeque<(String, String)>,
}

impl SeenNonces {
    const LIMIT: usize = 100_000;

    fn contains(&self, key_id: &str, nonce: &str) -> bool {
        self.set.contains(&(key_id.to_owned(), nonce.to_owned()))
    }

    fn insert(&mut self, key_id: &str, nonce: &str) {
        let pair = (key_id.to_owned(), nonce.to_owned());
        if self.set.insert(pair.clone()) {
            self.order.push_back(pair);
            if self.order.len() > Self::LIMIT
                && let Some(oldest) = self.order.pop_front()
            {
                self.set.remove(&oldest);
            }
        }
    }
}

/// How far the client's clock may be from the mock's before it is named.
const CLOCK_SKEW_ISSUE: u64 = 60;

/// The client bugs a request shows, served or not.
fn client_issues(
    control: &Control,
    parts: &http::request::Parts,
    credentials: &crate::protocol::header::Credentials,
    outcome: &Outcome,
    body: &[u8],
) -> Vec<&'static str> {
    let mut issues = Vec::new();
    let (key_id, nonce) = (credentials.key_id(), credentials.nonce());
    let mut seen = control.nonces.lock();
    if seen.contains(key_id, nonce) {
        issues.push("nonce_reused");
    }
    if *outcome == Outcome::Accepted {
        seen.insert(key_id, nonce);
    }
    drop(seen);
    if credentials.timestamp().abs_diff(control.clock.now()) > CLOCK_SKEW_ISSUE {
        issues.push("clock_skew");
    }
    // What made a signature fail: the common client mistakes, each
    // re-signed with the request's body under the key's secrets.
    let refused_signature = *outcome == Outcome::Rejected("invalid_signature");
    if let (true, Some(key)) = (refused_signature, control.store.lookup(key_id)) {
        let refused = crate::protocol::diagnose::RefusedRequest {
            key_id,
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            body,
            nonce,
            timestamp: credentials.timestamp(),
            signature: credentials.signature(),
        };
        // The mock's own diagnosis, not the check: any secret will do.
        let secrets = key.secrets().iter().map(|secret| secret.secret());
        issues.extend(
            refused
                .mistakes(secrets)
                .into_iter()
                .map(|mistake| mistake.code()),
        );
    }
    issues
}

/// Writes one journal entry per request.
async fn record(
    control: Control,
    hook: Option<RequestHook>,
    request: Request,
    next: Next,
) -> Response {
    let time = SystemTime::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let credentials = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|value| crate::protocol::header::Credentials::parse(value.as_bytes()).ok());
    let (parts, body) = request.into_parts();
    let request_parts = parts.clone();
    // The body is kept for the diagnosis and the journal: read whole, up
    // to the layer's limit (past it the layer answers 413 anyway).
    let body =
        match axum::body::to_bytes(body, crate::middleware::body::DEFAULT_BODY_LIMIT + 1).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let rejection = Rejection::new(
                    crate::protocol::rejection::RejectionKind::BodyTooLarge,
                    "the body is larger than the limit",
                );
                return rejection.into_response();
            }
        };
    let request = Request::from_parts(parts, axum::body::Body::from(body.clone()));
    let account_context = request
        .headers()
        .get(ACCOUNT_CONTEXT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let response = next.run(request).await;
    let extensions = response.extensions();
    let rejection = extensions.get::<Rejection>();
    let journal = &control.journal;
    let (outcome, key_id) = match (extensions.get::<Identity>(), rejection) {
        (Some(identity), _) => (Outcome::Accepted, Some(identity.key_id().to_owned())),
        (None, Some(rejection)) => (
            Outcome::Rejected(rejection.code()),
            rejection.key_id().map(str::to_owned),
        ),
        (None, None) => (Outcome::Rejected("internal_error"), None),
    };
    let client_issues = credentials
        .as_ref()
        .map(|credentials| client_issues(&control, &request_parts, credentials, &outcome, &body))
        .unwrap_or_default();
    let kept = &body[..body.len().min(control.journal_body_limit)];
    let entry = JournalEntry {
        time,
        method,
        path,
        query,
        nonce: credentials
            .as_ref()
            .map(|credentials| credentials.nonce().to_owned()),
        key_id,
        account_context,
        status: response.status().as_u16(),
        outcome,
        error_code: extensions.get::<ErrorCode>().map(|code| code.0.to_owned()),
        client_issues,
        request_errors: extensions
            .get::<openapi::RequestProblems>()
            .map(|problems| problems.0.clone())
            .unwrap_or_default(),
        body: (!body.is_empty()).then(|| axum::body::Bytes::copy_from_slice(kept)),
        body_len: body.len(),
    };
    if let Some(hook) = &hook {
        hook(&entry);
    }
    journal.push(entry);
    response
}

/// A running mock of Armor's API; see the [module docs](self).
///
/// Dropping it stops the server; [`shutdown`](Self::shutdown) stops it and
/// waits until it has.
pub struct MockArmorServer {
    addr: SocketAddr,
    key: ApiKey,
    generated: bool,
    store: MemoryKeyStore,
    directory: Directory,
    clock: ShiftedClock,
    journal: Journal,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
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
