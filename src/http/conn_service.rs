//! The service hyper calls for each request of a connection, for the HTTP server
//! ([`super::serve`]): marks the connection busy from the request's complete head to the end
//! of its answer ([`ConnState`]), gives the request's body a deadline, and answers `408`
//! (`request_timeout`, closing the connection) when the body came too slowly, whatever the
//! handler made of the broken body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use thiserror::Error;
use tokio::time::Instant;
use tower::ServiceExt;

use super::conn_watch::ConnState;
use super::error::ApiError;

/// What a request body yields instead of its bytes.
#[derive(Debug, Error)]
pub enum BodyError {
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    TooSlow(Duration),
    #[error("reading the request body: {0}")]
    Read(#[from] hyper::Error),
}

pub struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    body_timeout: Duration,
}

impl ConnService {
    pub fn new(router: Router, state: Arc<ConnState>, body_timeout: Duration) -> Self {
        ConnService {
            router,
            state,
            body_timeout,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let has_body = !request.body().is_end_stream();
        self.state.request_started(has_body);
        let request = if has_body {
            let (state, timeout) = (self.state.clone(), self.body_timeout);
            request.map(|inner| {
                Body::new(TimedBody {
                    inner,
                    timeout,
                    state,
                    done: false,
                })
            })
        } else {
            request.map(Body::new)
        };
        let (router, state, timeout) = (self.router.clone(), self.state.clone(), self.body_timeout);
        Box::pin(async move {
            let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
            let response = if state.body_too_slow() {
                too_slow(timeout)
            } else {
                response
            };
            Ok(response.map(|inner| Body::new(AnswerBody { inner, state })))
        })
    }
}

fn too_slow(timeout: Duration) -> Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {} s",
            timeout.as_secs()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails with [`BodyError::TooSlow`] once it is overdue. It keeps no
/// timer of its own: the connection's task, which polls the handler, rings when the body is
/// due (`serve`), which spares a timer per request.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    state: Arc<ConnState>,
    done: bool,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.done = true;
                this.state.body_ended();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.state.body_ended();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                if Instant::now() < this.state.body_due(this.timeout) {
                    return Poll::Pending;
                }
                this.done = true;
                this.state.mark_body_too_slow();
                Poll::Ready(Some(Err(BodyError::TooSlow(this.timeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that tells the connection's watch when it is done with.
struct AnswerBody {
    inner: Body,
    state: Arc<ConnState>,
}

impl HttpBody for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.state.request_finished();
    }
}
