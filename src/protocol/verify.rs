//! The check itself: a pure function of the request, the key and the time.

use std::sync::LazyLock;

use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::canonical::{BodyDigest, BodySlot, Canonical};
use super::header::Credentials;
use super::identity::Identity;
use super::key::Key;
use super::options::VerifyOptions;
use super::rejection::{Rejection, RejectionKind};
use super::secret::{Secret, generate_secret};

/// Checks the signature and the timestamp of a request whose header has been
/// parsed and whose key has been looked up (`None`: unknown key), on plain
/// values: the method as sent, the [signed path](crate::protocol::signed_path), the body's
/// digest. No I/O and no clock: `now` is given. Replay protection is not
/// part of it.
///
/// The nonce format is checked first, then the signature, then the window.
/// Every secret of the key active at `now` is tried (see [`Key`]). An
/// unknown key costs the same HMAC as a known key with one secret (under a
/// random dummy key) and is refused with the same
/// [`RejectionKind::InvalidSignature`], so key ids cannot be enumerated; a
/// key in the middle of a rotation (two active secrets) costs one HMAC
/// more.
///
/// ```
/// use armor_psk::{RejectionKind, Signer, protocol::{verify, BodyDigest, Credentials, VerifyOptions}, keys::Key};
///
/// let signer = Signer::new("key-1", "secret").unwrap();
/// let header = signer.sign_at("POST", "/things", b"{}", "nonce-1", 1_700_000_000).unwrap();
/// let credentials = Credentials::parse(header.as_bytes()).unwrap();
/// let options = VerifyOptions::default();
/// let secret = Key::new("secret");
/// let now = 1_700_000_000;
///
/// let identity = verify("POST", "/things", &credentials, &BodyDigest::of(b"{}"), Some(&secret), now, &options).unwrap();
/// assert_eq!(identity.key_id(), "key-1");
///
/// let tampered = verify("POST", "/things", &credentials, &BodyDigest::of(b"{ }"), Some(&secret), now, &options);
/// assert_eq!(tampered.unwrap_err().kind(), RejectionKind::InvalidSignature);
/// let unknown_key = verify("POST", "/things", &credentials, &BodyDigest::of(b"{}"), None, now, &options);
/// assert_eq!(unknown_key.unwrap_err().kind(), RejectionKind::InvalidSignature);
/// ```
///
/// # Errors
/// [`RejectionKind::InvalidNonce`] (the [`NonceFormat`](crate::protocol::NonceFormat)),
/// [`RejectionKind::InvalidSignature`] or
/// [`RejectionKind::TimestampOutOfWindow`] (carrying `now` as
/// `server_time`).
pub fn verify(
    method: &str,
    path: &str,
    credentials: &Credentials,
    body: &BodyDigest,
    key: Option<&Key>,
    now: u64,
    options: &VerifyOptions,
) -> Result<Identity, Rejection> {
    check_nonce_format(credentials, options)?;
    check_signature(method, path, credentials, body, key, now, options)
}

/// The nonce against the configured [`NonceFormat`](crate::protocol::NonceFormat),
/// refused with the claimed key id: the first of [`verify`]'s checks, which
/// the layer runs on its own before the key lookup.
/// (The nonce's grammar, its length and characters, is the header
/// parser's: `header::check_nonce`.)
pub(crate) fn check_nonce_format(
    credentials: &Credentials,
    options: &VerifyOptions,
) -> Result<(), Rejection> {
    if options.nonce_format().matches(credentials.nonce()) {
        return Ok(());
    }
    Err(Rejection::new(
        RejectionKind::InvalidNonce,
        "the nonce must be a UUID: 8-4-4-4-12 hex digits, or 32 hex digits without dashes",
    )
    .with_ids(credentials.ids()))
}

/// [`verify`] without the nonce format, which the layer checks once,
/// before the key lookup.
pub(crate) fn check_signature(
    method: &str,
    path: &str,
    credentials: &Credentials,
    body: &BodyDigest,
    key: Option<&Key>,
    now: u64,
    options: &VerifyOptions,
) -> Result<Identity, Rejection> {
    let canonical = Canonical {
        key_id: credentials.key_id(),
        method,
        path,
        nonce: credentials.nonce(),
        timestamp: credentials.timestamp(),
    };
    let slot = body.slot();
    let hashed_empty = options.accepts_hashed_empty_body() && *body == BodyDigest::Empty;
    // Every secret active now is tried, with no early exit: a match on the
    // last costs what a match on the first does. Which one matched is kept
    // by a constant-time select.
    let mut matched = subtle::Choice::from(0);
    let mut version = 0u32;
    let mut tried = 0usize;
    let candidates = key.into_iter().flat_map(|key| key.active(now));
    for candidate in candidates {
        tried += 1;
        #[cfg(test)]
        tests::count_hmac();
        let secret = candidate.secret();
        let mut matches = canonical.sign(secret, &slot).ct_eq(credentials.signature());
        if hashed_empty {
            let hashed = canonical.sign(secret, &BodySlot::hashed_empty());
            matches |= hashed.ct_eq(credentials.signature());
        }
        version = u32::conditional_select(&version, &candidate.version(), matches);
        matched |= matches;
    }
    if tried == 0 {
        #[cfg(test)]
        tests::count_hmac();
        // An unknown key (or one with no secret valid now) costs the same
        // HMAC as a known one, under a key nobody holds.
        let _ = canonical
            .sign(&DUMMY_SECRET, &slot)
            .ct_eq(credentials.signature());
    }
    if !bool::from(matched) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(
                key_id = credentials.key_id(),
                canonical_sha256 = canonical.sha256_hex(&slot),
                "ARMOR-PSK signature mismatch; compare with SHA-256 of the client's canonical string",
            );
        }
        return Err(Rejection::new(
            RejectionKind::InvalidSignature,
            "the signature does not match the request",
        )
        .with_ids(credentials.ids()));
    }
    options
        .check_window(credentials.timestamp(), now)
        .map_err(|rejection| rejection.with_ids(credentials.ids()))?;
    Ok(Identity::verified(credentials, version))
}

/// The key an unknown key id is checked against, so that it costs the same
/// work as a known one. Random per process: nobody can sign for it. Should
/// the random generator fail, an empty key still does the same work, and an
/// unknown key is refused whatever its HMAC gives.
static DUMMY_SECRET: LazyLock<Secret> =
    LazyLock::new(|| Secret::from(generate_secret().unwrap_or_default()));

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::protocol::key::KeySecret;
    use crate::protocol::signer::Signer;

    thread_local! {
        static HMACS: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn count_hmac() {
        HMACS.with(|count| count.set(count.get() + 1));
    }

    const NOW: u64 = 1_700_000_000;

    /// Verifies a request signed with `secret` against `key`; returns the
    /// matched version (or None) and the HMACs computed.
    fn check(key: Option<&Key>, secret: &str) -> (Option<u32>, usize) {
        let header = Signer::new("key-1", secret)
            .unwrap()
            .sign_at("GET", "/me", b"", "n-1", NOW)
            .unwrap();
        let credentials = Credentials::parse(header.as_bytes()).unwrap();
        HMACS.with(|count| count.set(0));
        let outcome = verify(
            "GET",
            "/me",
            &credentials,
            &BodyDigest::Empty,
            key,
            NOW,
            &VerifyOptions::default(),
        );
        let version = outcome.ok().map(|identity| identity.secret_version());
        (version, HMACS.with(Cell::get))
    }

    #[test]
    fn every_active_secret_is_tried_whichever_matches() {
        let key = Key::from_secrets([
            KeySecret::new(1, "first"),
            KeySecret::new(2, "second"),
            KeySecret::new(3, "third"),
            KeySecret::new(4, "expired").with_not_after(NOW),
            KeySecret::new(5, "future").with_not_before(NOW + 1),
        ]);
        assert_eq!(check(Some(&key), "first"), (Some(1), 3));
        assert_eq!(check(Some(&key), "third"), (Some(3), 3));
        assert_eq!(check(Some(&key), "wrong"), (None, 3));
        assert_eq!(check(Some(&key), "expired"), (None, 3));
        assert_eq!(check(Some(&key), "future"), (None, 3));
        // An unknown key costs one HMAC, as a key with one secret.
        assert_eq!(check(None, "first"), (None, 1));
        assert_eq!(check(Some(&Key::new("first")), "first"), (Some(1), 1));
    }
}
