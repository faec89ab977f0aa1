//! What the key-encryption key (KEK) protects: each secret sealed with
//! AES-256-GCM, its key id, version and validity bound in as associated
//! data, and each key's row (owner, revocation) authenticated by an
//! HMAC-SHA256 under a key derived from the KEK. A database writer can
//! make a key fail; it cannot make a changed row verify.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::PostgresStoreError;

/// A key-encryption key: 32 bytes (AES-256-GCM) that seal every secret in
/// the database and authenticate every key's row. `Debug` never shows it.
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub struct Kek(Arc<KekInner>);

struct KekInner {
    cipher: Aes256Gcm,
    /// The row MAC's key: HMAC-SHA256(KEK, "armor-psk row mac").
    mac_key: Zeroizing<[u8; 32]>,
}

impl Kek {
    /// From 32 bytes in standard base64 (`ARMOR_PSK_KEK`, or the contents
    /// of `--kek-file`).
    ///
    /// # Errors
    /// Not base64, or not 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, PostgresStoreError> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| PostgresStoreError::InvalidKek("not standard base64"))?,
        );
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|_| PostgresStoreError::InvalidKek("not 32 bytes"))?;
        let mut derive = <Hmac<Sha256> as KeyInit>::new_from_slice(&bytes)
            .map_err(|_| PostgresStoreError::InvalidKek("not 32 bytes"))?;
        derive.update(b"armor-psk row mac");
        let mac_key = Zeroizing::new(derive.finalize().into_bytes().into());
        Ok(Self(Arc::new(KekInner { cipher, mac_key })))
    }

    /// A new random KEK, and its base64 text (shown once, kept by the
    /// operator).
    ///
    /// # Errors
    /// The system's random generator failed.
    pub fn generate() -> Result<(Self, String), PostgresStoreError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| PostgresStoreError::Random)?;
        let text = base64::engine::general_purpose::STANDARD.encode(bytes.as_ref());
        Ok((Self::from_base64(&text)?, text))
    }

    pub(super) fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, PostgresStoreError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| PostgresStoreError::Random)?;
        let sealed = self
            .0
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| PostgresStoreError::Crypto)?;
        Ok([&nonce[..], &sealed].concat())
    }

    pub(super) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, PostgresStoreError> {
        if sealed.len() < 12 {
            return Err(PostgresStoreError::WrongKek);
        }
        let (nonce, sealed) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| PostgresStoreError::WrongKek)?;
        self.0
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .map_err(|_| PostgresStoreError::WrongKek)
    }

    /// The MAC of a key's row.
    pub(super) fn row_mac(&self, row: &RowFields<'_>) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.mac_key.as_ref())
            .expect("HMAC takes a key of any length");
        mac.update(&row.canonical());
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `mac` is the MAC of the row (constant time).
    pub(super) fn row_is_authentic(&self, row: &RowFields<'_>, mac: Option<&[u8]>) -> bool {
        let Some(mac) = mac else {
            return false;
        };
        bool::from(self.row_mac(row).ct_eq(mac))
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

/// How secrets are kept in the database.
#[derive(Debug, Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub enum Sealing {
    /// Sealed with AES-256-GCM under this key-encryption key; rows
    /// authenticated under it. Plaintext rows are refused.
    Kek(Kek),
    /// In the clear, rows unauthenticated.
    ///
    /// # Security
    /// Anyone who can read the table (a backup, a replica, a support
    /// query) can sign as every key, and anyone who can write it can add
    /// keys or revive revoked ones. Logged as a warning when chosen.
    Plaintext,
}

/// What a key's MAC covers: its row (owner, revocation, a revision that
/// every rotation and revocation raises) and the exact set of its secrets,
/// so that no secret row can be added, removed, changed or put back from
/// an earlier state without the key failing.
pub(super) struct RowFields<'a> {
    pub(super) key_id: &'a str,
    pub(super) user_id: Option<i64>,
    pub(super) revoked_at: Option<i64>,
    pub(super) revision: i64,
    pub(super) secrets: [u8; 32],
}

impl RowFields<'_> {
    fn canonical(&self) -> Vec<u8> {
        let field = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let mut text = format!(
            "armor-psk key row v2\n{}\n{}\n{}\n{}\n",
            self.key_id,
            field(self.user_id),
            field(self.revoked_at),
            self.revision
        )
        .into_bytes();
        text.extend_from_slice(&self.secrets);
        text
    }
}

/// One secret row as the MAC sees it.
pub(super) struct SecretRow<'a> {
    pub(super) version: i32,
    pub(super) not_before: Option<i64>,
    pub(super) not_after: Option<i64>,
    pub(super) encrypted: bool,
    pub(super) sealed: &'a [u8],
}

/// SHA-256 of a key's secret rows, in version order.
pub(super) fn secrets_digest<'a>(rows: impl IntoIterator<Item = SecretRow<'a>>) -> [u8; 32] {
    use sha2::Digest as _;
    let mut rows: Vec<SecretRow<'a>> = rows.into_iter().collect();
    rows.sort_by_key(|row| row.version);
    let mut sha = Sha256::new();
    let field = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    for row in rows {
        sha.update(
            format!(
                "{}\n{}\n{}\n{}\n{}\n",
                row.version,
                field(row.not_before),
                field(row.not_after),
                row.encrypted,
                row.sealed.len()
            )
            .as_bytes(),
        );
        sha.update(row.sealed);
    }
    sha.finalize().into()
}

/// The associated data a secret is sealed with: it cannot be moved to
/// another key or version, nor have its validity changed.
pub(super) fn secret_aad(
    key_id: &str,
    version: u32,
    not_before: Option<i64>,
    not_after: Option<i64>,
) -> Vec<u8> {
    let field = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!(
        "armor-psk secret v2\n{key_id}\n{version}\n{}\n{}",
        field(not_before),
        field(not_after)
    )
    .into_bytes()
}

/// The associated data of secrets sealed by the first release (key id and
/// version only): migrate re-seals them.
pub(super) fn legacy_secret_aad(key_id: &str, version: u32) -> Vec<u8> {
    format!("{key_id}:{version}").into_bytes()
}
