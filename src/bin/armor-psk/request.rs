//! `armor-psk request`: a signed curl.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use armor_psk::mock::ACCOUNT_CONTEXT;
use clap::Args;

use crate::args::{BodyArgs, KeyArgs};

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
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

/// `request`: a signed curl. The body alone goes to standard output (its
/// exact bytes; pretty JSON on a terminal), the status to standard error;
/// exit 0 on 2xx, 1 on another status, 2 on a usage or connection error.
pub(crate) fn run(args: &RequestArgs) -> Result<ExitCode, String> {
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
        if status.is_redirection()
            && let (true, true, Some(next)) = (args.location, same_origin, &location)
        {
            if status == http::StatusCode::SEE_OTHER
                || (matches!(status.as_u16(), 301 | 302) && method == http::Method::POST)
            {
                method = http::Method::GET;
                body = None;
            }
            url = next.clone();
            continue;
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
        if status.is_redirection()
            && let Some(next) = &location
        {
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
        if status == http::StatusCode::UNAUTHORIZED
            && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(code) = json.get("error").and_then(|code| code.as_str())
        {
            eprintln!(
                "refused: {code}; `armor-psk explain --header '<the Authorization value>' {} {}` says why",
                method,
                uri.path()
            );
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
