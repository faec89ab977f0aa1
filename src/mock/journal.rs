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

/// The most body bytes the journal holds in all.
const BODY_BUDGET: usize = 16 << 20;

/// A bounded, shared list of entries (oldest dropped first), their bodies
/// held to [`BODY_BUDGET`] bytes in all.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    entries: Arc<Mutex<VecDeque<JournalEntry>>>,
    limit: usize,
}

fn body_bytes(entry: &JournalEntry) -> usize {
    entry.body.as_ref().map_or(0, bytes::Bytes::len)
}

impl Journal {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            entries: Arc::default(),
            limit: limit.max(1),
        }
    }

    pub(crate) fn push(&self, entry: JournalEntry) {
        let mut entries = self.entries.lock();
        if entries.len() == self.limit {
            entries.pop_front();
        }
        entries.push_back(entry);
        let mut held: usize = entries.iter().map(body_bytes).sum();
        for old in entries.iter_mut() {
            if held <= BODY_BUDGET {
                break;
            }
            held -= body_bytes(old);
            old.body = None;
        }
    }

    pub(crate) fn entries(&self) -> Vec<JournalEntry> {
        let entries = self.entries.lock();
        entries.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().clear();
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
    fn displays_as_one_log_line() {
        assert_eq!(
            entry("/me").to_string(),
            "1970-01-01T00:00:00.000Z GET /me key=- status=401 reason=missing_authorization"
        );
    }
}
