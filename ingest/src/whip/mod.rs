//! WHIP ingest (RFC 9725): WebRTC publishers (OBS 30+, browsers, GStreamer) into the same
//! LL-HLS streams RTMP publishers make.
//!
//! - [`http`] ([`Whip::handle`] answers the origin's requests for `/whip/...`): `POST /whip/live/NAME`
//!   with an SDP offer answers `201 Created` with the SDP answer and the session's
//!   `Location`; `DELETE` there ends the session; `OPTIONS` answers CORS preflights; `PATCH`
//!   (trickle ICE, ICE restart) answers 405: the answer carries our one ICE-lite host
//!   candidate and the publisher's candidates arrive as connectivity checks, so nothing needs
//!   trickling. Publish keys are bearer tokens (`Authorization: Bearer KEY`, or `?key=KEY`).
//!   [`sdp`] reads the offer first, so one we cannot package is refused with a reason.
//! - [`dispatch`]: every session shares one UDP socket. [`dispatch::Routes`] routes a STUN
//!   binding request by the ICE username ([`stun::stun_local_ufrag`]: our per-session ufrag)
//!   and remembers the source address; every other datagram (DTLS, SRTP, SRTCP) goes to the
//!   session that owns its source address.
//! - [`session`]: one task per session drives its `str0m::Rtc` (ICE-lite, DTLS-SRTP, SRTCP,
//!   NACK/RTX) in RTP mode; [`jitter`] reorders each stream with a time-bounded jitter
//!   buffer; [`depacketize`] rebuilds H.264 access units (length-prefixed) and VP8/VP9
//!   frames; [`ingest::Assembler`] aligns the tracks through sender reports and asks for
//!   keyframes; [`audio::OpusToAac`] transcodes audio for AAC output and
//!   [`video::VideoTranscoder`] VP8/VP9 to H.264.
//!
//! Everything but the shells ([`http`], [`dispatch`]'s socket loop, [`session`]) is
//! sans-IO and takes time as an argument.

pub mod audio;
pub mod depacketize;
pub mod dispatch;
pub mod http;
pub mod ingest;
pub mod jitter;
pub mod sdp;
pub mod session;
pub mod stun;
pub mod video;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

pub use http::MAX_OFFER_BYTES;
pub use stun::stun_local_ufrag;

use crate::streams::Streams;
use session::{AudioMode, Datagram};

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
    /// Most sessions at once from one client IP (0: no limit); more offers answer 429.
    pub max_sessions_per_ip: usize,
    /// The packager's segment target (keyframe requests aim at it).
    pub segment_target: Duration,
    /// Test only: publish audio this many ms late (player-test's negative control).
    pub break_av_sync_ms: i64,
    /// Accept VP8/VP9 and transcode it to H.264.
    pub transcode_video: bool,
}

struct Entry {
    name: String,
    /// The publisher's IP (the socket's), for the per-IP limit.
    ip: Option<std::net::IpAddr>,
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
    routes: Mutex<dispatch::Routes<mpsc::Sender<Datagram>>>,
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

impl Whip {
    /// Binds the UDP socket and starts the dispatcher.
    pub async fn start(config: WhipConfig, streams: Arc<Streams>) -> anyhow::Result<Arc<Whip>> {
        // The I/O error stays in the chain: the caller explains an address in use.
        let socket = UdpSocket::bind(config.udp).await.map_err(|e| {
            anyhow::Error::new(e).context(format!("binding WHIP UDP {}", config.udp))
        })?;
        let whip = Arc::new(Whip {
            stats: Arc::new(WhipStats::default()),
            config,
            streams,
            socket: Arc::new(socket),
            routes: Mutex::new(dispatch::Routes::new()),
            sessions: Mutex::new(HashMap::new()),
        });
        tokio::spawn(dispatch::run(Arc::downgrade(&whip), whip.socket.clone()));
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

    /// Live WHIP sessions from `ip`.
    pub fn sessions_from(&self, ip: std::net::IpAddr) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.ip == Some(ip))
            .count()
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

    fn forget(&self, id: &str) {
        let entry = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(e) = entry {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            routes.remove(&e.ufrag);
        }
    }
}
