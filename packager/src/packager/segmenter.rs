//! Part and segment cuts on the lead track's DTS timeline: a part closes before the frame
//! that would overflow PART-TARGET; a segment closes on the first keyframe after three
//! quarters of the segment target (three eighths for the stream's first
//! [`FIRST_PLAYLIST_SEGMENTS`] segments, so that the first playlist comes sooner), or is cut
//! between keyframes when none comes in time.

use crate::media::WallClock;

use super::probe::Locked;
use super::time::LeadTicks;
use super::timeline::Pending;
use super::window::Open;
use super::{Packager, FIRST_PLAYLIST_SEGMENTS};

/// The lead track's samples between part boundaries.
#[derive(Debug)]
pub(super) struct Segmenter {
    /// The MSN the next segment opened gets.
    pub(super) next_msn: u64,
    /// Start of the part in progress.
    pub(super) part_start: LeadTicks,
    /// Lead samples of the part in progress, with durations.
    pub(super) part_samples: Vec<Pending>,
    /// The last lead sample: its duration is known when the next one arrives.
    pub(super) lead_pending: Option<Pending>,
    /// The track configurations changed (or the stream just started): the next segment opened
    /// gets a new init segment, named after that segment's MSN. Emitting it only then means two
    /// configuration changes before a segment opens cannot put different bytes under one
    /// init URI.
    pub(super) init_pending: bool,
}

impl Segmenter {
    pub(super) fn new(first_msn: u64) -> Self {
        Segmenter {
            next_msn: first_msn,
            part_start: LeadTicks(0),
            part_samples: Vec::new(),
            lead_pending: None,
            init_pending: true,
        }
    }
}

/// What one new lead sample does to the part and segment in progress.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Cuts {
    /// Timestamp jitter or a longer frame pushed the part over PART-TARGET: close it before
    /// its last sample first. The last sample then starts the part that [`Cuts::at_sample`]
    /// judges, so that a part never lags a frame behind (found by the packager fuzz target: at
    /// 1 fps every part closed one frame late, and a keyframe then closed a two-frame part).
    pub(super) before_last: bool,
    /// What closes at the new sample.
    pub(super) at_sample: Cut,
}

/// What closes at the new sample.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Cut {
    /// Nothing closes.
    None,
    /// A keyframe late enough in the segment: close the part and the segment before it.
    Segment,
    /// The next sample would overflow PART-TARGET: close the part before this sample.
    Part,
}

/// Decides the cuts for a lead sample (`sync`: a keyframe), given how long the segment and
/// part in progress are up to it, how many samples the part holds, the duration of the part's
/// last sample, and the expected duration of the next sample.
pub(super) fn decide(
    sync: bool,
    segment_len: LeadTicks,
    part_len: LeadTicks,
    part_samples: usize,
    last_len: LeadTicks,
    next_estimate: LeadTicks,
    locked: &Locked,
) -> Cuts {
    let before_last = part_len > locked.part_target && part_samples > 1;
    let part_len = if before_last { last_len } else { part_len };
    let at_sample = if sync && segment_len >= locked.segment_close {
        Cut::Segment
    } else if part_len + next_estimate > locked.part_target {
        Cut::Part
    } else {
        Cut::None
    };
    Cuts {
        before_last,
        at_sample,
    }
}

impl Packager {
    /// One lead sample on the output clock: closes parts and segments as it requires.
    pub(super) fn on_lead_sample(&mut self, sample: Pending, now: WallClock, mut locked: Locked) {
        if self.segmenter.next_msn - self.config.first_msn <= FIRST_PLAYLIST_SEGMENTS as u64 {
            // The stream's first segments close on the first keyframe after 3/8 of the target
            // rather than 3/4: with keyframes every second and a 2 s target, the first playlist
            // (three segments) comes after 3 s instead of 6 s.
            locked.segment_close = LeadTicks(locked.segment_close.get() / 2);
        }
        let at = LeadTicks::of_lead_sample(sample.dts);
        if let Some(filler) = self.filler.as_mut() {
            filler.observe(&sample);
        }
        if self.timeline.pdt_anchor.is_none() {
            self.timeline.pdt_anchor = Some((at, now));
            self.timeline.pdt_lag_ms = self.gap.resume_lateness_ms.take().unwrap_or(0);
        }
        // How late keyframes usually arrive: after a stall, a backlog is judged against it.
        if let (true, Some((anchor, wall))) = (sample.sync, self.timeline.pdt_anchor) {
            if let Some(dated) = at.wall_clock(anchor, wall, self.lead_scale) {
                self.gap.usual_lateness_ms = now.0.checked_sub(dated.0);
            }
        }
        if self.renditions[0].open.is_none() {
            // First sample of a timeline: open a segment.
            self.segmenter.part_start = at;
            self.open_segments(at, sample.sync);
        }
        if let Some(mut prev) = self.segmenter.lead_pending.take() {
            let step = at - LeadTicks::of_lead_sample(prev.dts);
            if step > locked.gap_threshold {
                self.resume_after_stall(prev, sample, locked);
                return;
            }
            if step > locked.part_target {
                // A frame longer than PART-TARGET (a low frame rate dropping frames): no part
                // may hold it whole, so the rest of its interval becomes GAP parts.
                self.bridge_short_hole(prev, at, locked);
                if sample.sync && at - self.segment_start(at) >= locked.segment_close {
                    self.close_segments(at);
                    self.open_segments(at, true);
                }
                self.segmenter.lead_pending = Some(sample);
                return;
            }
            // At most the gap threshold (a few frames): fits in a u32.
            let dur = step.get().max(1);
            prev.dur = Some(dur as u32);
            self.tracks[self.lead].last_dur = dur as u32;
            self.segmenter.part_samples.push(prev);
        }
        if let Some(last) = self.segmenter.part_samples.last() {
            let last_len = at - LeadTicks::of_lead_sample(last.dts);
            let cuts = decide(
                sample.sync,
                at - self.segment_start(at),
                at - self.segmenter.part_start,
                self.segmenter.part_samples.len(),
                last_len,
                LeadTicks(i64::from(self.tracks[self.lead].last_dur.max(1))),
                &locked,
            );
            if cuts.before_last {
                let boundary = at - last_len;
                self.close_part(boundary);
                let next_sync = self.segmenter.part_samples.first().is_some_and(|p| p.sync);
                if cuts.at_sample != Cut::Segment {
                    self.maybe_force_cut(boundary, next_sync, locked);
                } else if at - self.segment_start(at) > locked.segment_limit {
                    // Closing at the keyframe would outgrow TD + 0.5 s: close at the boundary,
                    // so the last sample makes a short segment of its own.
                    self.close_segments(boundary);
                    self.open_segments(boundary, next_sync);
                }
            }
            match cuts.at_sample {
                Cut::None => {}
                Cut::Segment => {
                    self.close_part(at);
                    self.close_segments(at);
                    self.open_segments(at, true);
                }
                Cut::Part => {
                    self.close_part(at);
                    self.maybe_force_cut(at, sample.sync, locked);
                }
            }
        }
        self.segmenter.lead_pending = Some(sample);
    }

    /// Cuts the segment at `at` between keyframes if it would otherwise outgrow TD + 0.5 s.
    pub(super) fn maybe_force_cut(&mut self, at: LeadTicks, next_sync: bool, locked: Locked) {
        if at - self.segment_start(at) + locked.part_target > locked.segment_limit {
            let msn = self.renditions[0].open.as_ref().map(|o| o.msn).unwrap_or(0);
            self.close_segments(at);
            self.open_segments(at, next_sync);
            self.independent_segments = false;
            self.warn_keyframes(format!(
                "no keyframe within the {} s target duration: segment {msn} was cut between keyframes, so the next one does not start with a keyframe",
                locked.target_duration
            ));
        }
    }

    /// Where the segment in progress started (`at` when none is open).
    pub(super) fn segment_start(&self, at: LeadTicks) -> LeadTicks {
        self.renditions[0]
            .open
            .as_ref()
            .map(|o| o.start)
            .unwrap_or(at)
    }

    /// Opens segment `next_msn` at lead time `at` in every rendition.
    pub(super) fn open_segments(&mut self, at: LeadTicks, independent: bool) {
        if std::mem::take(&mut self.segmenter.init_pending) {
            self.emit_init();
        }
        let msn = self.segmenter.next_msn;
        self.segmenter.next_msn += 1;
        let pdt = self.timeline.pdt_at(at, self.lead_scale);
        let mut discontinuity = std::mem::take(&mut self.timeline.pending_discontinuity);
        if msn == self.config.first_msn {
            if let Some(bridge) = self.config.bridge.take() {
                // A continued stream: the old run's last MSNs as GAP before the first segment,
                // which then starts a discontinuity.
                discontinuity |= self.list_bridge(bridge, at, pdt);
            }
        }
        for r in &mut self.renditions {
            r.open = Some(Open::new(
                msn,
                at,
                pdt,
                discontinuity,
                r.map_uri.clone(),
                independent,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKED: Locked = Locked {
        part_target: LeadTicks(18_181),
        frame_ticks: LeadTicks(3000),
        target_duration: 2,
        segment_close: LeadTicks(135_000),
        segment_limit: LeadTicks(224_999),
        gap_threshold: LeadTicks(18_181),
    };

    fn decide(sync: bool, segment: i64, part: i64, samples: usize, last: i64) -> Cuts {
        super::decide(
            sync,
            LeadTicks(segment),
            LeadTicks(part),
            samples,
            LeadTicks(last),
            LeadTicks(3000),
            &LOCKED,
        )
    }

    fn cuts(before_last: bool, at_sample: Cut) -> Cuts {
        Cuts {
            before_last,
            at_sample,
        }
    }

    #[test]
    fn parts_close_before_the_frame_that_would_overflow() {
        // Five frames in: a sixth fits, a seventh would not.
        assert_eq!(
            decide(false, 15_000, 15_000, 5, 3000),
            cuts(false, Cut::None)
        );
        assert_eq!(
            decide(false, 18_000, 18_000, 6, 3000),
            cuts(false, Cut::Part)
        );
    }

    #[test]
    fn jitter_over_the_target_closes_before_the_last_sample() {
        assert_eq!(
            decide(false, 18_200, 18_200, 6, 3200),
            cuts(true, Cut::None)
        );
        // A single long sample is never split.
        assert_eq!(
            decide(false, 18_200, 18_200, 1, 18_200),
            cuts(false, Cut::Part)
        );
    }

    #[test]
    fn a_long_last_sample_closes_its_own_part_at_once() {
        // 30 fps, then a 1 fps frame: the part closes before it, and that frame's part closes
        // at the new sample too, rather than lagging a frame behind.
        assert_eq!(
            decide(false, 120_000, 105_000, 6, 90_000),
            cuts(true, Cut::Part)
        );
        // The same on a keyframe: two parts, then the segment.
        assert_eq!(
            decide(true, 180_000, 105_000, 6, 90_000),
            cuts(true, Cut::Segment)
        );
    }

    #[test]
    fn segments_close_on_a_late_enough_keyframe() {
        assert_eq!(
            decide(true, 135_000, 3000, 1, 3000),
            cuts(false, Cut::Segment)
        );
        assert_eq!(decide(true, 132_000, 3000, 1, 3000), cuts(false, Cut::None));
        assert_eq!(
            decide(false, 135_000, 3000, 1, 3000),
            cuts(false, Cut::None)
        );
    }
}
