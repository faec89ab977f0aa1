//! What is signed: `key_id + METHOD + path + nonce + timestamp + body_slot`,
//! fed to the HMAC piece by piece.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;
use sha2::{Digest as _, Sha256, Sha512};

use crate::protocol::options::VerifyOptions;
use crate::protocol::rejection::{Rejection, RejectionKind};
use crate::protocol::secret::Secret;
use crate::protocol::signature::Signature;

/// `base64(SHA-512(""))`, the body slot that some older clients send for an
/// empty body.
pub const HASHED_EMPTY_BODY_SLOT: &str =
    "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==";

/// The SHA-512 of a request body, or the fact that it was empty.
///
/// An empty body signs as an empty body slot; any other body as
/// `base64(SHA-512(body))`.
#[derive(Clone, PartialEq, Eq)]
pub enum BodyDigest {
    /// The body had no bytes.
    Empty,
    /// SHA-512 of the body's bytes.
    Sha512([u8; 64]),
}

impl BodyDigest {
    /// Hashes a whole body at once.
    pub fn of(body: &[u8]) -> Self {
        let mut hasher = BodyHasher::default();
        hasher.update(body);
        hasher.finish()
    }

    /// The body slot text for this digest (empty for an empty body).
    pub fn slot(&self) -> BodySlot {
        match self {
            Self::Empty => BodySlot::empty(),
            Self::Sha512(digest) => BodySlot::of_digest(digest),
        }
    }
}

impl std::fmt::Debug for BodyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("BodyDigest::Empty"),
            Self::Sha512(_) => write!(f, "BodyDigest::Sha512({})", self.slot().as_str()),
        }
    }
}

/// Hashes a body as its frames arrive, so a large body is read once.
#[derive(Debug, Clone, Default)]
pub struct BodyHasher {
    sha: Sha512,
    len: u64,
}

impl BodyHasher {
    /// Feeds the next chunk of the body.
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        self.sha.update(chunk);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> BodyDigest {
        if self.len == 0 {
            BodyDigest::Empty
        } else {
            BodyDigest::Sha512(self.sha.finalize().into())
        }
    }
}

/// The body slot as text: empty, or 88 characters of base64, on the stack.
#[derive(Clone, Copy)]
pub struct BodySlot {
    text: [u8; 88],
    len: usize,
}

impl BodySlot {
    const fn empty() -> Self {
        Self {
            text: [0; 88],
            len: 0,
        }
    }

    fn of_digest(digest: &[u8; 64]) -> Self {
        let mut text = [0u8; 88];
        let len = STANDARD
            .encode_slice(digest, &mut text)
            .unwrap_or_else(|_| unreachable!("64 bytes encode to exactly 88 characters"));
        Self { text, len }
    }

    /// The hashed-empty form, `base64(SHA-512(""))`.
    pub fn hashed_empty() -> Self {
        let mut text = [0u8; 88];
        text.copy_from_slice(HASHED_EMPTY_BODY_SLOT.as_bytes());
        Self { text, len: 88 }
    }

    /// The slot's text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text[..self.len])
            .expect("only base64 characters are ever written to a slot")
    }
}

impl std::fmt::Debug for BodySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BodySlot").field(&self.as_str()).finish()
    }
}

/// The fields of a request that are signed, in order.
///
/// ```
/// use armor_psk::{protocol::{BodyDigest, Canonical}};
///
/// let canonical = Canonical {
///     key_id: "20a37099-4a0b-432f-bf46-5fa690a0405c",
///     method: "GET",
///     path: "/me",
///     nonce: "8jbj872s2h",
///     timestamp: 1528140529,
/// };
/// let text = canonical.to_text(&BodyDigest::Empty.slot());
/// assert_eq!(text, "20a37099-4a0b-432f-bf46-5fa690a0405cGET/me8jbj872s2h1528140529");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Canonical<'a> {
    /// The API key id.
    pub key_id: &'a str,
    /// The request method, as sent (upper case for standard methods).
    pub method: &'a str,
    /// The path of the request target, percent-encoded as sent, no query.
    pub path: &'a str,
    /// The nonce.
    pub nonce: &'a str,
    /// Unix seconds.
    pub timestamp: u64,
}

impl Canonical<'_> {
    fn feed(&self, slot: &BodySlot, mut sink: impl FnMut(&[u8])) {
        let mut digits = [0u8; 20];
        sink(self.key_id.as_bytes());
        sink(self.method.as_bytes());
        sink(self.path.as_bytes());
        sink(self.nonce.as_bytes());
        sink(decimal(self.timestamp, &mut digits));
        sink(slot.as_str().as_bytes());
    }

    /// HMAC-SHA512 of the canonical string under `secret`.
    pub fn sign(&self, secret: &Secret, slot: &BodySlot) -> Signature {
        let mut mac = secret.mac();
        self.feed(slot, |part| mac.update(part));
        Signature::from_bytes(mac.finalize().into_bytes().into())
    }

    /// HMAC-SHA512 of the canonical string with `slot` as raw bytes in the
    /// body slot's place (what a client that signs the raw body makes).
    pub(crate) fn sign_raw_slot(&self, secret: &Secret, slot: &[u8]) -> Signature {
        let mut mac = secret.mac();
        self.feed(&BodySlot::empty(), |part| mac.update(part));
        mac.update(slot);
        Signature::from_bytes(mac.finalize().into_bytes().into())
    }

    /// The canonical string itself, as signed (for debugging a client).
    pub fn to_text(&self, slot: &BodySlot) -> String {
        let mut text = Vec::new();
        self.feed(slot, |part| text.extend_from_slice(part));
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Lower-case hex of SHA-256 of the canonical string: safe to log, and a
    /// client can print the same to find where its string differs.
    pub fn sha256_hex(&self, slot: &BodySlot) -> String {
        let mut sha = Sha256::new();
        self.feed(slot, |part| sha.update(part));
        sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Writes `n` in decimal into `buf` and returns the digits.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

/// The path a request is signed over, from its request target: the path
/// as received (percent-encoded as sent), without the query, with the
/// configured prefix in front.
///
/// `target` is the request target's path (`Uri::path()`; the part from a
/// `?` on is dropped if present). Inside a nested axum router, pass the
/// original URI's path: the layer does.
///
/// ```
/// use armor_psk::{RejectionKind, protocol::{signed_path, VerifyOptions}};
///
/// let options = VerifyOptions::default();
/// assert_eq!(signed_path("/me?page=2", &options).unwrap(), "/me");
/// let prefixed = VerifyOptions::default().with_path_prefix("/api").unwrap();
/// assert_eq!(signed_path("/me", &prefixed).unwrap(), "/api/me");
/// // `GET host:80 HTTP/1.1` has no path: nothing to check a signature against.
/// assert_eq!(signed_path("", &options).unwrap_err().kind(), RejectionKind::MalformedRequest);
/// assert_eq!(signed_path("*", &options).unwrap_err().kind(), RejectionKind::MalformedRequest);
/// ```
///
/// # Errors
/// [`RejectionKind::MalformedRequest`] unless the path starts with `/` (or
/// is `*` and [`VerifyOptions::with_asterisk_form`] is on).
pub fn signed_path<'a>(
    target: &'a str,
    options: &VerifyOptions,
) -> Result<Cow<'a, str>, Rejection> {
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    if path == "*" && options.accepts_asterisk_form() {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(Rejection::new(
            RejectionKind::MalformedRequest,
            "the request target must be a path starting with '/'",
        ));
    }
    Ok(match options.path_prefix() {
        Some(prefix) => Cow::Owned(format!("{prefix}{path}")),
        None => Cow::Borrowed(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_to_string() {
        for n in [0, 1, 9, 10, 1_528_140_529, u64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn hashed_empty_slot_is_sha512_of_nothing() {
        let digest: [u8; 64] = Sha512::digest(b"").into();
        assert_eq!(
            BodySlot::of_digest(&digest).as_str(),
            HASHED_EMPTY_BODY_SLOT
        );
        assert_eq!(BodyDigest::of(b"").slot().as_str(), "");
    }
}
