//! Who signed an accepted request.

use super::header::Credentials;
use super::ids::Ids;
#[cfg(doc)]
use super::key::Key;

/// Who signed an accepted request; the layer puts it in the request's
/// extensions (with the `axum` feature, handlers take it as an extractor).
///
/// Cloning it is cheap: the key id and the nonce are shared, not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    ids: Ids,
    timestamp: u64,
    secret_version: u32,
}

impl Identity {
    /// The API key id that signed the request.
    pub fn key_id(&self) -> &str {
        self.ids.key_id()
    }

    /// The request's nonce.
    pub fn nonce(&self) -> &str {
        self.ids.nonce()
    }

    /// The request's timestamp (Unix seconds).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The version of the key's secret that matched (see [`Key`]): during a
    /// rotation, tells which clients still sign with the old one.
    pub fn secret_version(&self) -> u32 {
        self.secret_version
    }
}

impl Identity {
    /// Only `verify` makes one: an `Identity` means "verified". It shares
    /// the credentials' key id and nonce.
    pub(super) fn verified(credentials: &Credentials, secret_version: u32) -> Self {
        Self {
            ids: credentials.ids().clone(),
            timestamp: credentials.timestamp(),
            secret_version,
        }
    }
}
