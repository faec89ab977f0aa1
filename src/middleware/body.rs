//! Buffering the request body up to a limit, hashing it as it arrives.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::protocol::canonical::{BodyDigest, BodyHasher};
use crate::protocol::rejection::{Rejection, RejectionKind};

/// The default body limit: 2 MiB, as axum's `DefaultBodyLimit`.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        RejectionKind::BodyTooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
}

/// A verified body, kept as the frames it arrived in: buffering it costs
/// no copy, and the inner service reads the same frames.
#[derive(Debug, Default)]
pub(crate) struct Buffered {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = self.chunks.pop_front();
        if let Some(chunk) = &chunk {
            self.remaining -= chunk.len() as u64;
        }
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes
/// (before reading anything when `Content-Length` already says so), and
/// hashes each frame as it comes.
pub(crate) async fn buffer<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<(Buffered, BodyDigest), Rejection>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64)
        || body.size_hint().lower() > limit as u64
    {
        return Err(too_large(limit));
    }

    let mut body = std::pin::pin!(body);
    let mut hasher = BodyHasher::default();
    let mut buffered = Buffered::default();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            Rejection::new(
                RejectionKind::InvalidBody,
                format!("the request body could not be read: {error}"),
            )
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers are not signed
        };
        // Free for `Bytes` frames (hyper's, axum's): no copy.
        let chunk = data.copy_to_bytes(data.remaining());
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(too_large(limit));
        }
        if !chunk.is_empty() {
            hasher.update(&chunk);
            buffered.remaining += chunk.len() as u64;
            buffered.chunks.push_back(chunk);
        }
    }
    Ok((buffered, hasher.finish()))
}
