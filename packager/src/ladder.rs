//! ABR ladder support: one stream, several video renditions on one grid.
//!
//! A transcoded rung is packaged by a [`crate::Packager`] of its own that is fed exactly the
//! calls the source packager got (same frames in the same order, same timestamps, keyframe
//! flags and arrival clocks, same timeouts, discontinuities and end), with only the video
//! payloads and the video track's configuration replaced by the rung's. The packager is a pure
//! function of its calls and never reads the payloads of video frames, so it cuts the rung on
//! the source's grid: the same MSNs, part indexes, durations, INDEPENDENT flags, GAPs,
//! discontinuities and PROGRAM-DATE-TIMEs. [`check_aligned`] states that contract and the
//! tests hold the packager to it.
//!
//! Such a packager names its video rendition `video`; [`rename_rendition`] and [`rename_key`]
//! give it the rung's name, and [`with_rungs`] puts the rungs into the source's
//! [`StreamSnapshot`] so every playlist and rendition report is rendered from one snapshot.
//!
//! A rung withdrawn mid-stream (its encoder fell behind or failed) keeps its media playlist:
//! [`GapMirror`] carries it on along the source's timeline with EXT-X-GAP segments and
//! GAP=YES parts, as RFC 8216bis 6.2.1 asks when an encoder's media is unavailable, so a
//! player on it moves to another variant (hls.js and Shaka do at the first GAP part) instead
//! of meeting 404s for a playlist and for parts it was already given.

use crate::key::ObjectKey;
use crate::playlist::{
    OpenSegment, PartEntry, RenditionKind, RenditionSnapshot, SegmentEntry, StreamSnapshot,
};

/// The key `key` of a rung's own packager (rendition `video`) under the rung's name.
pub fn rename_key(key: &ObjectKey, name: &str) -> ObjectKey {
    ObjectKey::new(name, key.msn(), key.kind())
}

/// `uri` (`{from}/...`) under rendition `to`.
fn rename_uri(uri: &str, from: &str, to: &str) -> String {
    match uri
        .strip_prefix(from)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(rest) => format!("{to}/{rest}"),
        None => uri.to_string(),
    }
}

/// The rendition `r` under the name `name`: its playlist becomes `{name}.m3u8` and every URI
/// it lists (segments, parts, maps, the preload hint) moves from `{r.name}/` to `{name}/`.
pub fn rename_rendition(r: &RenditionSnapshot, name: &str) -> RenditionSnapshot {
    let from = r.name.as_str();
    let mut out = r.clone();
    out.name = name.to_string();
    // The settled text names the old URIs: the renamed rendition renders every segment.
    out.settled = Default::default();
    for s in &mut out.segments {
        s.uri = rename_uri(&s.uri, from, name);
        s.map_uri = rename_uri(&s.map_uri, from, name);
        for p in &mut s.parts {
            p.uri = rename_uri(&p.uri, from, name);
        }
    }
    if let Some(open) = &mut out.open {
        open.uri = rename_uri(&open.uri, from, name);
        open.map_uri = rename_uri(&open.map_uri, from, name);
        for p in &mut open.parts {
            p.uri = rename_uri(&p.uri, from, name);
        }
    }
    if let Some(hint) = &mut out.preload_hint {
        hint.uri = rename_uri(&hint.uri, from, name);
    }
    out
}

/// The source's snapshot with the rung renditions added after the last video rendition (so
/// the multivariant lists the source first, then the rungs in the order given, then nothing
/// else changes). Each rung takes the source video's FRAME-RATE: it has the source's frame
/// timestamps, whatever its encoder wrote in the SPS.
pub fn with_rungs(source: &StreamSnapshot, rungs: Vec<RenditionSnapshot>) -> StreamSnapshot {
    let mut out = source.clone();
    let video = source
        .renditions
        .iter()
        .position(|r| r.kind == RenditionKind::Video);
    let frame_rate = video.and_then(|i| source.renditions[i].frame_rate);
    let at = video.map(|i| i + 1).unwrap_or(out.renditions.len());
    for (k, mut r) in rungs.into_iter().enumerate() {
        if frame_rate.is_some() {
            r.frame_rate = frame_rate;
        }
        out.renditions.insert(at + k, r);
    }
    out
}

/// Why two renditions are not aligned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {a} vs {b}")]
pub struct Misaligned {
    /// What differs, and where.
    pub what: String,
    /// The first rendition's value.
    pub a: String,
    /// The second's.
    pub b: String,
}

/// Checks that two video renditions of one stream are on the same grid, over the segments and
/// parts both list (by MSN and part index): same discontinuity flags, PROGRAM-DATE-TIMEs, EXTINFs; the same part
/// count per complete segment; and part by part the same duration, INDEPENDENT and GAP. The
/// renditions may end at different points (a transcoded rung lags its source by its encoder
/// delay), so only what both have published is compared.
pub fn check_aligned(a: &RenditionSnapshot, b: &RenditionSnapshot) -> Result<(), Misaligned> {
    let differ = |what: String, x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| Misaligned {
        what,
        a: format!("{x:?}"),
        b: format!("{y:?}"),
    };
    let a_last = a.last_msn();
    let b_last = b.last_msn();
    let mut compared = 0;
    // MSNs are consecutive within a window: find b's segment by offset, not by a scan (a DVR
    // window holds thousands of segments, and this runs on every publish).
    let b_first = b.segments.first().map(|s| s.msn);
    let in_b = |msn: u64| {
        let offset = msn.checked_sub(b_first?)?;
        let found = b.segments.get(usize::try_from(offset).ok()?)?;
        (found.msn == msn)
            .then_some(found)
            .or_else(|| b.segments.iter().find(|s| s.msn == msn))
    };
    for sa in &a.segments {
        let Some(sb) = in_b(sa.msn) else {
            continue;
        };
        compared += 1;
        let at = |f: &str| format!("segment {} {f}", sa.msn);
        if sa.discontinuity != sb.discontinuity {
            return Err(differ(
                at("DISCONTINUITY"),
                &sa.discontinuity,
                &sb.discontinuity,
            ));
        }
        if sa.program_date_time != sb.program_date_time {
            return Err(differ(
                at("PROGRAM-DATE-TIME"),
                &sa.program_date_time,
                &sb.program_date_time,
            ));
        }
        if (sa.duration - sb.duration).abs() > 1e-9 {
            return Err(differ(at("EXTINF"), &sa.duration, &sb.duration));
        }
        if sa.gap != sb.gap || sa.independent != sb.independent {
            return Err(differ(
                at("GAP/independent"),
                &(sa.gap, sa.independent),
                &(sb.gap, sb.independent),
            ));
        }
        if sa.parts_listed && sb.parts_listed && sa.parts.len() != sb.parts.len() {
            return Err(differ(at("part count"), &sa.parts.len(), &sb.parts.len()));
        }
    }
    // Every part both list (the open segments included), by (MSN, index): a rung that lags
    // its source has fewer parts of the last segment, never different ones.
    let pb: std::collections::HashMap<(u64, usize), &PartEntry> =
        listed_parts(b).into_iter().collect();
    for ((msn, i), x) in listed_parts(a) {
        if let Some(y) = pb.get(&(msn, i)) {
            check_parts(msn, i, x, y)?;
        }
    }
    for (r, other) in [(a, b), (b, a)] {
        if let Some(open) = &r.open {
            if let Some(s) = other.segments.iter().find(|s| s.msn == open.msn) {
                if s.parts_listed && open.parts.len() > s.parts.len() {
                    return Err(differ(
                        format!("segment {} part count", s.msn),
                        &open.parts.len(),
                        &s.parts.len(),
                    ));
                }
            }
        }
    }
    if compared == 0 && a_last.is_some() && b_last.is_some() {
        return Err(differ("no segment in common".into(), &a_last, &b_last));
    }
    Ok(())
}

/// Every EXT-X-PART a playlist lists, by (MSN, index).
fn listed_parts(r: &RenditionSnapshot) -> Vec<((u64, usize), &PartEntry)> {
    let mut out = Vec::new();
    for s in r.segments.iter().filter(|s| s.parts_listed) {
        out.extend(s.parts.iter().enumerate().map(|(i, p)| ((s.msn, i), p)));
    }
    if let Some(open) = &r.open {
        out.extend(
            open.parts
                .iter()
                .enumerate()
                .map(|(i, p)| ((open.msn, i), p)),
        );
    }
    out
}

fn check_parts(msn: u64, i: usize, a: &PartEntry, b: &PartEntry) -> Result<(), Misaligned> {
    if (a.duration - b.duration).abs() > 1e-9 || a.independent != b.independent || a.gap != b.gap {
        return Err(Misaligned {
            what: format!("part {msn}.{i} (duration, INDEPENDENT, GAP)"),
            a: format!("{:?}", (a.duration, a.independent, a.gap)),
            b: format!("{:?}", (b.duration, b.independent, b.gap)),
        });
    }
    Ok(())
}

/// A withdrawn rung's media playlist, kept going on the source's timeline.
///
/// It starts from the rung's last published rendition: everything that listed stays as it was
/// (RFC 8216bis 6.2.1: a server only appends and removes from the front), and its objects stay
/// served until their segments leave the window. From there every part and segment the source
/// adds is added here too, with the source's MSN, part index, durations, INDEPENDENT,
/// discontinuities and PROGRAM-DATE-TIME, under the rung's URIs and marked GAP (GAP=YES parts,
/// EXT-X-GAP segments), without a preload hint. Blocking requests on it are answered as on the
/// source, so a player that holds one gets its answer on time and sees the gap. The rendition is
/// flagged [`RenditionSnapshot::withdrawn`]: the multivariant playlist no longer lists it and
/// the other playlists report it no more, so new players never pick it.
#[derive(Debug, Clone)]
pub struct GapMirror {
    r: RenditionSnapshot,
}

impl GapMirror {
    /// From `last`, the rung's rendition as last published (under its own name).
    pub fn new(last: RenditionSnapshot) -> Self {
        let mut r = last;
        r.preload_hint = None;
        r.withdrawn = true;
        GapMirror { r }
    }

    /// Brings the mirror up to `src`, the source's video rendition (see the type's docs), and
    /// returns it with the keys of the rung's objects whose segments left the window.
    pub fn follow(&mut self, src: &RenditionSnapshot) -> (RenditionSnapshot, Vec<ObjectKey>) {
        let name = self.r.name.clone();
        let from = src.name.as_str();
        let map_uri = self
            .r
            .open
            .as_ref()
            .map(|o| o.map_uri.clone())
            .or_else(|| self.r.segments.last().map(|s| s.map_uri.clone()))
            .unwrap_or_default();
        let gap_part = |p: &PartEntry| PartEntry {
            uri: rename_uri(&p.uri, from, &name),
            gap: true,
            byterange: None,
            ..p.clone()
        };
        // The segments the source completed since: the rung's open one keeps its parts.
        let done = self.r.segments.last().map(|s| s.msn);
        for s in src
            .segments
            .iter()
            .filter(|s| done.is_none_or(|d| s.msn > d))
        {
            let (uri, map, mut parts) = match self.r.open.take() {
                Some(o) if o.msn == s.msn => (o.uri, o.map_uri, o.parts),
                _ => (rename_uri(&s.uri, from, &name), map_uri.clone(), Vec::new()),
            };
            parts.extend(s.parts.iter().skip(parts.len()).map(gap_part));
            self.r.segments.push(SegmentEntry {
                msn: s.msn,
                duration: s.duration,
                uri,
                program_date_time: s.program_date_time,
                discontinuity: s.discontinuity,
                map_uri: map,
                // Not all of it exists: the segment as a whole is a gap (its real parts, if
                // any, stay listed as they were).
                gap: true,
                parts,
                parts_listed: s.parts_listed,
                bytes: 0,
                independent: s.independent,
            });
        }
        // The source's segment in progress.
        self.r.open = src.open.as_ref().map(|o| {
            let mut mine = match self.r.open.take() {
                Some(m) if m.msn == o.msn => m,
                _ => OpenSegment {
                    msn: o.msn,
                    uri: rename_uri(&o.uri, from, &name),
                    program_date_time: o.program_date_time,
                    discontinuity: o.discontinuity,
                    map_uri: map_uri.clone(),
                    parts: Vec::new(),
                    bytes: 0,
                },
            };
            mine.parts
                .extend(o.parts.iter().skip(mine.parts.len()).map(gap_part));
            mine
        });
        // Parts stop being listed when the source's do; a gap segment's then go. Walked from the
        // newest segment to the first one already settled (not the whole window), noting the
        // oldest whose parts stay listed: the ones before it no longer change.
        let mut first_listed = None;
        for i in (0..self.r.segments.len()).rev() {
            let s = &self.r.segments[i];
            if !s.parts_listed {
                break;
            }
            if src.segments.by_msn(s.msn).is_some_and(|t| !t.parts_listed) {
                let s = self.r.segments.get_mut(i).expect("in range");
                s.parts_listed = false;
                if s.parts.iter().all(|p| p.gap) {
                    s.parts = Vec::new();
                }
            } else {
                first_listed = Some(s.msn);
            }
        }
        // The window starts where the source's does.
        let mut expired = Vec::new();
        while self
            .r
            .segments
            .first()
            .is_some_and(|s| s.msn < src.media_sequence)
        {
            let old = self.r.segments.pop_front().expect("not empty");
            self.r.media_sequence = old.msn + 1;
            if old.discontinuity {
                self.r.discontinuity_sequence += 1;
            }
            expired.extend(
                old.parts
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.gap)
                    .map(|(i, _)| ObjectKey::part(&name, old.msn, i as u32)),
            );
            expired.push(ObjectKey::segment(&name, old.msn));
        }
        if let Some(msn) = first_listed {
            self.r.segments.freeze_before(msn);
        }
        self.r.settled.sync(&self.r.segments);
        (self.r.clone(), expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ObjectKind;

    #[test]
    fn keys_and_uris_move_to_the_rung() {
        let k = ObjectKey::part("video", 12, 3);
        assert_eq!(rename_key(&k, "360p").to_string(), "360p/12.3.m4s");
        assert_eq!(
            rename_key(&ObjectKey::init("video", 1), "360p").kind(),
            ObjectKind::Init
        );
        assert_eq!(
            rename_uri("video/init-1.mp4", "video", "240p"),
            "240p/init-1.mp4"
        );
        // Only a whole leading path segment is replaced.
        assert_eq!(rename_uri("videos/1.m4s", "video", "240p"), "videos/1.m4s");
    }
}
