//! The ARMOR-PSK protocol on plain values: the header grammar, the canonical
//! string, the HMAC, the signer and the check itself. Nothing here knows
//! tower, an HTTP framework or a runtime; the CLI, the layer and the tests
//! all call these functions.
//!
//! The layer runs [`verify()`] on every request; a server on another
//! framework, or a test, can run it directly:
//!
//! ```
//! use armor_psk::keys::Key;
//! use armor_psk::protocol::{BodyDigest, Credentials, VerifyOptions, verify};
//! use armor_psk::{RejectionKind, Signer};
//!
//! let now = 1_700_000_000;
//! let header = Signer::new("key-1", "secret-1").unwrap()
//!     .sign_at("POST", "/v1/things", b"{}", "nonce-1", now).unwrap();
//! let credentials = Credentials::parse(header.as_bytes()).unwrap();
//! let key = Key::new("secret-1");
//! let options = VerifyOptions::default();
//!
//! let body = BodyDigest::of(b"{}");
//! let who = verify("POST", "/v1/things", &credentials, &body, Some(&key), now, &options).unwrap();
//! assert_eq!(who.key_id(), "key-1");
//!
//! // Another body, another signature.
//! let tampered = BodyDigest::of(b"{\"admin\":true}");
//! let refused = verify("POST", "/v1/things", &credentials, &tampered, Some(&key), now, &options);
//! assert_eq!(refused.unwrap_err().kind(), RejectionKind::InvalidSignature);
//! ```
//!
//! Replays are not this module's business: [`verify()`] says whether a
//! request is authentic and fresh; the [`replay`](crate::replay) stores say
//! whether it was seen.

pub(crate) mod canonical;
pub(crate) mod clock;
pub mod diagnose;
pub(crate) mod header;
pub(crate) mod identity;
pub(crate) mod ids;
pub(crate) mod key;
pub(crate) mod options;
pub(crate) mod rejection;
pub(crate) mod secret;
pub(crate) mod signature;
pub(crate) mod signer;
pub(crate) mod verify;

pub use canonical::{
    BodyDigest, BodyHasher, BodySlot, Canonical, HASHED_EMPTY_BODY_SLOT, signed_path,
};
pub use header::{Credentials, MAX_KEY_ID_LEN, MAX_NONCE_LEN, SCHEME};
pub use options::{
    DEFAULT_CLOCK_SKEW_ALLOWANCE, DEFAULT_WINDOW, MAX_WINDOW, NonceFormat, VerifyOptions,
};
pub use signature::{InvalidSignatureEncoding, Signature};
pub use signer::new_uuid_v4;
pub use verify::verify;
