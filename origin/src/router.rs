//! The router: the origin as a `tower::Service`. It sends paths under a nested service's prefix
//! (WHIP under `/whip`) there, answers CORS preflights, routes the rest by [`crate::route`] to
//! the playlist and media handlers, and finishes every reply the same way: Content-Length, CORS,
//! metrics, a log line for errors, no body for HEAD.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

use crate::body::Body;
use crate::error::Error;
use crate::headers::{accepts_gzip, add_cors, preflight, text_reply, Reply};
use crate::media::{object, ObjectRequest};
use crate::metrics::Class;
use crate::playlist::{media, multivariant};
use crate::route::{self, Route};
use crate::token;
use crate::Origin;

/// An error a request body may yield.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body a nested service receives: whatever body the origin was called with, boxed.
pub type RequestBody = UnsyncBoxBody<Bytes, BodyError>;

/// An error reading a request body: the transport's error, boxed. A named type rather than
/// `BoxError` itself, whose `dyn` lifetime trips rustc's higher-ranked checks in `Send` futures.
#[derive(Debug)]
pub struct BodyError(pub BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A service mounted under a path prefix (WHIP under `/whip`): it sees the full path, and the
/// origin adds CORS headers to its responses.
pub type NestedService = BoxCloneSyncService<Request<RequestBody>, Response<Body>, Infallible>;

/// The origin's router as a `tower::Service` over requests with any body (hyper's `Incoming`
/// on a server, [`Body`] in tests). Cheap to clone.
#[derive(Debug, Clone)]
pub struct OriginService(Arc<Origin>);

/// The router over `origin`: see [`Origin::service`].
pub fn router(origin: Arc<Origin>) -> OriginService {
    OriginService(origin)
}

impl<B> tower::Service<Request<B>> for OriginService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    /// Handles one request, in a `request` tracing span naming the method and path (the stream
    /// and object). Never panics on any input.
    fn call(&mut self, req: Request<B>) -> Self::Future {
        use tracing::Instrument;
        let span = tracing::debug_span!("request", method = %req.method(), path = %token::redact(req.uri().path()));
        let origin = self.0.clone();
        let ip = req
            .extensions()
            .get::<crate::server::PeerAddr>()
            .map(|p| p.0.ip());
        let fut = async move { Ok(handle(&origin, req).await) }.instrument(span);
        match ip {
            // Held requests count against the client's IP wherever they are held.
            Some(ip) => Box::pin(crate::limits::CLIENT_IP.scope(ip, fut)),
            None => Box::pin(fut),
        }
    }
}

async fn handle<B>(origin: &Origin, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if let Some(nested) = origin.nested_for(&path) {
        let req = req.map(|b| b.map_err(|e| BodyError(e.into())).boxed_unsync());
        let mut resp = nested.oneshot(req).await.unwrap_or_else(|e| match e {});
        add_cors(resp.headers_mut());
        origin.metrics.request(Class::Other, resp.status().as_u16());
        return resp;
    }
    let (tail, token) = token::split(&path);
    let head = Head {
        gzip: accepts_gzip(&req),
        range: req.headers().get(header::RANGE).cloned(),
        query: req.uri().query().unwrap_or("").to_string(),
        token,
    };
    // Only the head is needed from here on; the body is not read.
    drop(req);
    let reply = if method == Method::OPTIONS && path != "/" {
        preflight()
    } else {
        dispatch(origin, &method, &tail, head).await
    };
    finish(origin, reply, &method, &token::redact(&path), started)
}

/// What the origin's own handlers read from a request.
struct Head<'a> {
    gzip: bool,
    range: Option<HeaderValue>,
    query: String,
    /// The playback token of a token path (`/live/t/TOKEN/...`).
    token: Option<&'a str>,
}

/// With playback tokens on, a live playlist or object of `stream` needs a valid token.
fn check_token(origin: &Origin, stream: &str, token: Option<&str>) -> Result<(), Error> {
    let Some(tokens) = origin.playback_tokens() else {
        return Ok(());
    };
    tokens
        .check(stream, token, token::unix_now())
        .map_err(|why| {
            let shown = token.map(token::prefix).unwrap_or("");
            origin.token_log.refused(|suppressed| {
                tracing::info!(
                    stream,
                    token_prefix = shown,
                    refused_since_last_line = suppressed,
                    "403: {why}"
                )
            });
            Error::Forbidden(why)
        })
}

async fn dispatch(origin: &Origin, method: &Method, path: &str, head: Head<'_>) -> Reply {
    let route = route::parse(path);
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if !matches!(route, Route::Other) && !get_or_head {
        return Error::MethodNotAllowed.reply(Class::Other);
    }
    let private = match &route {
        Route::Multivariant { stream } => Some((*stream, Class::Multivariant)),
        Route::Media { stream, .. } => Some((*stream, Class::Playlist)),
        Route::Object { stream, .. } => Some((*stream, Class::Other)),
        _ => None,
    };
    if let Some((stream, class)) = private {
        if let Err(e) = check_token(origin, stream, head.token) {
            return e.reply(class);
        }
    }
    match route {
        Route::Healthz => text_reply(
            Class::Other,
            "text/plain",
            Bytes::from_static(b"ok\n"),
            "no-store",
        ),
        Route::Metrics => text_reply(
            Class::Other,
            "text/plain; version=0.0.4",
            Bytes::from(origin.render_metrics()),
            "no-store",
        ),
        Route::StreamList => {
            let streams: Vec<String> = origin.stream_summaries().iter().map(|s| s.json()).collect();
            text_reply(
                Class::Other,
                "application/json",
                Bytes::from(format!("[{}]", streams.join(","))),
                "no-store",
            )
        }
        Route::RecordingList => match origin.recordings() {
            Some(r) => text_reply(
                Class::Other,
                "application/json",
                Bytes::from(r.json()),
                "no-store",
            ),
            None => text_reply(
                Class::Other,
                "application/json",
                Bytes::from_static(b"[]"),
                "no-store",
            ),
        },
        Route::Recording { name, id, file } => {
            crate::record::serve(origin, name, id, file, &head.query, head.range).await
        }
        Route::Multivariant { stream } => multivariant(origin, stream, head.gzip),
        Route::Media { stream, rendition } => {
            media(origin, stream, rendition, &head.query, head.gzip).await
        }
        Route::Object { stream, key } => {
            let req = ObjectRequest {
                stream,
                key,
                range: head.range,
            };
            object(origin, req).await
        }
        Route::Other => match origin.page(path).filter(|_| get_or_head) {
            Some((ct, body)) => text_reply(Class::Other, ct, body, "no-cache"),
            None => Error::NotFound.reply(Class::Other),
        },
    }
}

/// Counts and logs the reply, then builds the response: Content-Length, CORS, and no body for
/// HEAD.
fn finish(
    origin: &Origin,
    reply: Reply,
    method: &Method,
    path: &str,
    started: Instant,
) -> Response<Body> {
    let head_only = method == Method::HEAD;
    let status = reply.status;
    origin.metrics.request(reply.class, status.as_u16());
    if let Some(len) = reply.len {
        if !head_only {
            origin.metrics.bytes_out.fetch_add(len, Ordering::Relaxed);
        }
    }
    if status.is_client_error() || status.is_server_error() {
        tracing::debug!(%method, %path, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "error response");
    } else {
        tracing::trace!(%method, %path, status = status.as_u16(), "response");
    }
    let mut resp = Response::new(if head_only { Body::empty() } else { reply.body });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in reply.headers {
        h.insert(k, v);
    }
    if let Some(len) = reply.len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    add_cors(h);
    resp
}
