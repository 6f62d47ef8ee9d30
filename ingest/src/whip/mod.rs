//! WHIP ingest (RFC 9725): WebRTC publishers (OBS 30+, browsers, GStreamer) into the same
//! LL-HLS streams RTMP publishers make.
//!
//! - HTTP ([`Whip`] is the origin's [`Fallback`] for `/whip/...`): `POST /whip/live/NAME` with
//!   an SDP offer answers `201 Created` with the SDP answer and the session's `Location`;
//!   `DELETE` there ends the session; `OPTIONS` answers CORS preflights; `PATCH` (trickle ICE,
//!   ICE restart) answers 405: the answer carries our one ICE-lite host candidate and the
//!   publisher's candidates arrive as connectivity checks, so nothing needs trickling.
//!   Publish keys are bearer tokens (`Authorization: Bearer KEY`, or `?key=KEY`).
//! - UDP: every session shares one socket. The dispatcher routes a STUN binding request by the
//!   ICE username (our per-session ufrag) and remembers the source address; every other
//!   datagram (DTLS, SRTP, SRTCP) goes to the session that owns its source address.
//! - [`session`]: one task per session drives its `str0m::Rtc` (ICE-lite, DTLS-SRTP, SRTCP,
//!   NACK/RTX) in RTP mode; [`rtp`] reorders each stream with a time-bounded jitter buffer
//!   and depacketizes H.264; [`ingest::Assembler`] aligns the tracks through sender reports
//!   and asks for keyframes; [`audio::OpusToAac`] transcodes audio for AAC output.

pub mod audio;
pub mod ingest;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod video;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use llhls_origin::{Body, Fallback};
use str0m::change::SdpOffer;
use str0m::{Candidate, IceCreds, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::streams::{PublishError, Streams};
use session::{AudioMode, Datagram, SessionParams};

/// Largest SDP offer accepted (browsers send 5-10 KB).
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
/// Datagrams queued per session before the dispatcher drops them.
const SESSION_QUEUE: usize = 1024;

/// WHIP settings.
#[derive(Debug, Clone)]
pub struct WhipConfig {
    /// The UDP socket every session shares.
    pub udp: SocketAddr,
    /// The address publishers reach that socket at (our ICE candidate).
    pub candidate: SocketAddr,
    /// Audio output: AAC (transcoded) or Opus (passed through).
    pub audio: AudioMode,
    /// AAC bitrate in bit/s when transcoding.
    pub aac_bitrate: usize,
    /// Most sessions at once; more offers answer 503.
    pub max_sessions: usize,
    /// The packager's segment target (keyframe requests aim at it).
    pub segment_target: Duration,
    /// Test only: publish audio this many ms late (player-test's negative control).
    pub break_av_sync_ms: i64,
    /// Accept VP8/VP9 and transcode it to H.264.
    pub transcode_video: bool,
}

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, mpsc::Sender<Datagram>>,
    by_addr: HashMap<SocketAddr, String>,
}

struct Entry {
    name: String,
    ufrag: String,
    stop: Option<oneshot::Sender<()>>,
}

/// Counters for `/metrics`, shared by every session.
#[derive(Default)]
pub struct WhipStats {
    /// WHIP offers accepted.
    pub sessions_started: std::sync::atomic::AtomicU64,
    /// WHIP offers refused.
    pub sessions_refused: std::sync::atomic::AtomicU64,
    /// RTP packets the jitter buffers gave up on.
    pub packets_lost: std::sync::atomic::AtomicU64,
    /// Keyframe requests (RTCP PLI) sent.
    pub keyframe_requests: std::sync::atomic::AtomicU64,
    /// Datagrams dropped because a session was not keeping up.
    pub datagrams_dropped: std::sync::atomic::AtomicU64,
    /// Datagrams from addresses with no session.
    pub datagrams_unknown: std::sync::atomic::AtomicU64,
}

/// The WHIP endpoint and its sessions.
pub struct Whip {
    /// Counters for `/metrics`.
    pub stats: Arc<WhipStats>,
    config: WhipConfig,
    streams: Arc<Streams>,
    socket: Arc<UdpSocket>,
    routes: Mutex<Routes>,
    sessions: Mutex<HashMap<String, Entry>>,
}

/// Picks the address to advertise: the configured public IP, else the bound IP, else the
/// address this host uses for outbound traffic, else loopback.
pub fn candidate_address(bind: SocketAddr, public_ip: Option<IpAddr>) -> SocketAddr {
    if let Some(ip) = public_ip {
        return SocketAddr::new(ip, bind.port());
    }
    if !bind.ip().is_unspecified() {
        return bind;
    }
    // Connecting a UDP socket sends nothing; it only asks the kernel for the route's source.
    let outbound = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    SocketAddr::new(
        outbound.unwrap_or(IpAddr::from([127, 0, 0, 1])),
        bind.port(),
    )
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn reply(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::full(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn allow(mut r: Response<Body>, methods: &'static str) -> Response<Body> {
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    r
}

/// The ICE username's local part from a STUN binding request (`OURS:THEIRS`), if `d` is one.
pub fn stun_local_ufrag(d: &[u8]) -> Option<&str> {
    // RFC 5389: type 0x0001 (binding request), magic cookie, 20-byte header, TLV attributes.
    if d.len() < 20
        || d[0] & 0xc0 != 0
        || d[0..2] != [0x00, 0x01]
        || d[4..8] != [0x21, 0x12, 0xa4, 0x42]
    {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([d[2], d[3]]));
    let body = d.get(20..20 + len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let t = u16::from_be_bytes([body[i], body[i + 1]]);
        let l = usize::from(u16::from_be_bytes([body[i + 2], body[i + 3]]));
        let v = body.get(i + 4..i + 4 + l)?;
        if t == 0x0006 {
            let user = std::str::from_utf8(v).ok()?;
            return user.split(':').next();
        }
        i += 4 + l.div_ceil(4) * 4;
    }
    None
}

impl Whip {
    /// Binds the UDP socket and starts the dispatcher.
    pub async fn start(config: WhipConfig, streams: Arc<Streams>) -> anyhow::Result<Arc<Whip>> {
        let socket = UdpSocket::bind(config.udp)
            .await
            .map_err(|e| anyhow::anyhow!("binding WHIP UDP {}: {e}", config.udp))?;
        let whip = Arc::new(Whip {
            stats: Arc::new(WhipStats::default()),
            config,
            streams,
            socket: Arc::new(socket),
            routes: Mutex::new(Routes::default()),
            sessions: Mutex::new(HashMap::new()),
        });
        tokio::spawn(dispatch(Arc::downgrade(&whip), whip.socket.clone()));
        Ok(whip)
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Live WHIP sessions.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Prometheus text for `/metrics`.
    pub fn render_metrics(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.stats;
        let rows: [(&str, &str, &str, u64); 7] = [
            (
                "llhls_whip_sessions",
                "gauge",
                "Live WHIP sessions.",
                self.session_count() as u64,
            ),
            (
                "llhls_whip_sessions_started_total",
                "counter",
                "WHIP offers accepted.",
                s.sessions_started.load(Relaxed),
            ),
            (
                "llhls_whip_sessions_refused_total",
                "counter",
                "WHIP offers refused.",
                s.sessions_refused.load(Relaxed),
            ),
            (
                "llhls_whip_packets_lost_total",
                "counter",
                "RTP packets the jitter buffer gave up on.",
                s.packets_lost.load(Relaxed),
            ),
            (
                "llhls_whip_keyframe_requests_total",
                "counter",
                "Keyframe requests (RTCP PLI) sent to publishers.",
                s.keyframe_requests.load(Relaxed),
            ),
            (
                "llhls_whip_datagrams_dropped_total",
                "counter",
                "Datagrams dropped because a session was not keeping up.",
                s.datagrams_dropped.load(Relaxed),
            ),
            (
                "llhls_whip_datagrams_unknown_total",
                "counter",
                "Datagrams from addresses with no WHIP session.",
                s.datagrams_unknown.load(Relaxed),
            ),
        ];
        rows.iter()
            .map(|(name, kind, help, v)| {
                format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n")
            })
            .collect()
    }

    async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            ["whip", "live", name] => {
                let name = (*name).to_string();
                match method {
                    Method::OPTIONS => preflight("POST, OPTIONS"),
                    Method::POST => {
                        let r = self.publish(&name, req).await;
                        let counter = if r.status() == StatusCode::CREATED {
                            &self.stats.sessions_started
                        } else {
                            &self.stats.sessions_refused
                        };
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        r
                    }
                    _ => allow(
                        reply(StatusCode::METHOD_NOT_ALLOWED, "WHIP endpoint: POST an SDP offer"),
                        "POST, OPTIONS",
                    ),
                }
            }
            ["whip", "session", id] => match method {
                Method::OPTIONS => preflight("DELETE, PATCH, OPTIONS"),
                Method::DELETE => self.delete(id),
                Method::PATCH => allow(
                    reply(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "trickle ICE and ICE restarts are not supported: the answer carries the server's only candidate (ICE-lite)",
                    ),
                    "DELETE, OPTIONS",
                ),
                _ => allow(
                    reply(StatusCode::METHOD_NOT_ALLOWED, "WHIP session: DELETE ends it"),
                    "DELETE, OPTIONS",
                ),
            },
            _ => reply(StatusCode::NOT_FOUND, "not found: WHIP endpoints are /whip/live/NAME"),
        }
    }

    fn delete(&self, id: &str) -> Response<Body> {
        let entry = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
            .and_then(|e| e.stop.take().map(|s| (s, e.name.clone())));
        match entry {
            Some((stop, name)) => {
                tracing::info!(session = %id, stream = %name, "WHIP session deleted by the publisher");
                let _ = stop.send(());
                reply(StatusCode::OK, "session ended")
            }
            None => reply(StatusCode::NOT_FOUND, "no such WHIP session"),
        }
    }

    async fn publish(
        self: &Arc<Self>,
        name: &str,
        req: Request<hyper::body::Incoming>,
    ) -> Response<Body> {
        let peer = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/sdp")
        {
            return reply(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "WHIP offers must be Content-Type: application/sdp",
            );
        }
        if req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > MAX_OFFER_BYTES)
        {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, "SDP offer too large");
        }
        let key = bearer(&req).or_else(|| query_key(req.uri().query().unwrap_or("")));
        if self.session_count() >= self.config.max_sessions {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many WHIP sessions on this server",
            );
        }
        // Read the body before claiming the name: a slow upload must not hold the stream.
        let body = match Limited::new(req.into_body(), MAX_OFFER_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return reply(StatusCode::PAYLOAD_TOO_LARGE, "SDP offer too large");
                }
                return reply(StatusCode::BAD_REQUEST, "could not read the SDP offer");
            }
        };
        let Ok(text) = std::str::from_utf8(&body) else {
            return reply(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8 text");
        };
        let plan = match sdp::plan(text, self.config.transcode_video) {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(stream = %name, "WHIP offer refused: {why}");
                return reply(StatusCode::UNPROCESSABLE_ENTITY, &why);
            }
        };
        let offer = match SdpOffer::from_sdp_string(text) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(stream = %name, "malformed WHIP offer: {e}");
                return reply(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed SDP offer: {e}"),
                );
            }
        };
        let publication = match self.streams.claim(name, key.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(stream = %name, "WHIP publish refused: {e}");
                let status = match e {
                    PublishError::Duplicate(_) => StatusCode::CONFLICT,
                    PublishError::BadName(_) => StatusCode::BAD_REQUEST,
                    PublishError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                };
                let mut r = reply(status, &e.to_string());
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"llhls\""),
                    );
                }
                return r;
            }
        };
        let ufrag = random_hex(8);
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(IceCreds {
                ufrag: ufrag.clone(),
                pass: random_hex(16),
            })
            .clear_codecs()
            .enable_h264(plan.video == Some(sdp::Offered::H264))
            .enable_vp8(plan.video == Some(sdp::Offered::Vp8))
            .enable_vp9(plan.video == Some(sdp::Offered::Vp9))
            .enable_opus(true, false)
            // Packets, not frames: our jitter buffer waits a bounded time for a missing
            // packet, where str0m's frame API waits for a number of packets.
            .set_rtp_mode(true)
            .build(Instant::now());
        let candidate = match Candidate::host(self.config.candidate, "udp") {
            Ok(c) => c,
            Err(e) => {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("bad WHIP candidate address {}: {e}", self.config.candidate),
                )
            }
        };
        rtc.add_local_candidate(candidate);
        let answer = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rtc.sdp_api().accept_offer(offer)
        })) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::warn!(stream = %name, "WHIP offer not accepted: {e}");
                return reply(
                    StatusCode::BAD_REQUEST,
                    &format!("SDP offer not accepted: {e}"),
                );
            }
            Err(_) => {
                tracing::error!(stream = %name, "the WebRTC stack failed on this offer");
                return reply(StatusCode::BAD_REQUEST, "SDP offer not accepted");
            }
        };
        let answer = answer.to_sdp_string();
        let id = random_hex(16);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let (stop_tx, stop_rx) = oneshot::channel();
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_ufrag
            .insert(ufrag.clone(), tx);
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.clone(),
                Entry {
                    name: name.to_string(),
                    ufrag: ufrag.clone(),
                    stop: Some(stop_tx),
                },
            );
        let params = SessionParams {
            id: id.clone(),
            rtc,
            publication,
            plan: plan.clone(),
            rx,
            stop: stop_rx,
            socket: self.socket.clone(),
            local: self.config.candidate,
            audio: self.config.audio,
            aac_bitrate: self.config.aac_bitrate,
            segment_target: self.config.segment_target,
            peer: peer.clone(),
            break_av_sync_ms: self.config.break_av_sync_ms,
            stats: self.stats.clone(),
        };
        tracing::info!(session = %id, stream = %name, video = ?plan.video, audio = ?plan.audio, candidate = %self.config.candidate, "WHIP offer accepted; waiting for ICE");
        let whip = self.clone();
        let sid = id.clone();
        let sname = name.to_string();
        tokio::spawn(async move {
            let run = tokio::spawn(session::run(params));
            let why = match run.await {
                Ok(why) => why.to_string(),
                Err(e) => format!("session task failed: {e}"),
            };
            whip.forget(&sid);
            tracing::info!(session = %sid, stream = %sname, "WHIP session ended: {why}");
        });
        let mut r = Response::new(Body::full(Bytes::from(answer)));
        *r.status_mut() = StatusCode::CREATED;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/sdp"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("/whip/session/{id}")) {
            h.insert(header::LOCATION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("\"{id}\"")) {
            h.insert(header::ETAG, v);
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Location, ETag, Link"),
        );
        r
    }

    fn forget(&self, id: &str) {
        let entry = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(e) = entry {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            routes.by_ufrag.remove(&e.ufrag);
            routes.by_addr.retain(|_, u| *u != e.ufrag);
        }
    }
}

fn preflight(methods: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bearer<B>(req: &Request<B>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn query_key(q: &str) -> Option<String> {
    q.split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .map(str::to_string)
}

/// The origin's handler for `/whip/...`.
pub struct WhipHttp(pub Arc<Whip>);

impl Fallback for WhipHttp {
    fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        Box::pin(self.0.clone().handle(req))
    }
}

/// Reads the shared socket forever and routes each datagram to its session.
async fn dispatch(whip: std::sync::Weak<Whip>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 2048];
    let mut unknown: u64 = 0;
    let mut dropped: u64 = 0;
    loop {
        let (n, source) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from a gone peer surface here on some systems: not fatal.
                tracing::debug!("WHIP UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let Some(whip) = whip.upgrade() else { return };
        let data = &buf[..n];
        let tx = {
            let mut routes = whip.routes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(ufrag) = stun_local_ufrag(data) {
                if routes.by_ufrag.contains_key(ufrag) {
                    let u = ufrag.to_string();
                    routes.by_addr.insert(source, u.clone());
                    routes.by_ufrag.get(&u).cloned()
                } else {
                    None
                }
            } else {
                routes
                    .by_addr
                    .get(&source)
                    .and_then(|u| routes.by_ufrag.get(u))
                    .cloned()
            }
        };
        match tx {
            Some(tx) => {
                let d = Datagram {
                    source,
                    data: Bytes::copy_from_slice(data),
                    at: Instant::now(),
                };
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(d) {
                    dropped += 1;
                    whip.stats
                        .datagrams_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if dropped.is_power_of_two() {
                        tracing::warn!(%source, dropped, "a WHIP session is not keeping up: datagrams dropped");
                    }
                }
            }
            None => {
                unknown += 1;
                whip.stats
                    .datagrams_unknown
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if unknown.is_power_of_two() {
                    tracing::warn!(%source, unknown, "datagram from an address with no WHIP session: ignored");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username() {
        let user = b"abcd:efgh";
        let mut m = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7; 12]);
        let mut attrs = vec![0x00, 0x06, 0, user.len() as u8];
        attrs.extend_from_slice(user);
        attrs.extend_from_slice(&[0, 0, 0]); // pad to 4
        let l = attrs.len() as u16;
        m[2..4].copy_from_slice(&l.to_be_bytes());
        m.extend_from_slice(&attrs);
        assert_eq!(stun_local_ufrag(&m), Some("abcd"));
        assert_eq!(stun_local_ufrag(&m[..10]), None);
        let mut rtp = m.clone();
        rtp[0] = 0x80;
        assert_eq!(stun_local_ufrag(&rtp), None);
        let mut lying = m.clone();
        lying[2..4].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(stun_local_ufrag(&lying), None);
    }

    #[test]
    fn keys_from_header_or_query() {
        let r = Request::builder()
            .header("authorization", "Bearer s3cret")
            .body(())
            .unwrap();
        assert_eq!(bearer(&r).as_deref(), Some("s3cret"));
        assert_eq!(query_key("a=1&key=k2").as_deref(), Some("k2"));
        let r = Request::builder()
            .header("authorization", "Basic xyz")
            .body(())
            .unwrap();
        assert_eq!(bearer(&r), None);
    }
}
