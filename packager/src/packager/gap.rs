//! GAP parts and segments (rules 6 and 34): a hole in the input inside the timeline (a DTS
//! step longer than the gap threshold) and a stalled publisher (no input for two part targets
//! of wall-clock time, seen in [`Packager::handle_timeout`]) keep the playlist moving with
//! parts that have no media.

use crate::key::ObjectKey;
use crate::media::WallClock;
use crate::playlist::PartEntry;

use super::probe::Locked;
use super::timeline::Pending;
use super::Packager;

/// The stall in progress, if any.
#[derive(Debug, Default)]
pub(super) struct Stall {
    /// While the input is stalled: the end (lead ticks) of the GAP parts published so far.
    pub(super) end: Option<i64>,
    /// The PDT anchor before the stall, so GAP parts keep following the wall clock.
    pub(super) anchor_before_stall: Option<(i64, WallClock)>,
}

/// Splits `len` ticks into `ceil(len / part_target)` (at least one) near-equal GAP parts.
pub(super) fn gap_part_lengths(len: i64, part_target: i64) -> impl Iterator<Item = i64> {
    let parts = ((len + part_target - 1) / part_target).max(1);
    (0..parts).map(move |k| len * (k + 1) / parts - len * k / parts)
}

impl Packager {
    /// Time passes without input: call this about once per part target (the packager never
    /// reads a clock). When no frame has come for more than two part targets of wall-clock
    /// time, the segment in progress is closed and GAP parts (in GAP segments) keep the
    /// playlist moving, one per part target (rules 6 and 34), until frames resume; the next
    /// keyframe then continues right after the gap.
    pub fn handle_timeout(&mut self, now: WallClock) {
        let Some(locked) = self.locked() else { return };
        if self.ended || !self.is_live() {
            return;
        }
        let Some((anchor, anchor_wall)) = self.timeline.pdt_anchor.or(self.gap.anchor_before_stall)
        else {
            return;
        };
        let lead_scale = self.lead_scale;
        let media_now = anchor + (now.0 - anchor_wall.0) * lead_scale / 1000;
        let end = match (self.gap.end, &self.segmenter.lead_pending) {
            (Some(gap_end), _) => gap_end,
            (None, Some(last)) => {
                last.dts + i64::from(last.dur.unwrap_or(self.tracks[self.lead].last_dur.max(1)))
            }
            (None, None) => return,
        };
        let part_target = locked.part_target;
        if media_now - end <= 2 * part_target {
            return;
        }
        let segment_len = i64::from(locked.target_duration) * lead_scale;
        if self.gap.end.is_none() && media_now - end > 10 * segment_len {
            // `now` and the frames' arrival clock disagree by more than a plausible stall
            // (a stepped clock, or frames stamped with another clock): do not invent media.
            return;
        }
        if self.gap.end.is_none() {
            self.flush_timeline();
            self.timeline.waiting_for_keyframe = true;
            self.gap.anchor_before_stall = self.timeline.pdt_anchor;
            self.warn(format!(
                "no input for {:.1} s: publishing GAP parts until the publisher resumes",
                (media_now - end) as f64 / lead_scale as f64
            ));
        }
        let mut gap_end = self.gap.end.unwrap_or(self.timeline.end);
        // Keep one part of slack behind the wall clock, and bound the work of one call.
        let mut budget = 4 * segment_len / part_target + 1;
        while gap_end + part_target <= media_now - part_target && budget > 0 {
            budget -= 1;
            if self.renditions[0].open.is_none() {
                self.open_segments(gap_end, false);
            }
            let segment_start = self.renditions[0]
                .open
                .as_ref()
                .map(|o| o.start)
                .unwrap_or(gap_end);
            self.push_gap_part(part_target);
            gap_end += part_target;
            self.timeline.end = gap_end;
            self.changed();
            if gap_end - segment_start + part_target > segment_len {
                self.close_segments(gap_end);
            }
        }
        self.gap.end = Some(gap_end);
        self.publish();
    }

    /// Closes a GAP segment left open by [`Packager::handle_timeout`].
    pub(super) fn close_gap(&mut self) {
        if let Some(gap_end) = self.gap.end.take() {
            if self.renditions[0]
                .open
                .as_ref()
                .is_some_and(|o| !o.parts.is_empty())
            {
                self.close_segments(gap_end);
            } else {
                for r in &mut self.renditions {
                    r.open = None;
                }
                self.segmenter.next_msn = self.renditions[0]
                    .segments
                    .back()
                    .map(|s| s.msn + 1)
                    .unwrap_or(self.segmenter.next_msn);
            }
            self.timeline.end = self.timeline.end.max(gap_end);
        }
    }

    /// A lead sample `sample` arrived after a hole in the input longer than the gap threshold:
    /// the sample before it (`prev`) gets a nominal duration and the hole becomes GAP parts,
    /// so the playlist timeline keeps its shape (rule 34).
    pub(super) fn resume_after_stall(
        &mut self,
        mut prev: Pending,
        sample: Pending,
        locked: Locked,
    ) {
        let at = sample.dts;
        let nominal =
            i64::from(self.tracks[self.lead].last_dur.max(1)).min(locked.frame_ticks.max(1));
        prev.dur = Some(nominal as u32);
        let end = prev.dts + nominal;
        self.segmenter.part_samples.push(prev);
        self.close_part(end);
        self.close_segments(end);
        self.fill_gap(end, at, locked);
        self.segmenter.part_start = at;
        self.open_segments(at, sample.sync);
        if !sample.sync {
            self.warn(format!(
                "input stalled for {:.2} s and resumed without a keyframe: segment {} does not start with one",
                (at - end) as f64 / self.lead_scale as f64,
                self.segmenter.next_msn - 1
            ));
            self.independent_segments = false;
        }
        self.segmenter.lead_pending = Some(sample);
    }

    /// Appends a GAP part of `ticks` (lead timescale) to every rendition's open segment.
    fn push_gap_part(&mut self, ticks: i64) {
        let duration = ticks as f64 / self.lead_scale as f64;
        for r in &mut self.renditions {
            if let Some(open) = r.open.as_mut() {
                let index = open.parts.len() as u32;
                open.parts.push(PartEntry {
                    duration,
                    uri: ObjectKey::part(&r.name, open.msn, index).to_string(),
                    independent: false,
                    gap: true,
                    byterange: None,
                });
            }
        }
    }

    /// GAP segments and parts covering lead time [from, to).
    fn fill_gap(&mut self, from: i64, to: i64, locked: Locked) {
        let segment_len = (i64::from(locked.target_duration) * self.lead_scale)
            .min(locked.segment_close.max(1) * 4 / 3);
        let mut start = from;
        while to - start > 0 {
            let len = (to - start).min(segment_len);
            self.open_segments(start, false);
            for part in gap_part_lengths(len, locked.part_target) {
                self.push_gap_part(part);
            }
            start += len;
            self.close_segments(start);
        }
        self.timeline.end = self.timeline.end.max(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_parts_split_evenly_and_sum_to_the_hole() {
        let parts: Vec<i64> = gap_part_lengths(50_000, 18_181).collect();
        assert_eq!(parts, [16_666, 16_667, 16_667]);
        assert_eq!(
            gap_part_lengths(18_181, 18_181).collect::<Vec<_>>(),
            [18_181]
        );
        assert_eq!(gap_part_lengths(1, 18_181).collect::<Vec<_>>(), [1]);
        for len in [1, 999, 18_182, 180_000, 224_999] {
            let parts: Vec<i64> = gap_part_lengths(len, 18_181).collect();
            assert_eq!(parts.iter().sum::<i64>(), len);
            assert!(parts.iter().all(|p| *p <= 18_181 && *p > 0), "{parts:?}");
        }
    }
}
