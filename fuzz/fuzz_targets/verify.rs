//! The whole verification against a fixed key: method, path, header and
//! body from the fuzzer. It must never panic, and must never accept a
//! request that the fixed key did not sign as given.
#![no_main]

use armor_psk::{Signer, protocol::{BodyDigest, Credentials, VerifyOptions, signed_path, verify}};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const KEY_ID: &str = "fuzz-key";
const SECRET: &str = "fuzz-secret";
const NOW: u64 = 1_700_000_000;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: &'a str,
    path: &'a str,
    header: &'a [u8],
    body: &'a [u8],
    /// Sign the request properly (then mutate nothing): the accepted path.
    sign: bool,
    nonce: &'a str,
    skew: i16,
}

fuzz_target!(|input: Input<'_>| {
    let timestamp = NOW.saturating_add_signed(i64::from(input.skew));
    let signer = Signer::new(KEY_ID, SECRET).expect("valid key id");
    let signed;
    let header: &[u8] = if input.sign {
        match signer.sign_at(input.method, input.path, input.body, input.nonce, timestamp) {
            Ok(header) => {
                signed = header;
                signed.as_bytes()
            }
            Err(_) => input.header,
        }
    } else {
        input.header
    };
    let Ok(request) = http::Request::builder()
        .method(input.method)
        .uri(input.path)
        .header("authorization", header)
        .body(())
    else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let Ok(credentials) = Credentials::from_headers(&parts.headers) else {
        return;
    };
    let options = VerifyOptions::default();
    let Ok(path) = signed_path(parts.uri.path(), &options) else {
        return;
    };
    let secret = armor_psk::keys::Key::new(SECRET);
    let key = (credentials.key_id() == KEY_ID).then_some(&secret);
    let outcome = verify(
        parts.method.as_str(),
        &path,
        &credentials,
        &BodyDigest::of(input.body),
        key,
        NOW,
        &options,
    );
    if let Ok(identity) = outcome {
        // Accepted: it must be exactly what the key signs for this request.
        let expected = signer
            .sign_at(
                parts.method.as_str(),
                parts.uri.path(),
                input.body,
                identity.nonce(),
                identity.timestamp(),
            )
            .expect("an accepted nonce is valid");
        let expected = Credentials::parse(expected.as_bytes()).expect("the signer's header parses");
        assert_eq!(expected.signature().as_bytes(), credentials.signature().as_bytes());
        assert_eq!(identity.key_id(), KEY_ID);
        assert!(identity.timestamp().abs_diff(NOW) <= 300);
    }
});
