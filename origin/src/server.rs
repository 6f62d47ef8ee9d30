//! The listener: HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port, HTTPS with ALPN h2 when
//! a certificate is configured, connection and header limits, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::Origin;

/// The TCP peer of a request (the client, or the proxy in front), in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Transport settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Open connections allowed; more are closed at once.
    pub max_connections: usize,
    /// Open connections allowed per client IP; more are closed at once (0: no limit, the
    /// default, since behind a CDN one edge address carries many viewers).
    pub max_connections_per_ip: usize,
    /// Time allowed for a client to send request headers (also the keep-alive idle limit on
    /// HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Largest request head accepted (bytes); a larger one is answered 431. On connections
    /// hyper serves (HTTP/2, requests with a body, or all of them without `lean_http1`) this is
    /// also the HTTP/1.1 read buffer: at 8192 (hyper's smallest) it stays at 8 KB; above it,
    /// hyper grows every connection's buffer to 16 KB on the first request that arrives in more
    /// than one read, 8 KB more for each held viewer. The lean path reads a head into a buffer
    /// of its size, freed once parsed.
    pub max_header_bytes: usize,
    /// HTTP/2 streams per connection.
    pub h2_max_streams: u32,
    /// Answer HTTP/1.1 requests without a body (everything players and CDN edges send) on the
    /// lean path of [`crate::h1`], a few KB per held viewer instead of hyper's ~24 KB; hyper
    /// still serves HTTP/2, requests with bodies, and every connection when this is off.
    pub lean_http1: bool,
    /// PEM certificate chain and private key: serve HTTPS (ALPN h2, http/1.1) instead.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long shutdown waits for connections to finish.
    pub drain_timeout: Duration,
    /// A connection whose writes make no progress for this long (a client that stopped
    /// reading) is reset. Zero: never.
    pub send_timeout: Duration,
    /// Bytes a connection's socket may hold that the kernel has not yet sent (Linux
    /// `TCP_NOTSENT_LOWAT`; 0: the kernel's default, unlimited). The kernel otherwise takes
    /// up to its whole send buffer (4 MiB by default) per connection whatever the client
    /// reads, copying it in at once: 200 clients that never read cost 800 MiB of kernel memory
    /// and the CPU to copy it. Bytes in flight (sent, not yet acknowledged) are not limited,
    /// so a fast viewer's throughput is not either.
    pub send_unsent_bytes: u32,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` name the client (for the per-IP limits
    /// and the logs); their own connections are not counted per IP.
    pub trusted_proxies: crate::limits::TrustedProxies,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 25_000,
            max_connections_per_ip: 0,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 8 * 1024,
            h2_max_streams: 1000,
            lean_http1: true,
            tls: None,
            drain_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(30),
            send_unsent_bytes: 128 * 1024,
            trusted_proxies: Default::default(),
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Reading or parsing the certificate or key.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// Socket errors.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    use rustls_pemfile::{certs, private_key};
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| ServerError::Tls(format!("{}: {e}", p.display())))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    let key = private_key(&mut &key_pem[..])
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("{}: no private key found", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// What a connection's task knows of its requests, to close it when idle.
#[derive(Debug, Default)]
struct Activity {
    /// Requests started and not yet finished (the response body sent or dropped).
    in_flight: AtomicUsize,
    /// A request started or finished since the idle check last looked.
    touched: AtomicBool,
    /// Response bodies that have data to give and wait for the connection to take it (not
    /// those waiting for media to be published).
    waiting_on_client: AtomicUsize,
    /// A response body was asked for data since the check last looked.
    body_polled: AtomicBool,
    /// A write of at least [`PROGRESS_BYTES`] went out since the check last looked.
    wrote: AtomicBool,
}

/// The smallest write that counts as a response moving: HTTP/2 pings (17 bytes), window
/// updates and settings do not, nor a client opening its window a few bytes at a time.
const PROGRESS_BYTES: usize = 64;

/// One request of a connection, from its start until its response body is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        a.touched.store(true, Ordering::Relaxed);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touched.store(true, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until it is dropped, and tells
/// the connection's task whether it waits for the client (it has data, the connection has
/// not asked for it: a full socket on HTTP/1.1, an exhausted flow-control window on HTTP/2)
/// or for the source (a part not yet published).
struct TrackedBody {
    body: crate::Body,
    /// Counted in `waiting_on_client`.
    on_client: bool,
    request: InFlight,
}

impl TrackedBody {
    fn new(body: crate::Body, request: InFlight) -> Self {
        request.0.waiting_on_client.fetch_add(1, Ordering::Relaxed);
        TrackedBody {
            body,
            on_client: true,
            request,
        }
    }

    fn set_on_client(&mut self, on: bool) {
        if self.on_client != on {
            self.on_client = on;
            let w = &self.request.0.waiting_on_client;
            if on {
                w.fetch_add(1, Ordering::Relaxed);
            } else {
                w.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.set_on_client(false);
    }
}

impl http_body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        self.request.0.body_polled.store(true, Ordering::Relaxed);
        let r = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        let on_client = matches!(r, Poll::Ready(Some(_)));
        self.set_on_client(on_client);
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Why a connection's task closed it.
#[derive(Debug)]
enum Closed {
    Idle,
    Stalled,
}

/// Runs a connection, closing it (by dropping it) when it has had no request in flight for
/// `timeout`, or when a response has waited for the client to take its data for
/// `send_timeout` (not zero) with no body asked for data and no write of `PROGRESS_BYTES`
/// or more meanwhile. Checked every `tick` (the smaller of the two), so a connection is
/// closed up to one tick late.
///
/// The idle rule covers a connection that never starts a request: hyper's HTTP/1.1 header
/// timeout only starts once the automatic HTTP/1-or-2 detection has read the first bytes, and
/// that detection waits forever (found by tests/hostile.rs). It also covers an HTTP/2
/// connection that answers pings but opens no stream, which hyper keeps open for good. The
/// stall rule covers an HTTP/2 client that never opens its flow-control window: nothing
/// blocks on the socket (that is [`SendTimeout`]'s case), the server just never gets to send.
///
/// The connection is pinned by the caller and borrowed here, so the task holds one copy of
/// hyper's connection state, not two (moving it in cost 2 KB more heap per connection,
/// `origin/tests/held_memory.rs`).
async fn run_until_idle<F: std::future::Future>(
    mut conn: std::pin::Pin<&mut F>,
    activity: &Activity,
    timeout: Duration,
    send_timeout: Duration,
) -> Result<F::Output, Closed> {
    let tick = if send_timeout.is_zero() {
        timeout
    } else {
        timeout.min(send_timeout)
    };
    let start = tokio::time::Instant::now();
    let (mut busy_at, mut moving_at) = (start, start);
    loop {
        tokio::select! {
            r = conn.as_mut() => return Ok(r),
            _ = tokio::time::sleep(tick) => {}
        }
        let now = tokio::time::Instant::now();
        if activity.touched.swap(false, Ordering::Relaxed)
            || activity.in_flight.load(Ordering::Relaxed) > 0
        {
            busy_at = now;
        } else if now - busy_at >= timeout {
            tracing::debug!("connection closed: no request for {timeout:?}");
            return Err(Closed::Idle);
        }
        let polled = activity.body_polled.swap(false, Ordering::Relaxed);
        let wrote = activity.wrote.swap(false, Ordering::Relaxed);
        if polled || wrote || activity.waiting_on_client.load(Ordering::Relaxed) == 0 {
            moving_at = now;
        } else if !send_timeout.is_zero() && now - moving_at >= send_timeout {
            tracing::debug!("connection closed: responses not taken for {send_timeout:?}");
            return Err(Closed::Stalled);
        }
    }
}

/// A TCP socket whose writes fail once they have made no progress for `timeout`: a client
/// that stops reading (or a network that stops carrying) would otherwise keep its connection,
/// its response and a full socket send buffer until `max_connections` runs out. The socket
/// is then reset (linger 0), so the kernel drops the unsent bytes at once instead of probing
/// a closed window for minutes.
struct SendTimeout {
    io: tokio::net::TcpStream,
    /// Told of writes that move a response along.
    activity: Arc<Activity>,
    timeout: Duration,
    /// Allocated the first time a write blocks (held viewers never get here).
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// The timer runs: writes have been blocked since it was set.
    armed: bool,
}

impl SendTimeout {
    fn new(io: tokio::net::TcpStream, timeout: Duration, activity: Arc<Activity>) -> Self {
        SendTimeout {
            io,
            activity,
            timeout,
            timer: None,
            armed: false,
        }
    }

    /// Tells the connection's task of a write that moves a response along.
    fn note(&self, r: &Poll<std::io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n >= PROGRESS_BYTES) {
            self.activity.wrote.store(true, Ordering::Relaxed);
        }
    }

    /// Passes on what a write returned, and times a write that is blocked.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if r.is_ready() || self.timeout.is_zero() {
            self.armed = false;
            return r;
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        if !self.armed {
            self.armed = true;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let timer = self.timer.as_mut().expect("set when armed");
        if timer.as_mut().poll(cx).is_ready() {
            tracing::debug!("connection reset: no write progress for {:?}", self.timeout);
            let _ = self.io.set_zero_linger();
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "send timeout",
            )));
        }
        Poll::Pending
    }
}

impl tokio::io::AsyncRead for SendTimeout {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SendTimeout {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(&r);
        self.check(cx, r)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&r);
        self.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, r)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.io).poll_shutdown(cx);
        self.check(cx, r)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a connection's requests need: its activity, its peer, and the origin.
#[derive(Clone)]
struct Handler {
    activity: Arc<Activity>,
    trusted: Arc<crate::limits::TrustedProxies>,
    peer: SocketAddr,
    origin: crate::router::OriginService,
}

impl Handler {
    /// Answers one request; its response body keeps it counted in flight.
    fn call<B>(
        &self,
        mut req: http::Request<B>,
    ) -> impl std::future::Future<Output = http::Response<TrackedBody>> + Send + 'static
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let request = InFlight::start(&self.activity);
        // Nested services (WHIP) and handlers read the client's address from the request.
        let client = self.trusted.client(self.peer.ip(), req.headers());
        req.extensions_mut().insert(PeerAddr(self.peer));
        req.extensions_mut().insert(crate::limits::ClientIp(client));
        let resp = self.origin.clone().oneshot(req);
        async move {
            match resp.await {
                Ok(resp) => resp.map(|body| TrackedBody::new(body, request)),
                Err(never) => match never {},
            }
        }
    }

    /// The same, as a service hyper drives.
    fn hyper_service(
        self,
    ) -> TowerToHyperService<
        impl tower::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<TrackedBody>,
                Error = std::convert::Infallible,
                Future = impl Send,
            > + Clone,
    > {
        TowerToHyperService::new(tower::service_fn(
            move |req: http::Request<hyper::body::Incoming>| {
                let resp = self.call(req);
                async move { Ok::<_, std::convert::Infallible>(resp.await) }
            },
        ))
    }
}

/// Serves a plain-TCP connection: the lean HTTP/1.1 path ([`crate::h1`]) first, unless it is
/// off, then hyper (HTTP/2, requests with bodies, and everything the lean path hands over)
/// for the rest of the connection. After `stop` turns true the connection closes once its
/// responses are out.
async fn serve_plain(
    io: SendTimeout,
    handler: Handler,
    builder: Arc<auto::Builder<TokioExecutor>>,
    lean: bool,
    max_head: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let (io, read) = if lean {
        let h = handler.clone();
        match crate::h1::serve(io, move |req| h.call(req), max_head, stop.clone()).await? {
            crate::h1::Ended::Closed => return Ok(()),
            crate::h1::Ended::HandOff(io, read) => (io, read),
        }
    } else {
        (io, bytes::Bytes::new())
    };
    hyper_boxed(io, read, handler, builder, stop).await
}

/// [`serve_hyper`], boxed: hyper's connection state is several KB, and only connections handed
/// over pay it. (Built in a plain function: a future moved into a box inside an `async fn`
/// still takes its size in the caller's state.)
fn hyper_boxed(
    io: SendTimeout,
    read: bytes::Bytes,
    handler: Handler,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> {
    Box::pin(serve_hyper(io, read, handler, builder, stop))
}

async fn serve_hyper(
    io: SendTimeout,
    read: bytes::Bytes,
    handler: Handler,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BoxError> {
    let conn = builder.serve_connection_with_upgrades(
        TokioIo::new(crate::h1::Rewind::new(io, read)),
        handler.hyper_service(),
    );
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// Serves `origin` on `listener` until `shutdown` resolves, then answers held requests,
/// drains connections (bounded by `drain_timeout`) and returns.
pub async fn serve(
    origin: Arc<Origin>,
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let tls = match &config.tls {
        Some((c, k)) => Some(tls_acceptor(c, k)?),
        None => None,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_streams)
        .max_header_list_size(config.max_header_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    // Tells plain connections to close once their response is out (TLS ones use `graceful`).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let per_ip = crate::limits::PerIp::new(config.max_connections_per_ip, "connections");
    let per_ip_off = crate::limits::PerIp::new(0, "connections");
    let trusted = Arc::new(config.trusted_proxies.clone());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            origin
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "connection refused: at max_connections");
            drop(tcp);
            continue;
        };
        // A trusted proxy carries many clients: its connections are not counted per IP (its
        // clients' held requests are, by the address it forwards).
        let counted = if trusted.contains(peer.ip()) {
            per_ip_off.acquire(peer.ip())
        } else {
            per_ip.acquire(peer.ip())
        };
        let Some(ip_permit) = counted else {
            origin
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let permit = (permit, ip_permit);
        let _ = tcp.set_nodelay(true);
        #[cfg(target_os = "linux")]
        if config.send_unsent_bytes > 0 {
            let _ = socket2::SockRef::from(&tcp).set_tcp_notsent_lowat(config.send_unsent_bytes);
        }
        let activity = Arc::new(Activity::default());
        let handler = Handler {
            activity: activity.clone(),
            trusted: trusted.clone(),
            peer,
            origin: origin.service(),
        };
        let timeout = config.header_read_timeout;
        let send_timeout = config.send_timeout;
        let metrics = origin.metrics.clone();
        metrics.connections.fetch_add(1, Ordering::Relaxed);
        let b = builder.clone();
        match &tls {
            None => {
                let io = SendTimeout::new(tcp, send_timeout, activity.clone());
                // Boxed, built here: an async block that captured it and pinned it would
                // hold it twice (`origin/tests/held_memory.rs`).
                let mut conn = Box::pin(serve_plain(
                    io,
                    handler,
                    b,
                    config.lean_http1,
                    config.max_header_bytes,
                    stop_rx.clone(),
                ));
                tokio::spawn(async move {
                    if let Ok(Err(e)) =
                        run_until_idle(conn.as_mut(), &activity, timeout, send_timeout).await
                    {
                        tracing::trace!(%peer, "connection ended: {e}");
                    }
                    metrics.connections.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    match tokio::time::timeout(
                        timeout,
                        acceptor.accept(SendTimeout::new(tcp, send_timeout, activity.clone())),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => {
                            let conn = b
                                .serve_connection_with_upgrades(
                                    TokioIo::new(tls),
                                    handler.hyper_service(),
                                )
                                .into_owned();
                            let conn = watcher.watch(conn);
                            tokio::pin!(conn);
                            if let Ok(Err(e)) =
                                run_until_idle(conn.as_mut(), &activity, timeout, send_timeout)
                                    .await
                            {
                                tracing::trace!(%peer, "connection ended: {e}");
                            }
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                    metrics.connections.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
        }
    }
    tracing::info!("shutting down: releasing held requests and draining connections");
    origin.begin_shutdown();
    let _ = stop_tx.send(true);
    drop(stop_rx);
    tokio::select! {
        _ = async { tokio::join!(graceful.shutdown(), stop_tx.closed()) } => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(config.drain_timeout) => tracing::warn!("drain timeout: closing remaining connections"),
    }
    Ok(())
}
