//! Input time to output time: per-track input checks, the stream shift that keeps `tfdt`
//! continuous across reconnects, timestamp-reset detection, audio sample counting, and the
//! PROGRAM-DATE-TIME anchor.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::codec::{opus_packet_samples, CodecConfig};
use crate::media::{rescale, Frame, TrackConfig, TrackKind, WallClock};

use super::{Packager, PackagerError};

/// Nanoseconds per second: inputs on any clock are compared and shifted in nanoseconds.
pub(super) const NS: u32 = 1_000_000_000;
/// A DTS jump larger than this (either way) is read as a timestamp reset: a discontinuity.
pub(super) const RESET_NS: i64 = 5_000_000_000;

/// One sample on its track's output clock, waiting to be put in a part.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// Output DTS (track ticks).
    pub(super) dts: i64,
    /// Composition offset (track ticks).
    pub(super) cts: i32,
    pub(super) sync: bool,
    pub(super) data: Bytes,
    /// Duration (track ticks), once known.
    pub(super) dur: Option<u32>,
}

/// One input track and its output clock.
#[derive(Debug)]
pub(super) struct Track {
    pub(super) cfg: TrackConfig,
    /// Output timescale (Hz).
    pub(super) scale: u32,
    pub(super) lead: bool,
    /// Output = rescale(input ns + stream shift ns + cts_shift ns).
    pub(super) cts_shift_ns: Option<i64>,
    /// The last input DTS accepted (ticks, Hz).
    pub(super) last_in: Option<(i64, u32)>,
    /// Where the next audio sample should start (track ticks).
    pub(super) next_dts: Option<i64>,
    /// Non-lead samples waiting for the lead's part boundary.
    pub(super) pending: VecDeque<Pending>,
    /// Duration of the last sample (track ticks).
    pub(super) last_dur: u32,
}

impl Track {
    pub(super) fn new(cfg: TrackConfig, lead: bool) -> Self {
        Track {
            scale: cfg.codec.timescale().hz(),
            lead,
            cfg,
            cts_shift_ns: None,
            last_in: None,
            next_dts: None,
            pending: VecDeque::new(),
            last_dur: 0,
        }
    }
}

/// Where the output timeline stands.
#[derive(Debug)]
pub(super) struct Timeline {
    /// Stream shift in ns: output time = input time + shift.
    pub(super) shift_ns: Option<i64>,
    /// End of the output timeline so far (lead ticks) for re-anchoring after discontinuities.
    pub(super) end: i64,
    /// (lead ticks, wall clock) of the first sample of this timeline: PROGRAM-DATE-TIME.
    pub(super) pdt_anchor: Option<(i64, WallClock)>,
    /// The next segment opened carries EXT-X-DISCONTINUITY.
    pub(super) pending_discontinuity: bool,
    /// Frames are dropped until the lead track's next keyframe.
    pub(super) waiting_for_keyframe: bool,
    /// Frames dropped while waiting for a keyframe (reported once timing is fixed).
    pub(super) dropped_before_keyframe: u64,
    /// The latest wall clock seen.
    pub(super) last_wall: WallClock,
}

impl Timeline {
    pub(super) fn new() -> Self {
        Timeline {
            shift_ns: None,
            end: 0,
            pdt_anchor: None,
            pending_discontinuity: false,
            waiting_for_keyframe: true,
            dropped_before_keyframe: 0,
            last_wall: WallClock(0),
        }
    }

    /// PROGRAM-DATE-TIME of lead time `at` (the last wall clock before the anchor is set).
    pub(super) fn pdt_at(&self, at: i64, lead_scale: i64) -> WallClock {
        match self.pdt_anchor {
            Some((anchor, wall)) => WallClock(wall.0 + (at - anchor) * 1000 / lead_scale),
            None => self.last_wall,
        }
    }
}

/// How a frame's DTS relates to the previous one on its track.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Jump {
    /// Increasing by less than the reset threshold (or the track's first frame).
    Continues,
    /// A jump of more than [`RESET_NS`] either way: the timestamps were reset.
    Reset,
}

/// Checks a frame's timestamps against its track's last DTS.
pub(super) fn check_timestamps(track: &Track, frame: &Frame) -> Result<Jump, PackagerError> {
    let dts_ns = rescale(frame.dts.ticks, frame.dts.scale.hz(), NS);
    let pts_ns = rescale(frame.pts.ticks, frame.pts.scale.hz(), NS);
    if pts_ns < dts_ns {
        return Err(PackagerError::PtsBeforeDts {
            track: frame.track,
            dts: frame.dts.ticks,
            pts: frame.pts.ticks,
        });
    }
    let Some((last, last_scale)) = track.last_in else {
        return Ok(Jump::Continues);
    };
    let last_ns = rescale(last, last_scale, NS);
    if dts_ns <= last_ns {
        if last_ns - dts_ns > RESET_NS {
            // Timestamps reset (encoder restart): a discontinuity, not an error.
            Ok(Jump::Reset)
        } else {
            Err(PackagerError::DtsNotIncreasing {
                track: frame.track,
                dts: frame.dts.ticks,
                last,
            })
        }
    } else if dts_ns - last_ns > RESET_NS {
        Ok(Jump::Reset)
    } else {
        Ok(Jump::Continues)
    }
}

/// The arrival `arrival` of a probed frame, moved earlier to what the least-delayed frame
/// implies (`offset` from [`Packager::least_delay_offset`]), by at most 2 s.
pub(super) fn earliest_arrival(
    offset: Option<i64>,
    frame: &Frame,
    arrival: WallClock,
) -> WallClock {
    match offset {
        Some(offset) => {
            let media_ms = rescale(frame.dts.ticks, frame.dts.scale.hz(), 1000);
            WallClock(arrival.0.min(offset + media_ms).max(arrival.0 - 2000))
        }
        None => arrival,
    }
}

impl Packager {
    /// Input ticks of track `ti` to its output clock.
    fn to_out(&self, ti: usize, in_ticks: i64, in_scale: u32) -> i64 {
        let track = &self.tracks[ti];
        let ns = rescale(in_ticks, in_scale, NS)
            + self.timeline.shift_ns.unwrap_or(0)
            + track.cts_shift_ns.unwrap_or(0);
        rescale(ns, NS, track.scale)
    }

    /// Maps one frame to its output clock and hands it to the segmenter (lead) or queues it
    /// behind the lead (others).
    pub(super) fn run_frame(&mut self, frame: Frame, now: WallClock) {
        let Some(locked) = self.locked() else { return };
        let ti = match self.tracks.iter().position(|t| t.cfg.id == frame.track) {
            Some(i) => i,
            None => return,
        };
        let is_lead = ti == self.lead;
        if self.timeline.waiting_for_keyframe {
            if !(is_lead && frame.keyframe) {
                self.timeline.dropped_before_keyframe += 1;
                return;
            }
            self.timeline.waiting_for_keyframe = false;
            self.close_gap();
            let dts_ns = rescale(frame.dts.ticks, frame.dts.scale.hz(), NS);
            // Map the first keyframe to the end of the timeline so far: tfdt stays continuous
            // across reconnects.
            let end_ns = rescale(self.timeline.end, self.lead_scale as u32, NS);
            self.timeline.shift_ns = Some(end_ns - dts_ns);
            for track in &mut self.tracks {
                // next_dts survives: audio of the new timeline must not overlap the old.
                track.cts_shift_ns = None;
                track.pending.clear();
            }
            self.timeline.pdt_anchor = None;
        }
        let in_scale = frame.dts.scale.hz();
        if self.tracks[ti].cts_shift_ns.is_none() {
            let shift = if self.tracks[ti].cfg.kind() == TrackKind::Video {
                rescale(frame.pts.ticks - frame.dts.ticks, in_scale, NS).max(0)
            } else {
                0
            };
            self.tracks[ti].cts_shift_ns = Some(shift);
        }
        let mut dts = self.to_out(ti, frame.dts.ticks, in_scale);
        let pts_unshifted = {
            let ns = rescale(frame.pts.ticks, frame.pts.scale.hz(), NS)
                + self.timeline.shift_ns.unwrap_or(0);
            rescale(ns, NS, self.tracks[ti].scale)
        };
        // Audio: count samples rather than trust rounded (millisecond) timestamps.
        let audio_dur = match &self.tracks[ti].cfg.codec {
            CodecConfig::Aac(c) => Some(c.frame_length),
            CodecConfig::Opus(_) => opus_packet_samples(&frame.data),
            _ => None,
        };
        if let (Some(dur), Some(expected)) = (audio_dur, self.tracks[ti].next_dts) {
            let frame_ticks = i64::from(dur);
            let drift = dts - expected;
            if drift.abs() <= frame_ticks / 2 {
                dts = expected;
            } else if drift < 0 {
                // Would overlap audio already packaged (after a reconnect, or a publisher
                // whose audio clock runs fast): drop it so tfdt never goes backwards.
                return;
            }
            // drift > half a frame: a real gap in the audio; keep the timestamp.
        }
        if !is_lead {
            // Non-lead samples before the lead's first sample of this timeline are dropped.
            if self.segmenter.lead_pending.is_none() && self.segmenter.part_samples.is_empty() {
                return;
            }
            let dur = audio_dur.unwrap_or(self.tracks[ti].last_dur.max(1));
            let track = &mut self.tracks[ti];
            track.next_dts = Some(dts + i64::from(dur));
            track.pending.push_back(Pending {
                dts,
                cts: 0,
                sync: true,
                data: frame.data,
                dur: Some(dur),
            });
            return;
        }
        let cts = (pts_unshifted - dts).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        if let Some(dur) = audio_dur {
            self.tracks[ti].next_dts = Some(dts + i64::from(dur));
        }
        let sample = Pending {
            dts,
            cts,
            sync: frame.keyframe,
            data: frame.data,
            dur: audio_dur,
        };
        self.on_lead_sample(sample, now, locked);
    }

    /// Wall clock minus media time (ms) of the first segment's least-delayed lead frame.
    /// Publishers often burst their first frames late (encoder start-up, a WebRTC ingest
    /// waiting for sender reports); anchoring PROGRAM-DATE-TIME on the first frame's arrival
    /// would date the whole stream that much late, so the probe's frames are dated by the
    /// frame that arrived earliest relative to its timestamp.
    pub(super) fn least_delay_offset(&self, buf: &[(Frame, WallClock)]) -> Option<i64> {
        let lead = self.tracks[self.lead].cfg.id;
        buf.iter()
            .filter(|(frame, _)| frame.track == lead)
            .map(|(frame, arrival)| {
                arrival.0 - rescale(frame.dts.ticks, frame.dts.scale.hz(), 1000)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaTime;
    use crate::synth::{video_track, VIDEO};

    fn frame(dts_ms: i64, pts_ms: i64) -> Frame {
        Frame {
            track: VIDEO,
            dts: MediaTime::from_millis(dts_ms),
            pts: MediaTime::from_millis(pts_ms),
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    #[test]
    fn small_steps_continue_large_jumps_reset() {
        let mut track = Track::new(video_track(), true);
        assert_eq!(check_timestamps(&track, &frame(0, 0)), Ok(Jump::Continues));
        track.last_in = Some((1000, 1000));
        assert_eq!(
            check_timestamps(&track, &frame(1033, 1033)),
            Ok(Jump::Continues)
        );
        assert_eq!(
            check_timestamps(&track, &frame(7000, 7000)),
            Ok(Jump::Reset)
        );
        assert_eq!(
            check_timestamps(&track, &frame(0, 0)),
            Err(PackagerError::DtsNotIncreasing {
                track: VIDEO,
                dts: 0,
                last: 1000
            })
        );
        track.last_in = Some((10_000, 1000));
        assert_eq!(check_timestamps(&track, &frame(0, 0)), Ok(Jump::Reset));
        assert!(matches!(
            check_timestamps(&track, &frame(10_100, 10_000)),
            Err(PackagerError::PtsBeforeDts { .. })
        ));
    }

    #[test]
    fn probed_arrivals_move_earlier_by_at_most_two_seconds() {
        let f = frame(1000, 1000);
        assert_eq!(earliest_arrival(None, &f, WallClock(5000)), WallClock(5000));
        assert_eq!(
            earliest_arrival(Some(3500), &f, WallClock(5000)),
            WallClock(4500)
        );
        assert_eq!(
            earliest_arrival(Some(0), &f, WallClock(5000)),
            WallClock(3000)
        );
        assert_eq!(
            earliest_arrival(Some(9000), &f, WallClock(5000)),
            WallClock(5000)
        );
    }

    #[test]
    fn pdt_follows_the_anchor() {
        let mut timeline = Timeline::new();
        timeline.last_wall = WallClock(77);
        assert_eq!(timeline.pdt_at(90_000, 90_000), WallClock(77));
        timeline.pdt_anchor = Some((90_000, WallClock(1_000)));
        assert_eq!(timeline.pdt_at(180_000, 90_000), WallClock(2_000));
    }
}
