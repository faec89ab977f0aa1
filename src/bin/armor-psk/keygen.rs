//! `armor-psk keygen`: a new Key ID and Secret Key.

use std::process::ExitCode;

use armor_psk::mock::ApiKey;

pub(crate) fn run(export: bool) -> Result<ExitCode, String> {
    let key = ApiKey::generate().map_err(|e| format!("cannot generate a secret: {e}"))?;
    if export {
        println!("export ARMOR_PSK_KEY_ID={}", key.key_id());
        println!("export ARMOR_PSK_SECRET={}", key.secret());
    } else {
        println!("Key ID:     {}", key.key_id());
        println!("Secret Key: {}", key.secret());
    }
    Ok(ExitCode::SUCCESS)
}
