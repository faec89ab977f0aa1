//! [`SignMiddleware`]: the same signing for reqwest, as reqwest-middleware
//! middleware (feature `reqwest`).
//!
//! reqwest-middleware (TrueLayer's) is the way reqwest users already chain
//! retries, tracing and auth; a middleware signs every request of a client
//! in one place, where an extension trait on `RequestBuilder` would have to
//! be called on each.

use http::Extensions;
use http::header::AUTHORIZATION;
use reqwest_middleware::{Middleware, Next};

use super::signing::RequestSigner;
use crate::protocol::clock::Clock;
use crate::protocol::signer::{SignError, Signer};

/// Signs every request of a `reqwest_middleware::ClientWithMiddleware`:
/// method, path and body, with a fresh UUID v4 nonce and the clock's time.
/// A streaming body cannot be hashed before it is sent: such a request
/// fails with an error instead of going out unsigned.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use armor_psk::client::SignMiddleware;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(SignMiddleware::from_env()?)
///     .build();
/// let me = client.get("http://127.0.0.1:3000/me").send().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub struct SignMiddleware {
    signing: RequestSigner,
}

impl SignMiddleware {
    /// Signs with `signer`, at the system clock's time.
    pub fn new(signer: Signer) -> Self {
        Self {
            signing: RequestSigner::new(signer),
        }
    }

    /// Signs with the key in `ARMOR_PSK_KEY_ID` and `ARMOR_PSK_SECRET`.
    ///
    /// # Errors
    /// A variable is missing, or the key id cannot travel in the header.
    pub fn from_env() -> Result<Self, SignError> {
        Ok(Self {
            signing: RequestSigner::from_env()?,
        })
    }

    /// Takes the time from `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.signing = self.signing.with_clock(clock);
        self
    }
}

/// A request whose body is a stream: it cannot be hashed before it is sent.
#[derive(Debug, thiserror::Error)]
#[error("an ARMOR-PSK request needs its whole body to sign it; this one is a stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub struct StreamingBody;

#[async_trait::async_trait]
impl Middleware for SignMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let body = match request.body() {
            None => &[][..],
            Some(body) => body
                .as_bytes()
                .ok_or_else(|| reqwest_middleware::Error::middleware(StreamingBody))?,
        };
        let header = self
            .signing
            .header(request.method().as_str(), request.url().path(), body);
        request.headers_mut().insert(AUTHORIZATION, header);
        next.run(request, extensions).await
    }
}
