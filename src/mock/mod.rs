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
#![doc = include_str!("../../docs/mock.md")]

mod admin;
mod api;
mod builder;
mod clock;
mod control;
mod error;
mod fixtures;
mod journal;
mod key;
mod nonces;
mod openapi;
mod recorder;
mod serve;
mod server;
mod start;
mod stubs;

pub use api::{ACCOUNT_CONTEXT, AccountContext, ApiError};
pub use builder::{MockArmorServerBuilder, Upstream};
pub use error::{FileError, MockError};
pub use fixtures::{Account, Feature, FixtureKey, Fixtures, MeResponse, User, UserLinks};
pub use journal::{JournalEntry, Outcome};
pub use key::ApiKey;
pub use openapi::Operations;
pub use server::MockArmorServer;
pub use stubs::Stub;
