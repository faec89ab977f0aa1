//! Buffering the request body up to a limit, hashing it as it arrives.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::Body;
use http_body_util::BodyExt;

use crate::canonical::{BodyDigest, BodyHasher};
use crate::rejection::{Rejection, RejectionKind};

/// The default body limit: 2 MiB, as axum's `DefaultBodyLimit`.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

fn too_large(limit: usize) -> Rejection {
    Rejection::new(
        RejectionKind::BodyTooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes
/// (before reading anything when `Content-Length` already says so), and
/// hashes each frame as it comes.
pub(crate) async fn buffer<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<(Bytes, BodyDigest), Rejection>
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
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
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
        let chunk = data.copy_to_bytes(data.remaining());
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(too_large(limit));
        }
        hasher.update(&chunk);
        // The common single-frame body is kept without a copy.
        match (&mut first, &mut rest) {
            (None, _) => first = Some(chunk),
            (Some(head), None) => {
                let mut joined = BytesMut::with_capacity(head.len() + chunk.len());
                joined.extend_from_slice(head);
                joined.extend_from_slice(&chunk);
                rest = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&chunk),
        }
    }
    let bytes = match (first, rest) {
        (_, Some(joined)) => joined.freeze(),
        (Some(single), None) => single,
        (None, None) => Bytes::new(),
    };
    Ok((bytes, hasher.finish()))
}
