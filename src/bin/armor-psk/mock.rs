//! `armor-psk mock`: the mock Armor API until Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use armor_psk::Signer;
use armor_psk::mock::{Fixtures, MockArmorServer};
use clap::Args;

use crate::record;

#[derive(Debug, Args)]
pub(crate) struct MockArgs {
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
    /// (repeatable).
    #[arg(long, value_name = "PATH")]
    stubs: Vec<PathBuf>,
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

/// SIGINT and SIGTERM (Ctrl-C on Windows), listened for from the moment this is made: made
/// before the mock says `listening on`, so that a signal sent as soon as
/// that line shows is never lost (nor kills the process by default).
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(windows)]
    ctrl_c: tokio::signal::windows::CtrlC,
}

impl StopSignals {
    fn listen() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen =
                |kind| signal(kind).map_err(|e| format!("cannot listen for stop signals: {e}"));
            Ok(Self {
                interrupt: listen(SignalKind::interrupt())?,
                terminate: listen(SignalKind::terminate())?,
            })
        }
        #[cfg(windows)]
        Ok(Self {
            ctrl_c: tokio::signal::windows::ctrl_c()
                .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?,
        })
    }

    /// The first SIGINT or SIGTERM.
    async fn first(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(windows)]
        let _ = self.ctrl_c.recv().await;
    }

    /// The next Ctrl-C.
    async fn interrupt(mut self) {
        #[cfg(unix)]
        let _ = self.interrupt.recv().await;
        #[cfg(windows)]
        let _ = self.ctrl_c.recv().await;
    }
}

pub(crate) fn run(args: MockArgs) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start tokio: {e}"))?;
    let listen = resolve_listen(&args.listen)?;
    runtime.block_on(async move {
        let mut builder = MockArmorServer::builder()
            .listen(listen)
            .window(Duration::from_secs(args.window))
            .on_request(|entry| println!("{entry}"));
        if let Some(path) = &args.fixtures {
            builder = builder.fixtures(
                Fixtures::from_file(path)
                    .map_err(|e| format!("--fixtures: {}", crate::describe(&e)))?,
            );
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
            builder = builder.admin_token(token.clone());
        }
        for path in &args.stubs {
            builder = builder
                .stubs_from(path)
                .map_err(|error| format!("--stubs: {}", crate::describe(&error)))?;
        }
        builder = builder.journal_body_limit(args.journal_body_limit);
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
            builder = builder.upstream(recorder.upstream()?);
            println!("recording {url} into {}", dir.display());
        }
        for path in &args.openapi {
            builder = builder
                .openapi(path)
                .map_err(|error| format!("--openapi: {}", crate::describe(&error)))?;
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
            builder = builder.key(id, secret);
        }
        let server = builder.start().await.map_err(|e| crate::describe(&e))?;
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
        let mut signals = StopSignals::listen()?;
        println!("listening on {}", server.url());
        let _ = std::io::stdout().flush();
        signals.first().await;
        // A second Ctrl-C exits at once.
        tokio::spawn(async move {
            signals.interrupt().await;
            eprintln!("stopped at once (second Ctrl-C)");
            std::process::exit(130);
        });
        // The deadline is a timer of the runtime: a thread of its own ends
        // the process a second past it even if every runtime thread is
        // busy (a handler computing, say), the stop having been asked for.
        std::thread::spawn(|| {
            std::thread::sleep(MockArmorServer::SHUTDOWN_DEADLINE + Duration::from_secs(1));
            eprintln!("stopped: requests still in progress at the shutdown deadline were dropped");
            std::process::exit(0);
        });
        server
            .shutdown_within(MockArmorServer::SHUTDOWN_DEADLINE)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ExitCode::SUCCESS)
    })
}
