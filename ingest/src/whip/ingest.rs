//! From depacketized WebRTC samples to packager frames, without I/O (unit-tested on its own).
//!
//! The session hands us one access unit per [`Sample`] (RTP reordered, H.264 single NAL /
//! STAP-A / FU-A reassembled into length-prefixed NAL units). This stage:
//!
//! - waits for what a stream needs to start: an IDR with its SPS/PPS for video, the first
//!   audio packet, and an RTCP sender report per track (or, when a publisher sends none within
//!   [`SR_WAIT`], falls back to arrival times);
//! - maps each track's RTP clock onto one timeline through the sender reports, so the two
//!   tracks (and so PROGRAM-DATE-TIME) agree: `t = ntp(SR) + (rtp - rtp(SR)) / clock`;
//! - keeps SPS/PPS (and access unit delimiters) out of the samples and turns a parameter-set
//!   change into a new track configuration (a discontinuity);
//! - asks for keyframes: at start, after loss (dropping frames until the IDR, so no decoder
//!   sees a broken reference), and before the segment target runs out, so segments start on
//!   time whatever keyframe interval the encoder was set to;
//! - drops samples whose timestamps go backwards and re-anchors a track whose timestamps jump.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use llhls_packager::codec::{length_prefixed_nals, AvcConfig, CodecConfig};
use llhls_packager::{Frame, MediaTime, Timescale, TrackConfig};

use crate::tracks::{self, AUDIO, VIDEO};

/// How long to wait for sender reports before aligning tracks by arrival time.
pub const SR_WAIT: Duration = Duration::from_secs(3);
/// Samples held while the stream cannot start yet (about 10 s of 30 fps video plus audio).
const MAX_BUFFERED: usize = 1000;
/// A forward timestamp jump larger than this re-anchors the track.
const MAX_JUMP_SECS: i64 = 5;
/// Ask for a keyframe this long before the segment target runs out (request, encode, send).
const KEYFRAME_LEAD: Duration = Duration::from_millis(300);
/// Repeat an unanswered keyframe request after this long (a request or its answer can be
/// lost; the segment is cut without a keyframe 500 ms after the target).
const KEYFRAME_RETRY: Duration = Duration::from_millis(200);
/// After loss, drop frames at most this long (media time) waiting for the keyframe asked
/// for (a publisher on a short path answers within it: no artifacts); then pass them, with
/// possible artifacts until the next keyframe. Longer would leave a hole in the video that
/// the packager (rightly) publishes as a gap: it treats a lead-track gap longer than a part
/// target as missing media.
const MAX_FREEZE_TICKS: i64 = 90_000 / 10;
/// Frames further apart than this (WebRTC encoders drop frames after a large keyframe or
/// when bandwidth falls) make a hole the packager publishes as a gap. The frames after it
/// are held back until a keyframe (asked for at once, waited for at most
/// [`MAX_HOLE_FREEZE_TICKS`]), so the stream resumes with an independent segment rather
/// than one players cannot start decoding.
const HOLE_TICKS: i64 = 90_000 * 15 / 100;
const MAX_HOLE_FREEZE_TICKS: i64 = 90_000;

/// Video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The video track.
    Video,
    /// The audio track.
    Audio,
}

/// One depacketized access unit.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Video or audio.
    pub kind: Kind,
    /// RTP timestamp extended to 64 bits, in `clock` ticks.
    pub rtp_time: i64,
    /// RTP clock rate (90 kHz video, 48 kHz Opus).
    pub clock: u32,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// An H.264 access unit (4-byte length-prefixed NAL units), or one Opus packet.
    pub data: Bytes,
    /// False when packets were lost just before it.
    pub contiguous: bool,
    /// The latest RTCP sender report of its stream: (NTP wall clock, RTP time in `clock` ticks).
    pub sender_report: Option<(SystemTime, i64)>,
}

/// What the session should do.
#[derive(Debug)]
pub enum Step {
    /// Every expected track is known: start the stream with these tracks.
    Start(Vec<TrackConfig>),
    /// A frame for the packager, and when its first packet arrived. Audio frames carry the
    /// Opus packet as received.
    Frame(Frame, Instant),
    /// The video parameter sets changed at this keyframe: new configuration (discontinuity).
    Reconfigure(Vec<TrackConfig>),
    /// Send a keyframe request (PLI) to the publisher; the reason is for the log.
    RequestKeyframe(&'static str),
    /// Something the operator should know about this session.
    Warn(String),
}

#[derive(Default)]
struct Track {
    expected: bool,
    /// (NTP ns since 1970, RTP ticks) of the latest sender report.
    sr: Option<(i128, i64)>,
    /// Ticks added to the RTP time to get the output time.
    offset: Option<i64>,
    last: Option<i64>,
    clock: u32,
}

/// The per-session ingest state machine.
pub struct Assembler {
    video: Track,
    audio: Track,
    audio_config: Option<CodecConfig>,
    video_config: Option<AvcConfig>,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
    segment_target: Duration,
    started: bool,
    pending: VecDeque<Sample>,
    first_sample: Option<Instant>,
    steps: VecDeque<Step>,
    /// Dropping video until the next IDR (after loss, or before the first).
    need_idr: bool,
    /// Media time of the first frame dropped while waiting for an IDR after loss.
    freeze_from: Option<i64>,
    /// How long that wait may last.
    freeze_limit: i64,
    /// Holes in the video (encoder-dropped frames) that made us wait for a keyframe.
    pub holes: u64,
    /// Where the packager's segment in progress started (it closes a segment on the first
    /// keyframe at least 3/4 of the target in, and cuts it 500 ms past the target without
    /// one): keyframe requests aim at its end, not at the last keyframe.
    segment_start: Option<i64>,
    last_request: Option<Instant>,
    /// Reference pair to turn `Instant`s into wall-clock nanoseconds.
    epoch: (Instant, i128),
    /// Samples dropped because their timestamps did not advance.
    pub backwards: u64,
    /// Forward timestamp jumps re-anchored.
    pub jumps: u64,
    /// Video access units that followed lost packets.
    pub lost: u64,
    /// Keyframe requests not answered in time.
    pub late_keyframes: u64,
    /// Test only: audio moved this many ms later than the sender reports say.
    audio_shift_ms: i64,
    unanswered_warned: bool,
}

/// The NAL units of a length-prefixed access unit; none when a length runs past the end.
fn nals(au: &[u8]) -> Vec<&[u8]> {
    length_prefixed_nals(au).unwrap_or_default()
}

fn is_idr(au: &[u8]) -> bool {
    nals(au)
        .iter()
        .any(|n| n.first().is_some_and(|h| h & 0x1f == 5))
}

fn ns_since_1970(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn ticks_to_ns(ticks: i64, clock: u32) -> i128 {
    i128::from(ticks) * 1_000_000_000 / i128::from(clock.max(1))
}

/// Nanoseconds to ticks, rounded to the nearest tick (saturating far outside any real
/// stream's range).
fn ns_to_ticks(ns: i128, clock: u32) -> i64 {
    let scaled = ns.saturating_mul(i128::from(clock));
    let ticks = scaled.div_euclid(1_000_000_000)
        + i128::from(scaled.rem_euclid(1_000_000_000) >= 500_000_000);
    i64::try_from(ticks).unwrap_or(if ticks < 0 { i64::MIN } else { i64::MAX })
}

/// RTP times (extended to 64 bits) beyond this are not a real stream's (2^48 ticks is 99
/// years at 90 kHz): such samples and sender reports are dropped, which keeps every sum
/// and difference of times below far from overflowing.
const MAX_RTP_TIME: i64 = 1 << 48;

impl Assembler {
    /// `audio_config`: what the audio track will be in the output (AAC when transcoding, Opus
    /// when passing through); `None` when the offer has no audio.
    pub fn new(
        expect_video: bool,
        audio_config: Option<CodecConfig>,
        segment_target: Duration,
        now: Instant,
    ) -> Self {
        Assembler {
            video: Track {
                expected: expect_video,
                clock: 90_000,
                ..Track::default()
            },
            audio: Track {
                expected: audio_config.is_some(),
                clock: 48_000,
                ..Track::default()
            },
            audio_config,
            video_config: None,
            sps: Vec::new(),
            pps: Vec::new(),
            segment_target,
            started: false,
            pending: VecDeque::new(),
            first_sample: None,
            steps: VecDeque::new(),
            need_idr: true,
            freeze_from: None,
            freeze_limit: MAX_FREEZE_TICKS,
            holes: 0,
            segment_start: None,
            last_request: None,
            epoch: (now, ns_since_1970(SystemTime::now())),
            backwards: 0,
            jumps: 0,
            lost: 0,
            late_keyframes: 0,
            audio_shift_ms: 0,
            unanswered_warned: false,
        }
    }

    /// Has the stream started?
    #[cfg(test)]
    pub fn started(&self) -> bool {
        self.started
    }

    /// Test only: publish audio `ms` later than it belongs, so the player test can show
    /// that its lip-sync check fails on a stream that is out of sync.
    pub fn break_sync(&mut self, ms: i64) {
        self.audio_shift_ms = ms;
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    fn track(&mut self, kind: Kind) -> &mut Track {
        match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        }
    }

    fn instant_ns(&self, t: Instant) -> i128 {
        let (i0, n0) = self.epoch;
        if t >= i0 {
            n0 + (t - i0).as_nanos() as i128
        } else {
            n0 - (i0 - t).as_nanos() as i128
        }
    }

    fn request_keyframe(&mut self, now: Instant, why: &'static str) {
        if self
            .last_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_RETRY)
        {
            return;
        }
        self.last_request = Some(now);
        self.steps.push_back(Step::RequestKeyframe(why));
    }

    /// Time passes without samples: repeat keyframe requests while waiting for one.
    pub fn tick(&mut self, now: Instant) {
        if self.video.expected && self.need_idr && self.started {
            self.request_keyframe(now, "waiting for a keyframe");
        }
        if !self.started {
            self.try_start(now);
        }
    }

    /// Takes one sample.
    pub fn push(&mut self, s: Sample, now: Instant) {
        if s.rtp_time.unsigned_abs() > MAX_RTP_TIME as u64 {
            self.steps.push_back(Step::Warn(format!(
                "{:?} RTP time {} out of range: sample dropped",
                s.kind, s.rtp_time
            )));
            return;
        }
        self.first_sample.get_or_insert(now);
        if let Some((ntp, rtp)) = s.sender_report {
            if rtp.unsigned_abs() <= MAX_RTP_TIME as u64 {
                let kind = s.kind;
                let t = self.track(kind);
                t.sr = Some((ns_since_1970(ntp), rtp));
            }
        }
        if s.kind == Kind::Video && !self.video.expected {
            return;
        }
        if s.kind == Kind::Audio && !self.audio.expected {
            return;
        }
        if !self.started {
            if s.kind == Kind::Video && !s.contiguous {
                self.lost += 1;
            }
            if s.kind == Kind::Video && self.video_config.is_some() && is_idr(&s.data) {
                // Still waiting to start (for sender reports): begin at the newest keyframe,
                // so the first segment starts on time and the start-up burst stays short.
                let (rtp, arrival) = (s.rtp_time, s.arrival);
                self.pending.retain(|p| match p.kind {
                    Kind::Video => p.rtp_time >= rtp,
                    Kind::Audio => p.arrival + Duration::from_millis(100) >= arrival,
                });
            }
            self.pending.push_back(s);
            while self.pending.len() > MAX_BUFFERED {
                self.pending.pop_front();
            }
            self.try_start(now);
        } else {
            self.process(s, now);
        }
    }

    /// Parameter sets and IDR-ness of a length-prefixed access unit; the sample data
    /// without SPS, PPS and access unit delimiters (`data` itself when it has none).
    fn parse_video(&mut self, data: &Bytes) -> (bool, bool, Bytes) {
        let mut idr = false;
        let mut new_sps = Vec::new();
        let mut new_pps = Vec::new();
        let nals = nals(data);
        let kept = |h: u8| !matches!(h & 0x1f, 7..=9);
        let out = if nals.iter().all(|n| n.first().copied().is_some_and(kept)) {
            data.clone()
        } else {
            let mut out = Vec::with_capacity(data.len());
            for nal in &nals {
                if nal.first().copied().is_some_and(kept) {
                    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    out.extend_from_slice(nal);
                }
            }
            Bytes::from(out)
        };
        for nal in &nals {
            let Some(&h) = nal.first() else { continue };
            match h & 0x1f {
                5 => idr = true,
                7 => new_sps.push(nal.to_vec()),
                8 => new_pps.push(nal.to_vec()),
                _ => {}
            }
        }
        if nals.is_empty() && !data.is_empty() {
            // A length ran past the end: not an access unit.
            return (false, false, Bytes::new());
        }
        let mut changed = false;
        if !new_sps.is_empty() && new_sps != self.sps {
            self.sps = new_sps;
            changed = true;
        }
        if !new_pps.is_empty() && new_pps != self.pps {
            self.pps = new_pps;
            changed = true;
        }
        (idr, changed, out)
    }

    fn tracks(&self) -> Vec<TrackConfig> {
        let video = self.video_config.clone().map(CodecConfig::H264);
        tracks::tracks(video.as_ref(), self.audio_config.as_ref())
    }

    fn try_start(&mut self, now: Instant) {
        if self.started {
            return;
        }
        // Video: drop everything before the first IDR that comes with parameter sets.
        if self.video.expected
            && self.video_config.is_some()
            && !self.pending.iter().any(|s| s.kind == Kind::Video)
        {
            // The keyframe chosen to start at was pushed out of the start-up buffer (audio
            // alone filled it while we waited for sender reports: a stalled encoder, or
            // 2.5 ms Opus packets): start at the next keyframe instead.
            self.video_config = None;
            self.steps.push_back(Step::Warn(format!(
                "{MAX_BUFFERED} samples buffered before the stream could start, and none of them video: waiting for the next keyframe"
            )));
        }
        if self.video.expected && self.video_config.is_none() {
            while let Some(i) = self.pending.iter().position(|s| s.kind == Kind::Video) {
                let s = self.pending[i].clone();
                let (idr, _, _) = self.parse_video(&s.data);
                if idr && !self.sps.is_empty() && !self.pps.is_empty() {
                    match AvcConfig::from_parameter_sets(self.sps.clone(), self.pps.clone()) {
                        Ok(c) => {
                            self.video_config = Some(c);
                            // Keep audio from shortly before the keyframe; drop older video.
                            self.pending
                                .retain(|p| p.kind == Kind::Audio || p.rtp_time >= s.rtp_time);
                            break;
                        }
                        Err(e) => {
                            self.steps
                                .push_back(Step::Warn(format!("unusable H.264 SPS: {e}")));
                            self.sps.clear();
                        }
                    }
                }
                self.pending.remove(i);
            }
            if self.video_config.is_none() {
                if self.first_sample.is_some() {
                    self.request_keyframe(now, "the stream starts at a keyframe");
                }
                return;
            }
        }
        let has = |k: Kind| self.pending.iter().any(|s| s.kind == k);
        if self.audio.expected && !has(Kind::Audio) {
            return;
        }
        let waited = self
            .first_sample
            .is_some_and(|t| now.saturating_duration_since(t) >= SR_WAIT);
        let all_sr = (!self.video.expected || self.video.sr.is_some())
            && (!self.audio.expected || self.audio.sr.is_some());
        if !all_sr && !waited {
            // The segment clock runs while we wait: ask for the keyframe that will start the
            // second segment in time.
            let mut video = self.pending.iter().filter(|p| p.kind == Kind::Video);
            if let (Some(first), Some(last)) = (video.next(), video.last()) {
                let span = Duration::from_micros(
                    ((last.rtp_time - first.rtp_time).max(0) as u64) * 1000 / 90,
                );
                if span + KEYFRAME_LEAD >= self.segment_target {
                    self.request_keyframe(now, "segment target reached before the stream started");
                }
            }
            return;
        }
        // Anchor every track: the sender report when every track has one, else arrival.
        let mut anchors: Vec<(Kind, i128, i64)> = Vec::new();
        for kind in [Kind::Video, Kind::Audio] {
            let t = match kind {
                Kind::Video => &self.video,
                Kind::Audio => &self.audio,
            };
            if !t.expected {
                continue;
            }
            // Each expected track has a pending sample (checked above: `has(Kind::Audio)`,
            // and video's keyframe); should that ever change, wait rather than panic.
            let Some(first) = self.pending.iter().find(|s| s.kind == kind) else {
                return;
            };
            let (ns, rtp) = match (all_sr, t.sr) {
                (true, Some(sr)) => sr,
                _ => (self.instant_ns(first.arrival), first.rtp_time),
            };
            anchors.push((kind, ns, rtp));
        }
        if !all_sr {
            self.steps.push_back(Step::Warn(format!(
                "no RTCP sender reports after {} s: audio and video aligned by arrival time",
                SR_WAIT.as_secs()
            )));
        }
        // The timeline starts at the first video keyframe (or first audio packet).
        let lead_kind = if self.video.expected {
            Kind::Video
        } else {
            Kind::Audio
        };
        let Some(&(_, lead_ns, lead_rtp)) = anchors.iter().find(|a| a.0 == lead_kind) else {
            return;
        };
        let Some(lead_first) = self.pending.iter().find(|s| s.kind == lead_kind) else {
            return;
        };
        let lead_first_rtp = lead_first.rtp_time;
        let base_ns = lead_ns + ticks_to_ns(lead_first_rtp - lead_rtp, lead_first.clock);
        for (kind, ns, rtp) in anchors {
            let shift = if kind == Kind::Audio {
                i128::from(self.audio_shift_ms) * 1_000_000
            } else {
                0
            };
            let t = self.track(kind);
            t.offset = Some(if kind == lead_kind {
                // Exactly 0 for the first keyframe, whatever the rounding below.
                -lead_first_rtp
            } else {
                ns_to_ticks(ns - base_ns + shift, t.clock) - rtp
            });
        }
        self.started = true;
        self.need_idr = self.video.expected;
        self.steps.push_back(Step::Start(self.tracks()));
        let pending = std::mem::take(&mut self.pending);
        for s in pending {
            self.process(s, now);
        }
    }

    fn process(&mut self, s: Sample, now: Instant) {
        let kind = s.kind;
        let Some(offset) = self.track(kind).offset else {
            return;
        };
        // The offset comes from sender reports, whose wall clock the publisher sets.
        let Some(mut dts) = s.rtp_time.checked_add(offset) else {
            self.steps.push_back(Step::Warn(format!(
                "{kind:?} timestamp out of range (RTP {} + offset {offset}): sample dropped",
                s.rtp_time
            )));
            return;
        };
        if dts < 0 {
            // Before the first keyframe: not part of the stream.
            return;
        }
        if let Some(last) = self.track(kind).last {
            if dts <= last {
                self.backwards += 1;
                if self.backwards <= 5 || self.backwards.is_multiple_of(100) {
                    self.steps.push_back(Step::Warn(format!(
                        "{kind:?} timestamp did not advance ({} <= {}): sample dropped ({} so far)",
                        dts, last, self.backwards
                    )));
                }
                return;
            }
            let clock = self.track(kind).clock;
            // dts > last >= 0 here, so the difference cannot overflow.
            if dts - last > MAX_JUMP_SECS * i64::from(clock) {
                // Re-anchor: continue one frame after the last sample.
                let step = i64::from(clock) / if kind == Kind::Video { 30 } else { 50 };
                let t = self.track(kind);
                t.offset = Some(offset.saturating_sub(dts - last).saturating_add(step));
                dts = last + step;
                self.jumps += 1;
                self.steps.push_back(Step::Warn(format!(
                    "{kind:?} timestamp jumped forward by more than {MAX_JUMP_SECS} s: re-anchored"
                )));
            }
        }
        match kind {
            Kind::Audio => {
                self.audio.last = Some(dts);
                let t = MediaTime::new(dts, Timescale::new(48_000).expect("nonzero"));
                self.steps.push_back(Step::Frame(
                    Frame {
                        track: AUDIO,
                        dts: t,
                        pts: t,
                        keyframe: true,
                        data: s.data,
                    },
                    s.arrival,
                ));
            }
            Kind::Video => {
                if !s.contiguous {
                    self.lost += 1;
                    if !self.need_idr {
                        self.need_idr = true;
                    }
                }
                let (idr, changed, data) = self.parse_video(&s.data);
                if !idr
                    && !self.need_idr
                    && self.video.last.is_some_and(|last| dts - last > HOLE_TICKS)
                {
                    self.holes += 1;
                    self.need_idr = true;
                    self.freeze_limit = MAX_HOLE_FREEZE_TICKS;
                    if self.holes <= 3 || self.holes.is_multiple_of(100) {
                        self.steps.push_back(Step::Warn(format!(
                            "the publisher skipped {} ms of video (its encoder dropped frames): resuming at the next keyframe ({} so far)",
                            (dts - self.video.last.unwrap_or(dts)) / 90,
                            self.holes
                        )));
                    }
                }
                if self.need_idr && !idr {
                    self.request_keyframe(now, "waiting for a keyframe after loss");
                    let from = *self.freeze_from.get_or_insert(dts);
                    if dts - from < self.freeze_limit {
                        return;
                    }
                    // The publisher does not answer keyframe requests quickly: go on.
                    self.need_idr = false;
                    self.freeze_from = None;
                    self.late_keyframes += 1;
                    if self.late_keyframes <= 3 {
                        self.steps.push_back(Step::Warn(format!(
                            "no keyframe {} ms after a keyframe request: passing frames (possible artifacts until the next keyframe)",
                            self.freeze_limit / 90
                        )));
                    }
                    self.freeze_limit = MAX_FREEZE_TICKS;
                }
                if data.is_empty() {
                    return;
                }
                if changed && idr {
                    match AvcConfig::from_parameter_sets(self.sps.clone(), self.pps.clone()) {
                        Ok(c) => {
                            if self.video_config.as_ref() != Some(&c) {
                                self.video_config = Some(c);
                                self.steps.push_back(Step::Reconfigure(self.tracks()));
                            }
                        }
                        Err(e) => {
                            self.steps
                                .push_back(Step::Warn(format!("unusable H.264 SPS: {e}")));
                            return;
                        }
                    }
                }
                let target_ticks = self.segment_target.as_micros() as i64 * 9 / 100;
                let seg_start = *self.segment_start.get_or_insert(dts);
                if idr {
                    self.need_idr = false;
                    self.freeze_from = None;
                    self.freeze_limit = MAX_FREEZE_TICKS;
                    self.last_request = None;
                    if dts - seg_start >= target_ticks * 3 / 4 {
                        self.segment_start = Some(dts);
                    }
                } else if dts - seg_start > target_ticks + 45_000 {
                    // The packager cut the segment here without a keyframe.
                    self.segment_start = Some(dts);
                } else {
                    let since =
                        Duration::from_micros(((dts - seg_start).max(0) as u64) * 1000 / 90);
                    if since + KEYFRAME_LEAD >= self.segment_target {
                        self.request_keyframe(now, "segment target reached");
                    }
                    if since > self.segment_target + KEYFRAME_LEAD && !self.unanswered_warned {
                        self.unanswered_warned = true;
                        self.steps.push_back(Step::Warn(format!(
                            "the publisher has not answered keyframe requests (RTCP PLI) for {} ms: segments will be cut between keyframes unless its keyframe interval is at most {:.0} s",
                            (since + KEYFRAME_LEAD - self.segment_target).as_millis(),
                            self.segment_target.as_secs_f64()
                        )));
                    }
                }
                self.video.last = Some(dts);
                let t = MediaTime::new(dts, Timescale::MPEG);
                self.steps.push_back(Step::Frame(
                    Frame {
                        track: VIDEO,
                        dts: t,
                        pts: t,
                        keyframe: idr,
                        data,
                    },
                    s.arrival,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llhls_packager::codec::AacConfig;

    // A real 320x240 Constrained Baseline SPS and PPS (x264).
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn avcc(nals: &[&[u8]]) -> Bytes {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        Bytes::from(v)
    }

    struct Pub {
        t0: Instant,
        ntp0: SystemTime,
        video_rtp0: i64,
        audio_rtp0: i64,
    }

    impl Pub {
        /// A publisher whose RTP clocks both start at 0.
        fn zero(t0: Instant) -> Pub {
            Pub {
                t0,
                ntp0: SystemTime::now(),
                video_rtp0: 0,
                audio_rtp0: 0,
            }
        }

        fn video(&self, ms: i64, idr: bool, sr: bool) -> Sample {
            let data = if idr {
                avcc(&[SPS, PPS, &[0x65, 0x88, 0x84]])
            } else {
                avcc(&[&[0x41, 0x9a, 0x02]])
            };
            Sample {
                kind: Kind::Video,
                rtp_time: self.video_rtp0 + ms * 90,
                clock: 90_000,
                arrival: self.t0 + Duration::from_millis(ms as u64 + 40),
                data,
                contiguous: true,
                sender_report: sr.then_some((self.ntp0, self.video_rtp0)),
            }
        }
        fn audio(&self, ms: i64, sr: bool) -> Sample {
            Sample {
                kind: Kind::Audio,
                rtp_time: self.audio_rtp0 + ms * 48,
                clock: 48_000,
                arrival: self.t0 + Duration::from_millis(ms as u64 + 5),
                data: Bytes::from_static(&[0xfc, 1, 2]),
                contiguous: true,
                sender_report: sr.then_some((self.ntp0, self.audio_rtp0)),
            }
        }
    }

    fn drain(a: &mut Assembler) -> Vec<Step> {
        std::iter::from_fn(|| a.poll()).collect()
    }

    fn frames(steps: &[Step], track: llhls_packager::TrackId) -> Vec<(i64, bool)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Frame(f, _) if f.track == track => Some((f.dts.ticks, f.keyframe)),
                _ => None,
            })
            .collect()
    }

    fn aac() -> Option<CodecConfig> {
        Some(CodecConfig::Aac(AacConfig::lc(48_000, 2).unwrap()))
    }

    #[test]
    fn sender_reports_align_the_tracks() {
        let t0 = Instant::now();
        // Random, unrelated RTP starting points, as real publishers use.
        let p = Pub {
            t0,
            ntp0: SystemTime::now(),
            video_rtp0: 3_000_000_000,
            audio_rtp0: 17_000,
        };
        let mut a = Assembler::new(true, aac(), Duration::from_secs(2), t0);
        // Audio from 0 ms, video starts at 100 ms with a non-IDR, IDR at 200 ms.
        for i in 0..10 {
            a.push(p.audio(i * 20, true), t0);
        }
        a.push(p.video(100, false, true), t0);
        let s = drain(&mut a);
        assert!(s.iter().any(|s| matches!(s, Step::RequestKeyframe(_))));
        a.push(p.video(200, true, true), t0);
        for i in 10..20 {
            a.push(p.audio(i * 20, true), t0);
        }
        a.push(p.video(233, false, true), t0);
        let s = drain(&mut a);
        assert!(matches!(s[0], Step::Start(ref t) if t.len() == 2), "{s:?}");
        let v = frames(&s, VIDEO);
        assert_eq!(v, vec![(0, true), (33 * 90, false)]);
        // Audio at 200 ms media time is at 0 on the output timeline, like the keyframe.
        let au = frames(&s, AUDIO);
        assert_eq!(au.first(), Some(&(0, true)));
        assert_eq!(au.len(), 10);
    }

    #[test]
    fn without_sender_reports_arrival_aligns_after_the_wait() {
        let t0 = Instant::now();
        let p = Pub {
            t0,
            ntp0: SystemTime::now(),
            video_rtp0: 5,
            audio_rtp0: 9,
        };
        let mut a = Assembler::new(true, aac(), Duration::from_secs(2), t0);
        a.push(p.video(0, true, false), t0);
        a.push(p.audio(0, false), t0);
        assert!(!a.started());
        a.tick(t0 + SR_WAIT);
        assert!(a.started());
        let s = drain(&mut a);
        assert!(s
            .iter()
            .any(|s| matches!(s, Step::Warn(w) if w.contains("arrival"))));
        // Video arrived 40 ms after capture, audio 5 ms: audio maps 35 ms before the keyframe.
        assert!(frames(&s, AUDIO).is_empty());
    }

    #[test]
    fn loss_waits_for_idr_and_backwards_time_is_dropped() {
        let t0 = Instant::now();
        let p = Pub::zero(t0);
        let mut a = Assembler::new(true, None, Duration::from_secs(2), t0);
        a.push(p.video(0, true, true), t0);
        a.push(p.video(33, false, true), t0);
        let mut lossy = p.video(100, false, true);
        lossy.contiguous = false;
        a.push(lossy, t0);
        a.push(p.video(133, false, true), t0);
        a.push(p.video(166, true, true), t0);
        a.push(p.video(150, false, true), t0); // backwards
        let s = drain(&mut a);
        assert_eq!(
            frames(&s, VIDEO),
            vec![(0, true), (33 * 90, false), (166 * 90, true)]
        );
        assert!(s.iter().any(|s| matches!(s, Step::RequestKeyframe(_))));
        assert_eq!(a.backwards, 1);
        assert_eq!(a.lost, 1);
    }

    /// Feeds 30 fps video (a keyframe at 0 and at `idr_at`) until the assembler asks for a
    /// keyframe; returns when, in ms.
    fn first_keyframe_request(idr_at: Option<i64>) -> i64 {
        let t0 = Instant::now();
        let p = Pub::zero(t0);
        let mut a = Assembler::new(true, None, Duration::from_secs(2), t0);
        a.push(p.video(0, true, true), t0);
        for i in 1..60 {
            let now = t0 + Duration::from_millis(i as u64 * 33);
            a.push(p.video(i * 33, idr_at == Some(i), true), now);
            if drain(&mut a)
                .iter()
                .any(|s| matches!(s, Step::RequestKeyframe(_)))
            {
                return i * 33;
            }
        }
        panic!("no keyframe request in 2 s");
    }

    #[test]
    fn keyframes_are_requested_before_the_segment_target() {
        let at = first_keyframe_request(None);
        assert!((1650..=1750).contains(&at), "asked at {at} ms");
    }

    #[test]
    fn an_early_keyframe_does_not_restart_the_segment_clock() {
        // A keyframe at 500 ms (answering a loss): the packager does not start a segment
        // there (under 3/4 of the target), so neither may the request clock.
        let at = first_keyframe_request(Some(15));
        assert!((1650..=1750).contains(&at), "asked at {at} ms");
    }

    #[test]
    fn jumps_are_reanchored_and_sps_changes_reconfigure() {
        let t0 = Instant::now();
        let p = Pub::zero(t0);
        let mut a = Assembler::new(true, None, Duration::from_secs(2), t0);
        a.push(p.video(0, true, true), t0);
        a.push(p.video(60_000, false, true), t0);
        let mut other = p.video(60_033, true, true);
        let mut sps2 = SPS.to_vec();
        sps2[3] = 0x1e; // level 3.0
        other.data = avcc(&[&sps2, PPS, &[0x65, 0x88, 0x84]]);
        a.push(other, t0);
        let s = drain(&mut a);
        let v = frames(&s, VIDEO);
        assert_eq!(v[1].0, 3000, "one frame after the last");
        assert_eq!(v[2].0, 3000 + 33 * 90);
        assert!(s.iter().any(|s| matches!(s, Step::Reconfigure(_))));
        assert_eq!(a.jumps, 1);
    }

    #[test]
    fn frames_without_parameter_sets_are_passed_on_uncopied() {
        let t0 = Instant::now();
        let p = Pub::zero(t0);
        let mut a = Assembler::new(true, None, Duration::from_secs(2), t0);
        a.push(p.video(0, true, true), t0);
        let delta = p.video(33, false, true);
        let sent = delta.data.clone();
        a.push(delta, t0);
        let s = drain(&mut a);
        let Some(Step::Frame(f, _)) = s.last() else {
            panic!("{s:?}")
        };
        assert_eq!(f.data.as_ptr(), sent.as_ptr(), "the same buffer");
        // The keyframe's SPS and PPS went into the configuration, not the sample.
        let Some(Step::Frame(k, _)) = s
            .iter()
            .find(|s| matches!(s, Step::Frame(f, _) if f.keyframe))
        else {
            panic!("{s:?}")
        };
        assert_eq!(&k.data[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        // Garbage lengths are not an access unit.
        let mut bad = p.video(66, false, true);
        bad.data = Bytes::from_static(&[0, 0, 1, 0, 0x41]);
        a.push(bad, t0);
        assert!(drain(&mut a).iter().all(|s| !matches!(s, Step::Frame(..))));
    }

    #[test]
    fn timestamps_at_the_ends_of_the_range_are_dropped_not_overflowed() {
        let t0 = Instant::now();
        let p = Pub::zero(t0);
        let mut a = Assembler::new(true, aac(), Duration::from_secs(2), t0);
        for rtp in [i64::MAX, i64::MIN, i64::MIN + 1, -(1 << 50)] {
            let mut v = p.video(0, true, true);
            v.rtp_time = rtp;
            a.push(v, t0);
            let mut au = p.audio(0, true);
            au.rtp_time = rtp;
            a.push(au, t0);
        }
        // Sender reports from the far future and far past, with extreme RTP times.
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let mut v = p.video(0, true, false);
        v.sender_report = Some((far, 1 << 47));
        a.push(v, t0);
        let mut au = p.audio(0, false);
        au.sender_report = Some((SystemTime::UNIX_EPOCH, -(1 << 47)));
        a.push(au, t0);
        for ms in (20..400).step_by(20) {
            a.push(p.video(ms, false, false), t0);
            a.push(p.audio(ms, false), t0);
        }
        let mut v = p.video(400, false, true);
        v.sender_report = Some((far, i64::MAX));
        a.push(v, t0);
        a.tick(t0 + SR_WAIT);
        let s = drain(&mut a);
        assert!(a.started(), "{s:?}");
        assert!(!frames(&s, VIDEO).is_empty());
        assert!(s
            .iter()
            .any(|s| matches!(s, Step::Warn(w) if w.contains("out of range"))));
    }

    /// An audio sample `ms_x10` tenths of a millisecond after `p.t0`.
    fn audio_at(p: &Pub, ms_x10: i64, sr: bool) -> Sample {
        let mut s = p.audio(0, sr);
        s.rtp_time = p.audio_rtp0 + ms_x10 * 48 / 10;
        s.arrival = p.t0 + Duration::from_micros(ms_x10 as u64 * 100 + 5_000);
        s
    }

    /// The start must not find its keyframe gone: the start-up buffer keeps the newest
    /// 1000 samples, and audio alone can fill it while video waits for sender reports.
    fn start_after_video_was_pushed_out(step_ms_x10: i64, burst: bool) -> Vec<Step> {
        let t0 = Instant::now();
        let p = Pub::zero(t0);
        let mut a = Assembler::new(true, aac(), Duration::from_secs(2), t0);
        // A keyframe, then no more video (stalled encoder); no sender reports at all.
        a.push(p.video(0, true, false), t0);
        for i in 0..(MAX_BUFFERED as i64 + 200) {
            let s = audio_at(&p, i * step_ms_x10, false);
            let now = if burst { t0 } else { s.arrival };
            a.push(s, now);
        }
        a.tick(t0 + SR_WAIT + Duration::from_secs(1));
        let mut steps = drain(&mut a);
        assert!(!a.started(), "no keyframe left to start at: {steps:?}");
        // The next keyframe starts the stream.
        let t = t0 + SR_WAIT + Duration::from_secs(2);
        let mut v = p.video(4000, true, false);
        v.arrival = t;
        a.push(v, t);
        a.tick(t);
        steps.extend(drain(&mut a));
        assert!(a.started(), "{steps:?}");
        steps
    }

    #[test]
    fn a_burst_of_audio_while_video_stalls_does_not_panic() {
        let steps = start_after_video_was_pushed_out(200, true);
        let v = frames(&steps, VIDEO);
        assert_eq!(v.first(), Some(&(0, true)), "starts at the new keyframe");
    }

    #[test]
    fn short_opus_packets_filling_the_start_buffer_do_not_panic() {
        // 2.5 ms Opus packets: 1000 of them arrive before the sender-report wait is over.
        let steps = start_after_video_was_pushed_out(25, false);
        let v = frames(&steps, VIDEO);
        assert_eq!(v.first(), Some(&(0, true)), "starts at the new keyframe");
    }
}
