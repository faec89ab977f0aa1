//! A key as a key store holds it: one or more secrets, each with the time
//! range it signs in, so that a secret can be rotated without a window in
//! which requests fail.

use std::sync::Arc;

use super::secret::Secret;

/// One secret of a key: its version, and the Unix seconds from which
/// (`not_before`, inclusive) and until which (`not_after`, exclusive) it
/// verifies requests. `Debug` never shows the secret.
///
/// ```
/// use armor_psk::keys::KeySecret;
///
/// let old = KeySecret::new(1, "old-secret").with_not_after(1_700_003_600);
/// assert!(old.is_active(1_700_000_000));
/// assert!(!old.is_active(1_700_003_600));
/// ```
#[derive(Clone, Debug)]
pub struct KeySecret {
    version: u32,
    secret: Secret,
    not_before: Option<u64>,
    not_after: Option<u64>,
}

impl KeySecret {
    /// Secret `version`, valid from now on until changed.
    pub fn new(version: u32, secret: impl Into<Secret>) -> Self {
        Self {
            version,
            secret: secret.into(),
            not_before: None,
            not_after: None,
        }
    }

    /// Valid from `time` (Unix seconds) on.
    #[must_use]
    pub fn with_not_before(mut self, time: u64) -> Self {
        self.not_before = Some(time);
        self
    }

    /// Valid until `time` (Unix seconds), not at it.
    #[must_use]
    pub fn with_not_after(mut self, time: u64) -> Self {
        self.not_after = Some(time);
        self
    }

    /// The version, as [`Identity::secret_version`](crate::Identity::secret_version) reports it.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The secret.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// From when it is valid, if limited.
    pub fn not_before(&self) -> Option<u64> {
        self.not_before
    }

    /// Until when it is valid, if limited.
    pub fn not_after(&self) -> Option<u64> {
        self.not_after
    }

    /// Whether it verifies requests at `now` (Unix seconds, the server's
    /// clock).
    pub fn is_active(&self, now: u64) -> bool {
        self.not_before.is_none_or(|from| from <= now)
            && self.not_after.is_none_or(|until| now < until)
    }
}

/// The secrets of one key id. A request verifies if any secret active at
/// the server's time matches; every active secret is tried, in constant
/// time and without an early exit.
///
/// ```
/// use armor_psk::{keys::{Key, KeySecret}};
///
/// let key = Key::new("secret-1");
/// assert_eq!(key.secrets()[0].version(), 1);
/// let rotated = Key::from_secrets([
///     KeySecret::new(1, "secret-1").with_not_after(1_700_003_600),
///     KeySecret::new(2, "secret-2"),
/// ]);
/// assert_eq!(rotated.active(1_700_000_000).count(), 2);
/// assert_eq!(rotated.active(1_700_003_600).count(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Key {
    secrets: Arc<[KeySecret]>,
}

impl Key {
    /// A key with one secret, version 1, valid at all times.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Self::from_secrets([KeySecret::new(1, secret)])
    }

    /// A key with these secrets.
    pub fn from_secrets(secrets: impl IntoIterator<Item = KeySecret>) -> Self {
        Self {
            secrets: secrets.into_iter().collect(),
        }
    }

    /// All its secrets, active or not.
    pub fn secrets(&self) -> &[KeySecret] {
        &self.secrets
    }

    /// The secrets active at `now`.
    pub fn active(&self, now: u64) -> impl Iterator<Item = &KeySecret> {
        self.secrets
            .iter()
            .filter(move |secret| secret.is_active(now))
    }

    /// The highest version it holds (0 for none).
    pub fn latest_version(&self) -> u32 {
        self.secrets
            .iter()
            .map(KeySecret::version)
            .max()
            .unwrap_or(0)
    }
}

impl From<Secret> for Key {
    fn from(secret: Secret) -> Self {
        Self::new(secret)
    }
}
