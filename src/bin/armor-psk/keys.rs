//! `armor-psk keys`: the key life cycle in PostgreSQL, the way AMP hands
//! keys out.

use std::process::ExitCode;
use std::time::Duration;

use armor_psk::{
    Clock, SystemClock,
    keys::postgres::{Kek, PostgresKeyStore, Sealing},
};
use clap::{Args, Subcommand};

/// Where the keys are, and how their secrets are sealed. The database URL
/// and the KEK come from the environment or a file, never from an
/// argument (arguments show in `ps` and in shell history).
#[derive(Debug, Args)]
pub struct Database {
    /// A file holding the key-encryption key (32 bytes, standard base64);
    /// or set ARMOR_PSK_KEK.
    #[arg(long, env = "ARMOR_PSK_KEK_FILE", value_name = "PATH")]
    kek_file: Option<std::path::PathBuf>,
    /// Keep secrets in the clear when no KEK is given (not recommended).
    #[arg(long)]
    allow_plaintext: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the tables if they are missing (safe to run again); on the
    /// first run after an upgrade, authenticate the rows under the KEK.
    #[command(
        after_help = "Examples:\n  export ARMOR_PSK_DATABASE_URL=postgres://app@127.0.0.1/app\n  armor-psk keys --kek-file /run/secrets/kek migrate"
    )]
    Migrate,
    /// Add a key; prints its Key ID and Secret Key once.
    #[command(
        after_help = "Examples:\n  armor-psk keys add --label billing\n  armor-psk keys add --label ci --user 4922"
    )]
    Add {
        /// A label to find it by.
        #[arg(long, default_value = "")]
        label: String,
        /// The user it belongs to.
        #[arg(long)]
        user: Option<i64>,
    },
    /// List the keys, their secret versions and validity (never a secret).
    #[command(after_help = "Examples:\n  armor-psk keys list")]
    List,
    /// Add a new secret to a key and print it once; the key's other
    /// secrets stay valid for the overlap, then expire.
    #[command(
        after_help = "Examples:\n  armor-psk keys rotate 6f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b --overlap 1h\n  armor-psk keys rotate \"$ARMOR_PSK_KEY_ID\" --overlap 30m"
    )]
    Rotate {
        /// The key to rotate.
        key_id: String,
        /// How long the old secret keeps working (e.g. 1h, 30m).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        overlap: Duration,
    },
    /// Revoke a key: every instance refuses it within a second, and its
    /// secrets are deleted.
    #[command(
        after_help = "Examples:\n  armor-psk keys revoke 6f1c2b3a-9d8e-4f70-8a6b-5c4d3e2f1a0b"
    )]
    Revoke {
        /// The key to revoke.
        key_id: String,
    },
}

async fn store(database: &Database) -> Result<PostgresKeyStore, String> {
    let kek = match (&database.kek_file, std::env::var("ARMOR_PSK_KEK")) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read the KEK file {}: {error}", path.display()))?,
        ),
        (None, Ok(kek)) => Some(kek),
        (None, Err(_)) => None,
    };
    let sealing = match (kek, database.allow_plaintext) {
        (Some(kek), _) => Sealing::Kek(Kek::from_base64(&kek).map_err(|e| e.to_string())?),
        (None, true) => Sealing::Plaintext,
        (None, false) => {
            return Err(
                "no key-encryption key: set ARMOR_PSK_KEK (32 bytes, base64) or pass \
                 --kek-file PATH, or pass --allow-plaintext"
                    .into(),
            );
        }
    };
    let url = std::env::var("ARMOR_PSK_DATABASE_URL").map_err(|_| {
        "no database: set ARMOR_PSK_DATABASE_URL (postgres://user@host:port/db)".to_owned()
    })?;
    // Neither the URL nor its password is ever part of a message.
    PostgresKeyStore::connect(&url, sealing)
        .await
        .map_err(|e| crate::describe(&e))
}

pub fn run(database: &Database, command: &KeysCommand) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(async {
        let store = store(database).await?;
        match command {
            KeysCommand::Migrate => {
                store.migrate().await.map_err(|e| crate::describe(&e))?;
                println!("migrated");
            }
            KeysCommand::Add { label, user } => {
                let key = store
                    .add_key(label, *user)
                    .await
                    .map_err(|e| crate::describe(&e))?;
                println!("Key ID:     {}", key.key_id);
                println!("Secret Key: {}", key.secret);
            }
            KeysCommand::List => {
                for key in store.list().await.map_err(|e| crate::describe(&e))? {
                    let state = key
                        .revoked_at
                        .map_or("active".to_owned(), |at| format!("revoked at {at}"));
                    println!(
                        "{}  label={:?}  user={}  created {}  {state}",
                        key.key_id,
                        key.label,
                        key.user_id.map_or("-".to_owned(), |user| user.to_string()),
                        key.created_at,
                    );
                    for (version, from, until) in key.secrets {
                        let bound =
                            |time: Option<i64>| time.map_or("-".to_owned(), |t| t.to_string());
                        println!(
                            "    secret v{version}  not before {}  not after {}",
                            bound(from),
                            bound(until)
                        );
                    }
                }
            }
            KeysCommand::Rotate { key_id, overlap } => {
                let (version, secret) = store
                    .rotate(key_id, *overlap, SystemClock.now())
                    .await
                    .map_err(|e| crate::describe(&e))?;
                println!("Version:    {version}");
                println!("Secret Key: {secret}");
            }
            KeysCommand::Revoke { key_id } => {
                if !store
                    .revoke(key_id)
                    .await
                    .map_err(|e| crate::describe(&e))?
                {
                    return Err(format!("no active key {key_id:?}"));
                }
                println!("revoked {key_id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
