//! Starting a mock: [`MockArmorServerBuilder::start`] checks the fixtures
//! and keys, assembles the router (the layer, the hook, the journal, the
//! documents, the stubs, the admin API) and binds its listener.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use tokio::sync::oneshot;

use super::api::Directory;
use super::builder::MockArmorServerBuilder;
use super::clock::ShiftedClock;
use super::control::Control;
use super::error::{FileError, MockError};
use super::journal::Journal;
use super::key::{ApiKey, add_key};
use super::recorder::record;
use super::server::MockArmorServer;
use super::{admin, api, serve, stubs};
use crate::keys::MemoryKeyStore;
use crate::middleware::layer::ArmorPskLayer;
use crate::replay::MemoryReplayStore;

impl MockArmorServerBuilder {
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
        // The layer puts the identity on the response too: the recorder
        // reads it there.
        let mut app = api
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
