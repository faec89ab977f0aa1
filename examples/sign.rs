//! Prints the `Authorization` header value for a request, so that it can be
//! sent with curl.
//!
//! ```text
//! ARMOR_PSK_SECRET=my-secret cargo run --example sign -- my-key POST /things '{"a":1}'
//! ```
//!
//! Arguments: KEY_ID METHOD PATH [BODY]. The secret comes from
//! `ARMOR_PSK_SECRET` (it does not show in `ps`); the nonce is a fresh UUID
//! and the timestamp is now.

use armor_psk::Signer;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (key_id, method, path, body) = match args.as_slice() {
        [key_id, method, path] => (key_id, method, path, ""),
        [key_id, method, path, body] => (key_id, method, path, body.as_str()),
        _ => fail("usage: ARMOR_PSK_SECRET=... sign KEY_ID METHOD PATH [BODY]"),
    };
    let Ok(secret) = std::env::var("ARMOR_PSK_SECRET") else {
        fail("set ARMOR_PSK_SECRET to the key's secret");
    };
    let signer = Signer::new(key_id.as_str(), secret).unwrap_or_else(|e| fail(&e.to_string()));
    println!(
        "{}",
        signer.sign(&method.to_ascii_uppercase(), path, body.as_bytes())
    );
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}
