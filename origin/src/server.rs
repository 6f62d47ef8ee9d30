//! The listener: HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one port, HTTPS with ALPN h2 when
//! a certificate is configured, connection and header limits, and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    /// Largest request head accepted (bytes). On HTTP/1.1 this is also the connection's read
    /// buffer: at 8192 (hyper's smallest) the buffer stays at 8 KB; above it, hyper grows every
    /// connection's buffer to 16 KB on the first request that arrives in more than one read
    /// (always, behind the protocol sniffing), 8 KB more for each held viewer.
    pub max_header_bytes: usize,
    /// HTTP/2 streams per connection.
    pub h2_max_streams: u32,
    /// PEM certificate chain and private key: serve HTTPS (ALPN h2, http/1.1) instead.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long shutdown waits for connections to finish.
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 25_000,
            max_connections_per_ip: 0,
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 8 * 1024,
            h2_max_streams: 1000,
            tls: None,
            drain_timeout: Duration::from_secs(5),
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

/// Runs a connection, closing it (by dropping it) when no request has started within
/// `timeout` of the accept. hyper's HTTP/1.1 header timeout only starts once the automatic
/// HTTP/1-or-2 detection has read the first bytes, and that detection waits forever: without
/// this, connections that send nothing stay open until they fill `max_connections` (found by
/// tests/hostile.rs). `None` when it was closed for that.
///
/// The connection is pinned by the caller and borrowed here, so the task holds one copy of
/// hyper's connection state, not two (moving it in cost 2 KB more heap per connection,
/// `origin/tests/held_memory.rs`).
async fn first_request_within<F: std::future::Future>(
    mut conn: std::pin::Pin<&mut F>,
    started: &AtomicBool,
    timeout: Duration,
) -> Option<F::Output> {
    tokio::select! {
        r = conn.as_mut() => return Some(r),
        _ = tokio::time::sleep(timeout) => {}
    }
    if !started.load(Ordering::Relaxed) {
        tracing::debug!("connection closed: no request within {timeout:?}");
        return None;
    }
    Some(conn.await)
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
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let per_ip = crate::limits::PerIp::new(config.max_connections_per_ip, "connections");
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
        let Some(ip_permit) = per_ip.acquire(peer.ip()) else {
            origin
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let permit = (permit, ip_permit);
        let _ = tcp.set_nodelay(true);
        let first_request = Arc::new(AtomicBool::new(false));
        let seen = first_request.clone();
        // Nested services (WHIP) and handlers read the client's address from the request.
        let svc = TowerToHyperService::new(origin.service().map_request(
            move |mut req: http::Request<hyper::body::Incoming>| {
                seen.store(true, Ordering::Relaxed);
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        ));
        let timeout = config.header_read_timeout;
        let metrics = origin.metrics.clone();
        metrics.connections.fetch_add(1, Ordering::Relaxed);
        let b = builder.clone();
        match &tls {
            None => {
                let conn = b
                    .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    tokio::pin!(conn);
                    if let Some(Err(e)) =
                        first_request_within(conn.as_mut(), &first_request, timeout).await
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
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let conn = b
                                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                                .into_owned();
                            let conn = watcher.watch(conn);
                            tokio::pin!(conn);
                            if let Some(Err(e)) =
                                first_request_within(conn.as_mut(), &first_request, timeout).await
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
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(config.drain_timeout) => tracing::warn!("drain timeout: closing remaining connections"),
    }
    Ok(())
}
