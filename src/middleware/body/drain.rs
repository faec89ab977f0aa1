//! A refused request's unread body, read and thrown away within bounds, so
//! that a client still writing it reads the answer instead of a reset.

use std::time::{Duration, Instant};

use bytes::Buf;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use super::declared_size;

/// How much of a body the layer reads and throws away before answering a
/// rejection, so that a client that writes its whole body before reading
/// sees the answer rather than a reset connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drain {
    pub(crate) max_bytes: u64,
    pub(crate) max_time: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            max_bytes: 4 * 1024 * 1024,
            max_time: Duration::from_secs(5),
        }
    }
}

impl Drain {
    /// Reads `body` to its end and drops what it reads, unless it declares
    /// more than `max_bytes`, sends more, or takes longer than `max_time`
    /// (checked as frames arrive; a body that stalls is the server's read
    /// timeout's to end). Nothing read is kept.
    pub(crate) async fn discard<B: Body>(&self, headers: &HeaderMap, body: B) {
        if body.is_end_stream() || declared_size(headers, &body) > self.max_bytes {
            return;
        }
        let started = Instant::now();
        let mut body = std::pin::pin!(body);
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read = read.saturating_add(data.remaining() as u64);
            }
            if read > self.max_bytes || started.elapsed() > self.max_time {
                return;
            }
        }
    }
}
