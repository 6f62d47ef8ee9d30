//! One WHIP session: a task that owns its `str0m::Rtc`, receives its datagrams from the UDP
//! dispatcher, drives ICE-lite, DTLS-SRTP and RTCP, and feeds the stream's packager through
//! [`crate::whip::ingest::Assembler`]. A session that fails is logged and ends alone; nothing
//! it does can block the socket or other sessions (the dispatcher drops its datagrams when its
//! queue is full).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use llhls_packager::codec::{CodecConfig, OpusConfig};
use llhls_packager::WallClock;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::audio::{self, OpusToAac};
use super::depacketize::{AccessUnit, H264Depacketizer, VpxDepacketizer, VpxKind};
use super::ingest::{Assembler, Kind, Sample, Step};
use super::jitter::{JitterBuffer, Packet};
use super::sdp::Offered;
use super::sdp::Plan;
use super::video::VideoTranscoder;
use crate::streams::Publication;
use crate::tracks::AUDIO;

/// A datagram for a session.
pub struct Datagram {
    /// Where it came from.
    pub source: SocketAddr,
    /// The datagram.
    pub data: Bytes,
    /// When the dispatcher received it.
    pub at: Instant,
}

/// How the audio track is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioMode {
    /// Opus transcoded to AAC-LC (plays everywhere, AVPlayer included).
    Aac,
    /// Opus passed through in fMP4 (no transcode; not every HLS player decodes it).
    Opus,
}

/// Everything a session task needs.
pub struct SessionParams {
    /// Session id (the `Location` path's last segment).
    pub id: String,
    /// The WebRTC stack, offer accepted.
    pub rtc: Rtc,
    /// The claimed stream name.
    pub publication: Publication,
    /// What the offer sends.
    pub plan: Plan,
    /// Datagrams routed to this session.
    pub rx: mpsc::Receiver<Datagram>,
    /// Fires on `DELETE`.
    pub stop: oneshot::Receiver<()>,
    /// The shared UDP socket (for sending).
    pub socket: Arc<UdpSocket>,
    /// Our candidate address (the destination str0m expects on every datagram).
    pub local: SocketAddr,
    /// Audio output mode.
    pub audio: AudioMode,
    /// AAC bitrate in bit/s.
    pub aac_bitrate: usize,
    /// The packager's segment target.
    pub segment_target: Duration,
    /// The publisher's address, for the log (`X-Forwarded-For`).
    pub peer: String,
    /// Test only: shift audio this many ms (see `Assembler::break_sync`).
    pub break_av_sync_ms: i64,
    /// Shared counters.
    pub stats: Arc<super::WhipStats>,
}

/// Why a session ended.
#[derive(Debug)]
pub enum Ended {
    /// The publisher sent `DELETE`.
    Deleted,
    /// Nothing from the publisher for the consent timeout.
    ConsentExpired,
    /// ICE/DTLS never completed.
    NeverConnected,
    /// The WebRTC stack or a transcoder failed.
    Failed(String),
    /// The stream's packager task stopped.
    StreamStopped,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Deleted => write!(f, "the publisher sent DELETE"),
            Ended::ConsentExpired => write!(
                f,
                "consent expired: nothing from the publisher (no connectivity checks, no media) for {} s",
                CONSENT_TIMEOUT.as_secs()
            ),
            Ended::NeverConnected => write!(
                f,
                "ICE/DTLS did not complete within 15 s (is the UDP port reachable? see whip_public_ip)"
            ),
            Ended::Failed(e) => write!(f, "WebRTC failure: {e}"),
            Ended::StreamStopped => write!(f, "the stream's packager stopped"),
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a missing RTP packet (a NACK retransmission on a normal path) before the
/// jitter buffer skips it.
const JITTER_WAIT: Duration = Duration::from_millis(150);
/// An ICE-lite server sends no checks of its own, and not every publisher sends consent
/// checks (RFC 7675) often enough for str0m's 15 s window (libnice does not by default), so
/// consent is any authenticated datagram: STUN, SRTP or SRTCP. A publisher sends tens of
/// packets a second; a muted one still sends RTCP and DTX frames.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(10);

struct State {
    p: SessionParams,
    assembler: Assembler,
    video_jb: JitterBuffer,
    audio_jb: JitterBuffer,
    depack: H264Depacketizer,
    /// VP8/VP9 publishers: their depacketizer and the transcoder to H.264.
    vpx: Option<(VpxDepacketizer, VideoTranscoder)>,
    last_pli: Option<Instant>,
    lost_reported: u64,
    transcoder: Option<OpusToAac>,
    video_mid: Option<Mid>,
    connected: bool,
    last_packet: Instant,
    send_errors: u64,
    input_errors: u64,
}

/// Runs the session until it ends; returns why.
pub async fn run(p: SessionParams) -> Ended {
    let now = Instant::now();
    let audio_config = p.plan.audio.map(|_| match p.audio {
        AudioMode::Aac => audio::aac_config(),
        AudioMode::Opus => CodecConfig::Opus(OpusConfig::simple(2)),
    });
    let transcoder = match (p.plan.audio.is_some(), p.audio) {
        (true, AudioMode::Aac) => match OpusToAac::new(AUDIO, p.aac_bitrate) {
            Ok(t) => Some(t),
            Err(e) => return Ended::Failed(format!("audio transcoder: {e:#}")),
        },
        _ => None,
    };
    let vpx = match p.plan.video {
        Some(Offered::Vp8) | Some(Offered::Vp9) => {
            let kind = if p.plan.video == Some(Offered::Vp8) {
                VpxKind::Vp8
            } else {
                VpxKind::Vp9
            };
            match VideoTranscoder::new(kind) {
                Ok(t) => Some((VpxDepacketizer::new(kind), t)),
                Err(e) => return Ended::Failed(format!("video transcoder: {e:#}")),
            }
        }
        _ => None,
    };
    let mut assembler = Assembler::new(p.plan.video.is_some(), audio_config, p.segment_target, now);
    assembler.break_sync(p.break_av_sync_ms);
    let mut s = State {
        p,
        assembler,
        video_jb: JitterBuffer::new(JITTER_WAIT, 2000),
        audio_jb: JitterBuffer::new(JITTER_WAIT, 100),
        depack: H264Depacketizer::default(),
        vpx,
        last_pli: None,
        lost_reported: 0,
        transcoder,
        video_mid: None,
        connected: false,
        last_packet: now,
        send_errors: 0,
        input_errors: 0,
    };
    let started = now;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let timeout = match s.drain().await {
            Ok(t) => t,
            Err(e) => return e,
        };
        let timeout = [s.video_jb.deadline(), s.audio_jb.deadline()]
            .into_iter()
            .flatten()
            .fold(timeout, Instant::min);
        let wait = timeout.saturating_duration_since(Instant::now());
        let input_now;
        tokio::select! {
            d = s.p.rx.recv() => {
                let Some(d) = d else { return Ended::Failed("dispatcher gone".into()) };
                s.last_packet = d.at;
                input_now = d.at.max(Instant::now());
                let contents = match d.data.as_ref().try_into() {
                    Ok(c) => c,
                    Err(e) => {
                        s.input_errors += 1;
                        if s.input_errors <= 5 || s.input_errors.is_multiple_of(1000) {
                            tracing::warn!(session = %s.p.id, source = %d.source, bytes = d.data.len(), errors = s.input_errors, "bad datagram (not STUN, DTLS or RTP): {e:?}");
                        }
                        continue;
                    }
                };
                let r = s.p.rtc.handle_input(Input::Receive(input_now, Receive {
                    proto: Protocol::Udp,
                    source: d.source,
                    destination: s.p.local,
                    contents,
                }));
                if let Err(e) = r {
                    if matches!(e, str0m::RtcError::Dtls(_)) {
                        // A failed handshake (wrong fingerprint, no usable certificate) or a
                        // broken DTLS record after it: nothing more can be decrypted.
                        return Ended::Failed(format!("DTLS: {e}"));
                    }
                    s.input_errors += 1;
                    if s.input_errors <= 5 || s.input_errors.is_multiple_of(1000) {
                        tracing::warn!(session = %s.p.id, stream = %s.p.publication.name(), errors = s.input_errors, "bad datagram: {e}");
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {
                input_now = Instant::now();
                if let Err(e) = s.p.rtc.handle_input(Input::Timeout(input_now)) {
                    return Ended::Failed(e.to_string());
                }
                if let Err(e) = s.release(input_now).await {
                    return e;
                }
            }
            _ = tick.tick() => {
                input_now = Instant::now();
                if !s.connected && input_now.duration_since(started) > CONNECT_TIMEOUT {
                    return Ended::NeverConnected;
                }
                if input_now.duration_since(s.last_packet) > CONSENT_TIMEOUT {
                    return Ended::ConsentExpired;
                }
                if !s.p.rtc.is_alive() {
                    return Ended::Failed("the WebRTC session closed".into());
                }
                s.assembler.tick(input_now);
                if let Err(e) = s.steps().await {
                    return e;
                }
                continue;
            }
            _ = &mut s.p.stop => {
                // What the publisher sent before its DELETE goes into the stream before it
                // ends; a stream that stopped meanwhile has nothing left to take it.
                let _ = s.finish().await;
                s.p.rtc.disconnect();
                s.p.publication.stopped_by_publisher();
                return Ended::Deleted;
            }
        }
    }
}

impl State {
    /// Drains str0m's output until its next timeout.
    async fn drain(&mut self) -> Result<Instant, Ended> {
        loop {
            let out = match self.p.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => return Err(Ended::Failed(e.to_string())),
            };
            match out {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    // Non-blocking: a full socket buffer drops this datagram (RTCP/DTLS retry).
                    if self
                        .p
                        .socket
                        .try_send_to(&t.contents, t.destination)
                        .is_err()
                    {
                        self.send_errors += 1;
                    }
                }
                Output::Event(e) => self.event(e).await?,
            }
        }
    }

    async fn event(&mut self, e: Event) -> Result<(), Ended> {
        match e {
            Event::Connected => {
                self.connected = true;
                tracing::info!(session = %self.p.id, stream = %self.p.publication.name(), peer = %self.p.peer, "WHIP publisher connected (ICE + DTLS-SRTP up)");
                self.assembler.tick(Instant::now());
                self.steps().await?;
            }
            Event::IceConnectionStateChange(state) => {
                // Disconnected means no binding request for 15 s; media may still flow (see
                // CONSENT_TIMEOUT), so the session does not end on it.
                tracing::debug!(session = %self.p.id, ?state, "ICE state");
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Video && self.video_mid.is_none() => {
                self.video_mid = Some(m.mid);
            }
            Event::RtpPacket(r) => {
                let pt = *r.header.payload_type;
                let kind = if self.p.plan.video_pts.contains(&pt) {
                    Kind::Video
                } else if self.p.plan.audio_pts.contains(&pt) {
                    Kind::Audio
                } else {
                    // RTX is unwrapped by str0m; RED, FEC and anything else: not ours.
                    return Ok(());
                };
                let p = Packet {
                    seq: *r.seq_no,
                    ts: r.time.numer() as i64,
                    marker: r.header.marker,
                    // The decrypted payload is ours: taken, not copied.
                    payload: Bytes::from_owner(r.payload),
                    arrival: r.timestamp,
                    sr: r.last_sender_info.map(|sr| {
                        (
                            sr.ntp_time,
                            // The SR's RTP time on the same extended clock as the packets.
                            extend_like(sr.rtp_time.numer() as i64, r.time.numer() as i64),
                        )
                    }),
                };
                match kind {
                    Kind::Video => self.video_jb.push(p),
                    Kind::Audio => self.audio_jb.push(p),
                }
                self.release(Instant::now()).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The publisher sent `DELETE`: publishes what it sent before. Without this the last
    /// frames were lost with the session: the datagrams the dispatcher had queued for it
    /// (`select!` takes the stop signal as soon as any other input), the packets the jitter
    /// buffers held behind a hole, and the audio inside the AAC encoder (its lookahead and
    /// the partial frame: 40-60 ms). An access unit whose last packet never came stays out.
    async fn finish(&mut self) -> Result<(), Ended> {
        // Only what is queued now: a publisher that keeps sending cannot keep the session.
        for _ in 0..self.p.rx.len() {
            let Ok(d) = self.p.rx.try_recv() else {
                break;
            };
            let Ok(contents) = d.data.as_ref().try_into() else {
                continue;
            };
            let input = Input::Receive(
                d.at.max(Instant::now()),
                Receive {
                    proto: Protocol::Udp,
                    source: d.source,
                    destination: self.p.local,
                    contents,
                },
            );
            if self.p.rtc.handle_input(input).is_err() {
                continue;
            }
            self.drain().await?;
        }
        self.video_jb.release_all();
        self.audio_jb.release_all();
        self.release(Instant::now()).await?;
        let frames = self
            .transcoder
            .as_mut()
            .map(|t| t.finish())
            .unwrap_or_default();
        let wall = wall_at(Instant::now());
        for f in frames {
            self.send(f, wall).await?;
        }
        Ok(())
    }

    /// Moves what the jitter buffers release through depacketization into the assembler.
    async fn release(&mut self, now: Instant) -> Result<(), Ended> {
        let mut aus: Vec<AccessUnit> = Vec::new();
        let mut vpx_frames = Vec::new();
        while let Some((p, gap)) = self.video_jb.pop(now) {
            if gap {
                tracing::debug!(session = %self.p.id, seq = p.seq, lost = self.video_jb.lost, waited_ms = now.saturating_duration_since(p.arrival).as_millis() as u64, "video packets lost");
            }
            match self.vpx.as_mut() {
                Some((d, _)) => d.push(p, gap, &mut vpx_frames),
                None => self.depack.push(p, gap, &mut aus),
            }
        }
        if !vpx_frames.is_empty() {
            let (_, t) = self.vpx.as_mut().expect("frames come from it");
            // libx264 takes milliseconds a frame: keep the runtime's other tasks moving.
            let encoded = tokio::task::block_in_place(|| {
                let mut encoded = Vec::new();
                for f in &vpx_frames {
                    let e = t.push(f)?;
                    encoded.extend(e.into_iter().map(|e| (e, f.arrival, f.sr)));
                }
                anyhow::Ok(encoded)
            })
            .map_err(|e| Ended::Failed(format!("video transcoder: {e:#}")))?;
            let wants_key = t.needs_keyframe();
            tracing::trace!(session = %self.p.id, frames_in = vpx_frames.len(), keyframes_in = vpx_frames.iter().filter(|f| f.keyframe).count(), out = encoded.len(), wants_key, "transcoded");
            for (e, arrival, sr) in encoded {
                aus.push(AccessUnit {
                    ts: e.ts,
                    data: e.data,
                    contiguous: true,
                    arrival,
                    sr,
                });
            }
            if wants_key {
                self.pli(now, "the VP8/VP9 decoder needs a keyframe after loss");
            }
        }
        for au in aus {
            let sample = Sample {
                kind: Kind::Video,
                rtp_time: au.ts,
                clock: 90_000,
                arrival: au.arrival,
                data: au.data,
                contiguous: au.contiguous,
                sender_report: au.sr,
            };
            self.assembler.push(sample, now);
        }
        while let Some((p, gap)) = self.audio_jb.pop(now) {
            if p.payload.is_empty() {
                continue;
            }
            let sample = Sample {
                kind: Kind::Audio,
                rtp_time: p.ts,
                clock: 48_000,
                arrival: p.arrival,
                data: p.payload,
                contiguous: !gap,
                sender_report: p.sr,
            };
            self.assembler.push(sample, now);
        }
        // Report loss once per release, both tracks (not once per video packet).
        let lost = self.video_jb.lost + self.audio_jb.lost;
        if lost > self.lost_reported {
            self.p.stats.packets_lost.fetch_add(
                lost - self.lost_reported,
                std::sync::atomic::Ordering::Relaxed,
            );
            self.lost_reported = lost;
        }
        self.steps().await
    }

    /// Acts on what the assembler decided.
    async fn steps(&mut self) -> Result<(), Ended> {
        while let Some(step) = self.assembler.poll() {
            match step {
                Step::Start(tracks) => {
                    let codecs: Vec<String> = tracks.iter().map(|t| t.codec.describe()).collect();
                    let resumed = self
                        .p
                        .publication
                        .start(tracks)
                        .await
                        .map_err(|e| Ended::Failed(format!("{e:#}")))?;
                    let name = self.p.publication.name().to_string();
                    tracing::info!(session = %self.p.id, stream = %name, codecs = %codecs.join(", "), resumed, "publishing over WHIP: {}", self.p.publication.playlist_url());
                }
                Step::Frame(f, arrival) => {
                    let wall = wall_at(arrival);
                    if f.track == AUDIO {
                        if let Some(t) = self.transcoder.as_mut() {
                            let frames = t.push(f.dts.ticks, &f.data);
                            for f in frames {
                                self.send(f, wall).await?;
                            }
                            continue;
                        }
                    }
                    self.send(f, wall).await?;
                }
                Step::Reconfigure(tracks) => {
                    tracing::warn!(session = %self.p.id, stream = %self.p.publication.name(), "H.264 parameters changed (resolution?): new init section");
                    self.p
                        .publication
                        .discontinuity(tracks)
                        .await
                        .map_err(|_| Ended::StreamStopped)?;
                }
                Step::RequestKeyframe(why) => {
                    if let Some((_, t)) = self.vpx.as_mut() {
                        // Our encoder makes the keyframes the stream needs.
                        t.force_keyframe();
                        continue;
                    }
                    // The assembler paces its own requests.
                    self.send_pli(why);
                }
                Step::Warn(w) => {
                    tracing::warn!(session = %self.p.id, stream = %self.p.publication.name(), "{w}");
                }
            }
        }
        Ok(())
    }

    /// Asks the publisher for a keyframe (RTCP PLI), at most every 300 ms.
    fn pli(&mut self, now: Instant, why: &str) {
        if self
            .last_pli
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(300))
        {
            return;
        }
        self.last_pli = Some(now);
        self.send_pli(why);
    }

    /// Sends one RTCP PLI on the video stream, if it exists yet.
    fn send_pli(&mut self, why: &str) {
        let mut api = self.p.rtc.direct_api();
        match self
            .video_mid
            .and_then(|mid| api.stream_rx_by_mid(mid, None))
        {
            Some(rx) => {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                self.p
                    .stats
                    .keyframe_requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(session = %self.p.id, "keyframe requested: {why}");
            }
            None => {
                tracing::debug!(session = %self.p.id, "keyframe request not sent yet: no video stream")
            }
        }
    }

    async fn send(&mut self, f: llhls_packager::Frame, wall: WallClock) -> Result<(), Ended> {
        self.p.publication.frame_at(f, wall).await.map_err(|e| {
            tracing::warn!(session = %self.p.id, "WHIP session ended: {e:#}");
            Ended::StreamStopped
        })
    }
}

/// The wall clock at `t` (an `Instant` in the recent past).
fn wall_at(t: Instant) -> WallClock {
    let now = llhls_origin::wall_now();
    WallClock(now.0 - Instant::now().saturating_duration_since(t).as_millis() as i64)
}

/// str0m extends sample timestamps to 64 bits but reports the SR's RTP time as 32 bits: put it
/// on the same 64-bit clock as a nearby sample.
fn extend_like(rtp32: i64, near: i64) -> i64 {
    let base = near & !0xffff_ffff;
    let candidates = [
        base.saturating_sub(1 << 32),
        base,
        base.saturating_add(1 << 32),
    ]
    .map(|b| b.saturating_add(rtp32 & 0xffff_ffff));
    let [below, at, above] = candidates;
    [at, above].into_iter().fold(below, |best, c| {
        if c.abs_diff(near) < best.abs_diff(near) {
            c
        } else {
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_time_extends_near_the_sample() {
        let near = (3i64 << 32) + 100;
        assert_eq!(extend_like(50, near), (3 << 32) + 50);
        assert_eq!(extend_like(0xffff_fff0, near), (2 << 32) + 0xffff_fff0);
        assert_eq!(extend_like(10, (3 << 32) + 0xffff_fff0), (4 << 32) + 10);
        // Values at the ends of the range saturate instead of overflowing.
        assert_eq!(extend_like(5, i64::MIN + 3), i64::MIN + 5);
        let top = extend_like(0xffff_ffff, i64::MAX);
        assert!(top > i64::MAX - (1 << 33), "{top}");
    }
}
