//! What both signing clients share: a signer, a clock, and the header.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;

use crate::protocol::clock::{Clock, SystemClock};
use crate::protocol::signer::{SignError, Signer};

/// A signer and the clock it signs by.
#[derive(Clone)]
pub(crate) struct RequestSigner {
    signer: Arc<Signer>,
    clock: Arc<dyn Clock>,
}

impl RequestSigner {
    pub(crate) fn new(signer: Signer) -> Self {
        Self {
            signer: Arc::new(signer),
            clock: Arc::new(SystemClock),
        }
    }

    pub(crate) fn from_env() -> Result<Self, SignError> {
        Ok(Self::new(Signer::from_env()?))
    }

    pub(crate) fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The `Authorization` value for a request, with a fresh nonce.
    pub(crate) fn header(&self, method: &str, path: &str, body: &[u8]) -> HeaderValue {
        let header = self
            .signer
            .sign_with_clock(method, path, body, &*self.clock);
        // The signer writes only visible ASCII: key id, base64, UUID, digits.
        let mut value =
            HeaderValue::try_from(header).unwrap_or_else(|_| HeaderValue::from_static(""));
        // Kept out of HTTP/2 header compression tables and debug output.
        value.set_sensitive(true);
        value
    }
}

impl fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSigner")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}
