//! Part and segment cuts on the lead track's DTS timeline: a part closes before the frame
//! that would overflow PART-TARGET; a segment closes on the first keyframe after three
//! quarters of the segment target, or is cut between keyframes when none comes in time.

use crate::media::WallClock;

use super::probe::Locked;
use super::time::LeadTicks;
use super::timeline::Pending;
use super::window::Open;
use super::Packager;

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
pub(super) enum Cut {
    /// Nothing closes.
    None,
    /// A keyframe late enough in the segment: close the part and the segment before it.
    Segment,
    /// Timestamp jitter pushed the part over PART-TARGET: close it before its last sample.
    PartBeforeLast,
    /// The next sample would overflow PART-TARGET: close the part before this sample.
    Part,
}

/// Decides the cut for a lead sample at `at` (`sync`: a keyframe), given how long the segment
/// and part in progress are, how many samples the part holds, and the expected duration of
/// the next sample.
pub(super) fn decide(
    sync: bool,
    segment_len: LeadTicks,
    part_len: LeadTicks,
    part_samples: usize,
    next_estimate: LeadTicks,
    locked: &Locked,
) -> Cut {
    if sync && segment_len >= locked.segment_close {
        Cut::Segment
    } else if part_len > locked.part_target && part_samples > 1 {
        Cut::PartBeforeLast
    } else if part_len + next_estimate > locked.part_target {
        Cut::Part
    } else {
        Cut::None
    }
}

impl Packager {
    /// One lead sample on the output clock: closes parts and segments as it requires.
    pub(super) fn on_lead_sample(&mut self, sample: Pending, now: WallClock, locked: Locked) {
        let at = LeadTicks::of_lead_sample(sample.dts);
        if self.timeline.pdt_anchor.is_none() {
            self.timeline.pdt_anchor = Some((at, now));
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
            // At most the gap threshold (a few frames): fits in a u32.
            let dur = step.get().max(1);
            prev.dur = Some(dur as u32);
            self.tracks[self.lead].last_dur = dur as u32;
            self.segmenter.part_samples.push(prev);
        }
        if !self.segmenter.part_samples.is_empty() {
            let segment_start = self.renditions[0]
                .open
                .as_ref()
                .map(|o| o.start)
                .unwrap_or(at);
            let cut = decide(
                sample.sync,
                at - segment_start,
                at - self.segmenter.part_start,
                self.segmenter.part_samples.len(),
                LeadTicks(i64::from(self.tracks[self.lead].last_dur.max(1))),
                &locked,
            );
            match cut {
                Cut::None => {}
                Cut::Segment => {
                    self.close_part(at);
                    self.close_segments(at);
                    self.open_segments(at, true);
                }
                Cut::PartBeforeLast => {
                    let boundary = self
                        .segmenter
                        .part_samples
                        .last()
                        .map(|p| LeadTicks::of_lead_sample(p.dts))
                        .unwrap_or(at);
                    self.close_part(boundary);
                    let next_sync = self.segmenter.part_samples.first().is_some_and(|p| p.sync);
                    self.maybe_force_cut(boundary, segment_start, next_sync, locked);
                }
                Cut::Part => {
                    self.close_part(at);
                    self.maybe_force_cut(at, segment_start, sample.sync, locked);
                }
            }
        }
        self.segmenter.lead_pending = Some(sample);
    }

    /// Cuts the segment at `at` between keyframes if it would otherwise outgrow TD + 0.5 s.
    fn maybe_force_cut(
        &mut self,
        at: LeadTicks,
        segment_start: LeadTicks,
        next_sync: bool,
        locked: Locked,
    ) {
        if at - segment_start + locked.part_target > locked.segment_limit {
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

    /// Opens segment `next_msn` at lead time `at` in every rendition.
    pub(super) fn open_segments(&mut self, at: LeadTicks, independent: bool) {
        if std::mem::take(&mut self.segmenter.init_pending) {
            self.emit_init();
        }
        let msn = self.segmenter.next_msn;
        self.segmenter.next_msn += 1;
        let pdt = self.timeline.pdt_at(at, self.lead_scale);
        let discontinuity = std::mem::take(&mut self.timeline.pending_discontinuity);
        for r in &mut self.renditions {
            r.open = Some(Open {
                msn,
                start: at,
                pdt,
                discontinuity,
                map_uri: r.map_uri.clone(),
                parts: Vec::new(),
                part_bytes: Vec::new(),
                bytes: 0,
                independent,
            });
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

    fn decide(
        sync: bool,
        segment: i64,
        part: i64,
        samples: usize,
        next: i64,
        locked: &Locked,
    ) -> Cut {
        super::decide(
            sync,
            LeadTicks(segment),
            LeadTicks(part),
            samples,
            LeadTicks(next),
            locked,
        )
    }

    #[test]
    fn parts_close_before_the_frame_that_would_overflow() {
        // Five frames in: a sixth fits, a seventh would not.
        assert_eq!(decide(false, 15_000, 15_000, 5, 3000, &LOCKED), Cut::None);
        assert_eq!(decide(false, 18_000, 18_000, 6, 3000, &LOCKED), Cut::Part);
    }

    #[test]
    fn jitter_over_the_target_closes_before_the_last_sample() {
        assert_eq!(
            decide(false, 18_200, 18_200, 6, 3000, &LOCKED),
            Cut::PartBeforeLast
        );
        // A single long sample is never split.
        assert_eq!(decide(false, 18_200, 18_200, 1, 3000, &LOCKED), Cut::Part);
    }

    #[test]
    fn segments_close_on_a_late_enough_keyframe() {
        assert_eq!(decide(true, 135_000, 3000, 1, 3000, &LOCKED), Cut::Segment);
        assert_eq!(decide(true, 132_000, 3000, 1, 3000, &LOCKED), Cut::None);
        assert_eq!(decide(false, 135_000, 3000, 1, 3000, &LOCKED), Cut::None);
    }
}
