//! The FFmpeg ladder: one decoder thread per stream, one scaler + libx264 thread per rung.
//!
//! - The decoder thread turns each source frame into one picture (FFmpeg's H.264 decoder, fed
//!   Annex B with the parameter sets before every keyframe). The n-th picture out belongs to
//!   the n-th frame in (frames come out in presentation order, numbered in decode order, which
//!   is what the origin's replay needs: see `llhls_origin::ladder`). A frame the decoder
//!   refuses, or one it still holds at a discontinuity, gets the last good picture again, so
//!   every source frame yields exactly one picture. A picture whose timestamp is a source
//!   keyframe's is marked for an IDR.
//! - Each rung thread scales (swscale) and encodes with libx264 (`veryfast`, `zerolatency`: one
//!   frame out per frame in; no B-frames; IDRs only where forced; a VBV cap at 110% of the
//!   rung's bitrate over one second). The encoder runs on a 90 kHz clock whatever the source's.
//! - Nothing blocks the stream task: its frames go into a bounded queue with `try_send`. A full
//!   queue means the decoder fell behind (every rung is withdrawn); a rung whose own queue is
//!   full fell behind alone and is withdrawn alone.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use bytes::Bytes;
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;
use llhls_origin::ladder::{LadderFactory, LadderStart, RungEvent, RungInfo, Transcoder};
use llhls_packager::codec::{
    annex_b_to_length_prefixed, length_prefixed_nals, split_annex_b, AvcConfig,
};
use llhls_packager::{CodecConfig, Frame, MediaTime, Timescale, TrackConfig};
use tokio::sync::mpsc::UnboundedSender;

use super::{select, source_video, Rung, RungSpec};

/// Pictures queued for one rung's encoder before the rung counts as too slow (1 s at 30 fps).
const RUNG_QUEUE: usize = 30;
/// Source frames queued for the decoder before the ladder counts as too slow.
const DECODE_QUEUE: usize = 60;

/// The encoders' clock.
const ENCODER_SCALE: Timescale = Timescale::MPEG;

/// The ladder's factory: the configured rungs (every stream's, and a stream's own, such as
/// the demo's), checked against what this FFmpeg has.
pub struct FfmpegLadder {
    ladder: Vec<RungSpec>,
    per_stream: Vec<(String, Vec<RungSpec>)>,
    encoder: String,
}

/// The H.264 encoders a ladder can use: libx264 (the default; tested) and the hardware
/// encoders by name (`with_encoder` checks that this FFmpeg has the one named and can open it;
/// not otherwise tested here).
pub const ENCODERS: [&str; 4] = ["libx264", "h264_nvenc", "h264_qsv", "h264_vaapi"];

impl FfmpegLadder {
    /// A ladder of `ladder` (validated) for every stream. Fails when FFmpeg lacks the H.264
    /// decoder or libx264.
    pub fn new(ladder: Vec<RungSpec>) -> anyhow::Result<Self> {
        crate::source::init()?;
        for r in &ladder {
            r.validate().map_err(anyhow::Error::msg)?;
        }
        if ffmpeg::decoder::find(ffmpeg::codec::Id::H264).is_none() {
            bail!("this FFmpeg has no H.264 decoder: cannot build an ABR ladder");
        }
        if ffmpeg::encoder::find_by_name("libx264").is_none() {
            bail!("this FFmpeg has no libx264 encoder: cannot build an ABR ladder");
        }
        Ok(FfmpegLadder {
            ladder,
            per_stream: Vec::new(),
            encoder: "libx264".into(),
        })
    }

    /// Encodes the rungs with `name` (one of [`ENCODERS`]). Fails, saying why, when this
    /// FFmpeg lacks it or cannot open it (no such device).
    pub fn with_encoder(mut self, name: &str) -> anyhow::Result<Self> {
        if !ENCODERS.contains(&name) {
            bail!(
                "ladder encoder must be one of {}, not {name}",
                ENCODERS.join(", ")
            );
        }
        if ffmpeg::encoder::find_by_name(name).is_none() {
            bail!("this FFmpeg has no {name} encoder: cannot build an ABR ladder with it");
        }
        // Open it once, small, as a rung would be: a missing device fails here, at startup.
        let probe = Rung {
            spec: RungSpec {
                name: "probe".into(),
                height: 240,
                video_kbps: 300,
                profile: None,
            },
            width: 320,
            height: 240,
        };
        parameter_sets(name, &probe, 30.0).with_context(|| {
            format!("the ladder encoder {name} is in this FFmpeg but does not work here")
        })?;
        self.encoder = name.to_string();
        Ok(self)
    }

    /// Stream `name` gets `ladder` instead of every stream's (empty: none).
    pub fn with_stream(mut self, name: &str, ladder: Vec<RungSpec>) -> anyhow::Result<Self> {
        for r in &ladder {
            r.validate().map_err(anyhow::Error::msg)?;
        }
        self.per_stream.push((name.to_string(), ladder));
        Ok(self)
    }

    /// The rungs stream `name` gets (before they are checked against its source).
    pub fn rungs(&self, name: &str) -> &[RungSpec] {
        self.per_stream
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.as_slice())
            .unwrap_or(&self.ladder)
    }
}

impl LadderFactory for FfmpegLadder {
    fn start(&self, name: &str, tracks: &[TrackConfig]) -> Option<LadderStart> {
        let ladder = self.rungs(name);
        if ladder.is_empty() {
            return None;
        }
        let video = match source_video(tracks) {
            Ok(v) => v.clone(),
            Err(why) => {
                tracing::info!(stream = %name, "no ABR ladder: {why}");
                return None;
            }
        };
        let CodecConfig::H264(avc) = &video.codec else {
            return None;
        };
        let (rungs, skipped) = select(ladder, avc.width, avc.height);
        for s in skipped {
            tracing::info!(stream = %name, "ABR rung skipped: {s}");
        }
        if rungs.is_empty() {
            return None;
        }
        let fps = avc
            .frame_rate
            .filter(|f| (1.0..=240.0).contains(f))
            .unwrap_or(30.0);
        let mut infos = Vec::new();
        for r in &rungs {
            match parameter_sets(&self.encoder, r, fps) {
                Ok(cfg) => infos.push(RungInfo {
                    name: r.spec.name.clone(),
                    track: TrackConfig {
                        id: video.id,
                        codec: CodecConfig::H264(cfg),
                    },
                }),
                Err(e) => {
                    tracing::warn!(stream = %name, rung = %r.spec.name, "no ABR ladder: {e:#}");
                    return None;
                }
            }
        }
        let (etx, erx) = tokio::sync::mpsc::unbounded_channel();
        let mut senders = Vec::new();
        for (i, r) in rungs.into_iter().enumerate() {
            let (tx, rx) = sync_channel::<Picture>(RUNG_QUEUE);
            let events = etx.clone();
            let encoder = self.encoder.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("rung-{}", r.spec.name))
                .spawn(move || run_rung(&encoder, i, r, fps, rx, events));
            if let Err(e) = spawned {
                tracing::warn!(stream = %name, "no ABR ladder: starting a thread: {e}");
                return None;
            }
            senders.push(Some(tx));
        }
        let (dtx, drx) = sync_channel::<DecodeInput>(DECODE_QUEUE);
        let events = etx.clone();
        let source = avc.clone();
        let spawned = std::thread::Builder::new()
            .name("ladder-decode".into())
            .spawn(move || run_decoder(source, drx, senders, events));
        if let Err(e) = spawned {
            tracing::warn!(stream = %name, "no ABR ladder: starting a thread: {e}");
            return None;
        }
        let n = infos.len();
        Some(LadderStart {
            rungs: infos,
            transcoder: Box::new(FfmpegTranscoder {
                input: Some(dtx),
                events: Some(etx),
                rungs: n,
            }),
            events: erx,
        })
    }
}

enum DecodeInput {
    Frame { seq: u64, frame: Frame },
    Discontinuity(Option<TrackConfig>),
}

/// The stream task's handle: a bounded queue to the decoder thread.
struct FfmpegTranscoder {
    input: Option<SyncSender<DecodeInput>>,
    /// For reporting failures from the stream task's side; dropped by `finish` so the event
    /// channel closes once the threads are done.
    events: Option<UnboundedSender<RungEvent>>,
    rungs: usize,
}

impl FfmpegTranscoder {
    fn send(&mut self, msg: DecodeInput) {
        let Some(tx) = &self.input else { return };
        if let Err(e) = tx.try_send(msg) {
            let reason = match e {
                TrySendError::Full(_) => "the decoder fell behind the source",
                TrySendError::Disconnected(_) => "the decoder stopped",
            };
            if let Some(events) = &self.events {
                for rung in 0..self.rungs {
                    let _ = events.send(RungEvent::Failed {
                        rung,
                        reason: reason.to_string(),
                    });
                }
            }
            self.input = None;
        }
    }
}

impl Transcoder for FfmpegTranscoder {
    fn frame(&mut self, seq: u64, frame: &Frame) {
        self.send(DecodeInput::Frame {
            seq,
            frame: frame.clone(),
        });
    }

    fn discontinuity(&mut self, video: Option<&TrackConfig>) {
        self.send(DecodeInput::Discontinuity(video.cloned()));
    }

    fn finish(&mut self) {
        self.input = None;
        self.events = None;
    }
}

/// A decoded picture, shared by every rung (each only reads it, to scale it): no copy of
/// the source picture is made per rung.
type Shared = Arc<Mutex<ffmpeg::frame::Video>>;

/// One decoded picture on its way to the rungs.
struct Picture {
    seq: u64,
    /// Presentation time on the encoders' clock.
    pts: i64,
    /// Encode it as an IDR (the source has a keyframe here).
    idr: bool,
    frame: Shared,
}

struct Decode {
    avc: AvcConfig,
    decoder: Option<ffmpeg::decoder::Video>,
    decoded: ffmpeg::frame::Video,
    /// Frames sent to the decoder without a picture yet: (seq, pts on the encoders' clock).
    pending: VecDeque<(u64, i64)>,
    /// PTS (encoders' clock) of source keyframes whose picture has not come out yet.
    keys: VecDeque<i64>,
    last: Option<Shared>,
    out: Vec<Picture>,
    /// Frames the decoder refused (their picture repeats the last good one).
    errors: u64,
}

impl Decode {
    fn open(&mut self) -> anyhow::Result<&mut ffmpeg::decoder::Video> {
        if self.decoder.is_none() {
            let codec = ffmpeg::decoder::find(ffmpeg::codec::Id::H264).context("H.264 decoder")?;
            let decoder = ffmpeg::codec::context::Context::new_with_codec(codec)
                .decoder()
                .open_as(codec)
                .context("opening the H.264 decoder")?
                .video()
                .context("H.264 decoder")?;
            self.decoder = Some(decoder);
        }
        self.decoder.as_mut().context("opened above")
    }

    fn push(&mut self, seq: u64, frame: &Frame) -> anyhow::Result<()> {
        let mut annex_b = Vec::with_capacity(frame.data.len() + 64);
        if frame.keyframe {
            for ps in self.avc.sps.iter().chain(&self.avc.pps) {
                annex_b.extend_from_slice(&[0, 0, 0, 1]);
                annex_b.extend_from_slice(ps);
            }
        }
        for nal in length_prefixed_nals(&frame.data).unwrap_or_default() {
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(nal);
        }
        let pts = frame.pts.rescale(ENCODER_SCALE);
        let dts = frame.dts.rescale(ENCODER_SCALE);
        self.pending.push_back((seq, pts));
        if frame.keyframe {
            self.keys.push_back(pts);
            while self.keys.len() > 16 {
                self.keys.pop_front();
            }
        }
        let mut packet = ffmpeg::Packet::copy(&annex_b);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(dts));
        let refused = self.open()?.send_packet(&packet).is_err();
        if refused {
            // No picture will come for it: the last good one stands in.
            self.errors += 1;
            if let Some(entry) = self.pending.pop_back() {
                self.repeat(entry);
            }
        }
        self.receive();
        Ok(())
    }

    fn receive(&mut self) {
        loop {
            let got = match self.decoder.as_mut() {
                Some(decoder) => decoder.receive_frame(&mut self.decoded).is_ok(),
                None => false,
            };
            if !got {
                break;
            }
            let Some((seq, pts_in)) = self.pending.pop_front() else {
                // More pictures than frames (cannot happen with H.264): drop it.
                continue;
            };
            let pts = self.decoded.pts().unwrap_or(pts_in);
            // The decoder refills `decoded` on the next call: take the picture, no copy.
            let picture = std::mem::replace(&mut self.decoded, ffmpeg::frame::Video::empty());
            self.emit(seq, pts, Arc::new(Mutex::new(picture)));
        }
    }

    fn emit(&mut self, seq: u64, pts: i64, frame: Shared) {
        let idr = match self.keys.iter().position(|&k| k == pts) {
            Some(i) => {
                self.keys.remove(i);
                true
            }
            None => false,
        };
        self.last = Some(frame.clone());
        self.out.push(Picture {
            seq,
            pts,
            idr,
            frame,
        });
    }

    /// Frame `seq` gets the last good picture (black before the first).
    fn repeat(&mut self, (seq, pts): (u64, i64)) {
        let frame = match &self.last {
            Some(last) => last.clone(),
            None => Arc::new(Mutex::new(black(self.avc.width, self.avc.height))),
        };
        self.emit(seq, pts, frame);
    }

    /// Lets out every picture the decoder holds; frames it never answers repeat the last
    /// picture. The next frame opens a new decoder.
    fn flush(&mut self) {
        if let Some(decoder) = self.decoder.as_mut() {
            let _ = decoder.send_eof();
        }
        self.receive();
        while let Some(entry) = self.pending.pop_front() {
            self.repeat(entry);
        }
        self.decoder = None;
        self.keys.clear();
    }
}

fn black(width: u32, height: u32) -> ffmpeg::frame::Video {
    let mut f = ffmpeg::frame::Video::new(Pixel::YUV420P, width.max(2), height.max(2));
    f.data_mut(0).fill(16);
    f.data_mut(1).fill(128);
    f.data_mut(2).fill(128);
    f
}

fn run_decoder(
    avc: AvcConfig,
    rx: Receiver<DecodeInput>,
    mut rungs: Vec<Option<SyncSender<Picture>>>,
    events: UnboundedSender<RungEvent>,
) {
    let mut d = Decode {
        avc,
        decoder: None,
        decoded: ffmpeg::frame::Video::empty(),
        pending: VecDeque::new(),
        keys: VecDeque::new(),
        last: None,
        out: Vec::new(),
        errors: 0,
    };
    let fail_all = |rungs: &mut Vec<Option<SyncSender<Picture>>>, reason: String| {
        for (rung, tx) in rungs.iter_mut().enumerate() {
            if tx.take().is_some() {
                let _ = events.send(RungEvent::Failed {
                    rung,
                    reason: reason.clone(),
                });
            }
        }
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            DecodeInput::Frame { seq, frame } => {
                if let Err(e) = d.push(seq, &frame) {
                    fail_all(&mut rungs, format!("{e:#}"));
                    return;
                }
            }
            DecodeInput::Discontinuity(video) => {
                d.flush();
                if let Some(TrackConfig {
                    codec: CodecConfig::H264(avc),
                    ..
                }) = video
                {
                    d.avc = avc;
                } else if video.is_some() {
                    fail_all(&mut rungs, "the source video is no longer H.264".into());
                    return;
                }
            }
        }
        deliver(&mut d.out, &mut rungs, &events);
        if rungs.iter().all(Option::is_none) {
            return;
        }
    }
    d.flush();
    deliver(&mut d.out, &mut rungs, &events);
    if d.errors > 0 {
        tracing::warn!(
            frames = d.errors,
            "ABR ladder: the decoder refused source frames; the last good picture stood in"
        );
    }
}

fn deliver(
    out: &mut Vec<Picture>,
    rungs: &mut [Option<SyncSender<Picture>>],
    events: &UnboundedSender<RungEvent>,
) {
    for p in out.drain(..) {
        for (i, slot) in rungs.iter_mut().enumerate() {
            let Some(tx) = slot else { continue };
            let picture = Picture {
                seq: p.seq,
                pts: p.pts,
                idr: p.idr,
                frame: p.frame.clone(),
            };
            match tx.try_send(picture) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    let _ = events.send(RungEvent::Failed {
                        rung: i,
                        reason: format!(
                            "its encoder fell {RUNG_QUEUE} frames behind the source (CPU overload?)"
                        ),
                    });
                    *slot = None;
                }
                // The rung thread ended (and said why).
                Err(TrySendError::Disconnected(_)) => *slot = None,
            }
        }
    }
}

fn open_encoder(name: &str, rung: &Rung, fps: f64) -> anyhow::Result<ffmpeg::encoder::Video> {
    let codec = ffmpeg::encoder::find_by_name(name).with_context(|| name.to_string())?;
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .context("H.264 encoder")?;
    enc.set_width(rung.width);
    enc.set_height(rung.height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base((1, ENCODER_SCALE.hz() as i32));
    enc.set_frame_rate(Some(((fps * 1000.0).round() as i32, 1000)));
    enc.set_max_b_frames(0);
    // IDRs come only where the source has keyframes (forced); this is not one of them.
    enc.set_gop(100_000);
    let kbps = rung.spec.video_kbps;
    enc.set_bit_rate(kbps as usize * 1000);
    if name != "libx264" {
        enc.set_max_bit_rate(kbps as usize * 1100);
    }
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("profile", rung.spec.profile.as_deref().unwrap_or("high"));
    if name == "libx264" {
        opts.set("preset", "veryfast");
        opts.set("tune", "zerolatency");
        opts.set("forced-idr", "1");
        opts.set(
            "x264-params",
            &format!(
                "scenecut=0:keyint=infinite:vbv-maxrate={}:vbv-bufsize={kbps}:threads=1",
                kbps * 11 / 10
            ),
        );
    } else {
        // Hardware encoders: low-latency settings where they have them (untested here).
        opts.set("forced-idr", "1");
        opts.set("bf", "0");
    }
    enc.open_as_with(codec, opts)
        .with_context(|| format!("opening {name}"))
}

/// The rung's SPS and PPS: what libx264 writes with these settings (they do not depend on the
/// pictures), from one black frame through an encoder like the rung's.
fn parameter_sets(encoder: &str, rung: &Rung, fps: f64) -> anyhow::Result<AvcConfig> {
    let mut enc = open_encoder(encoder, rung, fps)?;
    let mut f = black(rung.width, rung.height);
    f.set_pts(Some(0));
    f.set_kind(ffmpeg::picture::Type::I);
    enc.send_frame(&f).with_context(|| encoder.to_string())?;
    enc.send_eof().with_context(|| encoder.to_string())?;
    let mut packet = ffmpeg::Packet::empty();
    let mut sps = Vec::new();
    let mut pps = Vec::new();
    while enc.receive_packet(&mut packet).is_ok() {
        for nal in split_annex_b(packet.data().unwrap_or_default()) {
            match nal.first().map(|h| h & 0x1f) {
                Some(7) if sps.is_empty() => sps.push(nal.to_vec()),
                Some(8) if pps.is_empty() => pps.push(nal.to_vec()),
                _ => {}
            }
        }
    }
    if sps.is_empty() || pps.is_empty() {
        bail!("{encoder} wrote no SPS/PPS");
    }
    AvcConfig::from_parameter_sets(sps, pps).with_context(|| format!("{encoder}'s SPS"))
}

fn run_rung(
    encoder: &str,
    index: usize,
    rung: Rung,
    fps: f64,
    rx: Receiver<Picture>,
    events: UnboundedSender<RungEvent>,
) {
    let fail = |reason: String| {
        let _ = events.send(RungEvent::Failed {
            rung: index,
            reason,
        });
    };
    let mut enc = match open_encoder(encoder, &rung, fps) {
        Ok(e) => e,
        Err(e) => return fail(format!("{e:#}")),
    };
    let mut scaler: Option<(scaling::Context, (Pixel, u32, u32))> = None;
    let mut scaled = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    let mut sent: VecDeque<u64> = VecDeque::new();
    while let Ok(p) = rx.recv() {
        let frame = p.frame.lock().unwrap_or_else(|e| e.into_inner());
        let input = (frame.format(), frame.width(), frame.height());
        if scaler.as_ref().is_none_or(|(_, was)| *was != input) {
            match scaling::Context::get(
                input.0,
                input.1,
                input.2,
                Pixel::YUV420P,
                rung.width,
                rung.height,
                scaling::Flags::BILINEAR,
            ) {
                Ok(s) => scaler = Some((s, input)),
                Err(e) => return fail(format!("scaling {input:?}: {e}")),
            }
        }
        let Some((s, _)) = scaler.as_mut() else {
            return;
        };
        if let Err(e) = s.run(&frame, &mut scaled) {
            return fail(format!("scaling: {e}"));
        }
        drop(frame);
        scaled.set_pts(Some(p.pts));
        scaled.set_kind(if p.idr {
            ffmpeg::picture::Type::I
        } else {
            ffmpeg::picture::Type::None
        });
        if let Err(e) = enc.send_frame(&scaled) {
            return fail(format!("{encoder}: {e}"));
        }
        sent.push_back(p.seq);
        while enc.receive_packet(&mut packet).is_ok() {
            let Some(seq) = sent.pop_front() else {
                continue;
            };
            let data = annex_b_to_length_prefixed(packet.data().unwrap_or_default());
            let event = RungEvent::Frame {
                rung: index,
                seq,
                pts: MediaTime::new(packet.pts().unwrap_or(p.pts), ENCODER_SCALE),
                keyframe: packet.is_key(),
                data: Bytes::from(data),
            };
            if events.send(event).is_err() {
                // The stream is gone.
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileSource;

    /// `secs` of `size` 30 fps H.264 (keyframes every `gop` frames, B-frames optional) with
    /// AAC, in an MP4 under the temp directory.
    fn sample(secs: u32, gop: u32, bframes: bool, tag: &str) -> std::path::PathBuf {
        sample_sized(secs, gop, bframes, tag, "640x360")
    }

    fn sample_sized(
        secs: u32,
        gop: u32,
        bframes: bool,
        tag: &str,
        size: &str,
    ) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("llhls-ladder-{}-{tag}.mp4", std::process::id()));
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={size}:rate=30:duration={secs}"))
            .args(["-f", "lavfi", "-i"])
            .arg(format!(
                "sine=frequency=440:sample_rate=48000:duration={secs}"
            ))
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args(["-g", &gop.to_string(), "-keyint_min", &gop.to_string()])
            .args(["-sc_threshold", "0", "-bf", if bframes { "2" } else { "0" }])
            .args(["-c:a", "aac"])
            .arg(&path)
            .output()
            .expect("ffmpeg runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    /// Takes events until at most `in_flight` source frames are still in the transcoder, so a
    /// test never overflows its queues, however slow the machine.
    fn catch_up(
        events: &mut tokio::sync::mpsc::UnboundedReceiver<RungEvent>,
        got: &mut Vec<RungEvent>,
        sent: usize,
        rungs: usize,
    ) {
        loop {
            while let Ok(e) = events.try_recv() {
                got.push(e);
            }
            let frames = got
                .iter()
                .filter(|e| matches!(e, RungEvent::Frame { .. }))
                .count();
            let failed = got.iter().any(|e| matches!(e, RungEvent::Failed { .. }));
            if failed || sent <= frames / rungs.max(1) + 8 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn nal_types(au: &[u8]) -> Vec<u8> {
        length_prefixed_nals(au)
            .unwrap()
            .iter()
            .filter_map(|n| n.first().map(|h| h & 0x1f))
            .collect()
    }

    /// Feeds a file's video through a two-rung ladder: returns the source frames and each
    /// rung's events.
    fn transcode(bframes: bool) -> (Vec<Frame>, Vec<RungInfo>, Vec<Vec<RungEvent>>) {
        let path = sample(3, 15, bframes, if bframes { "bf" } else { "nobf" });
        let mut src = FileSource::open(&path).unwrap();
        let ladder = FfmpegLadder::new(vec![
            RungSpec::preset("240p").unwrap(),
            RungSpec::preset("360p").unwrap(),
            RungSpec::preset("540p").unwrap(),
        ])
        .unwrap();
        let video_id = source_video(&src.tracks).unwrap().id;
        let mut start = ladder
            .start("test", &src.tracks)
            .expect("rungs below 360 lines");
        let mut frames = Vec::new();
        let mut events = Vec::new();
        let n = start.rungs.len();
        while let Some(f) = src.next_frame().unwrap() {
            if f.track == video_id {
                start.transcoder.frame(frames.len() as u64, &f);
                frames.push(f);
                catch_up(&mut start.events, &mut events, frames.len(), n);
            }
        }
        start.transcoder.finish();
        drop(start.transcoder);
        while let Some(e) = start.events.blocking_recv() {
            events.push(e);
        }
        let mut per_rung: Vec<Vec<RungEvent>> = start.rungs.iter().map(|_| Vec::new()).collect();
        for e in events {
            match e {
                RungEvent::Frame { rung, .. } => per_rung[rung].push(e),
                RungEvent::Failed { rung, reason } => panic!("rung {rung} failed: {reason}"),
            }
        }
        let _ = std::fs::remove_file(path);
        (frames, start.rungs, per_rung)
    }

    fn check(bframes: bool) {
        crate::source::init().unwrap();
        let (frames, rungs, per_rung) = transcode(bframes);
        // 540p and 360p are not below a 360-line source; 240p is.
        let names: Vec<&str> = rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["240p"]);
        assert_eq!(rungs[0].track.codec.resolution(), (426, 240));
        assert!(rungs[0].track.codec.codec_string().starts_with("avc1.64"));
        assert_eq!(frames.len(), 90);
        let events = &per_rung[0];
        assert_eq!(
            events.len(),
            frames.len(),
            "one encoded frame per source frame"
        );
        // In decode order of the source, presentation order out: the n-th output's PTS is the
        // n-th smallest source PTS, and it is an IDR exactly where the source frame n is a
        // keyframe.
        let mut pts: Vec<i64> = frames
            .iter()
            .map(|f| f.pts.rescale(ENCODER_SCALE))
            .collect();
        pts.sort_unstable();
        for (n, e) in events.iter().enumerate() {
            let RungEvent::Frame {
                seq,
                pts: got,
                keyframe,
                data,
                ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(*seq, n as u64);
            assert_eq!(got.ticks, pts[n], "frame {n}");
            assert_eq!(*keyframe, frames[n].keyframe, "frame {n}");
            let types = nal_types(data);
            assert_eq!(
                types.contains(&5),
                frames[n].keyframe,
                "frame {n}: {types:?}"
            );
        }
    }

    #[test]
    fn every_source_frame_gets_one_rung_frame_with_idrs_on_the_source_keyframes() {
        check(false);
    }

    #[test]
    fn a_b_frame_source_comes_out_in_presentation_order_with_the_same_idrs() {
        check(true);
    }

    /// A corrupt frame and a source that changes size mid-stream: the rung goes on, at its
    /// own size, one frame out per frame in, IDRs on the source keyframes.
    #[test]
    fn a_corrupt_frame_and_a_new_source_size_keep_the_rung_going() {
        crate::source::init().unwrap();
        let a = sample_sized(2, 30, false, "size-a", "640x360");
        let b = sample_sized(2, 30, false, "size-b", "960x540");
        let ladder = FfmpegLadder::new(vec![RungSpec::preset("240p").unwrap()]).unwrap();
        let mut first = FileSource::open(&a).unwrap();
        let mut second = FileSource::open(&b).unwrap();
        let mut start = ladder.start("test", &first.tracks).unwrap();
        let rung_size = start.rungs[0].track.codec.resolution();
        assert_eq!(rung_size, (426, 240));
        let mut sent = Vec::new();
        let mut events = Vec::new();
        let mut feed = |src: &mut FileSource,
                        t: &mut Box<dyn Transcoder>,
                        rx: &mut tokio::sync::mpsc::UnboundedReceiver<RungEvent>,
                        corrupt: Option<usize>| {
            let video = source_video(&src.tracks).unwrap().id;
            let mut n = 0;
            while let Some(mut f) = src.next_frame().unwrap() {
                if f.track != video {
                    continue;
                }
                if Some(n) == corrupt {
                    // A frame whose slice data is garbage.
                    let mut data = f.data.to_vec();
                    for (i, b) in data.iter_mut().enumerate().skip(8) {
                        *b = (i * 7919 % 251) as u8;
                    }
                    f.data = Bytes::from(data);
                }
                n += 1;
                t.frame(sent.len() as u64, &f);
                sent.push(f.keyframe);
                catch_up(rx, &mut events, sent.len(), 1);
            }
        };
        feed(
            &mut first,
            &mut start.transcoder,
            &mut start.events,
            Some(10),
        );
        // The publisher reconnects at 960x540.
        start
            .transcoder
            .discontinuity(source_video(&second.tracks).ok());
        feed(&mut second, &mut start.transcoder, &mut start.events, None);
        start.transcoder.finish();
        drop(start.transcoder);
        while let Some(e) = start.events.blocking_recv() {
            events.push(e);
        }
        let mut got = Vec::new();
        for e in events {
            match e {
                RungEvent::Frame {
                    seq,
                    keyframe,
                    data,
                    ..
                } => {
                    let nals = length_prefixed_nals(&data).unwrap();
                    if let Some(sps) = nals.iter().find(|n| n[0] & 0x1f == 7) {
                        let cfg = AvcConfig::from_parameter_sets(
                            vec![sps.to_vec()],
                            vec![vec![0x68, 0xce, 0x3c, 0x80]],
                        )
                        .unwrap();
                        assert_eq!((cfg.width, cfg.height), rung_size, "frame {seq}");
                    }
                    got.push((seq, keyframe));
                }
                RungEvent::Failed { reason, .. } => panic!("the rung failed: {reason}"),
            }
        }
        let _ = std::fs::remove_file(a);
        let _ = std::fs::remove_file(b);
        assert_eq!(got.len(), sent.len(), "one frame out per frame in");
        for (n, (seq, key)) in got.iter().enumerate() {
            assert_eq!(*seq, n as u64);
            assert_eq!(*key, sent[n], "frame {n}");
        }
    }
}
