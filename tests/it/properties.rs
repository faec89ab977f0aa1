//! Property tests (proptest), 10,000 cases each: whatever is signed
//! verifies; any single change to a signed request is refused with
//! `invalid_signature`; the header parser never panics and accepts only
//! what its grammar allows.

use armor_psk::{
    RejectionKind, Signer,
    keys::Secret,
    protocol::{BodyDigest, Credentials, Signature, VerifyOptions, signed_path, verify},
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

/// Visible ASCII without a colon: what a key id or a nonce may hold.
const FIELD: &str = "[!-9;-~]";

fn key_id() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{FIELD}{{1,64}}")).unwrap()
}

fn nonce() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{FIELD}{{1,128}}")).unwrap()
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("DELETE".to_owned()),
        proptest::string::string_regex("[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}").unwrap(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    proptest::string::string_regex("/[A-Za-z0-9._~!$&'()*+,;=:@/-]{0,100}").unwrap()
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(any::<u8>(), 0..=65_536),
    ]
}

/// A request that the signer signed: its parts, header and body.
#[derive(Debug, Clone)]
struct Signed {
    key_id: String,
    secret: String,
    method: String,
    path: String,
    nonce: String,
    timestamp: u64,
    body: Vec<u8>,
}

fn signed() -> impl Strategy<Value = Signed> {
    (
        key_id(),
        any::<String>(),
        method(),
        path(),
        nonce(),
        -300i64..=300,
        body(),
    )
        .prop_map(|(key_id, secret, method, path, nonce, skew, body)| Signed {
            key_id,
            secret,
            method,
            path,
            nonce,
            timestamp: NOW.saturating_add_signed(skew),
            body,
        })
}

impl Signed {
    fn header(&self) -> String {
        Signer::new(self.key_id.as_str(), self.secret.as_str())
            .unwrap()
            .sign_at(
                &self.method,
                &self.path,
                &self.body,
                &self.nonce,
                self.timestamp,
            )
            .unwrap()
    }

    /// Verifies `header` for a request with this method, path and body.
    fn check(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        header: &str,
    ) -> Result<(), RejectionKind> {
        let request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", header)
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let credentials = Credentials::from_headers(&parts.headers).map_err(|r| r.kind())?;
        let secret = armor_psk::keys::Key::new(Secret::new(self.secret.as_bytes()));
        let key = (credentials.key_id() == self.key_id).then_some(&secret);
        let options = VerifyOptions::default();
        let path = signed_path(parts.uri.path(), &options).map_err(|r| r.kind())?;
        verify(
            parts.method.as_str(),
            &path,
            &credentials,
            &BodyDigest::of(body),
            key,
            NOW,
            &options,
        )
        .map(|_| ())
        .map_err(|r| r.kind())
    }
}

/// One change to a signed request.
#[derive(Debug, Clone)]
enum Change {
    BodyByte(usize, u8),
    PathChar(usize),
    Method,
    NonceChar(usize),
    Timestamp(i64),
    SignatureBit(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Change::BodyByte(i, x)),
        any::<usize>().prop_map(Change::PathChar),
        Just(Change::Method),
        any::<usize>().prop_map(Change::NonceChar),
        prop_oneof![-300i64..=-1, 1i64..=300].prop_map(Change::Timestamp),
        (0..512usize).prop_map(Change::SignatureBit),
    ]
}

/// Replaces the character at `i` (mod the length, never index 0 of a path)
/// with another character of the same class.
fn other_char(text: &str, i: usize, skip_first: bool) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let start = usize::from(skip_first);
    if bytes.len() <= start {
        bytes.push(b'x');
    } else {
        let at = start + i % (bytes.len() - start);
        bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    }
    String::from_utf8(bytes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn whatever_is_signed_verifies(request in signed()) {
        let header = request.header();
        prop_assert_eq!(request.check(&request.method, &request.path, &request.body, &header), Ok(()));
    }

    #[test]
    fn any_single_change_is_refused_as_an_invalid_signature(request in signed(), change in change()) {
        let header = request.header();
        let credentials = Credentials::parse(header.as_bytes()).unwrap();
        let (mut method, mut path, mut body) = (request.method.clone(), request.path.clone(), request.body.clone());
        let (mut nonce, mut timestamp) = (request.nonce.clone(), request.timestamp);
        let mut signature = *credentials.signature().as_bytes();
        match change {
            Change::BodyByte(i, x) => {
                if body.is_empty() {
                    body.push(x);
                } else {
                    let at = i % body.len();
                    body[at] ^= x;
                }
            }
            Change::PathChar(i) => path = other_char(&path, i, true),
            Change::Method => method.push('X'),
            Change::NonceChar(i) => nonce = other_char(&nonce, i, false),
            Change::Timestamp(delta) => timestamp = timestamp.saturating_add_signed(delta),
            Change::SignatureBit(bit) => signature[bit / 8] ^= 1 << (bit % 8),
        }
        let changed = format!(
            "ARMOR-PSK {}:{}:{nonce}:{timestamp}",
            request.key_id,
            STANDARD.encode(signature)
        );
        prop_assert_eq!(
            request.check(&method, &path, &body, &changed),
            Err(RejectionKind::InvalidSignature)
        );
    }

    #[test]
    fn the_parser_takes_any_bytes_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(credentials) = Credentials::parse(&bytes) {
            assert_only_grammatical(&bytes, &credentials)?;
        }
    }

    #[test]
    fn the_parser_accepts_only_the_grammar_near_valid_headers(
        key_id in key_id(),
        nonce in nonce(),
        timestamp in any::<u64>(),
        tag in proptest::array::uniform32(any::<u8>()),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 0..4),
    ) {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&tag);
        let mut bytes = format!("ARMOR-PSK {key_id}:{}:{nonce}:{timestamp}", STANDARD.encode(signature)).into_bytes();
        for (at, byte, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => bytes.push(byte),
            }
        }
        match Credentials::parse(&bytes) {
            Ok(credentials) => assert_only_grammatical(&bytes, &credentials)?,
            Err(rejection) => prop_assert!(matches!(
                rejection.kind(),
                RejectionKind::MalformedAuthorization | RejectionKind::InvalidNonce | RejectionKind::InvalidTimestamp
            )),
        }
    }
}

/// An accepted header is exactly `SCHEME (any case) SP+ key_id:base64:nonce:digits`
/// with each field in its grammar: rebuilding it from what was parsed gives
/// back the input.
fn assert_only_grammatical(bytes: &[u8], credentials: &Credentials) -> Result<(), TestCaseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| TestCaseError::fail("accepted non-UTF-8"))?;
    prop_assert!(
        text.len() > 10 && text[..9].eq_ignore_ascii_case("ARMOR-PSK"),
        "{text:?}"
    );
    let rest = text[9..].trim_start_matches(' ');
    prop_assert!(text[9..].starts_with(' '), "{text:?}");
    let rebuilt = format!(
        "{}:{}:{}:{}",
        credentials.key_id(),
        credentials.signature().to_base64(),
        credentials.nonce(),
        credentials.timestamp()
    );
    prop_assert_eq!(rest, rebuilt.as_str());
    let visible_no_colon =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    prop_assert!(visible_no_colon(credentials.key_id()));
    prop_assert!(visible_no_colon(credentials.nonce()) && credentials.nonce().len() <= 128);
    prop_assert!(Signature::from_base64(&credentials.signature().to_base64()).is_ok());
    Ok(())
}
