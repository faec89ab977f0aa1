//! The 64-byte HMAC-SHA512 tag carried in the header, compared only in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::{Choice, ConstantTimeEq};

/// An HMAC-SHA512 signature: 64 bytes, written on the wire as 88 characters of
/// standard, padded base64.
///
/// It deliberately has no `PartialEq`: the only comparison is
/// [`ConstantTimeEq`], so an early-exit `==` on a signature cannot be written.
/// `Debug` shows only the first few characters.
#[derive(Clone)]
pub struct Signature([u8; Signature::LEN]);

impl Signature {
    /// Length of the raw tag in bytes.
    pub const LEN: usize = 64;
    /// Length of the tag in base64 on the wire, padding included.
    pub const ENCODED_LEN: usize = 88;

    /// A signature from its 64 raw bytes (custom replay stores' tests).
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// Decodes the wire form: exactly 88 characters of standard base64 with
    /// `=` padding, in canonical form, decoding to exactly 64 bytes.
    ///
    /// # Errors
    /// [`InvalidSignatureEncoding`] for anything else.
    pub fn from_base64(encoded: &str) -> Result<Self, InvalidSignatureEncoding> {
        Self::decode(encoded.as_bytes())
    }

    pub(crate) fn decode(encoded: &[u8]) -> Result<Self, InvalidSignatureEncoding> {
        if encoded.len() != Self::ENCODED_LEN {
            return Err(InvalidSignatureEncoding);
        }
        let mut out = [0u8; Self::LEN];
        // STANDARD requires canonical padding and rejects non-zero trailing bits,
        // so each 64-byte tag has exactly one accepted spelling.
        match STANDARD.decode_slice(encoded, &mut out) {
            Ok(Self::LEN) => Ok(Self(out)),
            _ => Err(InvalidSignatureEncoding),
        }
    }

    /// The wire form: 88 characters of standard, padded base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw 64 bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// The tag as eight native-endian words.
    fn words(&self) -> [u64; 8] {
        std::array::from_fn(|i| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(word)
        })
    }
}

impl ConstantTimeEq for Signature {
    /// `subtle`'s comparison of the two tags as slices of eight 64-bit
    /// words: no branch on the data, and eight steps rather than 64.
    fn ct_eq(&self, other: &Self) -> Choice {
        self.words()[..].ct_eq(&other.words()[..])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.to_base64();
        write!(f, "Signature({}…)", &encoded[..8])
    }
}

/// A signature that is not 88 characters of canonical base64 for 64 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature is not standard base64 of a 64-byte HMAC-SHA512 tag")]
pub struct InvalidSignatureEncoding;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare_sees_every_bit() {
        let tag = Signature::from_bytes(std::array::from_fn(|i| i as u8 * 3));
        assert!(bool::from(tag.ct_eq(&tag.clone())));
        for byte in 0..Signature::LEN {
            for bit in 0..8 {
                let mut other = *tag.as_bytes();
                other[byte] ^= 1 << bit;
                assert!(
                    !bool::from(tag.ct_eq(&Signature::from_bytes(other))),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }
}
