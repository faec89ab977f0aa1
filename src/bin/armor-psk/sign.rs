//! `armor-psk sign`: the Authorization header for a request.

use std::process::ExitCode;

use armor_psk::{Clock, SystemClock};
use clap::Args;

use crate::args::{BodyArgs, KeyArgs};

#[derive(Debug, Args)]
pub(crate) struct SignArgs {
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

/// The path a `sign` target signs: a URL's path (its query dropped, as
/// the server does), or the path given, which must start with `/`. A
/// fragment is refused: no client sends one, so its signature would
/// never verify.
fn signed_target(target: &str) -> Result<String, String> {
    if let Some((_, fragment)) = target.split_once('#') {
        return Err(format!(
            "{target:?} has a fragment (#{fragment}), which no client sends: sign the path without it"
        ));
    }
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

pub(crate) fn run(args: &SignArgs) -> Result<ExitCode, String> {
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
            let fresh = armor_psk::protocol::new_uuid_v4();
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
