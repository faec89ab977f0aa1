//! The ARMOR-PSK protocol on plain values: the header grammar, the canonical
//! string, the HMAC, the signer and the check itself. Nothing here knows
//! tower, an HTTP framework or a runtime; the CLI, the layer and the tests
//! all call these functions.

pub(crate) mod canonical;
pub(crate) mod clock;
pub(crate) mod diagnose;
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
