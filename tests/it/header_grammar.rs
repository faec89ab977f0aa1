//! The header grammar: a named table of malformed headers, each with the
//! error code it must get, plus the forms that must be accepted.

use armor_psk::{RejectionKind, protocol::Credentials};
use http::{HeaderMap, HeaderValue};

const SIG: &str =
    "WacyhtoW2KhDbXzmKlaKWrMkFEs4UTOSyj/K01j5nZNHpTKPwu+Fh9BbN43nbQa55zysaXs2k0H7Zmq7F5sy5A==";

fn header(key: &str, sig: &str, nonce: &str, ts: &str) -> Vec<u8> {
    format!("ARMOR-PSK {key}:{sig}:{nonce}:{ts}").into_bytes()
}

fn ok() -> Vec<u8> {
    header("key-1", SIG, "nonce-1", "1700000000")
}

#[test]
fn malformed_headers_get_their_code() {
    use RejectionKind::*;
    let long_nonce = "n".repeat(129);
    let sig_no_pad = SIG.trim_end_matches('=');
    // Same tag, but last symbol changed so its unused trailing bits are set.
    let sig_trailing_bits = format!("{}B==", &SIG[..85]);
    let sig_urlsafe = SIG.replace('/', "_");
    let sig_short = &SIG[4..];
    let sig_65_bytes = format!("{}AAAA", &SIG[..84]) + "AA==";
    let cases: Vec<(&str, Vec<u8>, RejectionKind)> = vec![
        ("empty value", b"".to_vec(), MalformedAuthorization),
        ("scheme only", b"ARMOR-PSK".to_vec(), MalformedAuthorization),
        (
            "scheme and space only",
            b"ARMOR-PSK ".to_vec(),
            MalformedAuthorization,
        ),
        (
            "other scheme",
            format!("Bearer key-1:{SIG}:n:1700000000").into_bytes(),
            MalformedAuthorization,
        ),
        (
            "scheme prefix only",
            format!("ARMOR key-1:{SIG}:n:1700000000").into_bytes(),
            MalformedAuthorization,
        ),
        (
            "scheme with suffix",
            format!("ARMOR-PSKX key-1:{SIG}:n:1700000000").into_bytes(),
            MalformedAuthorization,
        ),
        (
            "scheme glued to credentials",
            format!("ARMOR-PSKkey-1:{SIG}:n:1700000000").into_bytes(),
            MalformedAuthorization,
        ),
        (
            "tab after scheme",
            format!("ARMOR-PSK\tkey-1:{SIG}:n:1700000000").into_bytes(),
            MalformedAuthorization,
        ),
        (
            "three fields",
            format!("ARMOR-PSK key-1:{SIG}:1700000000").into_bytes(),
            MalformedAuthorization,
        ),
        (
            "five fields (colon in nonce)",
            header("key-1", SIG, "a:b", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "trailing colon",
            format!("ARMOR-PSK key-1:{SIG}:n:1700000000:").into_bytes(),
            MalformedAuthorization,
        ),
        (
            "empty key id",
            header("", SIG, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "empty signature",
            header("key-1", "", "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "key id of 257 bytes",
            header(&"k".repeat(257), SIG, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "key id of 300 KB",
            header(&"k".repeat(300_000), SIG, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "space inside credentials",
            header("key 1", SIG, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "trailing space",
            [ok(), b" ".to_vec()].concat(),
            MalformedAuthorization,
        ),
        (
            "non-ASCII byte in key id",
            header("kéy", SIG, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "raw non-UTF-8 byte",
            [
                b"ARMOR-PSK key-\xff:".to_vec(),
                SIG.as_bytes().to_vec(),
                b":n:1".to_vec(),
            ]
            .concat(),
            MalformedAuthorization,
        ),
        (
            "control character",
            header("key-\x01", SIG, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "DEL character",
            header("key-\x7f", SIG, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "signature without padding",
            header("key-1", sig_no_pad, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "signature with trailing bits",
            header("key-1", &sig_trailing_bits, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "signature url-safe alphabet",
            header("key-1", &sig_urlsafe, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "signature too short",
            header("key-1", sig_short, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "signature too long",
            header("key-1", &sig_65_bytes, "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "signature hex",
            header("key-1", &"ab".repeat(64), "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "signature with invalid symbol",
            header("key-1", &SIG.replacen('W', "*", 1), "n", "1700000000"),
            MalformedAuthorization,
        ),
        (
            "empty nonce",
            header("key-1", SIG, "", "1700000000"),
            InvalidNonce,
        ),
        (
            "nonce of 129 characters",
            header("key-1", SIG, &long_nonce, "1700000000"),
            InvalidNonce,
        ),
        (
            "empty timestamp",
            header("key-1", SIG, "n", ""),
            InvalidTimestamp,
        ),
        (
            "timestamp with plus sign",
            header("key-1", SIG, "n", "+1700000000"),
            InvalidTimestamp,
        ),
        (
            "timestamp with minus sign",
            header("key-1", SIG, "n", "-1700000000"),
            InvalidTimestamp,
        ),
        (
            "timestamp with leading zero",
            header("key-1", SIG, "n", "01700000000"),
            InvalidTimestamp,
        ),
        (
            "timestamp zero-padded zero",
            header("key-1", SIG, "n", "00"),
            InvalidTimestamp,
        ),
        (
            "timestamp with fraction",
            header("key-1", SIG, "n", "1700000000.5"),
            InvalidTimestamp,
        ),
        (
            "timestamp in hex",
            header("key-1", SIG, "n", "0x6553f100"),
            InvalidTimestamp,
        ),
        (
            "timestamp with exponent",
            header("key-1", SIG, "n", "17e8"),
            InvalidTimestamp,
        ),
        (
            "timestamp past u64",
            header("key-1", SIG, "n", "18446744073709551616"),
            InvalidTimestamp,
        ),
        (
            "timestamp in milliseconds past u64",
            header("key-1", SIG, "n", "99999999999999999999999"),
            InvalidTimestamp,
        ),
        (
            "timestamp non-ASCII digit",
            header("key-1", SIG, "n", "17000000\u{0660}0"),
            MalformedAuthorization,
        ),
    ];
    assert!(cases.len() >= 30);
    for (name, value, expected) in cases {
        match Credentials::parse(&value) {
            Ok(parsed) => panic!("{name}: accepted as {parsed:?}"),
            Err(rejection) => assert_eq!(rejection.kind(), expected, "{name}: {rejection}"),
        }
    }
}

#[test]
fn well_formed_headers_are_accepted() {
    let nonce_128 = "n".repeat(128);
    let cases: Vec<(&str, Vec<u8>, &str, u64)> = vec![
        ("canonical", ok(), "nonce-1", 1_700_000_000),
        (
            "lower-case scheme",
            format!("armor-psk key-1:{SIG}:nonce-1:1700000000").into_bytes(),
            "nonce-1",
            1_700_000_000,
        ),
        (
            "mixed-case scheme",
            format!("Armor-Psk key-1:{SIG}:nonce-1:1700000000").into_bytes(),
            "nonce-1",
            1_700_000_000,
        ),
        (
            "several spaces after scheme",
            format!("ARMOR-PSK   key-1:{SIG}:nonce-1:1700000000").into_bytes(),
            "nonce-1",
            1_700_000_000,
        ),
        (
            "nonce of 128 characters",
            header("key-1", SIG, &nonce_128, "1700000000"),
            &nonce_128,
            1_700_000_000,
        ),
        (
            "nonce of one character",
            header("key-1", SIG, "x", "1700000000"),
            "x",
            1_700_000_000,
        ),
        (
            "nonce with punctuation",
            header("key-1", SIG, "a/b+c=d?e#f", "1700000000"),
            "a/b+c=d?e#f",
            1_700_000_000,
        ),
        ("timestamp zero", header("key-1", SIG, "n", "0"), "n", 0),
        (
            "timestamp u64::MAX",
            header("key-1", SIG, "n", "18446744073709551615"),
            "n",
            u64::MAX,
        ),
    ];
    for (name, value, nonce, timestamp) in cases {
        let parsed = Credentials::parse(&value).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.key_id(), "key-1", "{name}");
        assert_eq!(parsed.nonce(), nonce, "{name}");
        assert_eq!(parsed.timestamp(), timestamp, "{name}");
        assert_eq!(parsed.signature().to_base64(), SIG, "{name}");
    }
}

#[test]
fn header_map_rules() {
    let empty = HeaderMap::new();
    assert_eq!(
        Credentials::from_headers(&empty).unwrap_err().kind(),
        RejectionKind::MissingAuthorization
    );

    let value = HeaderValue::from_bytes(&ok()).unwrap();
    let mut twice = HeaderMap::new();
    twice.append("authorization", value.clone());
    twice.append("authorization", value.clone());
    assert_eq!(
        Credentials::from_headers(&twice).unwrap_err().kind(),
        RejectionKind::MalformedAuthorization
    );

    let mut once = HeaderMap::new();
    once.insert("authorization", value);
    assert_eq!(Credentials::from_headers(&once).unwrap().key_id(), "key-1");
}

#[test]
fn messages_name_the_problem_and_never_panic_on_any_short_input() {
    // Every byte value in every position of a short header: no panic, and a
    // rejection always carries a message.
    let base = ok();
    for position in 0..base.len() {
        for byte in 0..=255u8 {
            let mut value = base.clone();
            value[position] = byte;
            if let Err(rejection) = Credentials::parse(&value) {
                assert!(!rejection.message().is_empty());
            }
        }
    }
}

#[test]
fn a_key_id_of_256_bytes_is_the_longest_accepted() {
    let key_id = "k".repeat(armor_psk::protocol::MAX_KEY_ID_LEN);
    let parsed = Credentials::parse(&header(&key_id, SIG, "n-1", "1700000000")).unwrap();
    assert_eq!(parsed.key_id(), key_id);
    let longer = Credentials::parse(&header(&format!("{key_id}k"), SIG, "n-1", "1700000000"));
    assert_eq!(
        longer.unwrap_err().kind(),
        RejectionKind::MalformedAuthorization
    );
}
