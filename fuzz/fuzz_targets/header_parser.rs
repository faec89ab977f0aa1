//! The `Authorization` header parser on arbitrary bytes: it must never
//! panic, and whatever it accepts must rebuild to exactly its input.
#![no_main]

use armor_psk::protocol::Credentials;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(credentials) = Credentials::parse(data) {
        let text = std::str::from_utf8(data).expect("accepted headers are ASCII");
        assert!(text[..9].eq_ignore_ascii_case("ARMOR-PSK"));
        let rebuilt = format!(
            "{}:{}:{}:{}",
            credentials.key_id(),
            credentials.signature().to_base64(),
            credentials.nonce(),
            credentials.timestamp()
        );
        assert_eq!(text[9..].trim_start_matches(' '), rebuilt);
    }
});
