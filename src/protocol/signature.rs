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

    /// A decoder for this one shape rather than `base64`'s general one
    /// (a third of its instructions): 21 groups of four characters, then
    /// two for the last byte and `==`. No branch until the end: every
    /// character's value is OR-ed into `bad`, whose high bit an invalid
    /// character sets. Canonical as `base64`'s `STANDARD` is (the tests
    /// hold the two to the same answers): the last character's four unused
    /// bits must be zero, so each tag has exactly one accepted spelling.
    pub(crate) fn decode(encoded: &[u8]) -> Result<Self, InvalidSignatureEncoding> {
        let Ok(encoded) = <&[u8; Self::ENCODED_LEN]>::try_from(encoded) else {
            return Err(InvalidSignatureEncoding);
        };
        let mut out = [0u8; Self::LEN];
        let mut bad = 0u8;
        for (chars, bytes) in encoded[..84].chunks_exact(4).zip(out.chunks_exact_mut(3)) {
            let values =
                [chars[0], chars[1], chars[2], chars[3]].map(|c| BASE64_VALUE[usize::from(c)]);
            bad |= values[0] | values[1] | values[2] | values[3];
            let group = values
                .iter()
                .fold(0u32, |group, &value| (group << 6) | u32::from(value));
            bytes.copy_from_slice(&group.to_be_bytes()[1..]);
        }
        let (high, low) = (
            BASE64_VALUE[usize::from(encoded[84])],
            BASE64_VALUE[usize::from(encoded[85])],
        );
        bad |= high | low;
        out[63] = (high << 2) | (low >> 4);
        if bad & 0x80 == 0 && low & 0x0f == 0 && encoded[86..] == *b"==" {
            Ok(Self(out))
        } else {
            Err(InvalidSignatureEncoding)
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

/// Each byte's value as a standard base64 digit, or 0x80 when it is none.
const BASE64_VALUE: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [0x80u8; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// A signature that is not 88 characters of canonical base64 for 64 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature is not standard base64 of a 64-byte HMAC-SHA512 tag")]
pub struct InvalidSignatureEncoding;

#[cfg(test)]
mod tests {
    use super::*;

    /// What `base64`'s canonical `STANDARD` decoder answers.
    fn standard(encoded: &[u8]) -> Option<[u8; Signature::LEN]> {
        let mut out = [0u8; Signature::LEN];
        match STANDARD.decode_slice(encoded, &mut out) {
            Ok(Signature::LEN) => Some(out),
            _ => None,
        }
    }

    /// Every character of a few tags' spellings, replaced by each of the
    /// 256 bytes in turn: the decoder and `STANDARD` agree on every one
    /// (accepted with the same bytes, or refused), and each tag's own
    /// spelling is accepted.
    #[test]
    fn decodes_exactly_what_the_canonical_standard_decoder_does() {
        let tags: [[u8; Signature::LEN]; 4] = [
            [0; 64],
            [0xff; 64],
            std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a),
            std::array::from_fn(|i| 255 - i as u8),
        ];
        let mut accepted = 0;
        for tag in tags {
            let spelling = STANDARD.encode(tag).into_bytes();
            assert_eq!(Signature::decode(&spelling).unwrap().0, tag);
            for at in 0..spelling.len() {
                for byte in 0..=255u8 {
                    let mut mutated = spelling.clone();
                    mutated[at] = byte;
                    let ours = Signature::decode(&mutated)
                        .ok()
                        .map(|signature| signature.0);
                    assert_eq!(
                        ours,
                        standard(&mutated),
                        "{:?}",
                        String::from_utf8_lossy(&mutated)
                    );
                    accepted += usize::from(ours.is_some());
                }
            }
        }
        // Each of the 84 full positions has 64 spellings, the last data
        // character 4 (its low bits are zero), the padding 1.
        assert_eq!(accepted, 4 * (84 * 64 + 64 + 4 + 2));
        for length in [0, 86, 87, 89, 92] {
            assert!(Signature::decode(&vec![b'A'; length]).is_err(), "{length}");
        }
    }

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
