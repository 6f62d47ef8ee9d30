//! "Will this object ever exist?": the packager's answer for one [`ObjectKey`] against a
//! [`StreamSnapshot`], so the origin can decide between serving, holding (rules 48-49) and 404
//! without knowing how the packager names or cuts anything.

use crate::key::{ObjectKey, ObjectKind};
use crate::playlist::{PartEntry, RenditionSnapshot, StreamSnapshot};

/// How far past the preload hint a client may ask for a part of the open segment and be held
/// rather than refused: parts `next..=next + PART_ADVANCE`, a bound on the parts one segment can
/// still produce. Parts of the segment after the open one are never pending: files-mode hints
/// always name a part of the open segment, so no playlist can have led a client to them, and
/// rule 49 answers a resource that is neither listed nor hinted with 404.
pub const PART_ADVANCE: u32 = 16;

/// What a snapshot says about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Listed in the playlist (or in the window, for parts no longer listed) with media: the
    /// object exists. With byte-range addressing the open segment is available while it grows.
    Available,
    /// Not produced yet, but it will be if the stream continues as it does: the preload hint,
    /// a later part of the open segment (within [`PART_ADVANCE`]), or the open segment itself.
    /// The origin holds such a request until the object exists or a later snapshot answers
    /// anything else (a hint that became a GAP part, or was abandoned, is then a 404).
    Pending,
    /// Listed as a GAP part or GAP segment: it never has bytes.
    Gap,
    /// Will never exist: another rendition, expired from the window, too far ahead (a part of
    /// a segment after the open one included), the wrong kind for the addressing mode, a part
    /// past the end of a closed segment (an abandoned hint), after the end of the stream, or an
    /// init segment not listed (init segments are stored before any playlist names them).
    Never,
}

impl Availability {
    /// Is it worth holding a request for this object (it exists or it will)?
    pub fn will_exist(self) -> bool {
        matches!(self, Availability::Available | Availability::Pending)
    }
}

impl StreamSnapshot {
    /// Will the object `key` ever exist, according to this snapshot? See [`Availability`].
    pub fn availability(&self, key: &ObjectKey) -> Availability {
        let Some(rendition) = self.rendition(key.rendition()) else {
            return Availability::Never;
        };
        let uri = key.to_string();
        match key.kind() {
            ObjectKind::Init => init(rendition, &uri),
            ObjectKind::Segment => segment(rendition, key.msn(), &uri, self.ended),
            ObjectKind::Part(index) => part(rendition, key.msn(), index, &uri, self.ended),
        }
    }
}

fn init(r: &RenditionSnapshot, uri: &str) -> Availability {
    let listed = r.segments.iter().any(|s| s.map_uri == uri)
        || r.open.as_ref().is_some_and(|o| o.map_uri == uri);
    if listed {
        Availability::Available
    } else {
        Availability::Never
    }
}

fn segment(r: &RenditionSnapshot, msn: u64, uri: &str, ended: bool) -> Availability {
    if let Some(s) = r.segments.by_msn(msn) {
        return match (s.gap, s.uri == uri) {
            (true, _) => Availability::Gap,
            (false, true) => Availability::Available,
            (false, false) => Availability::Never,
        };
    }
    match &r.open {
        Some(open) if !ended && open.msn == msn && open.uri == uri => {
            // Byte-range addressing: the open segment is the object its parts are ranges of.
            if open.parts.iter().any(|p| !p.gap && p.uri == uri) {
                Availability::Available
            } else {
                Availability::Pending
            }
        }
        _ => Availability::Never,
    }
}

fn part(r: &RenditionSnapshot, msn: u64, index: u32, uri: &str, ended: bool) -> Availability {
    let listed = |parts: &[PartEntry]| {
        parts
            .get(index as usize)
            .map(|p| match (p.gap, p.uri == uri) {
                (true, _) => Availability::Gap,
                (false, true) => Availability::Available,
                // Byte-range addressing: parts are ranges of the segment, never files.
                (false, false) => Availability::Never,
            })
    };
    if let Some(s) = r.segments.by_msn(msn) {
        return listed(&s.parts).unwrap_or(Availability::Never);
    }
    let Some(open) = &r.open else {
        return Availability::Never;
    };
    if open.msn == msn {
        if let Some(found) = listed(&open.parts) {
            return found;
        }
    }
    // Not produced yet: only part files are ever hinted (a byte-range hint names the segment).
    let files = r
        .preload_hint
        .as_ref()
        .is_some_and(|h| h.byterange_start.is_none());
    let next = open.parts.len() as u32;
    let ahead = msn == open.msn && index >= next && index - next <= PART_ADVANCE;
    if !ended && files && ahead {
        Availability::Pending
    } else {
        Availability::Never
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::WallClock;
    use crate::playlist::{OpenSegment, PreloadHint, RenditionKind, SegmentEntry, StreamTiming};

    fn part_entry(uri: String, gap: bool, byterange: Option<(u64, u64)>) -> PartEntry {
        PartEntry {
            duration: 0.2,
            listed_us: 200_000,
            uri,
            independent: false,
            gap,
            byterange,
        }
    }

    /// Segments 10 (media), 11 (GAP), open 12 with two parts (the second GAP): files mode.
    fn snapshot(byterange: bool) -> StreamSnapshot {
        let part = |msn: u64, i: u32, gap: bool| {
            if byterange && !gap {
                part_entry(
                    ObjectKey::segment("video", msn).to_string(),
                    false,
                    Some((100, u64::from(i) * 100)),
                )
            } else {
                part_entry(ObjectKey::part("video", msn, i).to_string(), gap, None)
            }
        };
        let segment = |msn: u64, gap: bool| SegmentEntry {
            msn,
            duration: 0.4,
            uri: ObjectKey::segment("video", msn).to_string(),
            program_date_time: WallClock(0),
            discontinuity: false,
            map_uri: ObjectKey::init("video", 10).to_string(),
            gap,
            parts: vec![part(msn, 0, gap), part(msn, 1, gap)],
            parts_listed: true,
            bytes: 0,
            independent: !gap,
        };
        let open = OpenSegment {
            msn: 12,
            uri: ObjectKey::segment("video", 12).to_string(),
            program_date_time: WallClock(0),
            discontinuity: false,
            map_uri: ObjectKey::init("video", 10).to_string(),
            parts: vec![part(12, 0, false), part(12, 1, true)],
            bytes: 100,
        };
        let preload_hint = Some(if byterange {
            PreloadHint {
                uri: ObjectKey::segment("video", 12).to_string(),
                byterange_start: Some(100),
            }
        } else {
            PreloadHint {
                uri: ObjectKey::part("video", 12, 2).to_string(),
                byterange_start: None,
            }
        });
        StreamSnapshot {
            version: 1,
            timing: StreamTiming {
                target_duration: 1,
                part_hold_back: 0.6,
                hold_back: 3.0,
                can_skip_until: None,
            },
            renditions: vec![RenditionSnapshot {
                name: "video".into(),
                kind: RenditionKind::Video,
                codecs: vec![],
                resolution: None,
                frame_rate: None,
                channels: None,
                settled: Default::default(),
                part_target: 0.2,
                media_sequence: 10,
                discontinuity_sequence: 0,
                segments: vec![segment(10, false), segment(11, true)].into(),
                open: Some(open),
                preload_hint,
                withdrawn: false,
            }],
            ended: false,
            independent_segments: true,
        }
    }

    fn of(snap: &StreamSnapshot, uri: &str) -> Availability {
        snap.availability(&uri.parse().expect("a valid key"))
    }

    #[test]
    fn files_mode() {
        use Availability::*;
        let s = snapshot(false);
        for (uri, want) in [
            ("video/init-10.mp4", Available),
            ("video/init-12.mp4", Never),
            ("video/10.m4s", Available),
            ("video/10.0.m4s", Available),
            ("video/10.1.m4s", Available),
            ("video/10.2.m4s", Never),
            ("video/11.m4s", Gap),
            ("video/11.0.m4s", Gap),
            ("video/9.m4s", Never),
            ("video/9.0.m4s", Never),
            ("video/12.0.m4s", Available),
            ("video/12.1.m4s", Gap),
            ("video/12.2.m4s", Pending),
            ("video/12.18.m4s", Pending),
            ("video/12.19.m4s", Never),
            ("video/12.m4s", Pending),
            // Rule 49: the next segment's parts are neither listed nor hinted.
            ("video/13.0.m4s", Never),
            ("video/13.16.m4s", Never),
            ("video/13.17.m4s", Never),
            ("video/13.m4s", Never),
            ("video/14.0.m4s", Never),
            ("audio/12.2.m4s", Never),
            ("audio/10.m4s", Never),
        ] {
            assert_eq!(of(&s, uri), want, "{uri}");
        }
    }

    #[test]
    fn byte_range_mode() {
        use Availability::*;
        let s = snapshot(true);
        for (uri, want) in [
            ("video/10.m4s", Available),
            ("video/10.0.m4s", Never),
            ("video/11.m4s", Gap),
            ("video/11.0.m4s", Gap),
            ("video/12.m4s", Available),
            ("video/12.0.m4s", Never),
            ("video/12.1.m4s", Gap),
            ("video/12.2.m4s", Never),
            ("video/13.0.m4s", Never),
            ("video/13.m4s", Never),
        ] {
            assert_eq!(of(&s, uri), want, "{uri}");
        }
        // Before its first part the growing segment is the hint: pending.
        let mut empty = snapshot(true);
        empty.renditions[0].open.as_mut().unwrap().parts.clear();
        assert_eq!(of(&empty, "video/12.m4s"), Pending);
    }

    #[test]
    fn nothing_is_pending_after_the_end() {
        use Availability::*;
        let mut s = snapshot(false);
        s.ended = true;
        assert_eq!(of(&s, "video/12.2.m4s"), Never);
        assert_eq!(of(&s, "video/13.0.m4s"), Never);
        assert_eq!(of(&s, "video/12.m4s"), Never);
        assert_eq!(of(&s, "video/10.0.m4s"), Available);
        // Between timelines (no open segment) nothing is pending either.
        let mut s = snapshot(false);
        s.renditions[0].open = None;
        assert_eq!(of(&s, "video/12.2.m4s"), Never);
        assert_eq!(of(&s, "video/13.0.m4s"), Never);
    }

    #[test]
    fn a_hint_the_closing_segment_did_not_fill_is_abandoned() {
        use Availability::*;
        // Segment 12 closes with its two parts; the hint (12.2) was never produced.
        let mut s = snapshot(false);
        let r = &mut s.renditions[0];
        let open = r.open.take().unwrap();
        r.segments.push(SegmentEntry {
            msn: 12,
            duration: 0.4,
            uri: open.uri,
            program_date_time: WallClock(0),
            discontinuity: false,
            map_uri: open.map_uri.clone(),
            gap: false,
            parts: open.parts,
            parts_listed: true,
            bytes: open.bytes,
            independent: true,
        });
        r.open = Some(OpenSegment {
            msn: 13,
            uri: ObjectKey::segment("video", 13).to_string(),
            program_date_time: WallClock(0),
            discontinuity: false,
            map_uri: open.map_uri,
            parts: vec![],
            bytes: 0,
        });
        r.preload_hint = Some(PreloadHint {
            uri: ObjectKey::part("video", 13, 0).to_string(),
            byterange_start: None,
        });
        assert_eq!(of(&s, "video/12.2.m4s"), Never, "rule 49: abandoned hint");
        assert_eq!(of(&s, "video/12.m4s"), Available);
        assert_eq!(of(&s, "video/13.0.m4s"), Pending, "the new hint");
        assert_eq!(of(&s, "video/14.0.m4s"), Never);
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let mut s = snapshot(false);
        s.renditions[0].open.as_mut().unwrap().msn = u64::MAX;
        assert_eq!(
            s.availability(&ObjectKey::part("video", u64::MAX, u32::MAX)),
            Availability::Never
        );
        assert_eq!(
            s.availability(&ObjectKey::part("video", u64::MAX, 2)),
            Availability::Pending
        );
        assert!(Availability::Pending.will_exist() && !Availability::Gap.will_exist());
    }

    #[test]
    fn agrees_with_a_live_packager() {
        use crate::synth::Publisher;
        use crate::{Output, Packager, PackagerConfig};
        let mut publisher = Publisher::new(30.0, 60);
        let mut p = Packager::new(PackagerConfig::default(), publisher.tracks()).unwrap();
        let mut stored = Vec::new();
        let mut changes = 0;
        for _ in 0..1200 {
            let (frame, now) = publisher.next_frame();
            p.handle_frame(frame, now).unwrap();
            while let Some(out) = p.poll_output() {
                match out {
                    Output::Object { key, .. } => stored.push(key),
                    Output::PlaylistChanged => {
                        changes += 1;
                        let snap = p.snapshot().unwrap();
                        for r in &snap.renditions {
                            let hint: ObjectKey =
                                r.preload_hint.as_ref().unwrap().uri.parse().unwrap();
                            assert_eq!(snap.availability(&hint), Availability::Pending);
                            assert!(!stored.contains(&hint));
                        }
                        for key in &stored {
                            let a = snap.availability(key);
                            assert!(
                                matches!(a, Availability::Available | Availability::Never),
                                "{key}: {a:?}"
                            );
                        }
                        let listed = snap.renditions.iter().flat_map(|r| {
                            r.segments
                                .iter()
                                .flat_map(|s| s.parts.iter().map(|p| &p.uri).chain([&s.uri]))
                        });
                        for uri in listed {
                            let key: ObjectKey = uri.parse().unwrap();
                            assert_eq!(snap.availability(&key), Availability::Available);
                            assert!(stored.contains(&key), "{key} listed, not stored");
                        }
                    }
                    _ => {}
                }
            }
        }
        assert!(changes > 20, "only {changes} playlist changes");
    }
}
