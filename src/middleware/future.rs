//! The response future of [`ArmorPsk`](crate::ArmorPsk).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::VerifiedBody;
use super::config::Config;
use super::response::ResponseBody;
use super::telemetry::Observation;
use crate::BoxFuture;
use crate::protocol::identity::Identity;
use crate::protocol::rejection::Rejection;

/// The checks of one request, as a future: the request for the inner
/// service and who signed it, or why it is refused.
pub(crate) type Checks = BoxFuture<'static, Result<(Request<VerifiedBody>, Identity), Rejection>>;

pin_project! {
    /// Resolves to the inner service's response once the request verified,
    /// or to the rejection's response.
    pub struct ResponseFuture<S, F> {
        #[pin]
        state: State<S, F>,
        config: Arc<Config>,
        observation: Observation,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateOwned]
    enum State<S, F> {
        Checking { checks: Checks, service: S },
        Calling { #[pin] future: F, identity: Option<Identity> },
        Done,
    }
}

impl<S, F> ResponseFuture<S, F> {
    pub(crate) fn new(
        checks: Checks,
        service: S,
        config: Arc<Config>,
        observation: Observation,
    ) -> Self {
        Self {
            state: State::Checking { checks, service },
            config,
            observation,
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
                StateProj::Checking { checks, .. } => {
                    let outcome = {
                        let _entered = this.observation.span().enter();
                        ready!(checks.as_mut().poll(cx))
                    };
                    let config = &**this.config;
                    let finish = |outcome| {
                        this.observation.finish(
                            outcome,
                            config.key_id_metric_label,
                            &*config.replay,
                        );
                    };
                    match outcome {
                        Ok((mut request, identity)) => {
                            finish(Ok(&identity));
                            request.extensions_mut().insert(identity.clone());
                            let StateOwned::Checking { mut service, .. } =
                                this.state.as_mut().project_replace(State::Done)
                            else {
                                unreachable!("the state was Checking a moment ago")
                            };
                            let future = service.call(request);
                            this.state.set(State::Calling {
                                future,
                                identity: Some(identity),
                            });
                        }
                        Err(rejection) => {
                            finish(Err(&rejection));
                            this.state.set(State::Done);
                            let response = config.respond(rejection);
                            return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                        }
                    }
                }
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
