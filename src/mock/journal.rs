//! What the mock received: one entry per request, for tests to assert on.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// How the mock answered a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The signature verified; the request reached the API (which may
    /// still have answered 403 or 404: see [`JournalEntry::status`]).
    Accepted,
    /// ARMOR-PSK refused it, with this code (`invalid_signature`,
    /// `replayed_request`, ...; see [`RejectionKind`](crate::RejectionKind)).
    Rejected(&'static str),
}

/// One request the mock received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// When it arrived (wall clock, not the shifted clock).
    pub time: SystemTime,
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any (never signed).
    pub query: Option<String>,
    /// The key id of the header, when it had a readable one.
    pub key_id: Option<String>,
    /// The nonce of the header, when it parsed.
    pub nonce: Option<String>,
    /// The `X-Account-Context` header, as sent.
    pub account_context: Option<String>,
    /// The response status.
    pub status: u16,
    /// Accepted, or refused with which code.
    pub outcome: Outcome,
    /// The `ErrorCode` of an API error envelope (403, 404, ...).
    pub error_code: Option<String>,
    /// Client bugs the mock noticed, served or not: `nonce_reused`,
    /// `clock_skew`, `query_signed`, `hashed_empty_body`.
    pub client_issues: Vec<&'static str>,
    /// What a loaded document says is wrong with the request (a 400
    /// `request_invalid`), one line each: `in name: message`.
    pub request_errors: Vec<String>,
    /// The request's body, up to the journal's body limit (the oldest
    /// entries' bodies are dropped past 16 MiB in all).
    pub body: Option<bytes::Bytes>,
    /// The body's whole length.
    pub body_len: usize,
}

impl JournalEntry {
    /// Whether the signature was accepted.
    pub fn accepted(&self) -> bool {
        self.outcome == Outcome::Accepted
    }

    /// The rejection code, or the API's `ErrorCode`, or `None` for a success.
    pub fn reason(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Rejected(code) => Some(code),
            Outcome::Accepted => self.error_code.as_deref(),
        }
    }
}

/// One line: time, method, path, key id, status, reason.
impl fmt::Display for JournalEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} key={} status={} reason={}",
            humantime::format_rfc3339_millis(self.time),
            self.method,
            self.path,
            self.key_id.as_deref().unwrap_or("-"),
            self.status,
            self.reason().unwrap_or("-"),
        )?;
        if !self.client_issues.is_empty() {
            write!(f, " issues={}", self.client_issues.join(","))?;
        }
        Ok(())
    }
}

/// The most body bytes the journal holds in all: past it the oldest
/// entries lose their bodies.
const BODY_BUDGET: usize = 16 << 20;
/// The most bytes the journal holds in all, entries and bodies: past it
/// the oldest entries are dropped.
const BUDGET: usize = 32 << 20;
/// What the journal keeps of each text of a request whose signature was
/// not accepted (path, query, key id, nonce, account, each problem).
const UNVERIFIED_TEXT: usize = 512;
/// What the journal keeps of the body of a request whose signature was
/// not accepted.
const UNVERIFIED_BODY: usize = 2 << 10;
/// The most request problems kept per entry.
const PROBLEMS: usize = 32;

/// `text` cut to at most `limit` bytes (on a character boundary), `…`
/// marking the cut.
fn clip(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut end = limit.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
        text.shrink_to_fit();
    }
}

impl JournalEntry {
    /// What a request whose body could not be read leaves in the journal
    /// (the status and outcome are the caller's).
    pub(crate) fn unread(
        time: SystemTime,
        parts: &http::request::Parts,
        credentials: Option<&crate::protocol::header::Credentials>,
    ) -> Self {
        Self {
            time,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            key_id: credentials.map(|credentials| credentials.key_id().to_owned()),
            nonce: credentials.map(|credentials| credentials.nonce().to_owned()),
            account_context: parts
                .headers
                .get(super::api::ACCOUNT_CONTEXT)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()),
            status: 0,
            outcome: Outcome::Rejected("invalid_body"),
            error_code: None,
            client_issues: Vec::new(),
            request_errors: Vec::new(),
            body: None,
            body_len: 0,
        }
    }

    /// Nothing of a request the signature did not admit is kept beyond a
    /// few KiB: its texts are cut to [`UNVERIFIED_TEXT`] bytes and its body
    /// to [`UNVERIFIED_BODY`]; any entry keeps at most [`PROBLEMS`]
    /// problems.
    fn bounded(mut self) -> Self {
        self.request_errors.truncate(PROBLEMS);
        self.request_errors.shrink_to_fit();
        if self.accepted() {
            return self;
        }
        let texts = [
            Some(&mut self.method),
            Some(&mut self.path),
            self.query.as_mut(),
            self.key_id.as_mut(),
            self.nonce.as_mut(),
            self.account_context.as_mut(),
            self.error_code.as_mut(),
        ];
        for text in texts.into_iter().flatten() {
            clip(text, UNVERIFIED_TEXT);
        }
        for problem in &mut self.request_errors {
            clip(problem, UNVERIFIED_TEXT);
        }
        if let Some(body) = &mut self.body {
            body.truncate(UNVERIFIED_BODY);
        }
        self
    }

    /// The bytes it holds, roughly: its fields and what they point to.
    fn bytes(&self) -> usize {
        let texts = [
            Some(&self.method),
            Some(&self.path),
            self.query.as_ref(),
            self.key_id.as_ref(),
            self.nonce.as_ref(),
            self.account_context.as_ref(),
            self.error_code.as_ref(),
        ];
        std::mem::size_of::<Self>()
            + texts
                .into_iter()
                .flatten()
                .map(String::capacity)
                .sum::<usize>()
            + self.client_issues.capacity() * std::mem::size_of::<&str>()
            + self
                .request_errors
                .iter()
                .map(|problem| problem.capacity() + std::mem::size_of::<String>())
                .sum::<usize>()
            + body_bytes(self)
    }
}

/// A bounded, shared list of entries (oldest dropped first): at most
/// `limit` entries and [`BUDGET`] bytes, their bodies held to
/// [`BODY_BUDGET`] bytes in all.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    held: Arc<Mutex<Held>>,
    limit: usize,
}

#[derive(Debug, Default)]
struct Held {
    entries: VecDeque<JournalEntry>,
    /// The bytes of `entries`, bodies included.
    bytes: usize,
    /// The bytes of their bodies.
    body_bytes: usize,
}

impl Held {
    fn pop_front(&mut self) {
        if let Some(old) = self.entries.pop_front() {
            self.bytes -= old.bytes();
            self.body_bytes -= body_bytes(&old);
        }
    }
}

fn body_bytes(entry: &JournalEntry) -> usize {
    entry.body.as_ref().map_or(0, bytes::Bytes::len)
}

impl Journal {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            held: Arc::default(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn push(&self, entry: JournalEntry) {
        let mut entry = entry.bounded();
        if let Some(body) = &entry.body {
            // A body that shares a larger buffer would keep all of it.
            entry.body = Some(bytes::Bytes::copy_from_slice(body));
        }
        let mut held = self.held.lock();
        if held.entries.len() == self.limit {
            held.pop_front();
        }
        held.bytes += entry.bytes();
        held.body_bytes += body_bytes(&entry);
        held.entries.push_back(entry);
        let Held {
            entries,
            bytes,
            body_bytes: bodies,
        } = &mut *held;
        for old in entries.iter_mut() {
            if *bodies <= BODY_BUDGET {
                break;
            }
            let dropped = body_bytes(old);
            *bodies -= dropped;
            *bytes -= dropped;
            old.body = None;
        }
        while held.bytes > BUDGET && held.entries.len() > 1 {
            held.pop_front();
        }
    }

    pub(crate) fn entries(&self) -> Vec<JournalEntry> {
        self.held.lock().entries.iter().cloned().collect()
    }

    /// The bytes it holds, bodies included.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.held.lock().bytes
    }

    pub(crate) fn clear(&self) {
        *self.held.lock() = Held::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> JournalEntry {
        JournalEntry {
            time: SystemTime::UNIX_EPOCH,
            method: "GET".into(),
            path: path.into(),
            query: None,
            key_id: None,
            nonce: None,
            account_context: None,
            status: 401,
            outcome: Outcome::Rejected("missing_authorization"),
            error_code: None,
            client_issues: Vec::new(),
            request_errors: Vec::new(),
            body: None,
            body_len: 0,
        }
    }

    #[test]
    fn keeps_the_newest_entries_up_to_its_limit() {
        let journal = Journal::new(2);
        for path in ["/a", "/b", "/c"] {
            journal.push(entry(path));
        }
        let paths: Vec<_> = journal.entries().into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["/b", "/c"]);
    }

    #[test]
    fn keeps_a_few_kib_of_a_refused_request_and_its_bytes_bounded() {
        let journal = Journal::new(100_000);
        let long = "a".repeat(60_000);
        for _ in 0..2_000 {
            let mut refused = entry(&format!("/{long}"));
            refused.query = Some(long.clone());
            refused.account_context = Some("é".repeat(30_000));
            refused.body = Some(bytes::Bytes::from(vec![7u8; 2 << 20]));
            refused.body_len = 2 << 20;
            journal.push(refused);
        }
        let entries = journal.entries();
        assert_eq!(entries.len(), 2_000);
        let last = entries.last().unwrap();
        assert_eq!(last.path.len(), UNVERIFIED_TEXT);
        assert!(last.path.ends_with('…'));
        assert!(last.account_context.as_ref().unwrap().len() <= UNVERIFIED_TEXT);
        assert_eq!(last.body.as_ref().unwrap().len(), UNVERIFIED_BODY);
        assert_eq!(
            last.body_len,
            2 << 20,
            "the length is still the whole body's"
        );
        // 2,000 refused requests of 2 MiB and 150 KB of texts each: a few
        // KiB each.
        assert!(journal.bytes() < 2_000 * (6 << 10), "{}", journal.bytes());

        let mut accepted = entry("/big");
        accepted.outcome = Outcome::Accepted;
        accepted.body = Some(bytes::Bytes::from(vec![7u8; 1 << 20]));
        accepted.request_errors = vec![long.clone(); 100];
        for _ in 0..100 {
            journal.push(accepted.clone());
        }
        assert!(journal.bytes() <= BUDGET, "{}", journal.bytes());
        let bodies: usize = journal.entries().iter().map(body_bytes).sum();
        assert!(bodies <= BODY_BUDGET, "{bodies}");
        let newest = journal.entries().pop().unwrap();
        assert_eq!(newest.path, "/big");
        assert_eq!(newest.request_errors.len(), PROBLEMS);
    }

    #[test]
    fn clips_on_a_character_boundary() {
        let mut text = "ab€€€".to_owned();
        clip(&mut text, 7);
        assert_eq!(text, "ab…");
        let mut short = "abc".to_owned();
        clip(&mut short, 3);
        assert_eq!(short, "abc");
    }

    #[test]
    fn displays_as_one_log_line() {
        assert_eq!(
            entry("/me").to_string(),
            "1970-01-01T00:00:00.000Z GET /me key=- status=401 reason=missing_authorization"
        );
    }
}
