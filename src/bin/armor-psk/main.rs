//! `armor-psk`: a mock of Armor's API, and the client-side tools to sign,
//! send and debug ARMOR-PSK requests.

mod explain;
mod keys;
mod record;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use armor_psk::mock::{ACCOUNT_CONTEXT, ApiKey, Fixtures, MockArmorServer};
use armor_psk::{Clock, Signer, SystemClock, VerifyOptions};
use clap::{Args, Parser, Subcommand};

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
    Mock(MockArgs),
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
    Sign(SignArgs),
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
    Request(RequestArgs),
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
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
struct MockArgs {
    /// The address to listen on: `HOST:PORT` (`localhost:3000`,
    /// `127.0.0.1:0` for a free port).
    #[arg(long, default_value = "127.0.0.1:3000", value_name = "HOST:PORT")]
    listen: String,
    /// A key for the first user, as KEY_ID=SECRET (repeatable). A secret
    /// on the command line shows in `ps`; prefer --fixtures for real ones.
    #[arg(long = "key", value_name = "ID=SECRET")]
    keys: Vec<String>,
    /// Users, accounts and keys from a JSON file (the shape of
    /// armor_psk::mock::Fixtures); default: one user with two accounts.
    #[arg(long, value_name = "FILE")]
    fixtures: Option<PathBuf>,
    /// The timestamp window, in seconds either way.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    window: u64,
    /// Shift the server's clock by this many seconds (negative: back), to
    /// test a client's handling of clock skew.
    #[arg(
        long,
        default_value_t = 0,
        allow_negative_numbers = true,
        value_name = "SECONDS"
    )]
    clock_offset: i64,
    /// Answer 400 MissingAccountContext to a request without
    /// X-Account-Context (except /me), instead of acting on the user's
    /// primary account.
    #[arg(long)]
    require_account_context: bool,
    /// Stubbed endpoints: a JSON file, or a directory of `*.json` files,
    /// each holding one stub or an array of them:
    /// {"method": "GET", "path": "/tickets/{id}", "status": 200,
    ///  "headers": {"X-Total-Count": "2"}, "body": [...], "account": 1024}
    #[arg(long, value_name = "PATH")]
    stubs: Option<PathBuf>,
    /// Serve every operation of an OpenAPI 3.x or Swagger 2.0 document
    /// (JSON or YAML), or of every `*.json`/`*.yaml`/`*.yml` in a
    /// directory (repeatable): requests checked as it documents them,
    /// answered with its examples or values generated from its schemas.
    /// `GET /__mock/operations` lists what is served.
    #[arg(long, value_name = "PATH")]
    openapi: Vec<PathBuf>,
    /// Record: forward every request that verifies to this API, re-signed
    /// with ARMOR_PSK_UPSTREAM_KEY_ID / ARMOR_PSK_UPSTREAM_SECRET (never
    /// an argument), answer with its answer, and write it to --record-to
    /// as a stub file (`mock --stubs DIR` plays it back).
    #[arg(long, value_name = "URL", requires = "record_to")]
    record_from: Option<String>,
    /// Where recordings go (created if missing).
    #[arg(long, value_name = "DIR", requires = "record_from")]
    record_to: Option<PathBuf>,
    /// A header or JSON field never written to a recording (repeatable,
    /// any case): `--redact Set-Cookie --redact email`.
    #[arg(long, value_name = "NAME")]
    redact: Vec<String>,
    /// How many bytes of each request body the journal keeps.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    journal_body_limit: usize,
    /// Turn off the admin API under /__mock/ (journal, keys, clock), which
    /// is on by default.
    #[arg(long)]
    no_admin: bool,
    /// Require `Authorization: Bearer TOKEN` on the admin API (it answers
    /// loopback hosts only either way).
    #[arg(
        long,
        env = "ARMOR_PSK_MOCK_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// Accepted for scripts written before: acting on the primary account
    /// is the default now.
    #[arg(long, hide = true)]
    default_account: bool,
}

/// The key that signs.
#[derive(Debug, Args)]
struct KeyArgs {
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
    fn signer(&self) -> Result<Signer, String> {
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
    fn key_id(&self) -> Result<&str, String> {
        self.key_id
            .as_deref()
            .ok_or_else(|| "no key id: set ARMOR_PSK_KEY_ID or pass --key-id".to_owned())
    }

    /// The secret (for `explain`).
    fn secret(&self) -> Result<&str, String> {
        self.secret
            .as_deref()
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| "no secret: set ARMOR_PSK_SECRET (or pass --secret)".to_owned())
    }
}

/// The body of the request.
#[derive(Debug, Args)]
#[group(multiple = false)]
struct BodyArgs {
    /// The body, as given (no newline added); `@FILE` reads a file's exact
    /// bytes, `@-` standard input (as curl's -d).
    #[arg(short = 'd', long, value_name = "STRING|@FILE")]
    data: Option<String>,
    /// The body, the file's exact bytes (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,
}

impl BodyArgs {
    fn read(&self) -> Result<Vec<u8>, String> {
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

#[derive(Debug, Args)]
struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The method, as it will be sent (GET, POST, ...).
    method: String,
    /// The path as it will be sent (a query, if any, is not signed), or
    /// the whole URL (its path is signed).
    path: String,
    #[command(flatten)]
    body: BodyArgs,
    /// Use this nonce instead of a fresh UUID (for reproducible output).
    #[arg(long)]
    nonce: Option<String>,
    /// Use this Unix timestamp instead of the clock's.
    #[arg(long)]
    timestamp: Option<u64>,
    /// Print a ready curl command line (the target must be the whole URL)
    /// instead of the header alone.
    #[arg(long)]
    curl: bool,
}

#[derive(Debug, Args)]
struct RequestArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The method.
    method: String,
    /// The full URL (http:// or https://).
    url: String,
    #[command(flatten)]
    body: BodyArgs,
    /// Send X-Account-Context with this account id.
    #[arg(long, value_name = "ID")]
    account: Option<u64>,
    /// An extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Send the body as JSON: sets `Content-Type` and `Accept` to
    /// `application/json` (a body alone is sent as JSON too, unless -H
    /// sets a Content-Type).
    #[arg(long)]
    json: bool,
    /// Print the status line and the response headers before the body.
    #[arg(short = 'i', long)]
    include: bool,
    /// Print the request sent (the Authorization value shortened) and the
    /// response's status and headers on standard error.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Write the body to FILE instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Follow redirects, signing each new request for its own path
    /// (without it a redirect is shown, not followed).
    #[arg(short = 'L', long)]
    location: bool,
    /// Give up after this many seconds.
    #[arg(
        long = "max-time",
        alias = "timeout",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    timeout: u64,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The method the request was sent with.
    method: String,
    /// The path the request was sent to.
    path: String,
    /// The Authorization header value (with or without `Authorization:`).
    #[arg(long, value_name = "VALUE")]
    header: String,
    #[command(flatten)]
    body: BodyArgs,
    /// The server's time to check against (default: now).
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<u64>,
    /// The window, in seconds either way.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    window: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Mock(args) => mock(args),
        Command::Keygen { export } => keygen(export),
        Command::Sign(args) => sign(&args),
        Command::Request(args) => request(&args),
        Command::Explain(args) => explain(&args),
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

fn keygen(export: bool) -> Result<ExitCode, String> {
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

/// The path a `sign` target signs: a URL's path (its query dropped, as
/// the server does), or the path given, which must start with `/`.
fn signed_target(target: &str) -> Result<String, String> {
    if target.contains("://") {
        let uri: http::Uri = target
            .parse()
            .map_err(|_| format!("{target:?} is not a URL"))?;
        return Ok(uri.path().to_owned());
    }
    if !target.starts_with('/') {
        return Err(format!(
            "{target:?} does not start with `/`: give the path as sent (`/accounts`), or the whole URL"
        ));
    }
    Ok(target.split('?').next().unwrap_or(target).to_owned())
}

fn sign(args: &SignArgs) -> Result<ExitCode, String> {
    let signer = args.key.signer()?;
    let body = args.body.read()?;
    let path = signed_target(&args.path)?;
    if http::Method::from_bytes(args.method.as_bytes()).is_err() {
        return Err(format!("{:?} is not an HTTP method", args.method));
    }
    if args.method.chars().any(|c| c.is_ascii_lowercase()) {
        eprintln!(
            "warning: the method {:?} is signed as given; send it exactly so (most clients send {:?})",
            args.method,
            args.method.to_ascii_uppercase()
        );
    }
    let header = match (&args.nonce, args.timestamp) {
        (None, None) => signer.sign(&args.method, &path, &body),
        (nonce, timestamp) => {
            let fresh = armor_psk::new_uuid_v4();
            signer
                .sign_at(
                    &args.method,
                    &path,
                    &body,
                    nonce.as_deref().unwrap_or(&fresh),
                    timestamp.unwrap_or_else(|| SystemClock.now()),
                )
                .map_err(|e| format!("--nonce: {e}"))?
        }
    };
    if !args.curl {
        println!("{header}");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.path.contains("://") {
        return Err("--curl needs the whole URL (http://host:port/path), not a path".into());
    }
    let mut line = format!(
        "curl -sS -X {} -H {}",
        shell_quote(&args.method),
        shell_quote(&format!("Authorization: {header}"))
    );
    if !body.is_empty() {
        line.push_str(" -H 'Content-Type: application/json' ");
        match (&args.body.data, &args.body.data_file) {
            // The file itself: curl sends its exact bytes.
            (Some(data), _) if data.starts_with('@') && data != "@-" => {
                line.push_str("--data-binary ");
                line.push_str(&shell_quote(data));
            }
            (None, Some(file)) if file.as_os_str() != "-" => {
                line.push_str("--data-binary ");
                line.push_str(&shell_quote(&format!("@{}", file.display())));
            }
            // Literal text: --data-raw never reads a file named by `@`.
            _ => {
                let Ok(text) = std::str::from_utf8(&body) else {
                    return Err(
                        "--curl: the body is not text; put it in a file and give -d @FILE".into(),
                    );
                };
                if text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t')
                {
                    return Err(
                        "--curl: the body holds control characters; put it in a file \
                                and give -d @FILE"
                            .into(),
                    );
                }
                line.push_str("--data-raw ");
                line.push_str(&shell_quote(text));
            }
        }
    }
    line.push(' ');
    line.push_str(&shell_quote(&args.path));
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// `text` in single quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `request`: a signed curl. The body alone goes to standard output (its
/// exact bytes; pretty JSON on a terminal), the status to standard error;
/// exit 0 on 2xx, 1 on another status, 2 on a usage or connection error.
fn request(args: &RequestArgs) -> Result<ExitCode, String> {
    use std::io::IsTerminal as _;
    let signer = args.key.signer()?;
    let body = args.body.read()?;
    let mut url = args.url.clone();
    let mut method = http::Method::from_bytes(args.method.as_bytes())
        .map_err(|_| format!("{:?} is not an HTTP method", args.method))?;
    let mut body = Some(body);
    let mut extra = Vec::new();
    let mut has_content_type = false;
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(format!("-H {header:?}: expected `Name: value`"));
        };
        has_content_type |= name.trim().eq_ignore_ascii_case("content-type");
        extra.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .allow_non_standard_methods(true)
        .timeout_global(Some(Duration::from_secs(args.timeout)))
        .build()
        .into();
    for _ in 0..10 {
        let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
        if uri.scheme().is_none() || uri.host().is_none() {
            return Err(format!(
                "{url:?} is not a URL: it needs http:// or https:// and a host"
            ));
        }
        let payload = body.clone().unwrap_or_default();
        let header = signer.sign(method.as_str(), uri.path(), &payload);
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .header(http::header::AUTHORIZATION, &header);
        if let Some(account) = args.account {
            builder = builder.header(ACCOUNT_CONTEXT, account.to_string());
        }
        if (args.json || !payload.is_empty()) && !has_content_type {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        if args.json {
            builder = builder.header(http::header::ACCEPT, "application/json");
        }
        for (name, value) in &extra {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(payload)
            .map_err(|e| format!("the request cannot be built: {e}"))?;
        if args.verbose {
            eprintln!(
                "> {} {} HTTP/1.1",
                request.method(),
                uri.path_and_query().map_or("/", |pq| pq.as_str())
            );
            for (name, value) in request.headers() {
                let value = value.to_str().unwrap_or("…");
                if name == http::header::AUTHORIZATION {
                    eprintln!("> {name}: {}…", &value[..value.len().min(24)]);
                } else {
                    eprintln!("> {name}: {value}");
                }
            }
        }
        let mut response = agent
            .run(request)
            .map_err(|error| plain(&error, &uri, args.timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        if args.verbose {
            eprintln!(
                "< HTTP/1.1 {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            for (name, value) in &headers {
                eprintln!("< {name}: {}", value.to_str().unwrap_or("…"));
            }
        }
        let location = headers
            .get(http::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(|location| resolve(&uri, location));
        let same_origin = location.as_ref().is_some_and(|next| {
            next.parse::<http::Uri>().is_ok_and(|next| {
                next.scheme() == uri.scheme() && next.authority() == uri.authority()
            })
        });
        if status.is_redirection() {
            if let (true, true, Some(next)) = (args.location, same_origin, &location) {
                if status == http::StatusCode::SEE_OTHER
                    || (matches!(status.as_u16(), 301 | 302) && method == http::Method::POST)
                {
                    method = http::Method::GET;
                    body = None;
                }
                url = next.clone();
                continue;
            }
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|error| format!("the answer could not be read: {error}"))?;
        let reason = status.canonical_reason().unwrap_or("");
        let mut out: Box<dyn std::io::Write> = match &args.output {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .map_err(|error| format!("cannot write {}: {error}", path.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        };
        if args.include {
            let mut head = format!("HTTP/1.1 {} {reason}\r\n", status.as_u16());
            for (name, value) in &headers {
                head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
            }
            head.push_str("\r\n");
            out.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        }
        let terminal = args.output.is_none() && std::io::stdout().is_terminal();
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(json) if terminal => {
                let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
                writeln!(out, "{pretty}").map_err(|e| e.to_string())?;
            }
            _ => out.write_all(&bytes).map_err(|e| e.to_string())?,
        }
        out.flush().map_err(|e| e.to_string())?;
        eprintln!("HTTP {} {reason}", status.as_u16());
        if status.is_redirection() {
            if let Some(next) = &location {
                if args.location && !same_origin {
                    eprintln!(
                        "redirect to {next} not followed: another origin, and the key is not signed for it"
                    );
                } else {
                    eprintln!(
                        "redirect to {next} not followed (add -L to follow it, signed for its path)"
                    );
                }
            }
        }
        if status == http::StatusCode::UNAUTHORIZED {
            if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                if let Some(code) = json.get("error").and_then(|code| code.as_str()) {
                    eprintln!(
                        "refused: {code}; `armor-psk explain --header '<the Authorization value>' {} {}` says why",
                        method,
                        uri.path()
                    );
                }
            }
        }
        return Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    Err("more than 10 redirects".into())
}

/// A redirect's `Location` against the URL that answered it.
fn resolve(base: &http::Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let origin = format!(
        "{}://{}",
        base.scheme_str().unwrap_or("http"),
        base.authority().map_or("", |authority| authority.as_str())
    );
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{origin}{dir}{location}")
    }
}

/// What went wrong, in words (not the HTTP library's).
fn plain(error: &ureq::Error, uri: &http::Uri, timeout: u64) -> String {
    let target = uri
        .authority()
        .map_or_else(|| uri.to_string(), |a| a.to_string());
    match error {
        ureq::Error::Timeout(_) => {
            format!("no answer from {target} within {timeout} s (--max-time)")
        }
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("cannot connect to {target}: nothing listens there (connection refused)")
        }
        ureq::Error::HostNotFound => {
            format!("cannot connect to {target}: the host name is not known")
        }
        ureq::Error::Io(io) => format!("cannot talk to {target}: {io}"),
        other => format!("cannot talk to {target}: {other}"),
    }
}

fn explain(args: &ExplainArgs) -> Result<ExitCode, String> {
    args.key.signer()?;
    let body = args.body.read()?;
    let options = VerifyOptions::default()
        .with_window(Duration::from_secs(args.window))
        .map_err(|e| format!("--window: {e}"))?;
    let report = explain::Explanation::new(&explain::Case {
        key_id: args.key.key_id()?,
        secret: args.key.secret()?,
        method: &args.method,
        path: &args.path,
        body: &body,
        header: &args.header,
        now: args.now.unwrap_or_else(|| SystemClock.now()),
        options: &options,
    });
    print!("{report}");
    Ok(if report.verifies() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `HOST:PORT` to one address (`localhost` resolves to loopback).
fn resolve_listen(listen: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    listen
        .to_socket_addrs()
        .map_err(|error| format!("--listen {listen:?}: not an address to listen on ({error}); give HOST:PORT, e.g. 127.0.0.1:3000"))?
        .next()
        .ok_or_else(|| format!("--listen {listen:?}: the name resolves to no address"))
}

/// Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn mock(args: MockArgs) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start tokio: {e}"))?;
    let listen = resolve_listen(&args.listen)?;
    runtime.block_on(async move {
        let mut builder = MockArmorServer::builder()
            .with_listen(listen)
            .with_window(Duration::from_secs(args.window))
            .on_request(|entry| println!("{entry}"));
        if let Some(path) = &args.fixtures {
            builder = builder.with_fixtures(Fixtures::from_file(path).map_err(|e| e.to_string())?);
        }
        if args.require_account_context {
            builder = builder.require_account_context();
        }
        if args.no_admin {
            builder = builder.without_admin();
        } else if !listen.ip().is_loopback() {
            eprintln!(
                "warning: the admin API (keys, clock, journal under /__mock/) is on and the mock \
                 listens on {}; it answers loopback hosts only{}",
                listen,
                if args.admin_token.is_some() {
                    ", with the admin token"
                } else {
                    ": consider --admin-token or --no-admin"
                }
            );
        }
        if let Some(token) = &args.admin_token {
            builder = builder.with_admin_token(token.clone());
        }
        if let Some(path) = &args.stubs {
            builder = builder
                .stubs_from(path)
                .map_err(|error| format!("--stubs: {error}"))?;
        }
        builder = builder.with_journal_body_limit(args.journal_body_limit);
        if let (Some(url), Some(dir)) = (&args.record_from, &args.record_to) {
            let upstream: http::Uri = url
                .parse()
                .map_err(|_| format!("--record-from {url:?} is not a URL"))?;
            if !matches!(upstream.scheme_str(), Some("http" | "https"))
                || upstream.host().is_none()
                || upstream.query().is_some()
                || url.contains('@')
            {
                return Err(
                    "--record-from needs http:// or https://, a host, no query and no user or \
                     password (the upstream key signs)"
                        .into(),
                );
            }
            let var = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|value| !value.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "--record-from needs {name} (the upstream's key; never an argument)"
                        )
                    })
            };
            let signer = Signer::new(
                var("ARMOR_PSK_UPSTREAM_KEY_ID")?,
                var("ARMOR_PSK_UPSTREAM_SECRET")?,
            )
            .map_err(|error| format!("the upstream key: {error}"))?;
            let recorder = record::Recorder {
                url: url.clone(),
                dir: dir.clone(),
                redact: args.redact.clone(),
                signer,
            };
            builder = builder.with_upstream(recorder.upstream()?);
            println!("recording {url} into {}", dir.display());
        }
        for path in &args.openapi {
            builder = builder
                .openapi(path)
                .map_err(|error| format!("--openapi: {error}"))?;
        }
        if !args.openapi.is_empty() {
            for warning in builder.operations().warnings() {
                eprintln!("warning: {warning}");
            }
            println!(
                "serving {} operations from --openapi",
                builder.operations().len()
            );
        }
        let _ = args.default_account;
        for key in &args.keys {
            let Some((id, secret)) = key.split_once('=') else {
                return Err(format!(
                    "--key {key:?}: expected ID=SECRET (a key id, `=`, then its secret)"
                ));
            };
            if id.is_empty() || secret.is_empty() {
                return Err(format!(
                    "--key {id:?}=…: both the key id and the secret must be non-empty"
                ));
            }
            builder = builder.with_key(id, secret);
        }
        let server = builder.start().await.map_err(|e| e.to_string())?;
        server.set_clock_offset(args.clock_offset);
        if server.key_was_generated() {
            println!("generated an API key (shown once):");
            println!("  Key ID:     {}", server.key().key_id());
            println!("  Secret Key: {}", server.key().secret());
        }
        let fixtures = server.fixtures();
        for me in &fixtures.users {
            let accounts: Vec<String> = me.accounts.iter().map(|a| a.id.to_string()).collect();
            println!(
                "user {} ({}): accounts {}",
                me.user.links.user_id,
                me.user.username,
                accounts.join(", ")
            );
        }
        println!("listening on {}", server.url());
        let _ = std::io::stdout().flush();
        stop_signal().await;
        // A second Ctrl-C exits at once.
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopped at once (second Ctrl-C)");
            std::process::exit(130);
        });
        server
            .shutdown_within(MockArmorServer::SHUTDOWN_DEADLINE)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ExitCode::SUCCESS)
    })
}
