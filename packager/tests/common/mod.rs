//! Test support: a synthetic publisher and a harness that drains the packager, stores objects
//! and checks the LL-HLS invariants after every playlist change.
#![allow(dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use llhls_packager::playlist::StreamSnapshot;
pub use llhls_packager::synth::*;
use llhls_packager::{
    MediaTime, ObjectKey, Output, Packager, PackagerConfig, Timescale, TrackConfig,
};

pub fn ms(t: i64) -> MediaTime {
    MediaTime::new(t, Timescale::MILLIS)
}

/// A part: (MSN, index).
pub type PartId = (u64, u32);

/// Drives a packager, keeps every object, checks invariants on each change.
pub struct Harness {
    pub p: Packager,
    /// (rendition, track id) -> expected next tfdt.
    pub next_tfdt: HashMap<(String, u32), u64>,
    pub objects: HashMap<String, Bytes>,
    pub growing: HashMap<String, Vec<u8>>,
    pub snapshots: Vec<StreamSnapshot>,
    pub warnings: Vec<String>,
    pub expired: Vec<String>,
    /// Segments announced as left the in-memory window (DVR), in order.
    pub spilled: Vec<String>,
    /// msn -> uri per rendition, to check MSNs never change meaning.
    pub msn_uris: HashMap<(String, u64), String>,
    /// Parts whose track starts later than the previous part of that track ended (allowed
    /// across a stall, a defect otherwise).
    pub tfdt_holes: Vec<String>,
    /// Every sample duration seen, per rendition and track.
    pub sample_durations: HashMap<(String, u32), std::collections::BTreeSet<u32>>,
    /// Per rendition: the last part listed and the part hinted in the previous playlist.
    pub hinted: HashMap<String, (Option<PartId>, Option<PartId>)>,
}

impl Harness {
    pub fn new(config: PackagerConfig, tracks: Vec<TrackConfig>) -> Self {
        let p = Packager::new(config, tracks).expect("valid config");
        let mut h = Harness {
            p,
            next_tfdt: HashMap::new(),
            objects: HashMap::new(),
            growing: HashMap::new(),
            snapshots: Vec::new(),
            warnings: Vec::new(),
            expired: Vec::new(),
            spilled: Vec::new(),
            msn_uris: HashMap::new(),
            tfdt_holes: Vec::new(),
            sample_durations: HashMap::new(),
            hinted: HashMap::new(),
        };
        h.drain();
        h
    }

    pub fn drain(&mut self) {
        while let Some(o) = self.p.poll_output() {
            match o {
                Output::Object { key, bytes } => {
                    let uri = key.to_string();
                    self.growing.remove(&uri);
                    if key.is_part() {
                        self.check_fragment(&key, &bytes);
                    }
                    assert!(
                        !self.objects.contains_key(&uri) || self.objects[&uri] == bytes,
                        "object {uri} rewritten with different bytes"
                    );
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
                    g.extend_from_slice(&bytes);
                }
                Output::Expired(keys) => self.expired.extend(keys.iter().map(|k| k.to_string())),
                Output::Spill(key) => {
                    let uri = key.to_string();
                    assert!(
                        self.objects.contains_key(&uri),
                        "spilled {uri} was never output"
                    );
                    assert!(!self.spilled.contains(&uri), "{uri} spilled twice");
                    self.spilled.push(uri);
                }
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
            let (f, w) = pub_.next_frame();
            self.p.handle_frame(f, w).expect("frame accepted");
            self.drain();
        }
    }

    pub fn last(&self) -> &StreamSnapshot {
        self.snapshots.last().expect("at least one playlist")
    }

    /// Parses a part with mp4-atom (an independent parser): one moof + one mdat whose size
    /// matches the trun sample sizes, and every traf's tfdt continuing the previous part's
    /// (rule 68; gaps may only move it forward).
    pub fn check_fragment(&mut self, key: &ObjectKey, bytes: &[u8]) {
        let uri = key.to_string();
        use mp4_atom::{Any, DecodeMaybe};
        let rendition = key.rendition().to_string();
        let mut buf = bytes;
        let moof = match Any::decode_maybe(&mut buf)
            .expect("part parses")
            .expect("moof")
        {
            Any::Moof(m) => m,
            other => panic!("{uri}: expected moof, got {other:?}"),
        };
        let mdat = match Any::decode_maybe(&mut buf)
            .expect("mdat parses")
            .expect("mdat")
        {
            Any::Mdat(m) => m,
            other => panic!("{uri}: expected mdat, got {other:?}"),
        };
        assert!(buf.is_empty(), "{uri}: trailing bytes after mdat");
        let mut data = 0u64;
        for traf in &moof.traf {
            let tfdt = traf
                .tfdt
                .as_ref()
                .expect("tfdt present (rule 66)")
                .base_media_decode_time;
            let trun = &traf.trun[0];
            let mut dur = 0u64;
            let seen = self
                .sample_durations
                .entry((rendition.clone(), traf.tfhd.track_id))
                .or_default();
            for i in 0..trun.samples.len() {
                let e = trun.samples.get(i).unwrap();
                seen.insert(e.duration.expect("per-sample duration"));
                dur += u64::from(e.duration.expect("per-sample duration"));
                data += u64::from(e.size.expect("per-sample size"));
            }
            let key = (rendition.clone(), traf.tfhd.track_id);
            if let Some(&expected) = self.next_tfdt.get(&key) {
                assert!(
                    tfdt >= expected,
                    "{uri}: track {} tfdt {tfdt} overlaps the previous part (expected {expected})",
                    traf.tfhd.track_id
                );
                if tfdt > expected {
                    self.tfdt_holes.push(format!(
                        "{uri}: track {} tfdt {tfdt}, previous part ended at {expected}",
                        traf.tfhd.track_id
                    ));
                }
            }
            self.next_tfdt.insert(key, tfdt + dur);
        }
        assert_eq!(
            mdat.data.len() as u64,
            data,
            "{uri}: mdat size != sum of sample sizes"
        );
    }

    /// Writes every view of the latest snapshot to `dir` (for the independent parser).
    pub fn dump_views(&self, dir: &std::path::Path, tag: &str) -> Vec<std::path::PathBuf> {
        use llhls_packager::{render_media, render_multivariant, SkipMode};
        // One directory per stream, laid out as the origin serves it, so that the checker
        // (scripts/validate_playlists.py) resolves the multivariant's URIs to the media
        // playlists and their URIs to the init sections and parts written next to them.
        let dir = dir.join(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let snap = self.last();
        let mut out = Vec::new();
        let mv = dir.join("index.m3u8");
        std::fs::write(&mv, render_multivariant(snap)).unwrap();
        out.push(mv);
        for r in &snap.renditions {
            for (name, skip) in [
                ("", SkipMode::Full),
                ("-yes", SkipMode::Yes),
                ("-v2", SkipMode::V2),
            ] {
                let text = render_media(snap, r, skip);
                for line in text.lines() {
                    let uri = match line.split_once("URI=\"") {
                        Some((_, rest)) => rest.split('"').next().unwrap_or(""),
                        None if !line.starts_with('#') => line,
                        None => "",
                    };
                    if let Some(bytes) = self.objects.get(uri) {
                        let f = dir.join(uri);
                        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                        std::fs::write(f, bytes).unwrap();
                    }
                }
                let f = dir.join(format!("{}{name}.m3u8", r.name));
                std::fs::write(&f, text).unwrap();
                out.push(f);
            }
        }
        out
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
            // The preload hint names the part that comes next: the first part a later playlist
            // adds is the one the previous playlist hinted (players and edges wait on it).
            let mut listed: Vec<(u64, u32)> = r
                .segments
                .iter()
                .filter(|s| s.parts_listed)
                .flat_map(|s| (0..s.parts.len() as u32).map(move |i| (s.msn, i)))
                .collect();
            if let Some(o) = &r.open {
                listed.extend((0..o.parts.len() as u32).map(|i| (o.msn, i)));
            }
            let hint = r
                .preload_hint
                .as_ref()
                .filter(|h| h.byterange_start.is_none())
                .map(|h| {
                    let k: ObjectKey = h.uri.parse().expect("hint URI is an object key");
                    (k.msn(), k.part_index().expect("a part hint"))
                });
            // A part made and aged out of the listing within one update (a clock jump filling
            // seconds of GAP parts at once) is still the part that was hinted: it exists, and
            // its whole segment is listed.
            let aged_out = |(msn, index): (u64, u32)| {
                r.segments
                    .iter()
                    .any(|s| s.msn == msn && !s.parts_listed && (index as usize) < s.parts.len())
            };
            if let Some((Some(prev_last), Some(prev_hint))) = self.hinted.get(&r.name).copied() {
                if let Some(first_new) = listed
                    .iter()
                    .copied()
                    .find(|&p| p > prev_last)
                    .filter(|_| !aged_out(prev_hint))
                {
                    assert_eq!(
                        first_new, prev_hint,
                        "{}: the playlist hinted {prev_hint:?} after {prev_last:?}, then listed {first_new:?} next",
                        r.name
                    );
                }
            }
            if !snap.ended {
                assert!(
                    hint.is_some() || r.preload_hint.is_some(),
                    "{}: live playlist without a preload hint",
                    r.name
                );
            }
            self.hinted
                .insert(r.name.clone(), (listed.last().copied(), hint));
        }
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
                // A DVR window keeps metadata only for segments that left memory: no parts,
                // and then none listed.
                assert!(
                    !s.parts.is_empty() || !s.parts_listed,
                    "segment {} lists parts it does not have",
                    s.uri
                );
                let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
                assert!(
                    s.parts.is_empty() || (sum - s.duration).abs() < 1e-6,
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
            if let Some((msn, secs)) = r.parts_listed_too_long(td) {
                panic!(
                    "{} segment {msn}: parts still listed {secs:.3} s (> 3 x TD) before the end",
                    r.name
                );
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

/// Runs scripts/validate_playlists.py (the independent `m3u8` parser and the Apple authoring
/// spec rules) on playlist views dumped from one snapshot; fails the test with its output.
pub fn validate(files: &[std::path::PathBuf]) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/validate_playlists.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg("--same-snapshot")
        .args(files)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it and the m3u8 package)");
    assert!(
        out.status.success(),
        "the independent parser rejected a playlist:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
