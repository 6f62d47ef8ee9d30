//! SRT ingest: publishers (hardware encoders, OBS, vMix, Larix, ffmpeg, `srt-live-transmit`)
//! call the listener in caller mode with MPEG-TS over SRT. The SRT protocol (handshake,
//! latency negotiation, retransmission, packet delivery on time) is `srt-tokio`, a pure-Rust
//! implementation that interoperates with libsrt callers (see README "Dependencies"). This
//! shell checks the stream id at the handshake ([`publish::parse_stream_id`], then a claim
//! in the registry: key, name, one publisher per name) and refuses with an SRT reject code,
//! then runs one task per publisher that feeds [`publish::TsPublish`] and sends what it
//! outputs to the stream. A connection that ends (shutdown or timeout) leaves the stream in
//! its reconnect grace period: an encoder that reconnects continues it with a
//! discontinuity. An encoder that restarts without closing its connection (a crash, a lost
//! network) comes back while its old connection still waits for SRT's 5 s peer timeout: a
//! publisher with a valid key for a name whose connection has sent nothing for
//! [`STALE_AFTER`] ends that connection and takes over (instead of being refused as a second
//! publisher).

pub mod publish;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use llhls_origin::wall_now;
use llhls_packager::WallClock;
use srt_protocol::settings::{KeySettings, Passphrase};
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::KeySize;
use srt_tokio::{ConnectionRequest, SrtListener, SrtSocket};

use crate::streams::{Publication, PublishError, Streams};
use publish::{parse_stream_id, Output, TsPublish};

/// A publisher that has sent nothing for this long can be replaced by a new connection for
/// its name (see the module docs).
pub const STALE_AFTER: Duration = Duration::from_millis(1500);

/// A connected publisher, as a newcomer for its name sees it.
#[derive(Debug)]
struct Held {
    last_data: Mutex<Instant>,
    stop: tokio::sync::Notify,
}

type Sessions = Arc<Mutex<HashMap<String, Arc<Held>>>>;

/// SRT listener settings.
#[derive(Debug, Clone)]
pub struct SrtConfig {
    /// The UDP address to listen on.
    pub addr: SocketAddr,
    /// The receive latency offered to publishers; the larger of this and the publisher's
    /// own wins (SRT's rule).
    pub latency: Duration,
    /// Publishers must encrypt with this passphrase (None: they must not encrypt).
    pub passphrase: Option<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SrtStats {
    sessions: AtomicU64,
    started: AtomicU64,
    refused: AtomicU64,
    loss_reports: AtomicU64,
    retransmitted: AtomicU64,
    dropped: AtomicU64,
    cc_errors: AtomicU64,
    ts_errors: AtomicU64,
}

impl SrtStats {
    /// Prometheus text for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 8] = [
            (
                "llhls_srt_sessions",
                "gauge",
                "Connected SRT publishers.",
                &self.sessions,
            ),
            (
                "llhls_srt_sessions_started_total",
                "counter",
                "SRT publishers accepted.",
                &self.started,
            ),
            (
                "llhls_srt_sessions_refused_total",
                "counter",
                "SRT connections refused (stream id, key, passphrase, name taken).",
                &self.refused,
            ),
            (
                "llhls_srt_loss_reports_total",
                "counter",
                "SRT loss reports (NAK) sent to publishers, each asking again for missing packets.",
                &self.loss_reports,
            ),
            (
                "llhls_srt_packets_retransmitted_total",
                "counter",
                "Retransmitted SRT data packets received.",
                &self.retransmitted,
            ),
            (
                "llhls_srt_packets_dropped_total",
                "counter",
                "SRT data packets that came too late (or never) and were given up.",
                &self.dropped,
            ),
            (
                "llhls_srt_ts_cc_errors_total",
                "counter",
                "MPEG-TS continuity counter errors in SRT publishers' streams.",
                &self.cc_errors,
            ),
            (
                "llhls_srt_ts_errors_total",
                "counter",
                "Malformed MPEG-TS packets, sections, PES and frames dropped.",
                &self.ts_errors,
            ),
        ];
        rows.iter()
            .map(|(name, kind, help, v)| {
                let v = v.load(Relaxed);
                format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n")
            })
            .collect()
    }
}

/// A bound SRT listener.
pub struct Srt {
    listener: SrtListener,
    incoming: srt_tokio::SrtIncoming,
    local: SocketAddr,
    sessions: Sessions,
    passphrase: Option<Arc<str>>,
    /// The counters, for `/metrics`.
    pub stats: Arc<SrtStats>,
}

impl Srt {
    /// Binds the UDP socket.
    pub async fn bind(config: &SrtConfig) -> anyhow::Result<Srt> {
        // Bind the UDP socket ourselves, so that the error keeps the I/O kind (address in use)
        // and a port of 0 tells its real port.
        let socket = tokio::net::UdpSocket::bind(config.addr)
            .await
            .map_err(|e| {
                anyhow::Error::new(e).context(format!("binding SRT UDP {}", config.addr))
            })?;
        let local = socket.local_addr()?;
        let (listener, incoming) = SrtListener::builder()
            .latency(config.latency)
            .socket(socket)
            .bind(local)
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("binding SRT UDP {local}")))?;
        Ok(Srt {
            listener,
            incoming,
            local,
            sessions: Sessions::default(),
            passphrase: config.passphrase.as_deref().map(Arc::from),
            stats: Arc::new(SrtStats::default()),
        })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts SRT publishers forever.
    pub async fn run(mut self, streams: Arc<Streams>) {
        // The listener stops when dropped: it lives as long as this task.
        let _listener = &self.listener;
        while let Some(request) = self.incoming.incoming().next().await {
            let streams = streams.clone();
            let stats = self.stats.clone();
            let sessions = self.sessions.clone();
            let passphrase = self.passphrase.clone();
            tokio::spawn(async move {
                let peer = request.remote();
                if let Err(e) = connection(request, streams, stats, sessions, passphrase).await {
                    tracing::warn!(%peer, "SRT connection closed: {e:#}");
                }
            });
        }
    }
}

async fn refuse(
    request: ConnectionRequest,
    stats: &SrtStats,
    reason: ServerRejectReason,
) -> anyhow::Result<()> {
    stats.refused.fetch_add(1, Relaxed);
    request
        .reject(RejectReason::Server(reason))
        .await
        .map_err(Into::into)
}

async fn connection(
    request: ConnectionRequest,
    streams: Arc<Streams>,
    stats: Arc<SrtStats>,
    sessions: Sessions,
    passphrase: Option<Arc<str>>,
) -> anyhow::Result<()> {
    let peer = request.remote();
    let encrypted = request.key_size() != KeySize::Unspecified;
    let keys = match (&passphrase, encrypted) {
        (Some(p), true) => Some(KeySettings {
            key_size: request.key_size(),
            passphrase: Passphrase::from(&**p),
        }),
        (None, false) => None,
        (Some(_), false) => {
            tracing::warn!(%peer, "SRT publish refused: no passphrase, and this server requires one (srt_passphrase)");
            return refuse(request, &stats, ServerRejectReason::Unauthorized).await;
        }
        (None, true) => {
            tracing::warn!(%peer, "SRT publish refused: the publisher encrypts (passphrase), and this server has no srt_passphrase");
            return refuse(request, &stats, ServerRejectReason::BadRequest).await;
        }
    };
    let id = request.stream_id().map(|s| s.to_string());
    let want = match parse_stream_id(id.as_deref()) {
        Ok(w) => w,
        Err(why) => {
            tracing::warn!(%peer, "SRT publish refused: {why}");
            return refuse(request, &stats, ServerRejectReason::BadRequest).await;
        }
    };
    // The auth webhook, when set, admits (and may rename) the publish first.
    let asked = crate::admission::PublishRequest {
        protocol: "srt",
        stream: want.name.clone(),
        key: want.key.clone(),
        remote_addr: Some(peer),
        forwarded_for: None,
        user_agent: None,
    };
    let mut want = want;
    match crate::admission::admit(&asked).await {
        Ok(name) => want.name = name,
        Err(_) => return refuse(request, &stats, ServerRejectReason::Unauthorized).await,
    }
    let mut claimed = streams.claim(&want.name, want.key.as_deref());
    if matches!(claimed, Err(PublishError::Duplicate(_))) {
        // The key is good (checked before the name): replace a publisher that went silent.
        let stale = sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&want.name)
            .filter(|h| {
                h.last_data
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed()
                    >= STALE_AFTER
            })
            .cloned();
        if let Some(old) = stale {
            tracing::info!(%peer, stream = %want.name, "SRT publisher reconnected while its old connection was silent: the old connection is closed");
            old.stop.notify_one();
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                claimed = streams.claim(&want.name, want.key.as_deref());
                if !matches!(claimed, Err(PublishError::Duplicate(_))) {
                    break;
                }
            }
        }
    }
    let mut publication = match claimed {
        Ok(p) => {
            crate::admission::claimed(&streams, &want.name, &asked);
            p
        }
        Err(e) => {
            tracing::warn!(%peer, stream = %want.name, "SRT publish refused: {e}");
            crate::events::refused("srt", &want.name, Some(peer), &e.to_string());
            let reason = match e {
                PublishError::Duplicate(_) => ServerRejectReason::Conflict,
                PublishError::Unauthorized(_) => ServerRejectReason::Unauthorized,
                PublishError::BadName(_) => ServerRejectReason::BadRequest,
                PublishError::TooManyStreams(..) => ServerRejectReason::Overload,
            };
            return refuse(request, &stats, reason).await;
        }
    };
    // No stall filler for SRT: a TS video frame ends only where the next one starts, so a
    // publisher that leaves completes its last frame when its connection closes, after a quiet
    // linger (most of a second with ffmpeg) in which the stall check would start filler, and
    // that frame could no longer be published.
    publication.without_stall_filler();
    let Ok(socket) = request.accept(keys).await else {
        // The passphrase is checked in the handshake after our answer: a wrong one ends it.
        stats.refused.fetch_add(1, Relaxed);
        tracing::warn!(%peer, stream = %want.name, "SRT publish refused: wrong passphrase (the handshake failed)");
        return Ok(());
    };
    let latency = socket.settings().recv_tsbpd_latency;
    tracing::info!(%peer, stream = %want.name, latency_ms = latency.as_millis() as u64, "SRT publish accepted; waiting for codec configurations");
    stats.started.fetch_add(1, Relaxed);
    stats.sessions.fetch_add(1, Relaxed);
    let held = Arc::new(Held {
        last_data: Mutex::new(Instant::now()),
        stop: tokio::sync::Notify::new(),
    });
    sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(want.name.clone(), held.clone());
    let mut session = Session {
        peer,
        publication,
        ts: TsPublish::new(),
        stats: stats.clone(),
        counted: Counted::default(),
        held: held.clone(),
    };
    let result = session.run(socket).await;
    {
        let mut map = sessions.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&want.name).is_some_and(|h| Arc::ptr_eq(h, &held)) {
            map.remove(&want.name);
        }
    }
    stats.sessions.fetch_sub(1, Relaxed);
    let ts = session.ts.stats();
    tracing::info!(
        %peer,
        stream = %session.publication.name(),
        ts_packets = ts.packets,
        cc_errors = ts.cc_errors,
        ts_errors = ts.errors,
        loss_reports = session.counted.loss_reports,
        retransmitted = session.counted.retransmitted,
        dropped = session.counted.dropped,
        "SRT publisher gone; the stream waits for a reconnect"
    );
    result
}

/// What of one socket's cumulative statistics is already in [`SrtStats`].
#[derive(Debug, Default)]
struct Counted {
    loss_reports: u64,
    retransmitted: u64,
    dropped: u64,
    cc_errors: u64,
    ts_errors: u64,
}

struct Session {
    peer: SocketAddr,
    publication: Publication,
    ts: TsPublish,
    stats: Arc<SrtStats>,
    counted: Counted,
    held: Arc<Held>,
}

impl Session {
    async fn run(&mut self, mut socket: SrtSocket) -> anyhow::Result<()> {
        let mut statistics = socket.statistics().clone();
        // When the last bytes came: what the end of the connection completes arrived then.
        let mut last_data = wall_now();
        let mut ended = Ok(());
        loop {
            tokio::select! {
                item = socket.next() => match item {
                    Some(Ok((_, bytes))) => {
                        *self.held.last_data.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                        last_data = wall_now();
                        self.ts.handle_input(&bytes);
                        self.drain(None).await?;
                    }
                    Some(Err(e)) => {
                        ended = Err(e.into());
                        break;
                    }
                    None => break,
                },
                _ = self.held.stop.notified() => break,
                Some(s) = statistics.next() => {
                    // srt-tokio 0.4 does not count lost packets (rx_loss_data stays 0); the
                    // loss reports it sends do count them, in batches.
                    add(&self.stats.loss_reports, &mut self.counted.loss_reports, s.tx_nak);
                    add(&self.stats.retransmitted, &mut self.counted.retransmitted, s.rx_retransmit_data);
                    add(&self.stats.dropped, &mut self.counted.dropped, s.rx_dropped_data);
                }
            }
        }
        // The end of the connection (closed, timed out or replaced) completes the frames the
        // TS still holds (a video PES ends only where the next one starts, and the
        // interleaver waits for the other track): they go out dated at the arrival of their
        // last bytes, so that the packager, whose stall check may have fired meanwhile, sees
        // them on time and publishes them (README "SRT").
        self.ts.finish();
        self.drain(Some(last_data)).await?;
        ended
    }

    /// Sends what the TS publish output to the stream; frames dated `arrived` when given
    /// (else now).
    async fn drain(&mut self, arrived: Option<WallClock>) -> anyhow::Result<()> {
        let ts = self.ts.stats();
        add(
            &self.stats.cc_errors,
            &mut self.counted.cc_errors,
            ts.cc_errors,
        );
        add(
            &self.stats.ts_errors,
            &mut self.counted.ts_errors,
            ts.errors,
        );
        while let Some(out) = self.ts.poll_output() {
            let p = &mut self.publication;
            match out {
                Output::Start(tracks) => {
                    let codecs: Vec<String> = tracks.iter().map(|t| t.codec.describe()).collect();
                    let resumed = p.start(tracks).await?;
                    tracing::info!(
                        peer = %self.peer,
                        stream = %p.name(),
                        codecs = %codecs.join(", "),
                        resumed,
                        "publishing over SRT: {}",
                        p.playlist_url()
                    );
                }
                Output::Reconfigure(tracks) => {
                    if p.started() {
                        p.discontinuity(tracks).await?;
                    }
                }
                Output::Frame(f) => match arrived {
                    Some(at) => p.frame_at(f, at).await?,
                    None => p.frame(f).await?,
                },
                Output::Warning(w) => {
                    tracing::warn!(peer = %self.peer, stream = %p.name(), "{w}");
                }
            }
        }
        Ok(())
    }
}

/// Adds what a cumulative counter gained since last time to a shared counter.
fn add(total: &AtomicU64, counted: &mut u64, now: u64) {
    if now > *counted {
        total.fetch_add(now - *counted, Relaxed);
        *counted = now;
    }
}
