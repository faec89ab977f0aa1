//! The client side: producing the `Authorization` header value.

use std::fmt;

use std::sync::atomic::{AtomicU64, Ordering};

use super::canonical::{BodyDigest, Canonical};
use super::clock::{Clock, SystemClock};
use super::header::{SCHEME, check_key_id, check_nonce};
use super::secret::Secret;

/// Signs requests for one API key.
///
/// ```
/// use armor_psk::Signer;
///
/// // The first test vector of the protocol.
/// let signer = Signer::new("20a37099-4a0b-432f-bf46-5fa690a0405c", "secret").unwrap();
/// let header = signer.sign_at("GET", "/me", b"", "8jbj872s2h", 1528140529).unwrap();
/// assert_eq!(
///     header,
///     "ARMOR-PSK 20a37099-4a0b-432f-bf46-5fa690a0405c:WacyhtoW2KhDbXzmKlaKWrMkFEs4UTOSyj/K01j5nZNHpTKPwu+Fh9BbN43nbQa55zysaXs2k0H7Zmq7F5sy5A==:8jbj872s2h:1528140529"
/// );
/// ```
#[derive(Clone)]
pub struct Signer {
    key_id: String,
    secret: Secret,
}

impl Signer {
    /// A signer for `key_id` with its secret (used as raw bytes).
    ///
    /// # Errors
    /// [`SignError::InvalidKeyId`] unless the key id is 1 to
    /// [`MAX_KEY_ID_LEN`](crate::protocol::MAX_KEY_ID_LEN) bytes of visible
    /// ASCII without a colon: what a server's parser accepts.
    pub fn new(key_id: impl Into<String>, secret: impl Into<Secret>) -> Result<Self, SignError> {
        let key_id = key_id.into();
        if check_key_id(&key_id).is_err() {
            return Err(SignError::InvalidKeyId);
        }
        Ok(Self {
            key_id,
            secret: secret.into(),
        })
    }

    /// A signer for the key in `ARMOR_PSK_KEY_ID` and `ARMOR_PSK_SECRET`
    /// (the variables the CLI reads too).
    ///
    /// # Errors
    /// [`SignError::MissingKey`] when a variable is not set;
    /// [`SignError::InvalidKeyId`] as for [`Signer::new`].
    pub fn from_env() -> Result<Self, SignError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, SignError> {
        let key_id = var("ARMOR_PSK_KEY_ID").ok_or(SignError::MissingKey)?;
        let secret = var("ARMOR_PSK_SECRET").ok_or(SignError::MissingKey)?;
        Self::new(key_id, secret)
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The header value for a request, with a fresh UUID v4 nonce and the
    /// system clock's time.
    ///
    /// `path` is the request target's path, percent-encoded exactly as it
    /// will be sent; anything from a `?` on is left out, as the server does.
    /// `method` is used as given: send the same (`GET`, `POST`, ...).
    pub fn sign(&self, method: &str, path: &str, body: &[u8]) -> String {
        self.sign_with_clock(method, path, body, &SystemClock)
    }

    /// As [`sign`](Self::sign), with the time taken from `clock`.
    pub fn sign_with_clock(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        clock: &dyn Clock,
    ) -> String {
        let nonce = new_uuid_v4();
        self.header(method, path, &BodyDigest::of(body), &nonce, clock.now())
    }

    /// The header value for a request with the nonce and timestamp given:
    /// deterministic, for tests and test vectors.
    ///
    /// # Errors
    /// [`SignError::InvalidNonce`] unless the nonce is 1 to 128 visible
    /// ASCII characters without a colon.
    pub fn sign_at(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        nonce: &str,
        timestamp: u64,
    ) -> Result<String, SignError> {
        check_nonce(nonce).map_err(|_| SignError::InvalidNonce)?;
        Ok(self.header(method, path, &BodyDigest::of(body), nonce, timestamp))
    }

    fn header(
        &self,
        method: &str,
        path: &str,
        body: &BodyDigest,
        nonce: &str,
        timestamp: u64,
    ) -> String {
        let path = path.split_once('?').map_or(path, |(path, _query)| path);
        let canonical = Canonical {
            key_id: &self.key_id,
            method,
            path,
            nonce,
            timestamp,
        };
        let signature = canonical.sign(&self.secret, &body.slot());
        format!(
            "{SCHEME} {}:{}:{nonce}:{timestamp}",
            self.key_id,
            signature.to_base64()
        )
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A request that cannot be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key id is empty, longer than 256 bytes, has a colon or is not
    /// visible ASCII.
    #[error("the key id must be 1 to 256 bytes of visible ASCII without a colon")]
    InvalidKeyId,
    /// The nonce is empty, longer than 128 characters, has a colon or is
    /// not visible ASCII.
    #[error("the nonce must be 1 to 128 visible ASCII characters without a colon")]
    InvalidNonce,
    /// `ARMOR_PSK_KEY_ID` or `ARMOR_PSK_SECRET` is not set.
    #[error("set ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET")]
    MissingKey,
}

/// A random (version 4) UUID in its 36-character text form: the nonce
/// Armor's own clients send.
///
/// ```
/// let nonce = armor_psk::protocol::new_uuid_v4();
/// assert!(armor_psk::protocol::NonceFormat::Uuid.matches(&nonce));
/// assert_eq!(&nonce[14..15], "4");
/// assert_ne!(nonce, armor_psk::protocol::new_uuid_v4());
/// ```
pub fn new_uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No random generator: still unique within this process (a nonce
        // only has to be unique per key), from the clock and a counter.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        bytes[..8].copy_from_slice(&nanos.to_be_bytes());
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    }
    // Sets the version (4) and the RFC 9562 variant bits.
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_from_the_two_variables() {
        let signer = Signer::from_vars(|name| match name {
            "ARMOR_PSK_KEY_ID" => Some("key-1".into()),
            "ARMOR_PSK_SECRET" => Some("secret-1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(signer.key_id(), "key-1");
        let missing = Signer::from_vars(|name| (name == "ARMOR_PSK_KEY_ID").then(|| "k".into()));
        assert_eq!(missing.unwrap_err(), SignError::MissingKey);
    }

    /// The signer takes exactly the key ids the parser takes: a key id
    /// over 256 bytes was signed, and every server refused it.
    #[test]
    fn the_signer_takes_the_key_ids_the_parser_takes() {
        use crate::protocol::header::{Credentials, MAX_KEY_ID_LEN};
        for key_id in [
            "k".repeat(MAX_KEY_ID_LEN),
            "k".repeat(MAX_KEY_ID_LEN + 1),
            String::new(),
            "a:b".into(),
            "caf\u{e9}".into(),
            "tab\tbed".into(),
        ] {
            let signed = Signer::new(key_id.as_str(), "secret")
                .map(|signer| signer.sign_at("GET", "/", b"", "n", 1).unwrap());
            let parsed = signed
                .as_ref()
                .map(|header| Credentials::parse(header.as_bytes()));
            match (signed.is_ok(), parsed) {
                (true, Ok(Ok(_))) | (false, Err(_)) => {}
                (_, parsed) => panic!("{key_id:?}: signed {}, parsed {parsed:?}", signed.is_ok()),
            }
        }
        assert!(Signer::new("k".repeat(MAX_KEY_ID_LEN + 1), "secret").is_err());
    }
}
