//! `armor-psk`: a mock of Armor's API, and the client-side tools to sign,
//! send and debug ARMOR-PSK requests.

mod args;
mod explain;
mod keygen;
mod keys;
mod mock;
mod record;
mod request;
mod sign;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ARMOR-PSK tools: a mock Armor API server, key generation, and signing,
/// sending and explaining signed requests.
///
/// Subcommands that sign read the Secret Key from ARMOR_PSK_SECRET
/// (preferred: it does not show in `ps`) or from --secret.
#[derive(Debug, Parser)]
#[command(name = "armor-psk", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a mock of Armor's API (GET /me, /accounts, /accounts/{id}) behind
    /// ARMOR-PSK until Ctrl-C, logging each request on one line.
    #[command(after_help = "\
Examples:
  armor-psk mock
  armor-psk mock --listen 127.0.0.1:8080 --key my-key=my-secret
  armor-psk mock --fixtures users.json

With no key given (here or in the fixtures), one is generated and its Key ID
and Secret Key are printed once. Prints `listening on http://ADDR` once bound.")]
    Mock(mock::MockArgs),
    /// Print a new Key ID (UUID) and Secret Key (32 random bytes, base64url).
    #[command(after_help = "\
Examples:
  armor-psk keygen
  eval \"$(armor-psk keygen --export)\"   # sets ARMOR_PSK_KEY_ID and ARMOR_PSK_SECRET")]
    Keygen {
        /// Print `export ARMOR_PSK_KEY_ID=...` and `export ARMOR_PSK_SECRET=...`
        /// lines for a shell.
        #[arg(long)]
        export: bool,
    },
    /// Print the Authorization header value for a request.
    #[command(after_help = "\
Examples:
  export ARMOR_PSK_SECRET=...
  armor-psk sign --key-id $KEY_ID GET /me
  curl -H \"Authorization: $(armor-psk sign --key-id $KEY_ID GET /me)\" \\
       -H 'X-Account-Context: 1024' http://127.0.0.1:3000/me
  armor-psk sign --key-id $KEY_ID POST /things --data '{\"a\":1}'

The body signed must be the exact bytes sent (curl --data-binary, not --data
with a file, which strips newlines).")]
    Sign(sign::SignArgs),
    /// Send a signed request (a signed curl): the body alone on standard
    /// output, the status on standard error. Exits 0 on a 2xx answer, 1 on
    /// another status, 2 when it cannot ask.
    #[command(after_help = "\
Examples:
  armor-psk request GET http://127.0.0.1:3000/me --account 1024 | jq .user
  armor-psk request -i GET http://127.0.0.1:3000/tickets/list
  armor-psk request --json -d @ticket.json POST http://127.0.0.1:3000/tickets
  echo '{\"a\":1}' | armor-psk request -d @- POST http://127.0.0.1:3000/things
  armor-psk request -L -v GET http://127.0.0.1:3000/old")]
    Request(request::RequestArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "\
Examples:
  armor-psk completions bash > ~/.local/share/bash-completion/completions/armor-psk
  armor-psk completions zsh > \"${fpath[1]}/_armor-psk\"
  armor-psk completions fish > ~/.config/fish/completions/armor-psk.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Keys in PostgreSQL: migrate, add, list, rotate, revoke.
    #[command(after_help = "\
Examples:
  export ARMOR_PSK_DATABASE_URL=postgres://app@127.0.0.1/app ARMOR_PSK_KEK=$(head -c 32 /dev/urandom | base64)
  armor-psk keys migrate
  armor-psk keys add --label billing --user 4922
  armor-psk keys list
  armor-psk keys rotate 6f1c... --overlap 1h
  armor-psk keys revoke 6f1c...

Secrets are sealed with AES-256-GCM under the KEK; errors go to stderr with
exit code 2 and never show a secret or a password.")]
    Keys {
        #[command(flatten)]
        database: keys::Database,
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Say whether an Authorization header would verify for a request and,
    /// if not, why. The secret is never printed. Exits 0 if it would verify,
    /// 1 if not.
    #[command(after_help = "\
Examples:
  armor-psk explain --key-id $KEY_ID GET /me --header 'ARMOR-PSK 6f1c…:k9S…==:n-1:1700000000'
  armor-psk explain --key-id $KEY_ID POST /things --data '{\"a\":1}' \\
      --header \"$(cat captured-header.txt)\"")]
    Explain(explain::ExplainArgs),
}

/// The error and its causes, on one line.
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let chain = std::iter::successors(Some(error), |error| error.source());
    chain
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mock(args) => mock::run(args),
        Command::Keygen { export } => keygen::run(export),
        Command::Sign(args) => sign::run(&args),
        Command::Request(args) => request::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Keys { database, command } => keys::run(&database, &command),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "armor-psk", &mut script);
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::stdout().write_all(&script);
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("armor-psk: {message}");
            ExitCode::from(2)
        }
    }
}
