//! The timing probe: the first segment is buffered until it closes; its keyframe interval
//! fixes EXT-X-TARGETDURATION and its frame rate fixes PART-TARGET, for the life of the stream.

use crate::media::{rescale, Frame, TrackKind, WallClock};
use crate::playlist::StreamTiming;
use crate::render::round_up_precision;

use super::time::{LeadTicks, NS};
use super::Packager;

/// Timing fixed by the probe.
#[derive(Debug, Clone, Copy)]
pub(super) struct Locked {
    /// PART-TARGET: whole frames plus the timestamp jitter allowance.
    pub(super) part_target: LeadTicks,
    /// Nominal frame (or audio packet) duration.
    pub(super) frame_ticks: LeadTicks,
    /// EXT-X-TARGETDURATION (seconds).
    pub(super) target_duration: u32,
    /// A keyframe at least this far into a segment closes it (3/4 of the segment target).
    pub(super) segment_close: LeadTicks,
    /// A segment is cut between keyframes rather than grow past this (TD + 0.5 s).
    pub(super) segment_limit: LeadTicks,
    /// A DTS step larger than this is a stall: the hole becomes GAP parts.
    pub(super) gap_threshold: LeadTicks,
}

/// Probing (frames buffered with their arrival) or running with fixed timing.
pub(super) enum Phase {
    Probing(Vec<(Frame, WallClock)>),
    Running(Locked),
}

impl Packager {
    /// Decides whether the probe buffer holds enough to fix TD and PT.
    pub(super) fn probe_done(&mut self) -> Option<Locked> {
        let Phase::Probing(buf) = &mut self.phase else {
            return None;
        };
        let lead_id = self.tracks[self.lead].cfg.id;
        let lead_video = self.tracks[self.lead].cfg.kind() == TrackKind::Video;
        // Drop anything before the first lead keyframe.
        if let Some(first_key) = buf
            .iter()
            .position(|(frame, _)| frame.track == lead_id && frame.keyframe)
        {
            let key_ns = rescale(
                buf[first_key].0.dts.ticks,
                buf[first_key].0.dts.scale.hz(),
                NS,
            );
            let mut idx = 0;
            let mut dropped_lead = 0;
            buf.retain(|(frame, _)| {
                idx += 1;
                let frame_ns = rescale(frame.dts.ticks, frame.dts.scale.hz(), NS);
                let keep = idx > first_key || (frame.track != lead_id && frame_ns >= key_ns);
                if !keep && frame.track == lead_id {
                    dropped_lead += 1;
                }
                keep
            });
            // Only lead frames count: audio slightly ahead of the first keyframe is normal.
            self.timeline.dropped_before_keyframe += dropped_lead;
        } else {
            let lead_frames = buf
                .iter()
                .filter(|(frame, _)| frame.track == lead_id)
                .count();
            buf.clear();
            self.timeline.dropped_before_keyframe += lead_frames as u64;
            return None;
        }
        let lead: Vec<(i64, bool)> = buf
            .iter()
            .filter(|(frame, _)| frame.track == lead_id)
            .map(|(frame, _)| {
                (
                    rescale(frame.dts.ticks, frame.dts.scale.hz(), NS),
                    frame.keyframe,
                )
            })
            .collect();
        let first = lead.first()?.0;
        let &(last, last_key) = lead.last()?;
        let segment_target_ns = self.config.segment_target.as_nanos() as i64;
        let elapsed = last - first;
        let max_ns = i64::from(self.config.max_target_duration) * 1_000_000_000;
        // The first segment closes early, as the segmenter's first segments do.
        let closes = (last_key && elapsed >= segment_target_ns * 3 / 8)
            || (self.probe_at_end && elapsed > 0);
        if !(closes || elapsed >= max_ns) || lead.len() < 3 {
            return None;
        }
        // Frame duration: the mean DTS delta (millisecond timestamps make single deltas
        // jitter), or the SPS frame rate when it agrees within 10% — but never shorter than
        // the measured mean: an SPS that claims 25 fps for 24 fps frames would make parts of
        // whole real frames overflow PART-TARGET (found by the packager fuzz target).
        let mean_ns = (last - first) / (lead.len() as i64 - 1);
        let lead_scale = self.lead_scale;
        let mut frame_ticks = rescale(mean_ns, NS, lead_scale as u32).max(1);
        if let Some(fixed) = self.tracks[self.lead].cfg.codec.audio_frame_ticks() {
            frame_ticks = fixed;
        } else if let Some(fps) = self.tracks[self.lead].cfg.codec.frame_rate() {
            let sps_frame_ticks = (lead_scale as f64 / fps).round() as i64;
            let difference = (i128::from(sps_frame_ticks) - i128::from(frame_ticks)).abs();
            if difference * 10 <= i128::from(frame_ticks) {
                frame_ticks = sps_frame_ticks.max(frame_ticks);
            }
        }
        let configured_part = rescale(
            self.config.part_target.as_nanos() as i64,
            NS,
            lead_scale as u32,
        );
        let frames_per_part = ((configured_part as f64 / frame_ticks as f64).round() as i64).max(1);
        // Jitter allowance: two input ticks (ms timestamps from RTMP jitter by one at each end).
        let in_scale = buf
            .iter()
            .find(|(frame, _)| frame.track == lead_id)
            .map(|(frame, _)| frame.dts.scale.hz())
            .unwrap_or(lead_scale as u32);
        let jitter = if in_scale as i64 >= lead_scale {
            1
        } else {
            2 * lead_scale / in_scale as i64 + 1
        };
        let part_target = frames_per_part * frame_ticks + jitter;
        let first_seg_secs = if closes {
            elapsed as f64 / 1e9
        } else {
            max_ns as f64 / 1e9
        };
        let td = (self.config.segment_target.as_secs_f64().round() as u32)
            .max(first_seg_secs.round() as u32)
            .clamp(1, self.config.max_target_duration);
        if lead_video && first_seg_secs > self.config.segment_target.as_secs_f64() + 0.5 {
            let gop = if closes {
                format!("{first_seg_secs:.2} s")
            } else {
                format!("over {first_seg_secs:.0} s")
            };
            self.warn_keyframes(format!(
                "keyframe interval {gop} is longer than the {:.1} s segment target: TARGETDURATION is fixed at {td} s for this stream{}",
                self.config.segment_target.as_secs_f64(),
                if closes { "" } else { " and segments will be cut between keyframes" }
            ));
        }
        let td_ticks = i64::from(td) * lead_scale;
        Some(Locked {
            part_target: LeadTicks(part_target),
            frame_ticks: LeadTicks(frame_ticks),
            target_duration: td,
            segment_close: LeadTicks(rescale(segment_target_ns * 3 / 4, NS, lead_scale as u32)),
            segment_limit: LeadTicks(td_ticks + lead_scale / 2 - 1),
            gap_threshold: LeadTicks(part_target.max(3 * frame_ticks)),
        })
    }

    pub(super) fn lock_timing(&mut self, locked: Locked) {
        let lead_part_secs = locked.part_target.secs(self.lead_scale);
        let lead_pt = round_up_precision(lead_part_secs);
        let mut max_pt = lead_pt;
        for r in &mut self.renditions {
            let has_lead = r.tracks.contains(&self.lead);
            r.part_target = if has_lead {
                lead_pt
            } else {
                // A rendition of non-lead audio: its parts follow the lead grid and may hold
                // one more audio frame than the lead part's time span.
                let extra = r
                    .tracks
                    .iter()
                    .map(|&i| {
                        let track = &self.tracks[i];
                        let frame = track
                            .cfg
                            .codec
                            .audio_frame_ticks()
                            .unwrap_or(i64::from(track.scale) / 50);
                        frame as f64 / f64::from(track.scale)
                    })
                    .fold(0.0, f64::max);
                round_up_precision(lead_part_secs + extra)
            };
            max_pt = max_pt.max(r.part_target);
        }
        let td = f64::from(locked.target_duration);
        self.timing = Some(StreamTiming {
            target_duration: locked.target_duration,
            part_hold_back: round_up_precision(3.0 * max_pt),
            hold_back: 3.0 * td,
            can_skip_until: self.config.delta_updates.then_some(6.0 * td),
        });
        if self.timeline.dropped_before_keyframe > 0 {
            let n = self.timeline.dropped_before_keyframe;
            self.warn(format!(
                "dropped {n} frames that arrived before the first keyframe"
            ));
        }
    }

    pub(super) fn locked(&self) -> Option<Locked> {
        match self.phase {
            Phase::Running(locked) => Some(locked),
            Phase::Probing(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Publisher;
    use crate::PackagerConfig;

    fn probe(fps: f64, gop: u32) -> Locked {
        let mut publisher = Publisher::new(fps, gop);
        let mut packager = Packager::new(PackagerConfig::default(), publisher.tracks()).unwrap();
        for _ in 0..2_000 {
            let (frame, now) = publisher.next_frame();
            packager.handle_frame(frame, now).unwrap();
            if let Some(locked) = packager.locked() {
                return locked;
            }
        }
        panic!("timing never locked");
    }

    #[test]
    fn thirty_fps_two_second_gop() {
        let locked = probe(30.0, 60);
        assert_eq!(locked.frame_ticks, LeadTicks(3000));
        // Six frames per 200 ms part, plus two millisecond ticks of jitter allowance at 90 kHz.
        assert_eq!(locked.part_target, LeadTicks(6 * 3000 + 181));
        assert_eq!(locked.target_duration, 2);
        assert_eq!(locked.segment_close, LeadTicks(135_000));
        assert_eq!(locked.segment_limit, LeadTicks(2 * 90_000 + 45_000 - 1));
        assert_eq!(locked.gap_threshold, LeadTicks(6 * 3000 + 181));
    }

    #[test]
    fn long_gop_raises_the_target_duration() {
        let locked = probe(25.0, 100);
        assert_eq!(locked.frame_ticks, LeadTicks(3600));
        assert_eq!(locked.target_duration, 4);
    }
}
