//! The pre-shared secret, held only as a keyed HMAC-SHA512 state.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, KeyInit};
use sha2::Sha512;
use zeroize::Zeroizing;

pub(crate) type HmacSha512 = Hmac<Sha512>;

/// A pre-shared secret key (Armor's "Secret Key").
///
/// The raw bytes are never stored: the secret is kept as an HMAC-SHA512 state
/// keyed once at construction (so each request skips the key set-up), which is
/// wiped from memory when the last clone is dropped. `Debug` prints
/// `[redacted]`, and there is no way to read the secret back or compare two
/// secrets with `==`.
///
/// ```
/// use armor_psk::keys::Secret;
///
/// let secret = Secret::new("my secret key");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted])");
/// ```
#[derive(Clone)]
pub struct Secret {
    mac: Arc<HmacSha512>,
}

impl Secret {
    /// Keys an HMAC-SHA512 state with `secret` as raw bytes (a secret given as
    /// text is used as its UTF-8 bytes, never base64-decoded).
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        // HMAC accepts keys of any length: longer ones are hashed first.
        let mac = HmacSha512::new_from_slice(secret.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self { mac: Arc::new(mac) }
    }

    /// A fresh copy of the keyed HMAC state, ready for one message.
    pub(crate) fn mac(&self) -> HmacSha512 {
        (*self.mac).clone()
    }
}

impl From<String> for Secret {
    /// Takes the string and wipes it once the HMAC state is keyed.
    fn from(secret: String) -> Self {
        let secret = Zeroizing::new(secret);
        Self::new(secret.as_bytes())
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self::new(secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A new random secret key: 32 bytes from the operating system's generator,
/// as 43 printable characters (unpadded URL-safe base64). Like every secret,
/// it is used as its UTF-8 text, never decoded.
///
/// ```
/// let secret = armor_psk::keys::generate_secret().unwrap();
/// assert_eq!(secret.len(), 43);
/// assert_ne!(secret, armor_psk::keys::generate_secret().unwrap());
/// ```
///
/// # Errors
/// When the operating system's random generator fails.
pub fn generate_secret() -> std::io::Result<String> {
    use base64::Engine as _;
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|error| std::io::Error::other(error.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}
