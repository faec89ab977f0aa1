//! The `Authorization` header grammar:
//! `ARMOR-PSK key_id:signature:nonce:timestamp`.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::protocol::ids::Ids;
use crate::protocol::rejection::{Rejection, RejectionKind};
use crate::protocol::signature::Signature;

/// The authentication scheme name (matched case-insensitively).
pub const SCHEME: &str = "ARMOR-PSK";

/// The longest nonce accepted, in characters.
pub const MAX_NONCE_LEN: usize = 128;

/// The longest key id accepted, in bytes. Anything longer is
/// `malformed_authorization`, and is never copied into a rejection or a log
/// line.
pub const MAX_KEY_ID_LEN: usize = 256;

/// The four fields of a well-formed `ARMOR-PSK` header.
///
/// Parsing is strict: a visible-ASCII header, the scheme (any case), one or
/// more spaces, then exactly four non-empty fields separated by colons; the
/// key id is at most [`MAX_KEY_ID_LEN`] bytes; the
/// signature is 88 characters of canonical base64 for 64 bytes; the nonce is
/// 1 to 128 characters; the timestamp is canonical decimal (digits only, no
/// sign, no leading zero) that fits in a `u64`, so that each canonical string
/// has exactly one header spelling (see the crate's security notes).
///
/// ```
/// use armor_psk::{RejectionKind, protocol::Credentials};
///
/// let sig = "A".repeat(86) + "==";
/// let ok = Credentials::parse(format!("ARMOR-PSK key-1:{sig}:n-1:1700000000").as_bytes()).unwrap();
/// assert_eq!((ok.key_id(), ok.nonce(), ok.timestamp()), ("key-1", "n-1", 1_700_000_000));
///
/// let err = Credentials::parse(format!("ARMOR-PSK key-1:{sig}:n-1:01700000000").as_bytes()).unwrap_err();
/// assert_eq!(err.kind(), RejectionKind::InvalidTimestamp);
/// ```
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The key id and the nonce, shared with the request's `Identity` or
    /// `Rejection`.
    ids: Ids,
    signature: Signature,
    timestamp: u64,
}

impl Credentials {
    /// Reads the one `Authorization` header of a request.
    ///
    /// # Errors
    /// [`RejectionKind::MissingAuthorization`] without the header,
    /// [`RejectionKind::MalformedAuthorization`] when there are several, and
    /// whatever [`Credentials::parse`] finds wrong with its value.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Rejection> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(Rejection::new(
                RejectionKind::MissingAuthorization,
                "the request has no Authorization header",
            ));
        };
        if values.next().is_some() {
            return Err(malformed(
                "the request has more than one Authorization header",
            ));
        }
        Self::parse(value.as_bytes())
    }

    /// Parses a header value such as
    /// `ARMOR-PSK key_id:signature:nonce:timestamp`.
    ///
    /// # Errors
    /// A [`Rejection`] of kind `MalformedAuthorization`, `InvalidNonce` or
    /// `InvalidTimestamp` naming what is wrong.
    pub fn parse(value: &[u8]) -> Result<Self, Rejection> {
        // Folded without an early exit, so that it runs as a vector loop.
        let visible = value
            .iter()
            .fold(true, |ok, &b| ok & (b == b' ' || b.is_ascii_graphic()));
        if !visible {
            return Err(malformed(
                "the Authorization header must be visible ASCII characters and spaces",
            ));
        }
        let Some(space) = memchr::memchr(b' ', value) else {
            return Err(malformed(
                "expected `ARMOR-PSK key_id:signature:nonce:timestamp`",
            ));
        };
        if !value[..space].eq_ignore_ascii_case(SCHEME.as_bytes()) {
            return Err(malformed("the authorization scheme is not ARMOR-PSK"));
        }
        let rest = &value[space..];
        let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
        let credentials = &rest[start..];
        if memchr::memchr(b' ', credentials).is_some() {
            return Err(malformed("the credentials must not contain spaces"));
        }
        let mut colons = memchr::memchr_iter(b':', credentials);
        let (Some(first), Some(second), Some(third), None) =
            (colons.next(), colons.next(), colons.next(), colons.next())
        else {
            return Err(malformed(
                "expected four colon-separated fields: key_id:signature:nonce:timestamp",
            ));
        };
        // Visible ASCII, checked above, is UTF-8: one check for all fields.
        let Ok(text) = std::str::from_utf8(credentials) else {
            return Err(malformed("not ASCII"));
        };
        let key_id = &text[..first];
        let signature = &text[first + 1..second];
        let nonce = &text[second + 1..third];
        let timestamp = &text[third + 1..];
        // The whole value is visible ASCII and the colons split the
        // fields: what is left of the key id's grammar is its length.
        check_key_id_length(key_id).map_err(malformed)?;
        if signature.is_empty() {
            return Err(malformed("the signature is empty"));
        }
        let signature = Signature::decode(signature.as_bytes()).map_err(|_| {
            malformed("the signature is not standard padded base64 of 64 bytes (88 characters)")
        })?;
        check_nonce(nonce)?;
        let timestamp = parse_timestamp(timestamp.as_bytes())?;
        Ok(Self {
            ids: Ids::new(key_id, nonce),
            signature,
            timestamp,
        })
    }

    /// The API key id the client claims.
    pub fn key_id(&self) -> &str {
        self.ids.key_id()
    }

    /// The signature sent by the client.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The nonce, as sent.
    pub fn nonce(&self) -> &str {
        self.ids.nonce()
    }

    pub(crate) fn ids(&self) -> &Ids {
        &self.ids
    }

    /// The timestamp in Unix seconds.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
}

fn malformed(message: &'static str) -> Rejection {
    Rejection::new(RejectionKind::MalformedAuthorization, message)
}

/// Checks a key id: 1 to [`MAX_KEY_ID_LEN`] bytes of visible ASCII, no
/// colon (what the header's first field can carry). The one key-id
/// grammar: the parser, the [`Signer`](crate::Signer) and the PostgreSQL
/// change feed all ask it, so a client cannot sign what no server accepts.
pub(crate) fn check_key_id(key_id: &str) -> Result<(), &'static str> {
    check_key_id_length(key_id)?;
    if !key_id
        .bytes()
        .fold(true, |ok, b| ok & (b.is_ascii_graphic() & (b != b':')))
    {
        return Err("the key id must be visible ASCII without a colon");
    }
    Ok(())
}

/// The key id's length: 1 to [`MAX_KEY_ID_LEN`] bytes.
fn check_key_id_length(key_id: &str) -> Result<(), &'static str> {
    if key_id.is_empty() {
        return Err("the key id is empty");
    }
    if key_id.len() > MAX_KEY_ID_LEN {
        return Err("the key id is longer than 256 bytes");
    }
    Ok(())
}

/// Checks a nonce: 1 to 128 visible ASCII characters, no colon.
pub(crate) fn check_nonce(nonce: &str) -> Result<(), Rejection> {
    let invalid = |message| Err(Rejection::new(RejectionKind::InvalidNonce, message));
    if nonce.is_empty() {
        return invalid("the nonce is empty");
    }
    if nonce.len() > MAX_NONCE_LEN {
        return invalid("the nonce is longer than 128 characters");
    }
    if !nonce
        .bytes()
        .fold(true, |ok, b| ok & (b.is_ascii_graphic() & (b != b':')))
    {
        return invalid("the nonce must be visible ASCII without a colon");
    }
    Ok(())
}

/// Parses a canonical decimal timestamp: digits only, no sign, no leading
/// zero, no overflow. `u64::from_str` alone would take `+1700000000`.
fn parse_timestamp(text: &[u8]) -> Result<u64, Rejection> {
    let invalid = |message| Err(Rejection::new(RejectionKind::InvalidTimestamp, message));
    if text.is_empty() {
        return invalid("the timestamp is empty");
    }
    if !text.iter().fold(true, |ok, b| ok & b.is_ascii_digit()) {
        return invalid("the timestamp must be decimal digits only");
    }
    if text.len() > 1 && text[0] == b'0' {
        return invalid("the timestamp must not have a leading zero");
    }
    let mut timestamp = 0u64;
    for &digit in text {
        let Some(next) = timestamp
            .checked_mul(10)
            .and_then(|t| t.checked_add(u64::from(digit - b'0')))
        else {
            return invalid("the timestamp does not fit in 64 bits");
        };
        timestamp = next;
    }
    Ok(timestamp)
}
