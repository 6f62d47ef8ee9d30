//! Several origins behind one name: when another node owns a stream (it has the stream's
//! publisher), a viewer request for that stream is proxied to it, not redirected, so a CDN's
//! cache keys stay the same whichever node answers. Who owns what is the [`Cluster`]'s
//! business (the binary keeps it in Redis); this module only asks it and forwards requests.
//!
//! The owner's status, headers and body pass through unchanged (blocking playlist requests
//! and hinted parts included: the body is streamed as the owner sends it). A proxied request
//! carries [`PROXIED_HEADER`]; a node never proxies such a request again, so two nodes that
//! disagree about an owner for a moment cannot bounce a request between them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use crate::body::Body;

/// Set on requests one node forwards to another (its value: the forwarding node's address).
pub const PROXIED_HEADER: &str = "llhls-proxied-by";

/// How long a viewer request for a stream between owners (its node died, no node has taken it
/// over yet) is held before 503: longer than a claim lasts (3 s) plus a publisher's reconnect,
/// shorter than players' playlist timeouts (hls.js: 10 s to the first byte).
pub const MOVE_WAIT: Duration = Duration::from_secs(8);

/// A boxed future, for the object-safe [`Cluster`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where streams live, as the cluster's shared state says.
pub trait Cluster: Send + Sync {
    /// This node's address as other nodes reach it (`http://10.0.0.5:8080`).
    fn advertise(&self) -> &str;
    /// The address of the node that owns `stream`, when that is another node; `None` when this
    /// node owns it or nobody does (the request is then answered here).
    fn owner<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Option<String>>;
    /// Every stream the cluster knows with its owner's address.
    fn streams(&self) -> BoxFuture<'_, Vec<(String, String)>>;
    /// Is `stream` between owners: its node stopped renewing its claim (it died) while it was
    /// live, and no node has taken it over yet? Viewers then get 503 (retried by players)
    /// instead of 404 (which players give up on).
    fn moving<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, bool>;
}

/// The answer for a stream that was live when this server last stopped and whose publisher
/// is not back yet (see [`crate::Origin::expect_back`]).
pub(crate) fn returning() -> Response<Body> {
    unavailable(b"this stream is coming back after a restart: try again in a second\n")
}

/// 503 with `Retry-After: 1`, never cached: players retry it (a 404 they give up on).
fn unavailable(text: &'static [u8]) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from_static(text)));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Proxied requests, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ProxyStats {
    pub(crate) proxied: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl ProxyStats {
    pub(crate) fn render(&self) -> String {
        format!(
            "# HELP llhls_cluster_proxied_requests_total Viewer requests forwarded to the node that owns the stream.\n\
             # TYPE llhls_cluster_proxied_requests_total counter\n\
             llhls_cluster_proxied_requests_total {}\n\
             # HELP llhls_cluster_proxy_errors_total Forwarded requests the owner did not answer.\n\
             # TYPE llhls_cluster_proxy_errors_total counter\n\
             llhls_cluster_proxy_errors_total {}\n",
            self.proxied.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed)
        )
    }
}

/// The HTTP client that forwards requests: pooled keep-alive connections to the other nodes.
pub(crate) struct Proxy {
    client: Client<HttpConnector, Empty<Bytes>>,
    pub(crate) stats: ProxyStats,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish()
    }
}

/// Headers that describe one hop, not the response (RFC 9110 7.6.1), and Host (set for the
/// owner).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

impl Proxy {
    pub(crate) fn new() -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        http.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(http);
        Proxy {
            client,
            stats: ProxyStats::default(),
        }
    }

    /// Forwards a GET/HEAD for `path_and_query` with the viewer's headers to `owner`; the
    /// owner's answer comes back as it is. Err (with the reason) when the owner cannot be
    /// reached: the request can be tried again (it has no body).
    pub(crate) async fn forward(
        &self,
        owner: &str,
        from: &str,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, String> {
        self.stats.proxied.fetch_add(1, Ordering::Relaxed);
        let uri = format!("{}{}", owner.trim_end_matches('/'), path_and_query);
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.method_mut() = method.clone();
        match uri.parse() {
            Ok(u) => *req.uri_mut() = u,
            Err(_) => return Err(format!("bad owner address {owner}")),
        }
        for (k, v) in headers {
            if !hop_by_hop(k) {
                req.headers_mut().append(k.clone(), v.clone());
            }
        }
        if let Ok(v) = HeaderValue::from_str(from) {
            req.headers_mut()
                .insert(HeaderName::from_static(PROXIED_HEADER), v);
        }
        let resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%owner, "proxying to the stream's owner failed: {e}");
                return Err(e.to_string());
            }
        };
        let (parts, mut incoming) = resp.into_parts();
        // The body as the owner sends it, frame by frame (a hinted part grows while it is
        // being sent); a viewer that leaves drops the receiver, which ends the copy.
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(frame) = incoming.frame().await {
                let Ok(frame) = frame else { break };
                if let Ok(data) = frame.into_data() {
                    if tx.send(data).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut out = Response::new(Body::Stream(rx));
        *out.status_mut() = parts.status;
        for (k, v) in &parts.headers {
            if !hop_by_hop(k) {
                out.headers_mut().append(k.clone(), v.clone());
            }
        }
        Ok(out)
    }

    /// The answer for a stream that is moving to another node (see [`Cluster::moving`]).
    pub(crate) fn moving(&self) -> Response<Body> {
        unavailable(b"this stream is moving to another node: try again in a second\n")
    }

    /// The answer when the owner did not answer.
    pub(crate) fn failed(&self) -> Response<Body> {
        let mut r = Response::new(Body::full(Bytes::from_static(
            b"the node that has this stream did not answer\n",
        )));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

/// `/streams.json` for a cluster: this node's streams with `"owner"` added, then the streams
/// other nodes own (name, playlist and owner: their details are on their owner).
pub(crate) fn stream_list(
    local: &[(String, String)],
    advertise: &str,
    cluster: &[(String, String)],
) -> String {
    let esc = |s: &str| s.replace(['"', '\\'], "");
    let mut out: Vec<String> = local
        .iter()
        .map(|(_, json)| match json.strip_suffix('}') {
            Some(head) => format!("{head},\"owner\":\"{}\"}}", esc(advertise)),
            None => json.clone(),
        })
        .collect();
    for (name, owner) in cluster {
        if local.iter().any(|(n, _)| n == name) {
            continue;
        }
        out.push(format!(
            "{{\"name\":\"{n}\",\"playlist\":\"/live/{n}/index.m3u8\",\"owner\":\"{}\"}}",
            esc(owner),
            n = esc(name)
        ));
    }
    format!("[{}]", out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_list_adds_owners() {
        let local = vec![(
            "a".to_string(),
            "{\"name\":\"a\",\"viewers\":1}".to_string(),
        )];
        let cluster = vec![
            ("a".to_string(), "http://n1:8080".to_string()),
            ("b".to_string(), "http://n2:8080".to_string()),
        ];
        assert_eq!(
            stream_list(&local, "http://n1:8080", &cluster),
            "[{\"name\":\"a\",\"viewers\":1,\"owner\":\"http://n1:8080\"},\
             {\"name\":\"b\",\"playlist\":\"/live/b/index.m3u8\",\"owner\":\"http://n2:8080\"}]"
        );
    }

    #[test]
    fn hop_by_hop_headers_stay() {
        assert!(hop_by_hop(&header::CONNECTION));
        assert!(hop_by_hop(&header::HOST));
        assert!(!hop_by_hop(&header::CACHE_CONTROL));
        assert!(!hop_by_hop(&header::RANGE));
    }
}
