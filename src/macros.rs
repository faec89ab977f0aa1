//! The crate's macros: the inner-service accessors every middleware
//! service has (tower-http's `get_ref`, `get_mut`, `into_inner`), and the
//! `Body` of a type that holds one frame of bytes (the server's
//! `VerifiedBody` and the client's `SignedBody`).

/// `get_ref`, `get_mut` and `into_inner` for a service whose wrapped
/// service is the field `inner` of type `S`, inside its `impl<S>` block.
macro_rules! inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// The wrapped service, the layer removed.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub(crate) use inner_service_accessors;

/// `impl Body` for a type whose field `data: Option<Bytes>` is its one
/// frame (`None` once sent, or for an empty body).
macro_rules! one_frame_body {
    ($body:ty) => {
        impl http_body::Body for $body {
            type Data = bytes::Bytes;
            type Error = std::convert::Infallible;

            fn poll_frame(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<
                Option<Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>>,
            > {
                std::task::Poll::Ready(
                    self.data
                        .take()
                        .map(|data| Ok(http_body::Frame::data(data))),
                )
            }

            fn is_end_stream(&self) -> bool {
                self.data.is_none()
            }

            fn size_hint(&self) -> http_body::SizeHint {
                http_body::SizeHint::with_exact(
                    self.data.as_ref().map_or(0, |data| data.len() as u64),
                )
            }
        }
    };
}

pub(crate) use one_frame_body;
