//! The request body: [`VerifiedBody`], what the inner service receives;
//! `read`, the body read once into one buffer up to the limit and hashed as
//! it arrives; `drain`, a refused body's unread rest thrown away within
//! bounds.

mod drain;
mod read;

pub(crate) use drain::Drain;
pub(crate) use read::{read, too_large};

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body::Body;

/// The default body limit: 2 MiB, as axum's `DefaultBodyLimit`.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The request body the inner service receives: exactly the bytes that were
/// verified, as one `Bytes` frame (no copy when the body arrived as one
/// frame).
///
/// ```
/// use armor_psk::VerifiedBody;
/// use http_body::Body as _;
///
/// let body = VerifiedBody::default();
/// assert!(body.is_end_stream());
/// assert!(body.into_bytes().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct VerifiedBody {
    data: Option<Bytes>,
}

impl VerifiedBody {
    /// The body of these bytes (`None`: empty).
    pub(super) fn new(data: Option<Bytes>) -> Self {
        Self { data }
    }

    /// The whole body, without polling.
    pub fn into_bytes(self) -> Bytes {
        self.data.unwrap_or_default()
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.data.as_ref().map_or(0, Bytes::len)
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

crate::macros::one_frame_body!(VerifiedBody);

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

/// The larger of what `Content-Length` declares and the body's own lower
/// size hint: a body declaring more than the limit is refused unread.
pub(crate) fn declared_size<B: Body>(headers: &HeaderMap, body: &B) -> u64 {
    declared_length(headers)
        .unwrap_or(0)
        .max(body.size_hint().lower())
}
