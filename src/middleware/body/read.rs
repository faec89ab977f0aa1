//! The body read once into one buffer that never grows past the limit,
//! however it is cut into frames, and hashed as it arrives.

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use super::{Drain, VerifiedBody, declared_length, declared_size};
use crate::protocol::canonical::{BodyDigest, BodyHasher};
use crate::protocol::rejection::{Rejection, RejectionKind};

pub(crate) fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        RejectionKind::BodyTooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
}

/// The body as it is read: the first frame kept as it came (no copy for a
/// body of one frame), then one buffer that never grows past the limit,
/// however the body is cut into frames.
#[derive(Debug)]
struct Accumulator {
    first: Option<Bytes>,
    buffer: Vec<u8>,
    hasher: BodyHasher,
    total: usize,
    limit: usize,
    declared: Option<u64>,
}

/// A body passed the limit.
struct TooLarge;

impl Accumulator {
    fn new(limit: usize, declared: Option<u64>) -> Self {
        Self {
            first: None,
            buffer: Vec::new(),
            hasher: BodyHasher::default(),
            total: 0,
            limit,
            declared,
        }
    }

    fn push(&mut self, mut data: impl Buf) -> Result<(), TooLarge> {
        let len = data.remaining();
        self.total = self.total.saturating_add(len);
        if self.total > self.limit {
            return Err(TooLarge);
        }
        if len == 0 {
            return Ok(());
        }
        if self.first.is_none() && self.buffer.capacity() == 0 {
            // Free for `Bytes` frames (hyper's, axum's): no copy.
            let chunk = data.copy_to_bytes(len);
            self.hasher.update(&chunk);
            self.first = Some(chunk);
            return Ok(());
        }
        if self.buffer.capacity() - self.buffer.len() < len {
            self.grow(self.total);
        }
        if let Some(first) = self.first.take() {
            self.buffer.extend_from_slice(&first);
        }
        while data.has_remaining() {
            let chunk = data.chunk();
            self.hasher.update(chunk);
            self.buffer.extend_from_slice(chunk);
            let advanced = chunk.len();
            data.advance(advanced);
        }
        Ok(())
    }

    /// Makes room for `needed` bytes in all: the declared length if there is
    /// one and it suffices, else twice what is held, never more than the
    /// limit.
    fn grow(&mut self, needed: usize) {
        let declared = self
            .declared
            .and_then(|length| usize::try_from(length).ok());
        let wanted = match declared {
            Some(declared) if declared >= needed => declared,
            _ => self.buffer.capacity().saturating_mul(2).max(16 * 1024),
        };
        let capacity = wanted.max(needed).min(self.limit);
        self.buffer
            .reserve_exact(capacity.saturating_sub(self.buffer.len()));
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buffer.capacity() + self.first.as_ref().map_or(0, Bytes::len)
    }

    fn finish(self) -> (VerifiedBody, BodyDigest) {
        let data = match self.first {
            Some(first) => Some(first),
            None if self.buffer.is_empty() => None,
            None => Some(Bytes::from(self.buffer)),
        };
        (VerifiedBody::new(data), self.hasher.finish())
    }
}

/// Reads the whole body into one buffer, refusing it as soon as it passes
/// `limit` bytes (before reading anything when `Content-Length` already
/// says so), and hashes it as it comes. A refused body is drained first.
pub(crate) async fn read<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    drain: &Drain,
) -> Result<(VerifiedBody, BodyDigest), Rejection>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = declared_length(headers);
    if declared_size(headers, &body) > limit as u64 {
        // Boxed: a refusal's path, kept out of the size of every request's
        // future.
        Box::pin(drain.discard(headers, body)).await;
        return Err(too_large(limit));
    }

    let mut body = std::pin::pin!(body);
    let mut accumulator = Accumulator::new(limit, declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            // The cause to the log, a fixed message to the client: the
            // error's text is the server's business (an address, a path).
            let error: Box<dyn std::error::Error + Send + Sync> = error.into();
            tracing::debug!(
                error = &*error as &dyn std::error::Error,
                "ARMOR-PSK request body could not be read"
            );
            Rejection::new(
                RejectionKind::InvalidBody,
                "the request body could not be read",
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not signed
        };
        if accumulator.push(data).is_err() {
            drop(accumulator);
            Box::pin(drain.discard(headers, body)).await;
            return Err(too_large(limit));
        }
    }
    Ok(accumulator.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 MiB − 1 bytes as 1-byte frames, with and without a declared
    /// length: one buffer, never larger than the limit.
    #[test]
    fn one_byte_frames_fill_one_buffer_bounded_by_the_limit() {
        let limit = super::super::DEFAULT_BODY_LIMIT;
        let len = limit - 1;
        for declared in [Some(len as u64), None] {
            let mut accumulator = Accumulator::new(limit, declared);
            let mut peak = 0;
            for i in 0..len {
                assert!(accumulator.push(&[(i % 251) as u8][..]).is_ok());
                peak = peak.max(accumulator.capacity());
            }
            assert!(
                peak <= limit,
                "{declared:?}: peak capacity {peak} > {limit}"
            );
            let (body, digest) = accumulator.finish();
            let expected: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(body.into_bytes(), expected);
            assert_eq!(digest, BodyDigest::of(&expected));
        }
    }

    #[test]
    fn one_frame_is_kept_as_it_came() {
        let frame = Bytes::from(vec![7u8; 1000]);
        let mut accumulator = Accumulator::new(super::super::DEFAULT_BODY_LIMIT, Some(1000));
        assert!(accumulator.push(frame.clone()).is_ok());
        assert_eq!(accumulator.buffer.capacity(), 0);
        let (body, _) = accumulator.finish();
        let bytes = body.into_bytes();
        assert_eq!(bytes.as_ptr(), frame.as_ptr(), "copied");
    }

    #[test]
    fn a_byte_over_the_limit_is_refused() {
        let mut accumulator = Accumulator::new(10, None);
        assert!(accumulator.push(&[0u8; 10][..]).is_ok());
        assert!(accumulator.push(&[0u8; 1][..]).is_err());
    }
}
