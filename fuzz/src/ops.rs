//! The packager driven by arbitrary operation sequences, and the invariants it promises (crate
//! docs of `llhls-packager`, the `Output` docs, and the checks of `packager/tests/common`),
//! checked after every step.
//!
//! Two input domains share this code: [`Domain::Hostile`] passes any `i64` timestamp, any
//! timescale (1 and `u32::MAX` included), any wall clock and any first MSN; [`Domain::Plausible`]
//! bounds them to what a misbehaving but real publisher sends (timestamps within ±34 years,
//! timescales of at least 1 kHz, wall clocks between 1970 and 3000, MSNs below 2^53), so the
//! fuzzer can get past arithmetic overflow on absurd values and into the cutting logic.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use llhls_packager::codec::{AacConfig, Av1Config, AvcConfig, HevcConfig, OpusConfig};
use llhls_packager::{
    render_media, render_multivariant, Addressing, CodecConfig, Frame, Layout, MediaTime, Output,
    Packager, PackagerConfig, PackagerError, SkipMode, StreamSnapshot, StreamTiming, Timescale,
    TrackConfig, TrackId, WallClock,
};

use crate::boxes;

/// Which values the operations may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Anything the types allow.
    Hostile,
    /// Wrong, late, jittery, reset, but representable without overflow tricks.
    Plausible,
}

const VIDEO: TrackId = TrackId(1);
const AUDIO: TrackId = TrackId(2);
const WALL0: i64 = 1_795_000_000_000;

/// hvcC of x265, 64x64 Main (fuzz/corpus/codec_hevc/hevc-hvcc without its mode byte).
const HVCC: &[u8] = include_bytes!("../corpus/codec_hevc/hevc-hvcc");
/// av1C of SVT-AV1, 64x64.
const AV1C: &[u8] = include_bytes!("../corpus/codec_av1/svtav1-64x64-av1c");
/// avcC of samples/media/bikes.mp4.
const AVCC: &[u8] = include_bytes!("../corpus/codec_h264/bikes-avcc");

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
pub enum VideoCodec {
    H264,
    H264Bikes,
    Hevc,
    Av1,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
pub enum AudioCodec {
    Aac48k,
    Aac44kMono,
    Aac960,
    Opus,
}

impl VideoCodec {
    fn config(self) -> CodecConfig {
        match self {
            VideoCodec::H264 => llhls_packager::synth::video_track().codec,
            VideoCodec::H264Bikes => {
                CodecConfig::H264(AvcConfig::from_avcc(&AVCC[1..]).expect("seed avcC parses"))
            }
            VideoCodec::Hevc => {
                CodecConfig::Hevc(HevcConfig::from_hvcc(&HVCC[1..]).expect("seed hvcC parses"))
            }
            VideoCodec::Av1 => CodecConfig::Av1(Av1Config::from_av1c(AV1C).expect("seed av1C")),
        }
    }
}

impl AudioCodec {
    fn config(self) -> CodecConfig {
        match self {
            AudioCodec::Aac48k => CodecConfig::Aac(AacConfig::lc(48_000, 2).expect("48 kHz")),
            AudioCodec::Aac44kMono => CodecConfig::Aac(AacConfig::lc(44_100, 1).expect("44.1")),
            // AAC-LC 48 kHz stereo with frameLengthFlag: 960-sample frames.
            AudioCodec::Aac960 => {
                CodecConfig::Aac(AacConfig::from_asc(&[0x11, 0x94]).expect("960 ASC"))
            }
            AudioCodec::Opus => CodecConfig::Opus(OpusConfig::simple(2)),
        }
    }

    fn frame_ns(self) -> i128 {
        match self {
            AudioCodec::Aac48k => 21_333_333,
            AudioCodec::Aac960 => 20_000_000,
            AudioCodec::Aac44kMono => 23_219_955,
            AudioCodec::Opus => 20_000_000,
        }
    }
}

/// How the packager is configured.
#[derive(Arbitrary, Debug)]
pub struct Setup {
    pub video: Option<VideoCodec>,
    pub audio: Option<AudioCodec>,
    pub separate: bool,
    pub byterange: bool,
    pub part_ms: u16,
    pub segment_ms: u16,
    pub max_td: u8,
    pub window: u8,
    pub first_msn: u64,
    pub no_delta: bool,
    pub stall_filler: bool,
}

/// A frame's timescale.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Scale {
    Millis,
    Mpeg,
    Audio48k,
    Nanos,
    One,
    Max,
    Any(u32),
}

/// A frame's DTS.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Time {
    /// The track's previous DTS plus one nominal frame.
    Next,
    /// The track's previous DTS plus this many microseconds (negative: backwards).
    DeltaUs(i32),
    /// The track's previous DTS plus this many nanoseconds.
    JumpNs(i64),
    /// These raw ticks.
    Abs(i64),
    /// `i64::MIN` or `i64::MAX` ticks (hard to reach through `Abs` by mutation).
    Extreme(bool),
}

/// PTS - DTS.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum PtsOffset {
    Zero,
    Frames(u8),
    Ticks(i64),
}

/// Payload size.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Size {
    Empty,
    Small(u8),
    Large(u16),
}

/// The wall clock passed with a call.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Wall {
    /// The wall clock of the stream start plus the media time of the last frame.
    Follow,
    /// The previous wall clock plus this many ms.
    DeltaMs(i32),
    /// This value.
    Abs(i64),
    /// `i64::MIN` or `i64::MAX`.
    Extreme(bool),
}

/// Frame rates for bursts.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Fps {
    F24,
    F25,
    F2997,
    F30,
    F60,
    Odd(u8),
}

/// One operation.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// One frame with explicit everything.
    Frame {
        audio: bool,
        time: Time,
        scale: Scale,
        pts: PtsOffset,
        keyframe: bool,
        size: Size,
        first_byte: u8,
        wall: Wall,
    },
    /// A run of well-formed interleaved frames (millisecond timestamps, as RTMP sends them),
    /// continuing from the last DTS: this is how the fuzzer gets a stream live.
    Burst {
        frames: u8,
        gop: u8,
        fps: Fps,
        bframes: bool,
        audio: bool,
        wall_jitter: i8,
    },
    /// `handle_timeout`.
    Timeout { wall: Wall },
    /// Several `handle_timeout` calls 100 ms apart (the origin's tick): a stall.
    Stall { ticks: u8 },
    /// `handle_discontinuity`, with a new track set when given.
    Discontinuity {
        tracks: Option<(Option<VideoCodec>, Option<AudioCodec>, bool)>,
        wall: Wall,
    },
    /// `handle_end_of_stream`.
    End { wall: Wall },
}

/// The whole input.
#[derive(Arbitrary, Debug)]
pub struct Script {
    pub setup: Setup,
    pub ops: Vec<Op>,
}

/// Invariant violations already reported and not fixed yet, named in `LLHLS_FUZZ_KNOWN`
/// (comma-separated; see fuzz/README.md), are not checked, so that a run can look past them.
fn known(tag: &str) -> bool {
    static KNOWN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("LLHLS_FUZZ_KNOWN")
                .unwrap_or_default()
                .split(',')
                .map(|t| t.trim().to_string())
                .collect()
        })
        .iter()
        .any(|t| t == tag)
}

const NS: i128 = 1_000_000_000;
/// Plausible: |t| < 2^30 s.
const MAX_PLAUSIBLE_NS: i128 = (1 << 30) * NS;

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

struct Driver {
    domain: Domain,
    p: Packager,
    check: Checker,
    video: Option<VideoCodec>,
    audio: Option<AudioCodec>,
    /// Last DTS per track, ns (the driver's view; the packager may have dropped the frame).
    last_ns: [Option<i128>; 2],
    wall: i64,
    video_no: u64,
}

/// Runs one script; panics on a broken invariant. Returns how many snapshots were checked.
pub fn run(script: &Script, domain: Domain) -> u64 {
    let s = &script.setup;
    if s.video.is_none() && s.audio.is_none() {
        return 0;
    }
    let part_ms = 40 + u64::from(s.part_ms % 2000);
    let seg_ms = 2 * part_ms + u64::from(s.segment_ms % 12_000);
    let first_msn = match domain {
        // Not quite any u64: `first_msn + segments` overflowing is a known crash in
        // `open_segments` that would hide everything else (see fuzz/README.md).
        Domain::Hostile if known("first-msn") => s.first_msn.min(u64::MAX - (1 << 32)),
        Domain::Hostile => s.first_msn,
        Domain::Plausible => s.first_msn % (1 << 53),
    };
    let config = PackagerConfig {
        part_target: Duration::from_millis(part_ms),
        segment_target: Duration::from_millis(seg_ms.saturating_sub(10)),
        max_target_duration: 1 + u32::from(s.max_td % 20),
        window_segments: 5 + usize::from(s.window % 20),
        // A DVR window of 0 (none), 10, 20 or 30 s: spills and the seconds-based slide.
        dvr_window: Duration::from_secs(u64::from(s.window / 20 % 4) * 10),
        layout: if s.separate {
            Layout::Separate
        } else {
            Layout::Muxed
        },
        addressing: if s.byterange {
            Addressing::ByteRange
        } else {
            Addressing::Files
        },
        first_msn,
        delta_updates: !s.no_delta,
        // A stream continued from another node starts at a higher discontinuity sequence.
        first_discontinuity_sequence: u64::from(s.max_td),
        stall_filler: s.stall_filler,
        bridge: None,
    };
    // Half the windows above 127: a continued stream that re-lists the old run's last MSNs
    // (dated up to 8 s before the first frame, or after it when `no_delta` is set).
    let config = match first_msn.checked_sub(1 + u64::from(s.max_td % 8)) {
        Some(msn) if s.window >= 128 => {
            let span = 1000 * (1 + i64::from(s.max_td % 8));
            PackagerConfig {
                first_discontinuity_sequence: u64::from(s.max_td) + 1,
                bridge: Some(llhls_packager::Bridge {
                    msn,
                    program_date_time: WallClock(if s.no_delta { WALL0 + span } else { WALL0 - span }),
                    discontinuity_sequence: u64::from(s.max_td),
                }),
                ..config
            }
        }
        _ => config,
    };
    let tracks = track_set(s.video, s.audio, true);
    let Ok(p) = Packager::new(config, tracks) else {
        return 0;
    };
    let mut d = Driver {
        domain,
        p,
        check: Checker::default(),
        video: s.video,
        audio: s.audio,
        last_ns: [None, None],
        wall: WALL0,
        video_no: 0,
    };
    d.drain();
    for op in &script.ops {
        d.step(op);
    }
    d.p.handle_end_of_stream(WallClock(d.wall));
    d.drain();
    d.check.version
}

fn track_set(video: Option<VideoCodec>, audio: Option<AudioCodec>, ids: bool) -> Vec<TrackConfig> {
    let mut t = Vec::new();
    if let Some(v) = video {
        t.push(TrackConfig {
            id: if ids { VIDEO } else { TrackId(7) },
            codec: v.config(),
        });
    }
    if let Some(a) = audio {
        t.push(TrackConfig {
            id: AUDIO,
            codec: a.config(),
        });
    }
    t
}

impl Driver {
    fn wall(&mut self, w: Wall, media_ns: Option<i128>) -> WallClock {
        let v = match w {
            Wall::Follow => {
                let ns = media_ns
                    .or(self.last_ns[0])
                    .or(self.last_ns[1])
                    .unwrap_or(0);
                clamp_i64(i128::from(WALL0) + ns / 1_000_000)
            }
            Wall::DeltaMs(d) => self.wall.saturating_add(i64::from(d)),
            Wall::Abs(a) => a,
            Wall::Extreme(max) => {
                if max {
                    i64::MAX
                } else {
                    i64::MIN
                }
            }
        };
        let v = match self.domain {
            // Known: `handle_timeout` overflows on walls ~2^63 apart (fuzz/README.md).
            Domain::Hostile if known("timeout-wall") => v.clamp(-(1 << 45), 1 << 45),
            Domain::Hostile => v,
            Domain::Plausible => v.clamp(0, 32_503_680_000_000),
        };
        self.wall = v;
        WallClock(v)
    }

    fn scale(&self, s: Scale) -> Timescale {
        let hz = match s {
            Scale::Millis => 1000,
            Scale::Mpeg => 90_000,
            Scale::Audio48k => 48_000,
            Scale::Nanos => 1_000_000_000,
            Scale::One => 1,
            Scale::Max => u32::MAX,
            Scale::Any(h) => h,
        };
        let hz = match self.domain {
            Domain::Hostile => hz.max(1),
            Domain::Plausible => hz.max(1000),
        };
        Timescale::new(hz).expect("at least 1")
    }

    fn bound_ns(&self, ns: i128) -> i128 {
        match self.domain {
            // Known: `handle_frame` overflows on timestamps ~2^63 ns apart (fuzz/README.md).
            Domain::Hostile if known("ts-overflow") => ns.clamp(-(1 << 61), 1 << 61),
            Domain::Hostile => ns,
            Domain::Plausible => ns.clamp(-MAX_PLAUSIBLE_NS, MAX_PLAUSIBLE_NS),
        }
    }

    fn video_frame_ns(&self) -> i128 {
        33_333_333
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Frame {
                audio,
                time,
                scale,
                pts,
                keyframe,
                size,
                first_byte,
                wall,
            } => {
                let ti = usize::from(audio);
                let track = if audio { AUDIO } else { VIDEO };
                let scale = self.scale(scale);
                let hz = i128::from(scale.hz());
                let nominal = match (audio, self.audio) {
                    (true, Some(a)) => a.frame_ns(),
                    _ => self.video_frame_ns(),
                };
                let prev = self.last_ns[ti].unwrap_or(0);
                let ticks = match time {
                    Time::Next => self.bound_ns(prev + nominal) * hz / NS,
                    Time::DeltaUs(d) => self.bound_ns(prev + i128::from(d) * 1000) * hz / NS,
                    Time::JumpNs(j) => self.bound_ns(prev + i128::from(j)) * hz / NS,
                    Time::Extreme(max) => {
                        let a = if max { i64::MAX } else { i64::MIN };
                        match self.domain {
                            Domain::Hostile if !known("ts-overflow") => i128::from(a),
                            Domain::Hostile => self.bound_ns(i128::from(a) * NS / hz) * hz / NS,
                            Domain::Plausible => self.bound_ns(i128::from(a) * NS / hz) * hz / NS,
                        }
                    }
                    Time::Abs(a) => {
                        let ns = self.bound_ns(i128::from(a) * NS / hz);
                        match self.domain {
                            Domain::Hostile if !known("ts-overflow") => i128::from(a),
                            Domain::Hostile => self.bound_ns(i128::from(a) * NS / hz) * hz / NS,
                            Domain::Plausible => ns * hz / NS,
                        }
                    }
                };
                let ticks = clamp_i64(ticks);
                let off = match pts {
                    PtsOffset::Zero => 0,
                    PtsOffset::Frames(n) => clamp_i64(i128::from(n) * nominal * hz / NS),
                    PtsOffset::Ticks(t) => match self.domain {
                        Domain::Hostile if known("ts-overflow") => t.clamp(-(1 << 40), 1 << 40),
                        Domain::Hostile => t,
                        Domain::Plausible => {
                            t.clamp(-10 * scale.hz() as i64, 10 * scale.hz() as i64)
                        }
                    },
                };
                let pts_ticks = match self.domain {
                    Domain::Hostile if known("ts-overflow") => ticks.saturating_add(off),
                    Domain::Hostile => ticks.wrapping_add(off),
                    Domain::Plausible => ticks.saturating_add(off),
                };
                let len = match size {
                    Size::Empty => 0,
                    Size::Small(n) => usize::from(n),
                    Size::Large(n) => usize::from(n),
                };
                let mut data = vec![0u8; len];
                if let Some(b) = data.first_mut() {
                    *b = first_byte;
                }
                let ns = i128::from(ticks) * NS / hz;
                self.last_ns[ti] = Some(ns);
                let now = self.wall(wall, Some(ns));
                let frame = Frame {
                    track,
                    dts: MediaTime::new(ticks, scale),
                    pts: MediaTime::new(pts_ticks, scale),
                    keyframe,
                    data: Bytes::from(data),
                };
                self.frame(frame, now);
            }
            Op::Burst {
                frames,
                gop,
                fps,
                bframes,
                audio,
                wall_jitter,
            } => {
                let fps = match fps {
                    Fps::F24 => 24.0,
                    Fps::F25 => 25.0,
                    Fps::F2997 => 30_000.0 / 1001.0,
                    Fps::F30 => 30.0,
                    Fps::F60 => 60.0,
                    Fps::Odd(n) => f64::from(n.max(1)),
                };
                let fd = (1e9 / fps) as i128;
                let gop = u64::from(gop.max(1));
                let audio = audio && self.audio.is_some();
                let mut v = self.last_ns[0].map(|t| t + fd);
                let mut a = self.last_ns[1].map(|t| t + self.audio.map_or(fd, |c| c.frame_ns()));
                let start = v.or(a).unwrap_or(0).max(a.unwrap_or(i128::MIN));
                if self.video.is_some() {
                    v = Some(v.unwrap_or(start));
                }
                if audio {
                    a = Some(a.unwrap_or(start));
                }
                for _ in 0..frames {
                    let use_video = match (v, a) {
                        (Some(vt), Some(at)) => vt <= at || self.video.is_none(),
                        (Some(_), None) => true,
                        _ => false,
                    } && self.video.is_some();
                    let (track, ns, key, pts_ns, data) = if use_video {
                        let vt = v.expect("use_video implies a video time");
                        let n = self.video_no;
                        self.video_no += 1;
                        let in_gop = n % gop;
                        let key = in_gop == 0;
                        let pts = if bframes {
                            vt + fd
                                * if key {
                                    2
                                } else if in_gop % 3 == 1 {
                                    4
                                } else {
                                    1
                                }
                        } else {
                            vt
                        };
                        v = Some(vt + fd);
                        let len = if key { 3000 } else { 600 };
                        let mut data = vec![0u8; 4 + len];
                        data[..4].copy_from_slice(&(len as u32).to_be_bytes());
                        data[4] = if key { 0x65 } else { 0x41 };
                        (VIDEO, vt, key, pts, data)
                    } else if let (Some(at), Some(codec)) = (a, self.audio) {
                        a = Some(at + codec.frame_ns());
                        let data = match codec {
                            AudioCodec::Opus => vec![0xfc, 0xff, 0xfe],
                            _ => vec![0x21, 0x10, 0, 0],
                        };
                        (AUDIO, at, true, at, data)
                    } else {
                        break;
                    };
                    let ti = usize::from(track == AUDIO);
                    let ms = clamp_i64(self.bound_ns(ns) / 1_000_000);
                    let pts_ms = clamp_i64(self.bound_ns(pts_ns) / 1_000_000);
                    self.last_ns[ti] = Some(i128::from(ms) * 1_000_000);
                    let w = clamp_i64(i128::from(WALL0) + ns / 1_000_000)
                        .saturating_add(i64::from(wall_jitter));
                    self.wall = w;
                    let frame = Frame {
                        track,
                        dts: MediaTime::from_millis(ms),
                        pts: MediaTime::from_millis(pts_ms),
                        keyframe: key,
                        data: Bytes::from(data),
                    };
                    self.frame(frame, WallClock(w));
                }
            }
            Op::Timeout { wall } => {
                let now = self.wall(wall, None);
                self.p.handle_timeout(now);
                self.drain();
            }
            Op::Stall { ticks } => {
                for _ in 0..ticks {
                    let now = self.wall(Wall::DeltaMs(100), None);
                    self.p.handle_timeout(now);
                    self.drain();
                }
            }
            Op::Discontinuity { tracks, wall } => {
                let now = self.wall(wall, None);
                let new = tracks.map(|(v, a, same_ids)| (v, a, track_set(v, a, same_ids)));
                let expect_ok = match &new {
                    None => true,
                    Some((v, a, t)) => {
                        t.iter().all(|t| t.id == VIDEO || t.id == AUDIO)
                            && v.is_some() == self.video.is_some()
                            && a.is_some() == self.audio.is_some()
                    }
                };
                let r = self.p.handle_discontinuity(new.clone().map(|n| n.2), now);
                match r {
                    Ok(()) => {
                        assert!(!self.check.ended, "discontinuity accepted after the end");
                        assert!(expect_ok, "track set change accepted");
                        if let Some((v, a, _)) = new {
                            self.video = v;
                            self.audio = a;
                        }
                    }
                    Err(PackagerError::Ended) => assert!(self.check.ended),
                    Err(PackagerError::TrackSetChanged(_)) => {
                        assert!(!expect_ok, "same track kinds rejected")
                    }
                    Err(e) => panic!("unexpected discontinuity error {e}"),
                }
                self.drain();
            }
            Op::End { wall } => {
                let now = self.wall(wall, None);
                self.p.handle_end_of_stream(now);
                self.check.ended = true;
                self.drain();
            }
        }
    }

    fn frame(&mut self, frame: Frame, now: WallClock) {
        let r = self.p.handle_frame(frame, now);
        if self.check.ended {
            assert_eq!(r, Err(PackagerError::Ended), "frame accepted after the end");
        }
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.p.poll_output() {
            match out {
                Output::PlaylistChanged => {
                    let snap = self
                        .p
                        .snapshot()
                        .expect("a snapshot exists after PlaylistChanged");
                    self.check.snapshot(&snap);
                }
                other => self.check.output(other),
            }
        }
    }
}

/// Per rendition: (media sequence, discontinuity sequence, last segment MSN, last part).
type Progress = (u64, u64, Option<u64>, Option<(u64, u32)>);

/// What the outputs so far promise, and the checks on each new snapshot.
#[derive(Default)]
struct Checker {
    objects: HashMap<String, Bytes>,
    growing: HashMap<String, Vec<u8>>,
    expired: HashSet<String>,
    timing: Option<StreamTiming>,
    part_targets: HashMap<String, f64>,
    progress: HashMap<String, Progress>,
    /// (rendition, MSN) -> (URI, EXTINF) of every complete segment seen.
    segments: HashMap<(String, u64), (String, f64)>,
    version: u64,
    ended: bool,
}

fn is_part_file(uri: &str) -> bool {
    uri.ends_with(".m4s") && uri.matches('.').count() == 2
}

impl Checker {
    fn output(&mut self, out: Output) {
        match out {
            Output::Object { key, bytes } => {
                let uri = key.to_string();
                if let Some(old) = self.objects.get(&uri) {
                    assert!(
                        *old == bytes || known("init-uri"),
                        "object {uri} output twice with different bytes ({} then {})",
                        old.len(),
                        bytes.len()
                    );
                }
                if is_part_file(&uri) {
                    let b = boxes(&bytes).unwrap_or_else(|e| panic!("part {uri}: {e}"));
                    let names: Vec<[u8; 4]> = b.iter().map(|(f, _)| *f).collect();
                    assert_eq!(names, vec![*b"moof", *b"mdat"], "part {uri}");
                } else if uri.ends_with(".mp4") {
                    crate::check_init(&bytes);
                } else if let Some(g) = self.growing.get(&uri) {
                    // Byte-range addressing: the segment is exactly the bytes appended.
                    assert!(
                        g[..] == bytes[..],
                        "segment {uri} differs from its appended parts"
                    );
                }
                self.expired.remove(&uri);
                self.objects.insert(uri, bytes);
            }
            Output::Append { key, offset, bytes } => {
                let uri = key.to_string();
                let g = self.growing.entry(uri.clone()).or_default();
                assert_eq!(
                    g.len() as u64,
                    offset,
                    "append to {uri} at the wrong offset"
                );
                let b = boxes(&bytes).unwrap_or_else(|e| panic!("appended part of {uri}: {e}"));
                let names: Vec<[u8; 4]> = b.iter().map(|(f, _)| *f).collect();
                assert_eq!(names, vec![*b"moof", *b"mdat"], "appended part of {uri}");
                g.extend_from_slice(&bytes);
            }
            Output::Expired(uris) => {
                // Not checked: that each was output. GAP segments are listed and expired
                // although they never were objects (harmless: deleting nothing).
                self.expired.extend(uris.iter().map(|k| k.to_string()));
            }
            Output::Spill(key) => {
                let uri = key.to_string();
                assert!(self.objects.contains_key(&uri), "spilled {uri} was never output");
            }
            Output::Warning(_) | Output::PlaylistChanged => {}
        }
    }

    fn available(&self, uri: &str) -> bool {
        (self.objects.contains_key(uri) || self.growing.contains_key(uri))
            && !self.expired.contains(uri)
    }

    fn snapshot(&mut self, snap: &StreamSnapshot) {
        assert!(snap.version > self.version, "snapshot version did not grow");
        self.version = snap.version;
        match self.timing {
            None => self.timing = Some(snap.timing),
            Some(t) => {
                assert_eq!(
                    t.target_duration, snap.timing.target_duration,
                    "TARGETDURATION changed"
                );
                assert_eq!(
                    t.part_hold_back, snap.timing.part_hold_back,
                    "PART-HOLD-BACK changed"
                );
            }
        }
        let td = f64::from(snap.timing.target_duration);
        assert!(render_multivariant(snap).starts_with("#EXTM3U\n"));
        for r in &snap.renditions {
            let pt = *self
                .part_targets
                .entry(r.name.clone())
                .or_insert(r.part_target);
            assert_eq!(pt, r.part_target, "{}: PART-TARGET changed", r.name);
            for skip in [SkipMode::Full, SkipMode::Yes, SkipMode::V2] {
                assert!(render_media(snap, r, skip).starts_with("#EXTM3U\n"));
            }
            // Progress never goes back.
            let last_msn = r.last_msn();
            let last_part = r.last_part();
            let now = (
                r.media_sequence,
                r.discontinuity_sequence,
                last_msn,
                last_part,
            );
            if let Some(before) = self.progress.get(&r.name) {
                assert!(now.0 >= before.0, "{}: MEDIA-SEQUENCE went back", r.name);
                assert!(
                    now.1 >= before.1,
                    "{}: DISCONTINUITY-SEQUENCE went back",
                    r.name
                );
                assert!(
                    now.2 >= before.2,
                    "{}: last MSN went back {:?} -> {:?}",
                    r.name,
                    before.2,
                    now.2
                );
                assert!(
                    now.3 >= before.3,
                    "{}: last part went back {:?} -> {:?}",
                    r.name,
                    before.3,
                    now.3
                );
            }
            self.progress.insert(r.name.clone(), now);
            if let Some(first) = r.segments.first() {
                assert_eq!(
                    r.media_sequence, first.msn,
                    "{}: MEDIA-SEQUENCE != first MSN",
                    r.name
                );
            }
            if let Some((msn, secs)) = r.parts_listed_too_long(td) {
                panic!(
                    "{} segment {msn}: parts still listed {secs:.3} s (> 3 x TD) before the end",
                    r.name
                );
            }
            for (i, s) in r.segments.iter().enumerate() {
                if i > 0 {
                    assert_eq!(
                        s.msn,
                        r.segments[i - 1].msn + 1,
                        "{}: MSNs not consecutive",
                        r.name
                    );
                }
                assert!(
                    s.duration.round() <= td || known("extinf-td"),
                    "{} segment {}: EXTINF {} rounds above TARGETDURATION {td} (parts {:?})",
                    r.name,
                    s.msn,
                    s.duration,
                    s.parts.iter().map(|p| p.duration).collect::<Vec<_>>()
                );
                // A DVR window keeps metadata only for segments that left memory: no parts,
                // and then none listed.
                assert!(
                    !s.parts.is_empty() || !s.parts_listed,
                    "{} segment {} lists parts it does not have",
                    r.name,
                    s.msn
                );
                let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
                assert!(
                    s.parts.is_empty() || (sum - s.duration).abs() < 1e-6,
                    "{} segment {}: EXTINF {} != sum of parts {sum}",
                    r.name,
                    s.msn,
                    s.duration
                );
                assert!(
                    self.available(&s.map_uri),
                    "map {} listed but not available",
                    s.map_uri
                );
                if !s.gap {
                    assert!(
                        self.available(&s.uri),
                        "segment {} listed but not available",
                        s.uri
                    );
                }
                self.check_parts(pt, &s.parts);
                let key = (r.name.clone(), s.msn);
                match self.segments.get(&key) {
                    Some((uri, dur)) => {
                        assert_eq!(uri, &s.uri, "MSN {} changed URI", s.msn);
                        assert_eq!(*dur, s.duration, "segment {} changed EXTINF", s.uri);
                    }
                    None => {
                        // (Parts are dropped only from segments seen before, in a DVR window.)
                        if !s.gap && !s.parts.is_empty() {
                            self.check_concatenation(&s.uri, &s.parts);
                        }
                        self.segments.insert(key, (s.uri.clone(), s.duration));
                    }
                }
            }
            if let Some(open) = &r.open {
                assert!(
                    self.available(&open.map_uri),
                    "map {} listed but not available",
                    open.map_uri
                );
                self.check_parts(pt, &open.parts);
                if let Some(last) = r.segments.last() {
                    assert!(
                        open.msn > last.msn,
                        "open MSN {} <= last complete {}",
                        open.msn,
                        last.msn
                    );
                }
            }
        }
    }

    fn check_parts(&self, pt: f64, parts: &[llhls_packager::playlist::PartEntry]) {
        for p in parts {
            if p.gap {
                continue;
            }
            assert!(
                p.duration <= pt + 1e-9 || known("part-target"),
                "part {} DURATION {} > PART-TARGET {pt}",
                p.uri,
                p.duration
            );
            // As written: never over PART-TARGET either (rule 3), whatever microseconds the
            // players' sums need (render::listed_part_end_us).
            assert!(
                p.listed_us as f64 / 1e6 <= pt + 1e-9 && p.listed_us > 0,
                "part {} DURATION written {} us, PART-TARGET {pt}",
                p.uri,
                p.listed_us
            );
            assert!(
                self.available(&p.uri),
                "part {} listed but not available",
                p.uri
            );
            if let Some((len, off)) = p.byterange {
                let have = self
                    .growing
                    .get(&p.uri)
                    .map(|g| g.len() as u64)
                    .or_else(|| self.objects.get(&p.uri).map(|o| o.len() as u64))
                    .unwrap_or(0);
                assert!(
                    off + len <= have,
                    "part {}@{off}+{len} beyond the {have} bytes output",
                    p.uri
                );
            }
        }
    }

    /// A complete segment is exactly its parts, in order.
    fn check_concatenation(&self, uri: &str, parts: &[llhls_packager::playlist::PartEntry]) {
        let Some(seg) = self.objects.get(uri) else {
            return;
        };
        let mut at = 0u64;
        let mut cat = Vec::new();
        for p in parts.iter().filter(|p| !p.gap) {
            match p.byterange {
                Some((len, off)) => {
                    assert_eq!(off, at, "{uri}: part byte ranges not contiguous");
                    at += len;
                }
                None => match self.objects.get(&p.uri) {
                    Some(b) => cat.extend_from_slice(b),
                    None => return,
                },
            }
        }
        if parts.iter().any(|p| p.byterange.is_some()) {
            assert_eq!(
                at,
                seg.len() as u64,
                "{uri}: byte ranges do not cover the segment"
            );
        } else {
            assert!(
                cat[..] == seg[..],
                "{uri} is not the concatenation of its parts"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> Setup {
        Setup {
            video: Some(VideoCodec::H264),
            audio: Some(AudioCodec::Aac48k),
            separate: false,
            byterange: false,
            part_ms: 160,
            segment_ms: 1600,
            max_td: 9,
            window: 7,
            first_msn: 1,
            no_delta: false,
        }
    }

    fn burst(frames: u8) -> Op {
        Op::Burst {
            frames,
            gop: 30,
            fps: Fps::F30,
            bframes: true,
            audio: true,
            wall_jitter: 3,
        }
    }

    fn frame(time: Time, scale: Scale) -> Op {
        Op::Frame {
            audio: false,
            time,
            scale,
            pts: PtsOffset::Zero,
            keyframe: true,
            size: Size::Small(10),
            first_byte: 0x65,
            wall: Wall::Follow,
        }
    }

    #[test]
    fn a_plausible_stream_passes_every_check() {
        for (separate, byterange) in [(false, false), (true, false), (false, true), (true, true)] {
            let script = Script {
                setup: Setup {
                    separate,
                    byterange,
                    ..setup()
                },
                ops: vec![
                    burst(255),
                    burst(255),
                    Op::Stall { ticks: 40 },
                    burst(200),
                    Op::Discontinuity {
                        tracks: None,
                        wall: Wall::DeltaMs(10),
                    },
                    burst(255),
                    Op::End { wall: Wall::Follow },
                    burst(3),
                ],
            };
            let n = run(&script, Domain::Plausible);
            assert!(n > 40, "{n} snapshots");
            assert!(run(&script, Domain::Hostile) > 40);
        }
    }

    fn extremes() -> Script {
        Script {
            setup: setup(),
            ops: vec![
                burst(255),
                frame(Time::Abs(i64::MAX), Scale::One),
                frame(Time::Abs(i64::MIN), Scale::One),
                frame(Time::Abs(i64::MAX), Scale::Millis),
                Op::Timeout {
                    wall: Wall::Abs(i64::MAX),
                },
                Op::Timeout {
                    wall: Wall::Abs(i64::MIN),
                },
            ],
        }
    }

    #[test]
    fn extreme_timestamps_clamped_to_plausible() {
        run(&extremes(), Domain::Plausible);
    }

    #[test]
    fn extreme_timestamps() {
        run(&extremes(), Domain::Hostile);
    }
}
