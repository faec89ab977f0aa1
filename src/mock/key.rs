//! The mock's API keys: [`ApiKey`] as the portal hands one out (its
//! secret hidden from `Debug`), and adding one to a running mock.

use std::fmt;

use super::api::Directory;
use super::error::MockError;
use crate::keys::MemoryKeyStore;
use crate::protocol::secret::generate_secret;
use crate::protocol::signer::Signer;

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
            key_id: crate::protocol::new_uuid_v4(),
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

pub(crate) fn add_key(
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
