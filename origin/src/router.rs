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
        // The client: the address a trusted proxy forwards for, else the TCP peer.
        let ip = req
            .extensions()
            .get::<crate::limits::ClientIp>()
            .map(|c| c.0)
            .or_else(|| {
                req.extensions()
                    .get::<crate::server::PeerAddr>()
                    .map(|p| p.0.ip())
            });
        let span = match ip {
            Some(ip) => {
                tracing::debug_span!("request", method = %req.method(), path = %token::redact(req.uri().path()), client = %ip)
            }
            None => {
                tracing::debug_span!("request", method = %req.method(), path = %token::redact(req.uri().path()))
            }
        };
        let origin = self.0.clone();
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
    // A stream another node of the cluster owns: its owner answers (never for a request that
    // was itself forwarded, so nodes cannot bounce one between them). A stream between owners
    // (its node died, its publisher not yet back on another node), or whose owner does not
    // answer, is waited for, up to MOVE_WAIT: players give up on errors sooner than a
    // takeover takes.
    if let Some((cluster, proxy)) = origin.cluster() {
        let forwarded = req.headers().contains_key(crate::cluster::PROXIED_HEADER);
        {
            if let Some(stream) = route::parse(&tail).stream() {
                let deadline = tokio::time::Instant::now() + crate::cluster::MOVE_WAIT;
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or(&path)
                    .to_string();
                loop {
                    let late = tokio::time::Instant::now() >= deadline;
                    let owner = if forwarded {
                        None
                    } else {
                        cluster.owner(stream).await
                    };
                    if let Some(owner) = owner {
                        let fwd = proxy
                            .forward(&owner, cluster.advertise(), &method, &pq, req.headers())
                            .await;
                        let resp = match fwd {
                            Ok(r) => Some(r),
                            Err(_) if late => Some(proxy.failed()),
                            Err(_) => None,
                        };
                        if let Some(mut resp) = resp {
                            add_cors(resp.headers_mut());
                            return resp;
                        }
                    } else {
                        // Here with a playlist, or nowhere and not moving: answered here. (A
                        // forwarded request is answered here in any case, after waiting for a
                        // takeover here to publish its first playlist.)
                        let here = origin.stream(stream).is_some_and(|s| s.current().is_some());
                        if here || !cluster.moving(stream).await {
                            break;
                        }
                        if late {
                            let mut resp = proxy.moving();
                            add_cors(resp.headers_mut());
                            origin.metrics.request(Class::Other, resp.status().as_u16());
                            return resp;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
    }
    // A stream that was live when this server last stopped, whose publisher is not back yet:
    // held the same way (a restart takes about as long as a takeover).
    else if let Some(stream) = route::parse(&tail).stream() {
        if origin.returning(stream) {
            let deadline = tokio::time::Instant::now() + crate::cluster::MOVE_WAIT;
            while origin.returning(stream) {
                if tokio::time::Instant::now() >= deadline {
                    let mut resp = crate::cluster::returning();
                    add_cors(resp.headers_mut());
                    origin.metrics.request(Class::Other, resp.status().as_u16());
                    return resp;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    let head = Head {
        gzip: accepts_gzip(&req),
        range: req.headers().get(header::RANGE).cloned(),
        query: req.uri().query().unwrap_or("").to_string(),
        token,
        user_agent: header_text(req.headers(), header::USER_AGENT),
        referer: header_text(req.headers(), header::REFERER),
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

/// A header's value as text (at most 512 characters), for the playback webhook.
fn header_text(headers: &http::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(512).collect())
}

/// What the origin's own handlers read from a request.
struct Head<'a> {
    gzip: bool,
    range: Option<HeaderValue>,
    query: String,
    /// The playback token of a token path (`/live/t/TOKEN/...`).
    token: Option<&'a str>,
    /// `User-Agent` and `Referer`, for the playback webhook.
    user_agent: Option<String>,
    referer: Option<String>,
}

/// A viewer without a token asks for `stream`'s multivariant playlist: the platform decides;
/// admitted, the viewer is redirected to the stream's token path (per viewer: never cached).
async fn admit_viewer(
    origin: &Origin,
    auth: &dyn token::PlaybackAuth,
    token_secs: u64,
    stream: &str,
    head: &Head<'_>,
) -> Reply {
    let req = token::PlaybackRequest {
        stream: stream.to_string(),
        remote_addr: crate::limits::client_ip(),
        user_agent: head.user_agent.clone(),
        referer: head.referer.clone(),
        query: head.query.clone(),
    };
    match auth.authorize(req).await {
        token::PlaybackDecision::Allow => {
            let Some(tokens) = origin.playback_tokens() else {
                return Error::PlaybackRefused("no playback secret".into())
                    .reply(Class::Multivariant);
            };
            let expires = token::shared_expiry(token::unix_now(), token_secs);
            let location = format!(
                "/live/t/{}/{stream}/index.m3u8",
                tokens.mint(stream, expires)
            );
            let mut reply = text_reply(
                Class::Multivariant,
                "text/plain; charset=utf-8",
                Bytes::from_static(b"admitted: follow the Location header\n"),
                "no-store",
            );
            reply.status = http::StatusCode::FOUND;
            if let Ok(v) = HeaderValue::from_str(&location) {
                reply.headers.push((header::LOCATION, v));
            }
            reply
        }
        token::PlaybackDecision::Deny(why) => {
            origin.token_log.refused(|suppressed| {
                tracing::info!(
                    stream,
                    refused_since_last_line = suppressed,
                    "403: playback webhook: {why}"
                )
            });
            Error::PlaybackRefused(why).reply(Class::Multivariant)
        }
    }
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
        // A viewer without a token opening a stream's multivariant playlist, with a playback
        // webhook set: the platform decides. It is asked only about streams that exist, so
        // requests for made-up names do not turn into a flood of webhook calls.
        if let (Route::Multivariant { .. }, None, Some((auth, secs)), Some(_), true) = (
            &route,
            head.token,
            origin.playback_auth(),
            origin.playback_tokens(),
            origin.stream(stream).is_some(),
        ) {
            return admit_viewer(origin, auth.as_ref(), *secs, stream, &head).await;
        }
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
            let body = match origin.cluster() {
                Some((cluster, _)) => {
                    let all = cluster.streams().await;
                    // An ended stream kept here is listed unless the name is live on a node
                    // now (viewers of the name go there).
                    let local: Vec<(String, String)> = origin
                        .stream_summaries()
                        .iter()
                        .filter(|s| {
                            s.kept_until.is_none()
                                || !all
                                    .iter()
                                    .any(|(n, o)| *n == s.name && o != cluster.advertise())
                        })
                        .map(|s| (s.name.clone(), s.json()))
                        .collect();
                    crate::cluster::stream_list(&local, cluster.advertise(), &all)
                }
                None => {
                    let streams: Vec<String> =
                        origin.stream_summaries().iter().map(|s| s.json()).collect();
                    format!("[{}]", streams.join(","))
                }
            };
            text_reply(
                Class::Other,
                "application/json",
                Bytes::from(body),
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
        Route::Multivariant { stream } => multivariant(origin, stream, &head.query, head.gzip),
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
