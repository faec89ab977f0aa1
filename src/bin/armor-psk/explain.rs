//! `armor-psk explain`: would this header verify, and if not, why.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use armor_psk::{
    Clock, SystemClock,
    keys::{Key, Secret},
    protocol::diagnose::{ClientMistake, RefusedRequest},
    protocol::{BodyDigest, BodySlot, Canonical, Credentials, VerifyOptions, signed_path, verify},
};
use clap::Args;
use subtle::ConstantTimeEq;

use crate::args::{BodyArgs, KeyArgs};

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
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

pub(crate) fn run(args: &ExplainArgs) -> Result<ExitCode, String> {
    args.key.signer()?;
    let body = args.body.read()?;
    let options = VerifyOptions::default()
        .with_window(Duration::from_secs(args.window))
        .map_err(|e| format!("--window: {e}"))?;
    let report = Explanation::new(&Case {
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

/// What the user gave.
pub struct Case<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub header: &'a str,
    pub now: u64,
    pub options: &'a VerifyOptions,
}

/// The findings, printed one per line.
pub struct Explanation {
    lines: Vec<String>,
    verifies: bool,
}

impl Explanation {
    pub fn verifies(&self) -> bool {
        self.verifies
    }

    pub fn new(case: &Case<'_>) -> Self {
        let mut lines = Vec::new();
        let refused = |mut lines: Vec<String>, code: &str| {
            lines.push(format!("verdict:    REFUSED ({code})"));
            Self {
                lines,
                verifies: false,
            }
        };
        let options = case.options;
        // The server's own path rule: the query is not signed, and the
        // target must be a path starting with '/'.
        let path = match signed_path(case.path, options) {
            Ok(path) => path,
            Err(rejection) => {
                lines.push(format!(
                    "path:       {:?} is refused: {} ({})",
                    case.path,
                    rejection.code(),
                    rejection.message()
                ));
                return refused(lines, rejection.code());
            }
        };
        let value = strip_header_name(case.header.trim());
        let credentials = match Credentials::parse(value.as_bytes()) {
            Ok(credentials) => credentials,
            Err(rejection) => {
                lines.push(format!(
                    "header:     does not parse: {} ({})",
                    rejection.code(),
                    rejection.message()
                ));
                return refused(lines, rejection.code());
            }
        };
        lines.push(format!(
            "header:     parses: key id {}, nonce {}, timestamp {}",
            credentials.key_id(),
            credentials.nonce(),
            credentials.timestamp()
        ));

        let key_matches = credentials.key_id() == case.key_id;
        if key_matches {
            lines.push("key id:     matches --key-id".into());
        } else {
            lines.push(format!(
                "key id:     WRONG: the header names {}, but the secret given is for {} \
                 (the server looks the secret up by the header's key id)",
                credentials.key_id(),
                case.key_id
            ));
        }

        let skew = i128::from(credentials.timestamp()) - i128::from(case.now);
        let in_window = options
            .check_window(credentials.timestamp(), case.now)
            .is_ok();
        if credentials.timestamp() > 100_000_000_000 {
            lines.push(format!(
                "timestamp:  {} looks like milliseconds: ARMOR-PSK timestamps are Unix seconds ({} here)",
                credentials.timestamp(),
                credentials.timestamp() / 1000
            ));
        }
        lines.push(format!(
            "timestamp:  {} is {} the server's clock ({}; window ±{} s): {}",
            credentials.timestamp(),
            describe_skew(skew),
            case.now,
            options.window().as_secs(),
            if in_window { "ok" } else { "OUT OF WINDOW" }
        ));

        let body = BodyDigest::of(case.body);
        let secret = Secret::new(case.secret);
        let attempt = Attempt {
            key_id: credentials.key_id(),
            method: case.method,
            path: &path,
            nonce: credentials.nonce(),
            timestamp: credentials.timestamp(),
            slot: body.slot(),
        };
        let canonical = attempt.canonical();
        lines.push(format!(
            "canonical:  {:?} (key id + method + path + nonce + timestamp + body slot)",
            canonical.to_text(&attempt.slot)
        ));
        lines.push(format!(
            "sha256:     {} (of the canonical string; compare with your client's)",
            canonical.sha256_hex(&attempt.slot)
        ));
        lines.push(format!(
            "body slot:  {}",
            if case.body.is_empty() {
                "empty (the body is empty)".to_owned()
            } else {
                format!("base64(SHA-512(body)) of {} bytes", case.body.len())
            }
        ));

        let signature_ok = attempt.matches(&secret, &credentials);
        if signature_ok {
            lines.push("signature:  matches".into());
        } else {
            lines.push("signature:  DOES NOT MATCH the request as given".into());
            let hints = diagnose(case, &credentials, &attempt, &secret);
            if hints.is_empty() {
                lines.push(
                    "            no common mistake explains it: check the secret, and compare \
                     the client's canonical string with the one above"
                        .into(),
                );
            }
            for hint in hints {
                lines.push(format!("  the client's mistake: {hint}"));
            }
        }

        // The verdict is the server's own check, on the same values.
        let key = Key::from(secret.clone());
        let key = key_matches.then_some(&key);
        let verdict = verify(
            case.method,
            &path,
            &credentials,
            &body,
            key,
            case.now,
            options,
        );
        match verdict {
            Ok(_) => {
                lines.push(
                    "verdict:    WOULD VERIFY (and be refused as replayed if its nonce or signature was used before)".to_owned(),
                );
                Self {
                    lines,
                    verifies: true,
                }
            }
            Err(rejection) => refused(lines, rejection.code()),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lines.iter().try_for_each(|line| writeln!(f, "{line}"))
    }
}

/// One guess at what the client signed.
#[derive(Clone)]
struct Attempt<'a> {
    key_id: &'a str,
    method: &'a str,
    path: &'a str,
    nonce: &'a str,
    timestamp: u64,
    slot: BodySlot,
}

impl Attempt<'_> {
    fn canonical(&self) -> Canonical<'_> {
        Canonical {
            key_id: self.key_id,
            method: self.method,
            path: self.path,
            nonce: self.nonce,
            timestamp: self.timestamp,
        }
    }

    fn matches(&self, secret: &Secret, credentials: &Credentials) -> bool {
        self.canonical()
            .sign(secret, &self.slot)
            .ct_eq(credentials.signature())
            .into()
    }
}

/// Common client mistakes (the library's own diagnosis, which the mock
/// uses too), and the two only this command can tell: a secret decoded
/// before use, and a canonical string made with another key id.
fn diagnose(
    case: &Case<'_>,
    credentials: &Credentials,
    base: &Attempt<'_>,
    secret: &Secret,
) -> Vec<String> {
    let query = case.path.split_once('?').map(|(_, query)| query);
    let refused = RefusedRequest {
        key_id: credentials.key_id(),
        method: case.method,
        path: base.path,
        query,
        body: case.body,
        nonce: credentials.nonce(),
        timestamp: credentials.timestamp(),
        signature: credentials.signature(),
    };
    let mut hints: Vec<String> = refused
        .mistakes([secret])
        .into_iter()
        .map(|mistake| format!("{}: {}", mistake.code(), mistake.hint()))
        .collect();
    if refused.secret_was_decoded(case.secret) {
        let mistake = ClientMistake::SecretBase64Decoded;
        hints.push(format!("{}: {}", mistake.code(), mistake.hint()));
    }
    if credentials.key_id() != case.key_id {
        let attempt = Attempt {
            key_id: case.key_id,
            ..base.clone()
        };
        if attempt.matches(secret, credentials) {
            hints.push(
                "the canonical string uses --key-id while the header names another key id".into(),
            );
        }
    }
    hints
}

/// `Authorization: ARMOR-PSK ...` → `ARMOR-PSK ...`.
fn strip_header_name(value: &str) -> &str {
    match value.split_once(':') {
        Some((name, rest)) if name.trim().eq_ignore_ascii_case("authorization") => rest.trim(),
        _ => value,
    }
}

fn describe_skew(skew: i128) -> String {
    match skew {
        0 => "equal to".into(),
        s if s > 0 => format!("{} ahead of", human_seconds(s.unsigned_abs())),
        s => format!("{} behind", human_seconds(s.unsigned_abs())),
    }
}

/// `96138779` → `3 y 17 d`, `96138` → `26 h 42 min`, `400` → `400 s`.
fn human_seconds(seconds: u128) -> String {
    const MINUTE: u128 = 60;
    const HOUR: u128 = 60 * MINUTE;
    const DAY: u128 = 24 * HOUR;
    const YEAR: u128 = 365 * DAY;
    match seconds {
        s if s < 10 * MINUTE => format!("{s} s"),
        s if s < DAY => format!("{} h {} min", s / HOUR, s % HOUR / MINUTE),
        s if s < YEAR => format!("{} d {} h", s / DAY, s % DAY / HOUR),
        s => format!("{} y {} d", s / YEAR, s % YEAR / DAY),
    }
}
