//! Request handling: routing, blocking playlist reloads, hinted-part holds, byte ranges and the
//! header policy per object class (LLHLS-RULES §2-4).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use llhls_packager::{classify, Decision, Directives, Packager, SkipMode};
use tokio::sync::watch;

use crate::body::Body;
use crate::live::{spawn_stream, Object, Published, Stream, StreamInput};
use crate::metrics::{Class, Metrics};

/// A handler for paths the origin does not own (player page, WHIP, ...).
pub trait Fallback: Send + Sync + 'static {
    /// Handles the request; the origin adds CORS headers to the response.
    fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>;
}

/// Origin settings.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Held requests (blocking playlists + hinted parts) allowed per stream.
    pub max_held_per_stream: usize,
    /// How long an ended stream keeps serving its final playlist.
    pub ended_linger: Duration,
    /// Test only: advertise this CODECS string in multivariant playlists instead of the real
    /// one, so player tests can show that they catch a broken stream.
    pub codecs_override: Option<String>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            max_held_per_stream: 50_000,
            ended_linger: Duration::from_secs(60),
            codecs_override: None,
        }
    }
}

/// A stream name is already live.
#[derive(Debug, thiserror::Error)]
#[error("stream {0} is already live")]
pub struct AlreadyLive(pub String);

/// The origin: live streams and the HTTP handler over them.
pub struct Origin {
    streams: RwLock<HashMap<String, Arc<Stream>>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    config: OriginConfig,
    pages: RwLock<HashMap<String, (&'static str, Bytes)>>,
    extra_metrics: RwLock<Vec<Arc<dyn Fn() -> String + Send + Sync>>>,
    fallback: RwLock<Option<Arc<dyn Fallback>>>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("config", &self.config)
            .finish()
    }
}

/// Where a request is going.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Multivariant {
        stream: &'a str,
    },
    Media {
        stream: &'a str,
        rendition: &'a str,
    },
    Object {
        stream: &'a str,
        uri: String,
        rendition: &'a str,
        file: &'a str,
    },
    Healthz,
    Metrics,
    StreamList,
    Other,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => return Route::Healthz,
        "/metrics" => return Route::Metrics,
        "/streams.json" => return Route::StreamList,
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/live/") else {
        return Route::Other;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if !parts.iter().all(|p| valid_segment(p)) {
        return Route::Other;
    }
    match parts.as_slice() {
        [stream, "index.m3u8"] => Route::Multivariant { stream },
        [stream, file] => match file.strip_suffix(".m3u8") {
            Some(rendition) => Route::Media { stream, rendition },
            None => Route::Other,
        },
        [stream, rendition, file] => Route::Object {
            stream,
            uri: format!("{rendition}/{file}"),
            rendition,
            file,
        },
        _ => Route::Other,
    }
}

/// Parses `MSN.PART.m4s` / `MSN.m4s`.
fn parse_media_file(file: &str) -> Option<(u64, Option<u32>)> {
    let stem = file.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some((m.parse().ok()?, Some(p.parse().ok()?))),
        None => Some((stem.parse().ok()?, None)),
    }
}

struct Reply {
    status: StatusCode,
    class: Class,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Body,
    len: Option<u64>,
}

impl Reply {
    fn error(status: StatusCode, class: Class, msg: &str) -> Self {
        let body = Bytes::from(format!("{msg}\n"));
        Reply {
            status,
            class,
            headers: vec![
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            len: Some(body.len() as u64),
            body: Body::full(body),
        }
    }
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// RFC 8673: the last byte position a client can name, 2^53 - 1.
const RANGE_MAX: u64 = 9_007_199_254_740_991;

impl Origin {
    /// A new origin with no streams.
    pub fn new(config: OriginConfig) -> Arc<Self> {
        Arc::new(Origin {
            streams: RwLock::new(HashMap::new()),
            metrics: Arc::new(Metrics::default()),
            config,
            pages: RwLock::new(HashMap::new()),
            extra_metrics: RwLock::new(Vec::new()),
            fallback: RwLock::new(None),
            shutdown: watch::channel(false).0,
        })
    }

    /// Serves `body` at `path` (e.g. the player page at `/`).
    pub fn add_page(&self, path: &str, content_type: &'static str, body: Bytes) {
        self.pages
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), (content_type, body));
    }

    /// Adds a source of Prometheus text appended to `/metrics` (an ingest's own counters).
    pub fn add_metrics(&self, f: Arc<dyn Fn() -> String + Send + Sync>) {
        self.extra_metrics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    /// Routes paths the origin does not own to `f`.
    pub fn set_fallback(&self, f: Arc<dyn Fallback>) {
        *self.fallback.write().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    /// Starts a live stream `name` packaged by `packager`. Refused while a stream of that name
    /// is live; one that has ended and only lingers is replaced.
    pub fn create_stream(
        self: &Arc<Self>,
        name: &str,
        packager: Packager,
    ) -> Result<StreamInput, AlreadyLive> {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = streams.get(name) {
            // A new publish replaces a stream that has ended (and is only lingering).
            if !old.ended.load(Ordering::Relaxed) {
                return Err(AlreadyLive(name.to_string()));
            }
        }
        let weak = Arc::downgrade(self);
        let key = name.to_string();
        let input = spawn_stream(
            name.to_string(),
            packager,
            self.metrics.clone(),
            move |gone| {
                if let Some(o) = weak.upgrade() {
                    let mut streams = o.streams.write().unwrap_or_else(|e| e.into_inner());
                    // Only if it was not replaced by a newer publish meanwhile.
                    if streams.get(&key).is_some_and(|s| Arc::ptr_eq(s, gone)) {
                        streams.remove(&key);
                    }
                }
            },
            self.config.ended_linger,
            self.config.codecs_override.clone(),
        );
        streams.insert(name.to_string(), input.stream.clone());
        Ok(input)
    }

    /// The stream called `name`, if live.
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Names of streams with a published playlist, sorted.
    pub fn stream_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.current().is_some_and(|p| !p.snapshot.ended))
            .map(|s| s.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Releases every held request (with 503) and refuses new holds: for shutdown.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Handles one request, in a `request` tracing span naming the method and path (the
    /// stream and object). Never panics on any input.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Response<Body>
    where
        B: Send + 'static,
        Request<B>: IntoIncoming,
    {
        use tracing::Instrument;
        let span =
            tracing::debug_span!("request", method = %req.method(), path = %req.uri().path());
        self.handle_inner(req).instrument(span).await
    }

    async fn handle_inner<B>(self: Arc<Self>, req: Request<B>) -> Response<Body>
    where
        B: Send + 'static,
        Request<B>: IntoIncoming,
    {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let head_only = method == Method::HEAD;
        let reply = if method == Method::OPTIONS && path != "/" && !path.starts_with("/whip") {
            Reply {
                status: StatusCode::NO_CONTENT,
                class: Class::Other,
                headers: vec![
                    (
                        header::ACCESS_CONTROL_ALLOW_METHODS,
                        HeaderValue::from_static("GET, HEAD, OPTIONS"),
                    ),
                    (
                        header::ACCESS_CONTROL_ALLOW_HEADERS,
                        HeaderValue::from_static("Range"),
                    ),
                    (
                        header::ACCESS_CONTROL_MAX_AGE,
                        HeaderValue::from_static("86400"),
                    ),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=86400"),
                    ),
                ],
                body: Body::empty(),
                len: Some(0),
            }
        } else {
            let r = route(&path);
            if !matches!(r, Route::Other) && method != Method::GET && method != Method::HEAD {
                let mut rep = Reply::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    Class::Other,
                    "method not allowed",
                );
                rep.headers.push((
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                ));
                rep
            } else {
                match r {
                    Route::Healthz => text_reply(
                        Class::Other,
                        "text/plain",
                        Bytes::from_static(b"ok\n"),
                        "no-store",
                    ),
                    Route::Metrics => {
                        let mut text = self.metrics.render();
                        for f in self
                            .extra_metrics
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .iter()
                        {
                            text.push_str(&f());
                        }
                        text_reply(
                            Class::Other,
                            "text/plain; version=0.0.4",
                            Bytes::from(text),
                            "no-store",
                        )
                    }
                    Route::StreamList => {
                        let names: Vec<String> = self
                            .stream_names()
                            .iter()
                            .map(|n| format!("\"{n}\""))
                            .collect();
                        text_reply(
                            Class::Other,
                            "application/json",
                            Bytes::from(format!("[{}]", names.join(","))),
                            "no-store",
                        )
                    }
                    Route::Multivariant { stream } => self.multivariant(stream, &req),
                    Route::Media { stream, rendition } => {
                        let query = req.uri().query().unwrap_or("").to_string();
                        self.media(stream, rendition, &query, &req).await
                    }
                    Route::Object {
                        stream,
                        uri,
                        rendition,
                        file,
                    } => {
                        let range = req.headers().get(header::RANGE).cloned();
                        self.object(stream, &uri, rendition, file, range).await
                    }
                    Route::Other => {
                        let page = self
                            .pages
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&path)
                            .cloned();
                        let fallback = self
                            .fallback
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone();
                        if let Some((ct, body)) =
                            page.filter(|_| method == Method::GET || head_only)
                        {
                            text_reply(Class::Other, ct, body, "no-cache")
                        } else if let (Some(f), Some(incoming)) = (fallback, req.into_incoming()) {
                            let mut resp = f.handle(incoming).await;
                            add_cors(resp.headers_mut());
                            self.metrics.request(Class::Other, resp.status().as_u16());
                            return resp;
                        } else {
                            Reply::error(StatusCode::NOT_FOUND, Class::Other, "not found")
                        }
                    }
                }
            }
        };
        let status = reply.status;
        self.metrics.request(reply.class, status.as_u16());
        if let Some(len) = reply.len {
            if !head_only {
                self.metrics.bytes_out.fetch_add(len, Ordering::Relaxed);
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

    fn published(&self, stream: &str) -> Result<(Arc<Stream>, Arc<Published>), Reply> {
        let s = self
            .stream(stream)
            .ok_or_else(|| Reply::error(StatusCode::NOT_FOUND, Class::Other, "no such stream"))?;
        let p = s.current().ok_or_else(|| {
            Reply::error(
                StatusCode::NOT_FOUND,
                Class::Other,
                "stream has no playlist yet",
            )
        })?;
        Ok((s, p))
    }

    fn multivariant<B>(&self, stream: &str, req: &Request<B>) -> Reply {
        let (_, p) = match self.published(stream) {
            Ok(x) => x,
            Err(mut e) => {
                e.class = Class::Multivariant;
                return e;
            }
        };
        playlist_reply(
            Class::Multivariant,
            &p,
            &p.multivariant,
            accepts_gzip(req),
            p.plain_cache.clone(),
        )
    }

    async fn media<B>(
        &self,
        stream: &str,
        rendition: &str,
        query: &str,
        req: &Request<B>,
    ) -> Reply {
        let gzip = accepts_gzip(req);
        let directives = match Directives::parse(query) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(stream, rendition, query, "400: {e}");
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    Class::BlockingPlaylist,
                    &e.to_string(),
                );
            }
        };
        let class = if directives.is_blocking() {
            Class::BlockingPlaylist
        } else {
            Class::Playlist
        };
        let (s, p) = match self.published(stream) {
            Ok(x) => x,
            Err(mut e) => {
                e.class = class;
                return e;
            }
        };
        let Some(r) = p.snapshot.rendition(rendition) else {
            return Reply::error(StatusCode::NOT_FOUND, class, "no such rendition");
        };
        let td = u64::from(p.snapshot.timing.target_duration);
        let decision = match classify(&directives, &p.snapshot, r) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(stream, rendition, query, "400: {e}");
                return Reply::error(StatusCode::BAD_REQUEST, class, &e.to_string());
            }
        };
        let blocking_cache = p.blocking_cache.clone();
        let plain_cache = p.plain_cache.clone();
        match decision {
            Decision::Now(skip) => {
                let cc = if directives.is_blocking() && !p.snapshot.ended {
                    blocking_cache
                } else {
                    plain_cache
                };
                view_reply(class, &p, rendition, skip, gzip, cc)
            }
            Decision::Wait { msn, part, skip } => {
                let Some(_guard) = self.hold(&s) else {
                    return Reply::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        class,
                        "too many held requests",
                    );
                };
                let mut rx = s.published.clone();
                let mut shutdown = self.shutdown.subscribe();
                let wait = rx.wait_for(|p| {
                    p.as_ref().is_some_and(|p| {
                        p.snapshot.ended
                            || p.snapshot
                                .rendition(rendition)
                                .is_some_and(|r| r.satisfies(msn, part))
                    })
                });
                let deadline = Duration::from_secs(3 * td);
                let released = tokio::select! {
                    r = tokio::time::timeout(deadline, wait) => r.ok().and_then(|r| r.ok()).and_then(|p| p.clone()),
                    _ = shutdown.wait_for(|s| *s) => None,
                };
                match released {
                    Some(p) => {
                        self.metrics.wake(p.at.elapsed().as_secs_f64());
                        let skip = if p.snapshot.ended {
                            SkipMode::Full
                        } else {
                            skip
                        };
                        let cc = if p.snapshot.ended {
                            plain_cache
                        } else {
                            blocking_cache
                        };
                        view_reply(class, &p, rendition, skip, gzip, cc)
                    }
                    None => {
                        tracing::info!(
                            stream,
                            rendition,
                            msn,
                            ?part,
                            "503: not available within 3 target durations"
                        );
                        let mut r = Reply::error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            class,
                            "the requested part did not become available in time",
                        );
                        r.headers
                            .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
                        r
                    }
                }
            }
        }
    }

    fn hold(&self, s: &Arc<Stream>) -> Option<HoldGuard> {
        if *self.shutdown.borrow() {
            return None;
        }
        let n = s.held.fetch_add(1, Ordering::Relaxed);
        let g = HoldGuard {
            stream: s.clone(),
            metrics: self.metrics.clone(),
        };
        self.metrics.held.fetch_add(1, Ordering::Relaxed);
        if n >= self.config.max_held_per_stream {
            return None;
        }
        Some(g)
    }

    async fn object(
        &self,
        stream: &str,
        uri: &str,
        rendition: &str,
        file: &str,
        range: Option<HeaderValue>,
    ) -> Reply {
        let class = if file.starts_with("init") {
            Class::Init
        } else if parse_media_file(file).is_some_and(|(_, p)| p.is_some()) {
            Class::Part
        } else {
            Class::Segment
        };
        let Some(s) = self.stream(stream) else {
            return Reply::error(StatusCode::NOT_FOUND, class, "no such stream");
        };
        let content_type = if file.ends_with(".mp4") || rendition != "audio" {
            "video/mp4"
        } else {
            "audio/mp4"
        };
        let range = match range.as_ref().map(|v| parse_range(v.as_bytes())) {
            None => None,
            Some(Ok(r)) => r,
            Some(Err(())) => {
                return Reply::error(StatusCode::BAD_REQUEST, class, "malformed Range header")
            }
        };
        let obj = match s.object(uri) {
            Some(o) => o,
            None => match self.await_object(&s, uri, rendition, file).await {
                Some(o) => o,
                None => return Reply::error(StatusCode::NOT_FOUND, class, "no such object"),
            },
        };
        match obj {
            Object::Complete(bytes) => serve_bytes(class, content_type, bytes, range),
            Object::Growing(_) => {
                self.serve_growing(&s, uri, class, content_type, range)
                    .await
            }
        }
    }

    /// A part (or segment) the playlist hints at but that does not exist yet: hold until it is
    /// stored, or until it never will be (404). Rule 48-49.
    async fn await_object(
        &self,
        s: &Arc<Stream>,
        uri: &str,
        rendition: &str,
        file: &str,
    ) -> Option<Object> {
        let (msn, part) = parse_media_file(file)?;
        let p = s.current()?;
        if p.snapshot.ended {
            return None;
        }
        let r = p.snapshot.rendition(rendition)?;
        let open = r.open.as_ref()?;
        let (last_msn, next_part) = (open.msn, open.parts.len() as u32);
        let ahead = match part {
            // The hinted part, or a few parts beyond it (rule 41's advance limit).
            Some(i) => {
                (msn == last_msn && i >= next_part && i <= next_part + 16)
                    || (msn == last_msn + 1 && i <= 16)
            }
            // A whole segment not complete yet (files mode).
            None => msn == last_msn,
        };
        if !ahead {
            return None;
        }
        let _guard = self.hold(s)?;
        let td = u64::from(p.snapshot.timing.target_duration);
        let mut rx = s.published.clone();
        let mut shutdown = self.shutdown.subscribe();
        let uri_owned = uri.to_string();
        let stream = s.clone();
        // Stop when it exists, or when it never will: the stream ended or its parent closed.
        let wait = rx.wait_for(move |p| {
            stream.object(&uri_owned).is_some()
                || p.as_ref().is_none_or(|p| {
                    p.snapshot.ended
                        || p.snapshot
                            .rendition(rendition)
                            .and_then(|r| r.open.as_ref())
                            .is_none_or(|o| o.msn > msn)
                })
        });
        let done = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(3 * td), wait) => r.is_ok(),
            _ = shutdown.wait_for(|s| *s) => false,
        };
        if done {
            if let Some(p) = s.current() {
                self.metrics.wake(p.at.elapsed().as_secs_f64());
            }
        }
        s.object(uri)
    }

    async fn serve_growing(
        &self,
        s: &Arc<Stream>,
        uri: &str,
        class: Class,
        content_type: &'static str,
        range: Option<ByteRange>,
    ) -> Reply {
        let td = s
            .current()
            .map(|p| u64::from(p.snapshot.timing.target_duration))
            .unwrap_or(6);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3 * td);
        let (start, end) = match range {
            Some(ByteRange::FromTo(a, b)) => (a, Some(b)),
            Some(ByteRange::From(a)) => (a, None),
            Some(ByteRange::Suffix(_)) | None => {
                // The whole segment: wait for it to complete.
                let Some(_g) = self.hold(s) else {
                    return Reply::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        class,
                        "too many held requests",
                    );
                };
                return match wait_object(s, uri, deadline, |o| matches!(o, Object::Complete(_)))
                    .await
                {
                    Some(Object::Complete(b)) => serve_bytes(class, content_type, b, range),
                    _ => Reply::error(StatusCode::NOT_FOUND, class, "segment did not complete"),
                };
            }
        };
        let open_ended = end.is_none_or(|e| e >= RANGE_MAX);
        if !open_ended {
            let end = end.unwrap_or(0);
            let Some(_g) = self.hold(s) else {
                return Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    class,
                    "too many held requests",
                );
            };
            return match wait_object(s, uri, deadline, |o| {
                o.len() > end || matches!(o, Object::Complete(_))
            })
            .await
            {
                Some(o) => {
                    let len = o.len();
                    if start >= len {
                        return range_not_satisfiable(class, len);
                    }
                    let last = end.min(len - 1);
                    let total = if matches!(o, Object::Complete(_)) {
                        len.to_string()
                    } else {
                        "*".into()
                    };
                    partial(
                        media_reply(class, content_type, o.slice(start, last + 1)),
                        format!("bytes {start}-{last}/{total}"),
                    )
                }
                None => Reply::error(StatusCode::NOT_FOUND, class, "range never became available"),
            };
        }
        // RFC 8673 open-ended range on a growing segment: send each part as it completes.
        let Some(guard) = self.hold(s) else {
            return Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                class,
                "too many held requests",
            );
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let stream = s.clone();
        let uri = uri.to_string();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let mut sent = start;
            loop {
                let Some(o) = wait_object(&stream, &uri, deadline, |o| {
                    o.len() > sent || matches!(o, Object::Complete(_))
                })
                .await
                else {
                    break;
                };
                let len = o.len();
                if len > sent {
                    let chunk = o.slice(sent, len);
                    metrics
                        .bytes_out
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                    sent = len;
                }
                if matches!(o, Object::Complete(_)) {
                    break;
                }
            }
        });
        let end_s = end
            .map(|e| e.to_string())
            .unwrap_or_else(|| RANGE_MAX.to_string());
        let mut r = partial(
            media_reply(class, content_type, Bytes::new()),
            format!("bytes {start}-{end_s}/*"),
        );
        r.body = Body::Stream(rx);
        r.len = None;
        r
    }
}

/// Lets `handle` hand the original request to a [`Fallback`] when it is a hyper request.
pub trait IntoIncoming {
    /// The hyper request, when this is one.
    fn into_incoming(self) -> Option<Request<hyper::body::Incoming>>;
}

impl IntoIncoming for Request<hyper::body::Incoming> {
    fn into_incoming(self) -> Option<Request<hyper::body::Incoming>> {
        Some(self)
    }
}

impl IntoIncoming for Request<()> {
    fn into_incoming(self) -> Option<Request<hyper::body::Incoming>> {
        None
    }
}

async fn wait_object(
    s: &Arc<Stream>,
    uri: &str,
    deadline: tokio::time::Instant,
    ready: impl Fn(&Object) -> bool,
) -> Option<Object> {
    let mut rx = s.published.clone();
    loop {
        if let Some(o) = s.object(uri) {
            if ready(&o) {
                return Some(o);
            }
        } else {
            return None;
        }
        if s.current().is_some_and(|p| p.snapshot.ended) {
            return s.object(uri);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => return s.object(uri).filter(|o| ready(o)),
        }
    }
}

struct HoldGuard {
    stream: Arc<Stream>,
    metrics: Arc<Metrics>,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        self.stream.held.fetch_sub(1, Ordering::Relaxed);
        self.metrics.held.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accepts_gzip<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut it = e.split(';');
            let name = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| {
                let p = p.trim();
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}

/// The rendered `skip` view of `rendition` in `p`, or 404.
fn view_reply(
    class: Class,
    p: &Published,
    rendition: &str,
    skip: SkipMode,
    gzip: bool,
    cc: HeaderValue,
) -> Reply {
    match p.view(rendition, skip) {
        Some(v) => playlist_reply(class, p, v, gzip, cc),
        None => Reply::error(StatusCode::NOT_FOUND, class, "no such rendition"),
    }
}

fn playlist_reply(
    class: Class,
    p: &Published,
    v: &crate::live::Rendered,
    gzip: bool,
    cc: HeaderValue,
) -> Reply {
    let mut headers = vec![
        (
            header::HeaderName::from_static("llhls-published-us"),
            p.published_us.clone(),
        ),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.apple.mpegurl"),
        ),
        (header::CACHE_CONTROL, cc),
        (header::VARY, HeaderValue::from_static("Accept-Encoding")),
    ];
    let body = if gzip {
        headers.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        v.gzip.clone()
    } else {
        v.plain.clone()
    };
    Reply {
        status: StatusCode::OK,
        class,
        headers,
        len: Some(body.len() as u64),
        body: Body::full(body),
    }
}

fn text_reply(class: Class, ct: &'static str, body: Bytes, cc: &'static str) -> Reply {
    Reply {
        status: StatusCode::OK,
        class,
        headers: vec![
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cc)),
        ],
        len: Some(body.len() as u64),
        body: Body::full(body),
    }
}

fn media_reply(class: Class, ct: &'static str, body: Bytes) -> Reply {
    Reply {
        status: StatusCode::OK,
        class,
        headers: vec![
            (header::CONTENT_TYPE, HeaderValue::from_static(ct)),
            (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        ],
        len: Some(body.len() as u64),
        body: Body::full(body),
    }
}

fn range_not_satisfiable(class: Class, len: u64) -> Reply {
    let mut r = Reply::error(
        StatusCode::RANGE_NOT_SATISFIABLE,
        class,
        "range not satisfiable",
    );
    r.headers.push((
        header::CONTENT_RANGE,
        HeaderValue::from_str(&format!("bytes */{len}"))
            .unwrap_or(HeaderValue::from_static("bytes */*")),
    ));
    r
}

fn serve_bytes(class: Class, ct: &'static str, bytes: Bytes, range: Option<ByteRange>) -> Reply {
    let len = bytes.len() as u64;
    let Some(range) = range else {
        return media_reply(class, ct, bytes);
    };
    let (start, last) = match range {
        ByteRange::FromTo(a, b) => (a, b.min(len.saturating_sub(1))),
        ByteRange::From(a) => (a, len.saturating_sub(1)),
        ByteRange::Suffix(n) => (len.saturating_sub(n), len.saturating_sub(1)),
    };
    if start >= len || last < start {
        return range_not_satisfiable(class, len);
    }
    partial(
        media_reply(class, ct, bytes.slice(start as usize..=last as usize)),
        format!("bytes {start}-{last}/{len}"),
    )
}

/// Turns a media reply into 206 Partial Content with this Content-Range.
fn partial(mut r: Reply, content_range: String) -> Reply {
    r.status = StatusCode::PARTIAL_CONTENT;
    r.headers.push((
        header::CONTENT_RANGE,
        HeaderValue::from_str(&content_range).unwrap_or(HeaderValue::from_static("bytes */*")),
    ));
    r
}

/// A single byte range (multi-range requests are answered in full, as RFC 9110 allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// `Ok(None)` for a valid header we choose to ignore (multiple ranges), `Err` for garbage.
// Public only for `llhls_origin::fuzzing` until the Range module gets its own error type.
#[allow(clippy::result_unit_err)]
pub fn parse_range(v: &[u8]) -> Result<Option<ByteRange>, ()> {
    let s = std::str::from_utf8(v).map_err(|_| ())?.trim();
    let spec = s.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let num = |x: &str| -> Result<u64, ()> {
        let x = x.trim();
        if x.is_empty() || x.len() > 19 || !x.bytes().all(|c| c.is_ascii_digit()) {
            return Err(());
        }
        x.parse().map_err(|_| ())
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => Err(()),
        (true, false) => Ok(Some(ByteRange::Suffix(num(b)?))),
        (false, true) => Ok(Some(ByteRange::From(num(a)?))),
        (false, false) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(());
            }
            Ok(Some(ByteRange::FromTo(a, b)))
        }
    }
}

/// CORS for hls.js on every response, errors included (rule 59).
pub(crate) fn add_cors(h: &mut http::HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    // A fallback (WHIP) may expose its own headers (Location, ETag): keep them.
    h.entry(header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .or_insert(HeaderValue::from_static(
            "Age, Content-Range, Content-Length, Date",
        ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("/live/demo/index.m3u8"),
            Route::Multivariant { stream: "demo" }
        );
        assert_eq!(
            route("/live/demo/media.m3u8"),
            Route::Media {
                stream: "demo",
                rendition: "media"
            }
        );
        assert!(matches!(
            route("/live/demo/media/12.3.m4s"),
            Route::Object {
                file: "12.3.m4s",
                ..
            }
        ));
        assert_eq!(route("/live/../etc/passwd"), Route::Other);
        assert_eq!(route("/live/demo/../../x"), Route::Other);
        assert_eq!(route("/live/demo/%2e%2e/x"), Route::Other);
        assert_eq!(route("/live//index.m3u8"), Route::Other);
        assert_eq!(route("/live/demo/a/b/c"), Route::Other);
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range(b"bytes=0-99"),
            Ok(Some(ByteRange::FromTo(0, 99)))
        );
        assert_eq!(parse_range(b"bytes=100-"), Ok(Some(ByteRange::From(100))));
        assert_eq!(parse_range(b"bytes=-5"), Ok(Some(ByteRange::Suffix(5))));
        assert_eq!(
            parse_range(b"bytes=100-9007199254740991"),
            Ok(Some(ByteRange::FromTo(100, RANGE_MAX)))
        );
        assert_eq!(parse_range(b"bytes=0-1,5-6"), Ok(None));
        for bad in [
            &b"bytes=5-1"[..],
            b"bytes=-",
            b"items=0-1",
            b"bytes=a-b",
            b"bytes=99999999999999999999-",
        ] {
            assert_eq!(parse_range(bad), Err(()), "{:?}", std::str::from_utf8(bad));
        }
    }

    #[test]
    fn gzip_negotiation() {
        let req = |v: &str| {
            Request::builder()
                .header("accept-encoding", v)
                .body(())
                .unwrap()
        };
        assert!(accepts_gzip(&req("gzip, deflate, br")));
        assert!(accepts_gzip(&req("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&req("gzip;q=0")));
        assert!(!accepts_gzip(&req("identity")));
    }
}
