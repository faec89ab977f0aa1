//! What several commands take: the key that signs and the body.

use std::path::PathBuf;

use armor_psk::Signer;
use clap::Args;

/// The key that signs.
#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// The Key ID.
    #[arg(long, env = "ARMOR_PSK_KEY_ID", value_name = "ID")]
    key_id: Option<String>,
    /// The Secret Key (better: the ARMOR_PSK_SECRET environment variable).
    #[arg(
        long,
        env = "ARMOR_PSK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    secret: Option<String>,
}

impl KeyArgs {
    pub(crate) fn signer(&self) -> Result<Signer, String> {
        let (Some(key_id), Some(secret)) = (&self.key_id, &self.secret) else {
            return Err(
                "no key to sign with: set ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET \
                 (`eval \"$(armor-psk keygen --export)\"` makes a pair), or pass --key-id and --secret"
                    .into(),
            );
        };
        if secret.is_empty() {
            return Err(
                "the secret is empty: ARMOR_PSK_SECRET (or --secret) must hold the Secret Key"
                    .into(),
            );
        }
        Signer::new(key_id.as_str(), secret.as_str())
            .map_err(|e| format!("the key id {key_id:?}: {e}"))
    }

    /// The key id (for `explain`).
    pub(crate) fn key_id(&self) -> Result<&str, String> {
        self.key_id
            .as_deref()
            .ok_or_else(|| "no key id: set ARMOR_PSK_KEY_ID or pass --key-id".to_owned())
    }

    /// The secret (for `explain`).
    pub(crate) fn secret(&self) -> Result<&str, String> {
        self.secret
            .as_deref()
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| "no secret: set ARMOR_PSK_SECRET (or pass --secret)".to_owned())
    }
}

/// The body of the request.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(crate) struct BodyArgs {
    /// The body, as given (no newline added); `@FILE` reads a file's exact
    /// bytes, `@-` standard input (as curl's -d).
    #[arg(short = 'd', long, value_name = "STRING|@FILE")]
    pub(crate) data: Option<String>,
    /// The body, the file's exact bytes (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub(crate) data_file: Option<PathBuf>,
}

impl BodyArgs {
    pub(crate) fn read(&self) -> Result<Vec<u8>, String> {
        match (&self.data, &self.data_file) {
            (Some(data), _) if data == "@-" => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                Ok(body)
            }
            (Some(data), _) if data.starts_with('@') => {
                let path = &data[1..];
                std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
            }
            (Some(data), _) => Ok(data.clone().into_bytes()),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                Ok(body)
            }
            (None, Some(path)) => {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            (None, None) => Ok(Vec::new()),
        }
    }
}
