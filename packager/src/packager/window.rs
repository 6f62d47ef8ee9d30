//! Renditions and their sliding window: closing segments, dropping the oldest (rule 36),
//! listing parts only for recent parents (rule 7), and expiring objects after 3 × TD.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::key::ObjectKey;
use crate::media::WallClock;
use crate::playlist::{PartEntry, RenditionKind, SegmentEntry, Segments};
use crate::render::{listed_part_end_us, SettledText};

use super::fragment::part_key;
use super::time::LeadTicks;
use super::{Addressing, Output, Packager};

/// The parent segment in progress of one rendition.
#[derive(Debug)]
pub(super) struct Open {
    pub(super) msn: u64,
    /// Start on the lead clock.
    pub(super) start: LeadTicks,
    pub(super) pdt: WallClock,
    pub(super) discontinuity: bool,
    pub(super) map_uri: String,
    pub(super) parts: Vec<PartEntry>,
    pub(super) part_bytes: Vec<Bytes>,
    pub(super) bytes: u64,
    pub(super) independent: bool,
    /// Σ of its parts' real durations (seconds).
    pub(super) real_end: f64,
    /// Σ of its parts' DURATIONs as written (microseconds).
    pub(super) listed_end_us: u64,
    /// Parts a published snapshot may already list (the rest came in this `handle_*` call).
    pub(super) published: usize,
}

impl Open {
    pub(super) fn new(
        msn: u64,
        start: LeadTicks,
        pdt: WallClock,
        discontinuity: bool,
        map_uri: String,
        independent: bool,
    ) -> Self {
        Open {
            msn,
            start,
            pdt,
            discontinuity,
            map_uri,
            parts: Vec::new(),
            part_bytes: Vec::new(),
            bytes: 0,
            independent,
            real_end: 0.0,
            listed_end_us: 0,
            published: 0,
        }
    }

    /// Appends a part of `duration` seconds, its DURATION written as a part inside the segment
    /// ([`listed_part_end_us`]), never over `part_target_us` (PART-TARGET).
    pub(super) fn push_part(
        &mut self,
        duration: f64,
        uri: String,
        independent: bool,
        gap: bool,
        byterange: Option<(u64, u64)>,
        part_target_us: u64,
    ) {
        self.real_end += duration;
        let end = listed_part_end_us(self.real_end, self.parts.len(), false);
        let listed_us = end
            .saturating_sub(self.listed_end_us)
            .clamp(1, part_target_us.max(1));
        self.listed_end_us += listed_us;
        self.parts.push(PartEntry {
            duration,
            listed_us,
            uri,
            independent,
            gap,
            byterange,
        });
    }

    /// The segment closes: its last part, when no snapshot has listed it yet, is written as
    /// the part that ends the segment (its DURATIONs then add up to no more than its media).
    pub(super) fn end_with_last_part(&mut self) {
        if self.published >= self.parts.len() {
            return;
        }
        let index = self.parts.len() - 1;
        let Some(last) = self.parts.last_mut() else {
            return;
        };
        let before = self.listed_end_us - last.listed_us;
        let end = listed_part_end_us(self.real_end, index, true);
        last.listed_us = end.saturating_sub(before).max(1);
        self.listed_end_us = before + last.listed_us;
    }
}

/// One media playlist: its tracks, its window and the segment in progress.
#[derive(Debug)]
pub(super) struct Rendition {
    pub(super) name: String,
    pub(super) kind: RenditionKind,
    /// Indexes into the packager's tracks.
    pub(super) tracks: Vec<usize>,
    /// PART-TARGET (seconds), once timing is fixed.
    pub(super) part_target: f64,
    /// The complete segments; the older ones are shared with the snapshots taken
    /// ([`Rendition::freeze`]).
    pub(super) segments: Segments,
    /// Start of each segment in `segments`.
    pub(super) segment_starts: VecDeque<LeadTicks>,
    pub(super) open: Option<Open>,
    pub(super) media_sequence: u64,
    pub(super) discontinuity_sequence: u64,
    /// The init segment new segments refer to.
    pub(super) map_uri: String,
    /// `mfhd` sequence number of the last fragment.
    pub(super) fragment_seq: u32,
    /// DVR: MSN of the oldest segment not yet announced as left the live window
    /// ([`Output::Spill`]).
    pub(super) spilled_until: u64,
    /// The playlist lines of the leading segments whose parts are no longer listed, rendered
    /// once (what snapshots share, so a long window is not rendered whole on every change).
    pub(super) settled: SettledText,
}

impl Rendition {
    pub(super) fn new(name: &str, kind: RenditionKind, tracks: Vec<usize>, first_msn: u64) -> Self {
        Rendition {
            name: name.to_string(),
            kind,
            tracks,
            part_target: 0.0,
            segments: Segments::new(),
            segment_starts: VecDeque::new(),
            open: None,
            media_sequence: first_msn,
            discontinuity_sequence: 0,
            map_uri: String::new(),
            fragment_seq: 0,
            spilled_until: first_msn,
            settled: SettledText::default(),
        }
    }

    /// Is the newest complete segment listed as still open
    /// ([`crate::playlist::newest_listed_open`])?
    pub(super) fn newest_deferred(&self, ended: bool) -> bool {
        crate::playlist::newest_listed_open(
            ended,
            self.open.as_ref().map(|o| o.parts.len()),
            self.segments.last(),
        )
    }

    /// Appends the segment `open` closed as (its objects already output, or none for GAP).
    pub(super) fn push_closed(&mut self, open: Open) {
        self.segment_starts.push_back(open.start);
        self.segments.push(SegmentEntry {
            msn: open.msn,
            duration: open.parts.iter().map(|p| p.duration).sum(),
            uri: ObjectKey::segment(&self.name, open.msn).to_string(),
            program_date_time: open.pdt,
            discontinuity: open.discontinuity,
            map_uri: open.map_uri,
            gap: open.parts.iter().all(|p| p.gap),
            parts: open.parts,
            parts_listed: true,
            bytes: open.bytes,
            independent: open.independent,
        });
    }

    /// Drops segments beyond `window` from the front; returns the keys of their objects.
    fn slide(&mut self, window: usize, addressing: Addressing) -> Vec<Vec<ObjectKey>> {
        let mut removed = Vec::new();
        while self.segments.len() > window {
            removed.extend(self.pop_oldest(addressing));
        }
        removed
    }

    /// DVR: the MSN of the oldest segment to keep so that the window holds `dvr` seconds of
    /// media (the fewest segments that do) and at least `window` segments. Computed on the
    /// lead rendition and applied to every rendition ([`Rendition::slide_before`]), so that
    /// all keep one MSN grid although their EXTINFs differ slightly (audio frames do not end
    /// on video frame boundaries).
    fn dvr_first_kept(&self, window: usize, dvr: f64, skip_newest: bool) -> Option<u64> {
        let mut total = 0.0;
        let newest = usize::from(skip_newest);
        for (kept, segment) in self.segments.iter().rev().skip(newest).enumerate() {
            total += segment.duration;
            // Tolerance: durations are sums of part durations in floating point.
            if kept + 1 >= window && total >= dvr - 1e-6 {
                return Some(segment.msn);
            }
        }
        self.segments.first().map(|s| s.msn)
    }

    /// Drops the segments older than `msn` from the front, keeping at least `window`;
    /// returns the keys of their objects.
    fn slide_before(
        &mut self,
        msn: u64,
        window: usize,
        addressing: Addressing,
    ) -> Vec<Vec<ObjectKey>> {
        let mut removed = Vec::new();
        while self.segments.len() > window && self.segments.first().is_some_and(|s| s.msn < msn) {
            removed.extend(self.pop_oldest(addressing));
        }
        removed
    }

    /// Removes the oldest segment (rule 36: in order), counting it in MEDIA-SEQUENCE and,
    /// when it carried EXT-X-DISCONTINUITY, in DISCONTINUITY-SEQUENCE; returns the keys of its
    /// objects (parts already expired by [`Rendition::spill`] are not named again).
    fn pop_oldest(&mut self, addressing: Addressing) -> Option<Vec<ObjectKey>> {
        let old = self.segments.pop_front()?;
        self.segment_starts.pop_front();
        self.settled.pop_front(old.msn);
        self.media_sequence += 1;
        if old.discontinuity {
            self.discontinuity_sequence += 1;
        }
        let mut keys: Vec<ObjectKey> = old
            .parts
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.gap)
            .map(|(index, _)| part_key(addressing, &self.name, old.msn, index as u32))
            .collect();
        keys.push(ObjectKey::segment(&self.name, old.msn));
        keys.dedup();
        Some(keys)
    }

    /// DVR: the segments older than the last `window` (the live window) whose parts are no
    /// longer listed leave memory, oldest first, each once. Returns, per segment, its key (none
    /// for a GAP segment, which has no object) and the keys of its part files, whose entries
    /// are dropped: the window keeps per-segment metadata only, however long it is.
    fn spill(
        &mut self,
        window: usize,
        addressing: Addressing,
    ) -> Vec<(Option<ObjectKey>, Vec<ObjectKey>)> {
        let older = self.segments.len().saturating_sub(window);
        let mut out = Vec::new();
        // The first segment not spilled yet, found by its offset (MSNs are consecutive): the
        // ones before it are shared with snapshots and must not be touched (nor walked).
        let first = self.segments.first().map_or(0, |s| s.msn);
        let mut i = usize::try_from(self.spilled_until.saturating_sub(first)).unwrap_or(usize::MAX);
        i = i.min(self.segments.len());
        while i > 0 && self.segments[i - 1].msn >= self.spilled_until {
            i -= 1;
        }
        while i < older && self.segments[i].msn < self.spilled_until {
            i += 1;
        }
        for i in i..older {
            let Some(segment) = self.segments.get_mut(i) else {
                break;
            };
            if segment.parts_listed {
                break;
            }
            self.spilled_until = segment.msn + 1;
            let key = ObjectKey::segment(&self.name, segment.msn);
            let parts: Vec<ObjectKey> = std::mem::take(&mut segment.parts)
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.gap)
                .map(|(index, _)| part_key(addressing, &self.name, segment.msn, index as u32))
                .filter(|k| *k != key)
                .collect();
            out.push(((!segment.gap).then_some(key), parts));
        }
        out
    }

    /// Shares the segments that will not change again with the snapshots to come (see
    /// [`Segments`]): with a DVR window those spilled (their parts are dropped then), without
    /// one those settled (only removed from then on).
    fn freeze(&mut self, dvr: bool) {
        let before = if dvr {
            self.spilled_until
        } else {
            match self.segments.get(self.settled.len()) {
                Some(s) => s.msn,
                None => self.segments.last().map_or(0, |s| s.msn + 1),
            }
        };
        self.segments.freeze_before(before);
    }

    /// Parts stay listed only for parents that end at most `horizon` seconds before the end of
    /// this rendition's playlist (its open segment's parts included), a whole parent at a time
    /// (rule 7 / decision E); the last two always keep theirs. Judged on the durations the
    /// playlist lists, which for separate audio differ from the lead track's by up to a frame.
    pub(super) fn unlist_old_parts(&mut self, horizon: f64) {
        let count = self.segments.len();
        let mut from_end: f64 = self
            .open
            .iter()
            .flat_map(|o| o.parts.iter())
            .map(|p| p.duration)
            .sum();
        for i in (0..count).rev() {
            let segment = &self.segments[i];
            if i + 2 < count && from_end > horizon + 1e-6 {
                if !segment.parts_listed {
                    break; // every older parent was unlisted before
                }
                if let Some(s) = self.segments.get_mut(i) {
                    s.parts_listed = false;
                }
            }
            from_end += self.segments[i].duration;
        }
        // Those segments' lines never change again: each is rendered once, as it settles
        // (unlisting goes oldest first, so the settled segments lead the window).
        while let Some(s) = self.segments.get(self.settled.len()) {
            if s.parts_listed {
                break;
            }
            let i = self.settled.len();
            let prev = i.checked_sub(1).map(|p| self.segments[p].map_uri.as_str());
            self.settled.push(s, prev);
        }
    }
}

/// Objects waiting to expire: (lead time they may be deleted at, keys), oldest first.
pub(super) type Retention = VecDeque<(LeadTicks, Vec<ObjectKey>)>;

impl Packager {
    /// Parts stay listed for three target durations from the end of the playlist (HLS2
    /// 6.2.2): judged as every part is added (media or GAP), not only when a segment closes.
    pub(super) fn unlist_old_parts(&mut self) {
        if let Some(locked) = self.locked() {
            let three_td = 3.0 * f64::from(locked.target_duration);
            for r in &mut self.renditions {
                r.unlist_old_parts(three_td);
            }
        }
    }

    /// Closes the open segment of every rendition at lead time `boundary`.
    pub(super) fn close_segments(&mut self, boundary: LeadTicks) {
        let Some(locked) = self.locked() else { return };
        let three_td = LeadTicks(3 * i64::from(locked.target_duration) * self.lead_scale);
        let addressing = self.config.addressing;
        let window = self.config.window_segments;
        let dvr = self.config.dvr_window.as_secs_f64();
        let mut expired = Vec::new();
        let mut spilled = Vec::new();
        let mut closed = vec![false; self.renditions.len()];
        for (ri, r) in self.renditions.iter_mut().enumerate() {
            let Some(mut open) = r.open.take() else {
                continue;
            };
            if open.parts.is_empty() {
                continue;
            }
            open.end_with_last_part();
            closed[ri] = true;
            if !open.parts.iter().all(|p| p.gap) {
                let total: usize = open.part_bytes.iter().map(|part| part.len()).sum();
                let mut segment = BytesMut::with_capacity(total);
                for part in &open.part_bytes {
                    segment.extend_from_slice(part);
                }
                self.outputs.push_back(Output::Object {
                    key: ObjectKey::segment(&r.name, open.msn),
                    bytes: segment.freeze(),
                });
            }
            r.push_closed(open);
        }
        self.unlist_old_parts();
        // The window slides in [`Packager::trim_live_window`], before the publish.
        self.trim_pending |= closed.iter().any(|&c| c);
        for (ri, r) in self.renditions.iter_mut().enumerate() {
            if !closed[ri] {
                continue;
            }
            if dvr > 0.0 {
                for (key, parts) in r.spill(window, addressing) {
                    spilled.extend(key);
                    if !parts.is_empty() {
                        expired.push((boundary + three_td, parts));
                    }
                }
            }
            r.freeze(dvr > 0.0);
        }
        self.outputs.extend(spilled.into_iter().map(Output::Spill));
        self.retention.extend(expired);
        let mut due = Vec::new();
        while self
            .retention
            .front()
            .is_some_and(|(expires, _)| *expires <= boundary)
        {
            if let Some((_, keys)) = self.retention.pop_front() {
                due.extend(keys);
            }
        }
        if !due.is_empty() {
            self.outputs.push_back(Output::Expired(due));
        }
        self.timeline.end = self.timeline.end.max(boundary);
        self.changed();
    }
}

impl Packager {
    /// Slides the window (rule 36: removals in order, never below 6 segments) to
    /// `window_segments` complete segments, or with DVR to the fewest that hold the DVR
    /// window's seconds (the lead rendition's seconds decide where every rendition's window
    /// starts). A segment that has just closed is listed as still open until the next one has
    /// a part (render.rs, `render_media`): until then it does not count, and the window keeps
    /// one more, so that a playlist lists the window at every instant. Called before every
    /// publish.
    pub(super) fn trim_live_window(&mut self) {
        // Not until the first playlist is out: a continued stream's bridge (`bridge`) and its
        // first segments may outnumber the window, and the first playlist must still list the
        // segment players last saw.
        if !self.trim_pending || self.version == 0 {
            return;
        }
        let Some(locked) = self.locked() else { return };
        let three_td = LeadTicks(3 * i64::from(locked.target_duration) * self.lead_scale);
        let expires = self.timeline.end + three_td;
        let (window, addressing, ended) = (
            self.config.window_segments,
            self.config.addressing,
            self.ended,
        );
        let dvr = self.config.dvr_window.as_secs_f64();
        let first_kept = (dvr > 0.0)
            .then(|| {
                let lead = self.renditions.first()?;
                lead.dvr_first_kept(window, dvr, lead.newest_deferred(ended))
            })
            .flatten();
        let mut expired = Vec::new();
        let mut deferred = false;
        for r in &mut self.renditions {
            let newest_open = r.newest_deferred(ended);
            deferred |= newest_open;
            let keep = window.saturating_add(usize::from(newest_open));
            expired.extend(match first_kept {
                Some(msn) => r.slide_before(msn, keep, addressing),
                None if dvr > 0.0 => Vec::new(),
                None => r.slide(keep, addressing),
            });
        }
        // Once no newest segment is listed open, the window has its final size until the
        // next segment closes.
        self.trim_pending = deferred;
        if !expired.is_empty() {
            self.retention
                .extend(expired.into_iter().map(|keys| (expires, keys)));
            self.changed();
        }
    }

    /// DVR: the caller could not keep the segment `msn` it was told to spill (a disk write
    /// failed): that segment and every older one leave the DVR window now, in order, so no
    /// playlist lists a segment that cannot be served. The live window is never touched.
    /// Their objects expire after the usual retention. Drain the outputs afterwards.
    pub fn drop_dvr_through(&mut self, msn: u64) {
        let Some(locked) = self.locked() else { return };
        let three_td = LeadTicks(3 * i64::from(locked.target_duration) * self.lead_scale);
        let expires = self.timeline.end + three_td;
        let (window, addressing) = (self.config.window_segments, self.config.addressing);
        let mut expired = Vec::new();
        for r in &mut self.renditions {
            while r.segments.len() > window && r.segments.first().is_some_and(|s| s.msn <= msn) {
                expired.extend(r.pop_oldest(addressing));
            }
        }
        if expired.is_empty() {
            return;
        }
        self.retention
            .extend(expired.into_iter().map(|keys| (expires, keys)));
        self.changed();
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(msn: u64, parts: &[bool]) -> SegmentEntry {
        SegmentEntry {
            msn,
            duration: 1.0,
            uri: ObjectKey::segment("video", msn).to_string(),
            program_date_time: WallClock(0),
            discontinuity: msn == 3,
            map_uri: String::new(),
            gap: parts.iter().all(|gap| *gap),
            parts: parts
                .iter()
                .enumerate()
                .map(|(i, &gap)| PartEntry {
                    duration: 0.5,
                    listed_us: 500_000,
                    uri: ObjectKey::part("video", msn, i as u32).to_string(),
                    independent: false,
                    gap,
                    byterange: None,
                })
                .collect(),
            parts_listed: true,
            bytes: 0,
            independent: true,
        }
    }

    fn rendition(count: u64) -> Rendition {
        let mut r = Rendition::new("video", RenditionKind::Video, vec![0], 1);
        for msn in 1..=count {
            r.segments.push(segment(msn, &[false, msn == 2]));
            r.segment_starts.push_back(LeadTicks(msn as i64 * 100));
        }
        r
    }

    #[test]
    fn the_window_slides_in_order_and_expires_media_only() {
        let mut r = rendition(9);
        let removed = r.slide(6, Addressing::Files);
        let uris: Vec<Vec<String>> = removed
            .iter()
            .map(|keys| keys.iter().map(|k| k.to_string()).collect())
            .collect();
        assert_eq!(
            uris,
            [
                vec!["video/1.0.m4s", "video/1.1.m4s", "video/1.m4s"],
                vec!["video/2.0.m4s", "video/2.m4s"],
                vec!["video/3.0.m4s", "video/3.1.m4s", "video/3.m4s"],
            ]
        );
        assert_eq!(r.media_sequence, 4);
        assert_eq!(r.discontinuity_sequence, 1);
        assert_eq!(r.segments.len(), 6);
        assert_eq!(r.segment_starts.front(), Some(&LeadTicks(400)));
    }

    #[test]
    fn the_dvr_window_keeps_its_seconds_and_spills_each_old_segment_once() {
        // Segments of 1 s, a 9 s DVR window, a live window of 6 segments.
        let mut r = rendition(12);
        for s in &mut r.segments {
            s.parts_listed = s.msn > 8;
        }
        assert_eq!(r.dvr_first_kept(6, 9.0, false), Some(4));
        let removed = r.slide_before(4, 6, Addressing::Files);
        assert_eq!(removed.len(), 3, "12 s of media, 9 s kept");
        assert_eq!(r.segments.len(), 9);
        assert_eq!(r.media_sequence, 4);
        assert_eq!(
            r.discontinuity_sequence, 1,
            "segment 3 carried a discontinuity"
        );
        let spilled = r.spill(6, Addressing::Files);
        let keys: Vec<String> = spilled
            .iter()
            .map(|(k, _)| k.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(keys, ["video/4.m4s", "video/5.m4s", "video/6.m4s"]);
        assert_eq!(
            spilled[0].1,
            vec![
                ObjectKey::part("video", 4, 0),
                ObjectKey::part("video", 4, 1)
            ]
        );
        assert!(r.segments[0].parts.is_empty(), "metadata only once spilled");
        assert!(
            r.spill(6, Addressing::Files).is_empty(),
            "each segment once"
        );
        // Never below the live window, however short the DVR window.
        assert_eq!(r.dvr_first_kept(6, 0.5, false), Some(r.segments[3].msn));
        r.slide_before(u64::MAX, 6, Addressing::Files);
        assert_eq!(r.segments.len(), 6);
    }

    #[test]
    fn byte_range_parts_expire_with_their_segment() {
        let mut r = rendition(7);
        let removed = r.slide(6, Addressing::ByteRange);
        assert_eq!(removed, vec![vec![ObjectKey::segment("video", 1)]]);
    }

    #[test]
    fn old_parents_stop_listing_parts_but_the_last_two_keep_them() {
        let mut r = rendition(6);
        r.unlist_old_parts(2.5);
        let listed: Vec<bool> = r.segments.iter().map(|s| s.parts_listed).collect();
        assert_eq!(listed, [false, false, false, true, true, true]);
        r.unlist_old_parts(0.0);
        let listed: Vec<bool> = r.segments.iter().map(|s| s.parts_listed).collect();
        assert_eq!(listed, [false, false, false, false, true, true]);
    }
}
