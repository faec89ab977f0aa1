//! The response future of [`ArmorPsk`](crate::ArmorPsk).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::VerifiedBody;
use super::response::ResponseBody;
use crate::BoxFuture;
use crate::protocol::identity::Identity;

/// The checks of one request, as a future, their outcome already told to
/// telemetry: the request for the inner service and who signed it, or the
/// refusal's response.
pub(crate) type Checks =
    BoxFuture<'static, Result<(Request<VerifiedBody>, Identity), Response<Bytes>>>;

pin_project! {
    /// Resolves to the inner service's response once the request verified,
    /// or to the rejection's response.
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<F>,
        // The service driven to readiness, called once the checks pass
        // (tower-http's `async_require_authorization` keeps it the same way).
        service: S,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Checking { checks: Checks },
        Calling { #[pin] future: F, identity: Option<Identity> },
        Done,
    }
}

impl<S, F> ResponseFuture<S, F> {
    pub(crate) fn new(checks: Checks, service: S) -> Self {
        Self {
            state: State::Checking { checks },
            service,
        }
    }
}

impl<S, F, B, E> Future for ResponseFuture<S, F>
where
    S: Service<Request<VerifiedBody>, Response = Response<B>, Error = E, Future = F>,
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { checks } => match ready!(checks.as_mut().poll(cx)) {
                    Ok((mut request, identity)) => {
                        request.extensions_mut().insert(identity.clone());
                        let future = this.service.call(request);
                        this.state.set(State::Calling {
                            future,
                            identity: Some(identity),
                        });
                    }
                    Err(refusal) => {
                        this.state.set(State::Done);
                        return Poll::Ready(Ok(refusal.map(ResponseBody::rejection)));
                    }
                },
                StateProj::Calling { future, identity } => {
                    let outcome = ready!(future.poll(cx));
                    let identity = identity.take();
                    this.state.set(State::Done);
                    let mut response = outcome?;
                    if let Some(identity) = identity {
                        response.extensions_mut().insert(identity);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::service)));
                }
                StateProj::Done => panic!("ResponseFuture polled after it completed"),
            }
        }
    }
}

impl<S, F> fmt::Debug for ResponseFuture<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
