//! Why a signature does not match, when a common client mistake explains
//! it: the request is signed again the way each mistake would, under the
//! key's secrets, and the mistakes that reproduce the signature are named.
//! The mock (in its journal) and `armor-psk explain` both use it.
//!
//! ```
//! use armor_psk::Signer;
//! use armor_psk::keys::Secret;
//! use armor_psk::protocol::Credentials;
//! use armor_psk::protocol::diagnose::{ClientMistake, RefusedRequest};
//!
//! // The client signed a trailing slash it did not send.
//! let header = Signer::new("key-1", "secret-1").unwrap()
//!     .sign_at("GET", "/v1/things/", b"", "nonce-1", 1_700_000_000).unwrap();
//! let credentials = Credentials::parse(header.as_bytes()).unwrap();
//! let refused = RefusedRequest {
//!     key_id: credentials.key_id(),
//!     method: "GET",
//!     path: "/v1/things",
//!     query: None,
//!     body: b"",
//!     nonce: credentials.nonce(),
//!     timestamp: credentials.timestamp(),
//!     signature: credentials.signature(),
//! };
//! let secret = Secret::new("secret-1");
//! assert_eq!(refused.mistakes([&secret]), [ClientMistake::TrailingSlash]);
//! ```

use std::fmt;

use subtle::ConstantTimeEq as _;

use super::canonical::{BodyDigest, BodySlot, Canonical};
use super::secret::Secret;
use super::signature::Signature;

/// A client mistake that reproduces a refused signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientMistake {
    /// The method signed in another case than sent (`get` for `GET`).
    MethodCase,
    /// The query string signed with the path (only the path is).
    QuerySigned,
    /// A trailing slash signed that was not sent, or the reverse.
    TrailingSlash,
    /// An empty body slot signed for a request that has a body.
    NoBodySigned,
    /// base64(SHA-512("")) signed for an empty body (the slot is empty).
    HashedEmptyBody,
    /// The raw body signed instead of base64(SHA-512(body)).
    RawBodySigned,
    /// The body signed with a trailing newline that was not sent.
    BodySignedWithTrailingNewline,
    /// The body signed without the trailing newline that was sent.
    BodySignedWithoutTrailingNewline,
    /// The Secret Key base64-decoded before use (it is used as text).
    SecretBase64Decoded,
}

impl ClientMistake {
    /// The machine-readable name (`raw_body_signed`, ...).
    pub const fn code(self) -> &'static str {
        match self {
            Self::MethodCase => "method_case",
            Self::QuerySigned => "query_signed",
            Self::TrailingSlash => "trailing_slash",
            Self::NoBodySigned => "no_body_signed",
            Self::HashedEmptyBody => "hashed_empty_body",
            Self::RawBodySigned => "raw_body_signed",
            Self::BodySignedWithTrailingNewline => "body_signed_with_trailing_newline",
            Self::BodySignedWithoutTrailingNewline => "body_signed_without_trailing_newline",
            Self::SecretBase64Decoded => "secret_base64_decoded",
        }
    }

    /// What to change in the client, in a sentence.
    pub const fn hint(self) -> &'static str {
        match self {
            Self::MethodCase => {
                "the method is signed in another case than sent: sign it exactly as sent (GET, POST, ...)"
            }
            Self::QuerySigned => "the query is signed too: sign the path without `?...`",
            Self::TrailingSlash => {
                "a trailing slash differs between the path signed and the path sent"
            }
            Self::NoBodySigned => {
                "the request has a body but an empty body slot was signed: sign base64(SHA-512(body))"
            }
            Self::HashedEmptyBody => {
                "the empty body is signed as base64(SHA-512(\"\")): Armor's rule is an empty slot"
            }
            Self::RawBodySigned => {
                "the raw body is signed: sign base64(SHA-512(body)) in its place"
            }
            Self::BodySignedWithTrailingNewline => {
                "the body is signed with a trailing newline that was not sent: sign the exact bytes sent"
            }
            Self::BodySignedWithoutTrailingNewline => {
                "the body is signed without the trailing newline that was sent: sign the exact bytes sent"
            }
            Self::SecretBase64Decoded => {
                "the Secret Key is base64-decoded before use: use its text as the HMAC key, as is"
            }
        }
    }
}

impl fmt::Display for ClientMistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A refused request as the server saw it.
#[derive(Debug, Clone, Copy)]
pub struct RefusedRequest<'a> {
    /// The key id of the header.
    pub key_id: &'a str,
    /// The method as sent.
    pub method: &'a str,
    /// The path the server signs (no query).
    pub path: &'a str,
    /// The query string sent, if any.
    pub query: Option<&'a str>,
    /// The body's bytes.
    pub body: &'a [u8],
    /// The nonce of the header.
    pub nonce: &'a str,
    /// The timestamp of the header.
    pub timestamp: u64,
    /// The signature of the header.
    pub signature: &'a Signature,
}

impl RefusedRequest<'_> {
    fn canonical<'c>(&self, method: &'c str, path: &'c str) -> Canonical<'c>
    where
        Self: 'c,
    {
        Canonical {
            key_id: self.key_id,
            method,
            path,
            nonce: self.nonce,
            timestamp: self.timestamp,
        }
    }

    /// The mistakes that reproduce the signature under any of `secrets`.
    pub fn mistakes<'s>(
        &self,
        secrets: impl IntoIterator<Item = &'s Secret> + Clone,
    ) -> Vec<ClientMistake> {
        let signed = |canonical: &Canonical<'_>, slot: &BodySlot| {
            secrets
                .clone()
                .into_iter()
                .any(|secret| bool::from(canonical.sign(secret, slot).ct_eq(self.signature)))
        };
        let real_slot = BodyDigest::of(self.body).slot();
        let mut found = Vec::new();
        let (upper, lower) = (
            self.method.to_ascii_uppercase(),
            self.method.to_ascii_lowercase(),
        );
        for method in [&upper, &lower] {
            if method != self.method && signed(&self.canonical(method, self.path), &real_slot) {
                found.push(ClientMistake::MethodCase);
            }
        }
        if let Some(query) = self.query {
            let with_query = format!("{}?{query}", self.path);
            if signed(&self.canonical(self.method, &with_query), &real_slot) {
                found.push(ClientMistake::QuerySigned);
            }
        }
        let toggled = match self.path.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
            _ => format!("{}/", self.path),
        };
        if signed(&self.canonical(self.method, &toggled), &real_slot) {
            found.push(ClientMistake::TrailingSlash);
        }
        let canonical = self.canonical(self.method, self.path);
        if self.body.is_empty() {
            if signed(&canonical, &BodySlot::hashed_empty()) {
                found.push(ClientMistake::HashedEmptyBody);
            }
        } else {
            if signed(&canonical, &BodyDigest::Empty.slot()) {
                found.push(ClientMistake::NoBodySigned);
            }
            let raw = secrets.clone().into_iter().any(|secret| {
                bool::from(
                    canonical
                        .sign_raw_slot(secret, self.body)
                        .ct_eq(self.signature),
                )
            });
            if raw {
                found.push(ClientMistake::RawBodySigned);
            }
        }
        let with_newline = [self.body, b"\n"].concat();
        if signed(&canonical, &BodyDigest::of(&with_newline).slot()) {
            found.push(ClientMistake::BodySignedWithTrailingNewline);
        }
        if let Some(without) = self.body.strip_suffix(b"\n")
            && signed(&canonical, &BodyDigest::of(without).slot())
        {
            found.push(ClientMistake::BodySignedWithoutTrailingNewline);
        }
        found
    }

    /// Whether the client base64-decoded the Secret Key `text` before use
    /// (only who knows the text can tell).
    pub fn secret_was_decoded(&self, text: &str) -> bool {
        use base64::Engine as _;
        let canonical = self.canonical(self.method, self.path);
        let slot = BodyDigest::of(self.body).slot();
        [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ]
        .iter()
        .filter_map(|engine| engine.decode(text).ok())
        .any(|decoded| {
            bool::from(
                canonical
                    .sign(&Secret::new(decoded), &slot)
                    .ct_eq(self.signature),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<'a>(body: &'a [u8], signature: &'a Signature) -> RefusedRequest<'a> {
        RefusedRequest {
            key_id: "k",
            method: "POST",
            path: "/tickets",
            query: Some("x=1"),
            body,
            nonce: "n",
            timestamp: 1_700_000_000,
            signature,
        }
    }

    #[test]
    fn each_mistake_is_named_from_the_signature_it_makes() {
        let secret = Secret::from("s3cret");
        let body = b"{\"title\":\"disk full\"}\n";
        let canonical = |path: &'static str| Canonical {
            key_id: "k",
            method: "POST",
            path,
            nonce: "n",
            timestamp: 1_700_000_000,
        };
        let cases = [
            (
                canonical("/tickets").sign_raw_slot(&secret, body),
                ClientMistake::RawBodySigned,
            ),
            (
                canonical("/tickets").sign(&secret, &BodyDigest::Empty.slot()),
                ClientMistake::NoBodySigned,
            ),
            (
                canonical("/tickets?x=1").sign(&secret, &BodyDigest::of(body).slot()),
                ClientMistake::QuerySigned,
            ),
            (
                canonical("/tickets/").sign(&secret, &BodyDigest::of(body).slot()),
                ClientMistake::TrailingSlash,
            ),
            (
                canonical("/tickets")
                    .sign(&secret, &BodyDigest::of(&body[..body.len() - 1]).slot()),
                ClientMistake::BodySignedWithoutTrailingNewline,
            ),
        ];
        for (signature, mistake) in cases {
            assert_eq!(refused(body, &signature).mistakes([&secret]), [mistake]);
        }
        let right = canonical("/tickets").sign(&secret, &BodyDigest::of(body).slot());
        assert!(refused(body, &right).mistakes([&secret]).is_empty());
    }
}
