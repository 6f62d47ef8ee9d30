//! Test support: a synthetic publisher and a harness that drains the packager, stores objects
//! and checks the LL-HLS invariants after every playlist change.
#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use llhls_packager::codec::{AacConfig, AvcConfig, CodecConfig};
use llhls_packager::playlist::StreamSnapshot;
use llhls_packager::{
    Frame, MediaTime, Output, Packager, PackagerConfig, Timescale, TrackConfig, TrackId, WallClock,
};

pub const SPS_720P: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
pub const PPS: [u8; 4] = [0x68, 0xef, 0x8f, 0xcb];
pub const VIDEO: TrackId = TrackId(1);
pub const AUDIO: TrackId = TrackId(2);

pub fn video_track() -> TrackConfig {
    TrackConfig {
        id: VIDEO,
        codec: CodecConfig::H264(
            AvcConfig::from_parameter_sets(vec![SPS_720P.to_vec()], vec![PPS.to_vec()]).unwrap(),
        ),
    }
}

pub fn audio_track() -> TrackConfig {
    TrackConfig {
        id: AUDIO,
        codec: CodecConfig::Aac(AacConfig::lc(48_000, 2).unwrap()),
    }
}

/// A synthetic publisher: video at `fps` with a keyframe every `gop` frames (optionally with
/// B-frames: decode order I P B B P B B ...), AAC at 48 kHz, timestamps in milliseconds as RTMP
/// delivers them, interleaved by DTS.
pub struct Publisher {
    pub fps: f64,
    pub gop: u32,
    pub bframes: bool,
    pub audio: bool,
    pub video: bool,
    pub frame_no: u64,
    pub audio_no: u64,
    pub base_ms: i64,
    pub wall0: i64,
    pub audio_jitter_ms: Vec<i64>,
}

impl Publisher {
    pub fn new(fps: f64, gop: u32) -> Self {
        Publisher {
            fps,
            gop,
            bframes: false,
            audio: true,
            video: true,
            frame_no: 0,
            audio_no: 0,
            base_ms: 0,
            wall0: 1_795_000_000_000,
            audio_jitter_ms: vec![0],
        }
    }

    pub fn video_ms_public(&self, n: u64) -> i64 {
        self.video_ms(n)
    }

    fn video_ms(&self, n: u64) -> i64 {
        self.base_ms + (n as f64 * 1000.0 / self.fps).round() as i64
    }

    fn audio_ms(&self, n: u64) -> i64 {
        let j = self.audio_jitter_ms[(n as usize) % self.audio_jitter_ms.len()];
        self.base_ms + (n as f64 * 1024.0 * 1000.0 / 48_000.0).round() as i64 + j
    }

    /// The next frame in DTS order, with the wall clock it "arrives" at.
    pub fn next(&mut self) -> (Frame, WallClock) {
        let vt = if self.video {
            self.video_ms(self.frame_no)
        } else {
            i64::MAX
        };
        let at = if self.audio {
            self.audio_ms(self.audio_no)
        } else {
            i64::MAX
        };
        if vt <= at {
            let n = self.frame_no;
            self.frame_no += 1;
            let in_gop = n % u64::from(self.gop);
            let key = in_gop == 0;
            let pts_frame = if self.bframes && !key {
                // decode order: I P B B P B B; the P is shown 2 frames later, Bs one earlier.
                match in_gop % 3 {
                    1 => n + 2,
                    _ => n - 1,
                }
            } else {
                n
            };
            // shift by 2 frames so pts >= dts always
            let delay = if self.bframes { 2 } else { 0 };
            let dts = vt;
            let pts = self.video_ms(pts_frame + delay);
            let nal_type = if key { 0x65u8 } else { 0x41 };
            let len = if key { 3000 } else { 600 };
            let mut data = vec![0u8; 4 + len];
            data[..4].copy_from_slice(&(len as u32).to_be_bytes());
            data[4] = nal_type;
            data[5] = (n % 251) as u8;
            (
                Frame {
                    track: VIDEO,
                    dts: MediaTime::from_millis(dts),
                    pts: MediaTime::from_millis(pts),
                    keyframe: key,
                    data: Bytes::from(data),
                },
                WallClock(self.wall0 + vt - self.base_ms + 5),
            )
        } else {
            let n = self.audio_no;
            self.audio_no += 1;
            (
                Frame {
                    track: AUDIO,
                    dts: MediaTime::from_millis(at),
                    pts: MediaTime::from_millis(at),
                    keyframe: true,
                    data: Bytes::from(vec![0x21, (n % 256) as u8, 0, 0]),
                },
                WallClock(self.wall0 + at - self.base_ms + 5),
            )
        }
    }

    pub fn tracks(&self) -> Vec<TrackConfig> {
        let mut t = Vec::new();
        if self.video {
            t.push(video_track());
        }
        if self.audio {
            t.push(audio_track());
        }
        t
    }
}

pub fn ms(t: i64) -> MediaTime {
    MediaTime::new(t, Timescale::MILLIS)
}

/// Drives a packager, keeps every object, checks invariants on each change.
pub struct Harness {
    pub p: Packager,
    pub objects: HashMap<String, Bytes>,
    pub growing: HashMap<String, Vec<u8>>,
    pub snapshots: Vec<StreamSnapshot>,
    pub warnings: Vec<String>,
    pub expired: Vec<String>,
    /// msn -> uri per rendition, to check MSNs never change meaning.
    pub msn_uris: HashMap<(String, u64), String>,
}

impl Harness {
    pub fn new(config: PackagerConfig, tracks: Vec<TrackConfig>) -> Self {
        let p = Packager::new(config, tracks).expect("valid config");
        let mut h = Harness {
            p,
            objects: HashMap::new(),
            growing: HashMap::new(),
            snapshots: Vec::new(),
            warnings: Vec::new(),
            expired: Vec::new(),
            msn_uris: HashMap::new(),
        };
        h.drain();
        h
    }

    pub fn drain(&mut self) {
        while let Some(o) = self.p.poll_output() {
            match o {
                Output::Object { uri, bytes } => {
                    self.growing.remove(&uri);
                    assert!(
                        !self.objects.contains_key(&uri) || self.objects[&uri] == bytes,
                        "object {uri} rewritten with different bytes"
                    );
                    self.objects.insert(uri, bytes);
                }
                Output::Append { uri, offset, bytes } => {
                    let g = self.growing.entry(uri.clone()).or_default();
                    assert_eq!(
                        g.len() as u64,
                        offset,
                        "append to {uri} at the wrong offset"
                    );
                    g.extend_from_slice(&bytes);
                }
                Output::Expired(uris) => self.expired.extend(uris),
                Output::Warning(w) => self.warnings.push(w.message),
                Output::PlaylistChanged => {
                    let snap = self.p.snapshot().expect("snapshot after change");
                    self.check(&snap);
                    self.snapshots.push(snap);
                }
            }
        }
    }

    pub fn feed(&mut self, pub_: &mut Publisher, frames: usize) {
        for _ in 0..frames {
            let (f, w) = pub_.next();
            self.p.handle_frame(f, w).expect("frame accepted");
            self.drain();
        }
    }

    pub fn last(&self) -> &StreamSnapshot {
        self.snapshots.last().expect("at least one playlist")
    }

    /// Every invariant of LLHLS-RULES §1 we can check on a snapshot.
    pub fn check(&mut self, snap: &StreamSnapshot) {
        if let Some(first) = self.snapshots.first() {
            assert_eq!(
                first.timing, snap.timing,
                "timing values changed mid-stream (rule 13)"
            );
        }
        let td = f64::from(snap.timing.target_duration);
        let mut max_pt: f64 = 0.0;
        for r in &snap.renditions {
            max_pt = max_pt.max(r.part_target);
            assert!(
                !r.segments.is_empty(),
                "published without a complete segment"
            );
            for (i, s) in r.segments.iter().enumerate() {
                let key = (r.name.clone(), s.msn);
                if let Some(u) = self.msn_uris.get(&key) {
                    assert_eq!(u, &s.uri, "MSN {} changed URI", s.msn);
                }
                self.msn_uris.insert(key, s.uri.clone());
                if i > 0 {
                    assert_eq!(s.msn, r.segments[i - 1].msn + 1, "MSNs not consecutive");
                }
                assert!(
                    s.duration.round() <= td,
                    "EXTINF {} rounds above TD {td} (rule 29)",
                    s.duration
                );
                let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
                assert!(
                    (sum - s.duration).abs() < 1e-6,
                    "EXTINF {} != sum of parts {sum}",
                    s.duration
                );
                if !s.gap {
                    assert!(
                        self.objects.contains_key(&s.uri),
                        "segment {} listed but not stored",
                        s.uri
                    );
                }
                check_parts(r.part_target, &s.parts, true);
                for p in s.parts.iter().filter(|p| !p.gap && p.byterange.is_none()) {
                    assert!(
                        self.objects.contains_key(&p.uri),
                        "part {} listed but not stored",
                        p.uri
                    );
                }
            }
            assert_eq!(r.media_sequence, r.segments[0].msn);
            if let Some(open) = &r.open {
                check_parts(r.part_target, &open.parts, false);
                for p in open
                    .parts
                    .iter()
                    .filter(|p| !p.gap && p.byterange.is_none())
                {
                    assert!(
                        self.objects.contains_key(&p.uri),
                        "open part {} not stored",
                        p.uri
                    );
                }
            }
            // INDEPENDENT exactly on parts whose first video sample is a sync sample.
            if r.kind != llhls_packager::playlist::RenditionKind::Audio {
                for p in r
                    .segments
                    .iter()
                    .flat_map(|s| s.parts.iter())
                    .chain(r.open.iter().flat_map(|o| o.parts.iter()))
                {
                    if p.gap || p.byterange.is_some() {
                        continue;
                    }
                    let bytes = &self.objects[&p.uri];
                    assert_eq!(
                        first_video_sample_is_sync(bytes),
                        p.independent,
                        "INDEPENDENT wrong on {}",
                        p.uri
                    );
                }
            }
        }
        assert!(
            snap.timing.part_hold_back >= 3.0 * max_pt - 1e-9,
            "PART-HOLD-BACK < 3 x PART-TARGET"
        );
        assert!(snap.timing.hold_back >= 3.0 * td);
        if let Some(u) = snap.timing.can_skip_until {
            assert!(u >= 6.0 * td);
        }
        let a = &snap.renditions[0];
        for other in &snap.renditions[1..] {
            assert_eq!(
                a.media_sequence, other.media_sequence,
                "renditions on different MSN grids"
            );
            assert_eq!(a.last_part().map(|p| p.0), other.last_part().map(|p| p.0));
        }
    }
}

fn check_parts(pt: f64, parts: &[llhls_packager::playlist::PartEntry], complete: bool) {
    for (i, p) in parts.iter().enumerate() {
        assert!(
            p.duration <= pt + 1e-9,
            "part {} duration {} > PART-TARGET {pt} (rule 3)",
            p.uri,
            p.duration
        );
        let last = i + 1 == parts.len();
        let next_gap = parts.get(i + 1).is_some_and(|n| n.gap);
        let exempt = p.independent || p.gap || next_gap || (last && complete);
        if !exempt {
            assert!(
                p.duration >= 0.85 * pt - 1e-9,
                "part {} duration {} < 85% of {pt} (rule 3)",
                p.uri,
                p.duration
            );
        }
    }
}

/// Reads the first traf of a part's moof and tells whether its first sample is sync.
pub fn first_video_sample_is_sync(part: &[u8]) -> bool {
    use mp4_atom::{Any, DecodeMaybe};
    let mut buf = part;
    let moof = match Any::decode_maybe(&mut buf)
        .expect("part parses")
        .expect("a box")
    {
        Any::Moof(m) => m,
        other => panic!("part starts with {other:?}, not moof"),
    };
    let traf = &moof.traf[0];
    let flags = traf.trun[0]
        .samples
        .get(0)
        .and_then(|e| e.flags)
        .or(traf.tfhd.default_sample_flags)
        .expect("sample flags");
    flags & 0x0001_0000 == 0
}
