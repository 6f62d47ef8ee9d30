//! Input time to output time: per-track input checks, the stream shift that keeps `tfdt`
//! continuous across reconnects, timestamp-reset detection, audio sample counting, and the
//! PROGRAM-DATE-TIME anchor.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::codec::{opus_packet_samples, silent_audio_frame, CodecConfig};
use crate::media::{rescale, Frame, TrackConfig, TrackKind, WallClock};

use super::gap::{resume_on_keyframe, Resume, BACKLOG_MS};
use super::probe::Locked;
use super::time::{
    rescale_within, wall_clock_in_range, InputNs, LeadTicks, TrackTicks, NS, OUTPUT_LIMIT_NS,
};
use super::{Packager, PackagerError};

/// A DTS jump larger than this (either way) is read as a timestamp reset: a discontinuity.
pub(super) const RESET_NS: i64 = 5_000_000_000;
/// Audio holes up to this many frames are filled: with silent frames, or by stretching a frame
/// where the codec has none (see `Packager::run_frame`). Longer ones are kept as real gaps: a
/// publisher that stopped, which the gap module fills or lists as GAP on both tracks alike.
const MAX_FILLED_AUDIO_FRAMES: i64 = 10;

/// A lead sample dated at most this far (ms) ahead of its arrival goes out at once.
const PACE_SLACK_MS: i64 = 20;

/// Target durations of lead samples held for their date at most ([`Packager::release_paced`]).
const PACED_LIMIT_TDS: i64 = 3;
/// PTS may follow DTS by at most this much (B-frame reordering is well under a second).
pub(super) const MAX_PTS_DELAY_NS: i64 = 3_600 * NS as i64;

/// One sample on its track's output clock, waiting to be put in a part.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    /// Output DTS.
    pub(super) dts: TrackTicks,
    /// Composition offset (track ticks).
    pub(super) cts: i32,
    pub(super) sync: bool,
    pub(super) data: Bytes,
    /// Duration (track ticks), once known.
    pub(super) dur: Option<u32>,
}

impl Pending {
    /// A silent audio frame (the codec's, from `silent_audio_frame`) at `dts`.
    pub(super) fn silent(dts: TrackTicks, data: Bytes, dur: u32) -> Self {
        Pending {
            dts,
            cts: 0,
            sync: true,
            data,
            dur: Some(dur),
        }
    }
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
    /// The last input DTS accepted: as given (ticks) and in nanoseconds.
    pub(super) last_in: Option<(i64, InputNs)>,
    /// Where the next audio sample should start.
    pub(super) next_dts: Option<TrackTicks>,
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
    /// End of the output timeline so far, for re-anchoring after discontinuities.
    pub(super) end: LeadTicks,
    /// The first sample of this timeline and its arrival: PROGRAM-DATE-TIME.
    pub(super) pdt_anchor: Option<(LeadTicks, WallClock)>,
    /// PROGRAM-DATE-TIME is this much (ms) earlier than the anchor's arrival clock: after a
    /// publisher resumed late from a stall, the dates keep following its clock rather than
    /// the late arrival, so they never run ahead of the wall clock.
    pub(super) pdt_lag_ms: i64,
    /// The next segment opened carries EXT-X-DISCONTINUITY.
    pub(super) pending_discontinuity: bool,
    /// Frames are dropped until the lead track's next keyframe.
    pub(super) waiting_for_keyframe: bool,
    /// Frames dropped while waiting for a keyframe (reported once timing is fixed).
    pub(super) dropped_before_keyframe: u64,
    /// The latest wall clock seen.
    pub(super) last_wall: WallClock,
    /// Lead samples dated ahead of the wall clock, held until their date
    /// ([`Packager::release_paced`]).
    pub(super) paced: VecDeque<Pending>,
    /// Pacing was reported (once per stream).
    pub(super) pacing_warned: bool,
    /// Frames over the pacing limit were reported (once per stream).
    pub(super) paced_over_warned: bool,
    /// Audio holes filled with silence were reported (once per stream).
    pub(super) silence_warned: bool,
}

impl Timeline {
    pub(super) fn new() -> Self {
        Timeline {
            shift_ns: None,
            end: LeadTicks(0),
            pdt_anchor: None,
            pdt_lag_ms: 0,
            pending_discontinuity: false,
            waiting_for_keyframe: true,
            dropped_before_keyframe: 0,
            last_wall: WallClock(0),
            paced: VecDeque::new(),
            pacing_warned: false,
            paced_over_warned: false,
            silence_warned: false,
        }
    }

    /// Moves the latest wall clock forward to `now` (ignored outside the years 0000-9999).
    pub(super) fn see_wall_clock(&mut self, now: WallClock) {
        if wall_clock_in_range(now) {
            self.last_wall = self.last_wall.max(now);
        }
    }

    /// PROGRAM-DATE-TIME of lead time `at` (the last wall clock before the anchor is set).
    pub(super) fn pdt_at(&self, at: LeadTicks, lead_scale: i64) -> WallClock {
        match self.pdt_anchor {
            Some((anchor, wall)) => at
                .wall_clock(
                    anchor,
                    WallClock(wall.0.saturating_sub(self.pdt_lag_ms)),
                    lead_scale,
                )
                .unwrap_or(self.last_wall),
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

/// Checks a frame's timestamps and arrival against its track's last DTS; returns how it
/// continues and its DTS in nanoseconds. Out-of-range values are errors, never overflows.
pub(super) fn check_timestamps(
    track: &Track,
    frame: &Frame,
    arrival: WallClock,
) -> Result<(Jump, InputNs), PackagerError> {
    let out_of_range = |what| PackagerError::TimestampOutOfRange {
        track: frame.track,
        dts: frame.dts.ticks,
        what,
    };
    if !wall_clock_in_range(arrival) {
        return Err(out_of_range("wall clock"));
    }
    let dts_ns = InputNs::from_media(frame.dts).ok_or_else(|| out_of_range("dts"))?;
    let pts_ns = InputNs::from_media(frame.pts).ok_or_else(|| out_of_range("pts"))?;
    if pts_ns < dts_ns {
        return Err(PackagerError::PtsBeforeDts {
            track: frame.track,
            dts: frame.dts.ticks,
            pts: frame.pts.ticks,
        });
    }
    if pts_ns.since(dts_ns) > MAX_PTS_DELAY_NS {
        return Err(out_of_range("pts - dts"));
    }
    let Some((last, last_ns)) = track.last_in else {
        return Ok((Jump::Continues, dts_ns));
    };
    let jump = if dts_ns <= last_ns {
        if last_ns.since(dts_ns) > RESET_NS {
            // Timestamps reset (encoder restart): a discontinuity, not an error.
            Jump::Reset
        } else {
            return Err(PackagerError::DtsNotIncreasing {
                track: frame.track,
                dts: frame.dts.ticks,
                last,
            });
        }
    } else if dts_ns.since(last_ns) > RESET_NS {
        Jump::Reset
    } else {
        Jump::Continues
    };
    Ok((jump, dts_ns))
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
            // Probed frames passed the input checks: their times and arrivals are in range.
            let media_ms = rescale(frame.dts.ticks, frame.dts.scale.hz(), 1000);
            let earliest = offset.saturating_add(media_ms);
            WallClock(arrival.0.min(earliest).max(arrival.0.saturating_sub(2000)))
        }
        None => arrival,
    }
}

impl Packager {
    /// Input time `at` (plus `offset_ns`) of track `ti` on its output clock; `None` beyond
    /// the output limit.
    fn to_out(&self, ti: usize, at: InputNs, offset_ns: i64) -> Option<TrackTicks> {
        let ns = at
            .get()
            .checked_add(self.timeline.shift_ns.unwrap_or(0))?
            .checked_add(offset_ns)?;
        let ns = rescale_within(ns, NS, NS, OUTPUT_LIMIT_NS)?;
        Some(TrackTicks(rescale(ns, NS, self.tracks[ti].scale)))
    }

    /// After a stall (GAP parts published, timestamps continuing): how late (ms) lead frame
    /// `dts_ns` of track `ti` arrives at `now` on the clock from before the stall. `None` when
    /// no stall is in progress or the input starts a new timeline.
    fn backlog_lateness(&self, ti: usize, dts_ns: InputNs, now: WallClock) -> Option<i64> {
        self.gap.end.or(self.gap.held_from)?;
        if self.timeline.pending_discontinuity {
            return None;
        }
        let (anchor, anchor_wall) = self.gap.anchor_before_stall?;
        let cts_shift_ns = self.tracks[ti].cts_shift_ns?;
        let out = self.to_out(ti, dts_ns, cts_shift_ns)?;
        let dated =
            LeadTicks::of_lead_sample(out).wall_clock(anchor, anchor_wall, self.lead_scale)?;
        now.0.checked_sub(dated.0)
    }

    /// Maps one frame to its output clock and hands it to the segmenter (lead) or queues it
    /// behind the lead (others).
    pub(super) fn run_frame(&mut self, frame: Frame, now: WallClock) {
        let Some(locked) = self.locked() else { return };
        // handle_frame checked both against the input limit before accepting the frame.
        let (Some(dts_ns), Some(pts_ns)) = (
            InputNs::from_media(frame.dts),
            InputNs::from_media(frame.pts),
        ) else {
            return;
        };
        let ti = match self.tracks.iter().position(|t| t.cfg.id == frame.track) {
            Some(i) => i,
            None => return,
        };
        let is_lead = ti == self.lead;
        if is_lead && self.hold_is_open() {
            let at = self.tracks[ti]
                .cts_shift_ns
                .and_then(|shift| self.to_out(ti, dts_ns, shift))
                .map(LeadTicks::of_lead_sample);
            let lateness = self.backlog_lateness(ti, dts_ns, now);
            self.leave_open_hold(at, lateness, locked);
        }
        if self.timeline.waiting_for_keyframe {
            if !(is_lead && frame.keyframe) {
                self.timeline.dropped_before_keyframe += 1;
                self.keep_filling(now, locked);
                return;
            }
            if let Some(lateness) = self.backlog_lateness(ti, dts_ns, now) {
                let threshold =
                    BACKLOG_MS.max(locked.part_target.to_ns(self.lead_scale) / 1_000_000);
                let usual = self.gap.usual_lateness_ms.unwrap_or(0);
                match resume_on_keyframe(lateness, usual, self.gap.dropped_backlog_ms, threshold) {
                    Resume::DropBacklog => {
                        self.gap.dropped_backlog_ms = Some(lateness - usual);
                        self.gap.dropped_backlog_keyframes += 1;
                        self.timeline.dropped_before_keyframe += 1;
                        self.keep_filling(now, locked);
                        return;
                    }
                    Resume::At(lateness) => {
                        if self.gap.dropped_backlog_keyframes > 0 {
                            self.warn(format!(
                                "the publisher resumed with a backlog: dropped {} keyframe intervals captured during the stall and resumed on a keyframe {lateness} ms late, so viewers stay at their latency",
                                self.gap.dropped_backlog_keyframes
                            ));
                        }
                        // After filler: more of it up to where this keyframe belongs, so
                        // the media timeline stays on the wall clock across the stall.
                        if let Some(at) = self.tracks[ti]
                            .cts_shift_ns
                            .and_then(|shift| self.to_out(ti, dts_ns, shift))
                        {
                            self.top_up_filler(LeadTicks::of_lead_sample(at), now, locked);
                        }
                        // Dated on the clock from before the stall (never ahead of the
                        // arrival), but never before the end of what is already published
                        // (GAP parts follow the timeouts' clock; a date going back would map
                        // two media times to one date).
                        let now_ms = now.0;
                        let published_end =
                            self.timeline.pdt_at(self.timeline.end, self.lead_scale).0;
                        let lag = (lateness + self.timeline.pdt_lag_ms)
                            .max(0)
                            .min(now_ms.saturating_sub(published_end));
                        self.gap.resume_lateness_ms = Some(lag);
                    }
                }
            }
            self.timeline.waiting_for_keyframe = false;
            self.close_gap();
            // Map the first keyframe to the end of the timeline so far: tfdt stays continuous
            // across reconnects. (Both are within their limits: the difference fits.)
            let end_ns = self.timeline.end.to_ns(self.lead_scale);
            self.timeline.shift_ns = Some(end_ns - dts_ns.get());
            for track in &mut self.tracks {
                // next_dts survives: audio of the new timeline must not overlap the old.
                track.cts_shift_ns = None;
                track.pending.clear();
            }
            self.timeline.pdt_anchor = None;
        }
        if self.tracks[ti].cts_shift_ns.is_none() {
            let shift = if self.tracks[ti].cfg.kind() == TrackKind::Video {
                pts_ns.since(dts_ns).max(0)
            } else {
                0
            };
            self.tracks[ti].cts_shift_ns = Some(shift);
        }
        let cts_shift_ns = self.tracks[ti].cts_shift_ns.unwrap_or(0);
        let (Some(mut dts), Some(pts_unshifted)) = (
            self.to_out(ti, dts_ns, cts_shift_ns),
            self.to_out(ti, pts_ns, 0),
        ) else {
            self.warn(format!(
                "{}: dts {} lands beyond the output timeline's range; frame dropped",
                frame.track, frame.dts.ticks
            ));
            return;
        };
        // Audio: count samples rather than trust rounded (millisecond) timestamps.
        let audio_dur = match &self.tracks[ti].cfg.codec {
            CodecConfig::Aac(c) => Some(c.frame_length),
            CodecConfig::Opus(_) => opus_packet_samples(&frame.data),
            _ => None,
        };
        // A hole before this audio frame, to be filled with silent frames or covered by
        // stretching a frame over it.
        let mut hole = 0i64;
        let mut silence = None;
        if let (Some(dur), Some(expected)) = (audio_dur, self.tracks[ti].next_dts) {
            let frame_ticks = i64::from(dur);
            let drift = (dts - expected).get();
            if drift.abs() <= frame_ticks / 2 {
                dts = expected;
            } else if drift < 0 {
                // Would overlap audio already packaged (after a reconnect, or a publisher
                // whose audio clock runs fast): drop it so tfdt never goes backwards.
                return;
            } else if !is_lead {
                // Frames lost (a dropped SRT or RTMP packet, an encoder hiccup), or a
                // publisher whose audio clock runs slow or that skips (a looped file): each
                // fragment must start where the last one ended (Apple's validator, and MSE
                // buffers a hole as a stall). Silent frames fill the hole, as many as fit
                // to the nearest frame, and this frame follows them: the audio stays within
                // half a frame of the publisher's clock and every sample listed is a sample
                // decoded. A frame stretched over the hole instead (its duration longer than
                // the samples it decodes to) is not played longer by browsers: Chromium's
                // audio clock fell behind the timeline by each hole, 12 ms every 20 s for a
                // looped file, and once that added up to the media buffered ahead its audio
                // ran dry with 0.6-1.5 s still in the buffer (benches/README.md,
                // "Reliability"). Stretching stays for codecs without a silent frame.
                if drift <= MAX_FILLED_AUDIO_FRAMES * frame_ticks {
                    match silent_audio_frame(&self.tracks[ti].cfg.codec) {
                        Some((bytes, ticks)) => {
                            let ticks = i64::from(ticks.max(1));
                            let n = (drift + ticks / 2) / ticks;
                            silence = Some((bytes, ticks, n));
                            dts = expected + TrackTicks(n * ticks);
                        }
                        None => hole = drift,
                    }
                }
            }
            // Otherwise a real gap in the audio: keep the timestamp.
        }
        if !is_lead {
            // Non-lead samples before the lead's first sample of this timeline are dropped.
            if self.segmenter.lead_pending.is_none() && self.segmenter.part_samples.is_empty() {
                return;
            }
            if let (Some((bytes, ticks, n)), Some(expected)) = (silence, self.tracks[ti].next_dts) {
                for k in 0..n {
                    self.tracks[ti].pending.push_back(Pending::silent(
                        expected + TrackTicks(k * ticks),
                        bytes.clone(),
                        u32::try_from(ticks).unwrap_or(u32::MAX),
                    ));
                }
                if !self.timeline.silence_warned {
                    self.timeline.silence_warned = true;
                    self.warn(format!(
                        "{}: the publisher's audio skips ({} ms before this frame): holes are filled with silent frames",
                        frame.track,
                        n * ticks * 1000 / i64::from(self.tracks[ti].scale)
                    ));
                }
            }
            let mut dur = audio_dur.unwrap_or(self.tracks[ti].last_dur.max(1));
            let track = &mut self.tracks[ti];
            if hole > 0 {
                let hole = u32::try_from(hole).unwrap_or(u32::MAX);
                match track.pending.back_mut() {
                    // The frame before the hole still waits for its part: it lasts until this
                    // one starts, which stays on time.
                    Some(prev) => prev.dur = Some(prev.dur.unwrap_or(0).saturating_add(hole)),
                    // Already published: this frame starts where it ended and lasts longer.
                    None => {
                        dts = dts - TrackTicks(i64::from(hole));
                        dur = dur.saturating_add(hole);
                    }
                }
            }
            track.next_dts = Some(dts + TrackTicks(i64::from(dur)));
            track.pending.push_back(Pending {
                dts,
                cts: 0,
                sync: true,
                data: frame.data,
                dur: Some(dur),
            });
            return;
        }
        let cts = (pts_unshifted - dts)
            .get()
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        if let Some(dur) = audio_dur {
            self.tracks[ti].next_dts = Some(dts + TrackTicks(i64::from(dur)));
        }
        let sample = Pending {
            dts,
            cts,
            sync: frame.keyframe,
            data: frame.data,
            dur: audio_dur,
        };
        self.timeline.paced.push_back(sample);
        self.release_paced(now, locked, false);
    }

    /// Hands the held lead samples whose date has come (all of them with `all`) to the
    /// segmenter. A lead sample dated later than `now` waits: a publisher that resumed late
    /// after a stall (dated on the wall clock when it resumed, its media behind it) and then
    /// catches up, or whose clock runs fast, would otherwise date media ahead of the moment
    /// it is published (rule: EXT-X-PROGRAM-DATE-TIME never ahead of the wall clock; it ran
    /// 0.8 s ahead for the rest of a stream whose encoder, starved of CPU, resumed 1.2 s late
    /// and caught up later). Nothing is dropped: viewers get that media later (the catch-up
    /// becomes latency). Audio waits with it, as parts close on the lead's samples. At most
    /// [`PACED_LIMIT_TDS`] target durations wait; beyond that the oldest goes out dated ahead.
    pub(super) fn release_paced(&mut self, now: WallClock, locked: Locked, all: bool) {
        let limit = LeadTicks(
            PACED_LIMIT_TDS
                .saturating_mul(i64::from(locked.target_duration))
                .saturating_mul(self.lead_scale),
        );
        while let Some(front) = self.timeline.paced.front() {
            let at = LeadTicks::of_lead_sample(front.dts);
            let newest = self
                .timeline
                .paced
                .back()
                .map_or(at, |b| LeadTicks::of_lead_sample(b.dts));
            let ahead_ms = self.timeline.pdt_anchor.map_or(0, |_| {
                self.timeline
                    .pdt_at(at, self.lead_scale)
                    .0
                    .saturating_sub(now.0)
            });
            let over_limit = newest.get().saturating_sub(at.get()) > limit.get();
            if !all && !over_limit && ahead_ms > PACE_SLACK_MS {
                if !self.timeline.pacing_warned {
                    self.timeline.pacing_warned = true;
                    self.warn(format!(
                        "the publisher's frames arrive {ahead_ms} ms before their date (catching up after a stall, or a fast clock): holding them until then, so dates never run ahead of the wall clock"
                    ));
                }
                break;
            }
            if over_limit && !all && !self.timeline.paced_over_warned {
                self.timeline.paced_over_warned = true;
                self.warn(format!(
                    "more than {PACED_LIMIT_TDS} target durations of frames arrived ahead of their date: publishing them {ahead_ms} ms early"
                ));
            }
            let Some(sample) = self.timeline.paced.pop_front() else {
                break;
            };
            self.on_lead_sample(sample, now, locked);
        }
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
            .filter_map(|(frame, arrival)| {
                let media_ms =
                    rescale_within(frame.dts.ticks, frame.dts.scale.hz(), 1000, InputNs::LIMIT)?;
                arrival.0.checked_sub(media_ms)
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
        let jump = |track: &Track, dts, pts| {
            check_timestamps(track, &frame(dts, pts), WallClock(0)).map(|(jump, _)| jump)
        };
        let ms = |ms| InputNs::from_media(MediaTime::from_millis(ms)).unwrap();
        assert_eq!(jump(&track, 0, 0), Ok(Jump::Continues));
        track.last_in = Some((1000, ms(1000)));
        assert_eq!(jump(&track, 1033, 1033), Ok(Jump::Continues));
        assert_eq!(jump(&track, 7000, 7000), Ok(Jump::Reset));
        assert_eq!(
            jump(&track, 0, 0),
            Err(PackagerError::DtsNotIncreasing {
                track: VIDEO,
                dts: 0,
                last: 1000
            })
        );
        track.last_in = Some((10_000, ms(10_000)));
        assert_eq!(jump(&track, 0, 0), Ok(Jump::Reset));
        assert!(matches!(
            jump(&track, 10_100, 10_000),
            Err(PackagerError::PtsBeforeDts { .. })
        ));
    }

    #[test]
    fn out_of_range_timestamps_are_errors() {
        let track = Track::new(video_track(), true);
        let what =
            |dts, pts, wall| match check_timestamps(&track, &frame(dts, pts), WallClock(wall)) {
                Err(PackagerError::TimestampOutOfRange { what, .. }) => what,
                other => panic!("{other:?}"),
            };
        assert_eq!(what(i64::MAX, i64::MAX, 0), "dts");
        assert_eq!(what(i64::MIN, 0, 0), "dts");
        assert_eq!(what(0, i64::MAX, 0), "pts");
        assert_eq!(what(0, 3_600_001, 0), "pts - dts");
        assert_eq!(what(0, 0, i64::MAX), "wall clock");
        assert!(check_timestamps(&track, &frame(0, 3_600_000), WallClock(0)).is_ok());
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
        assert_eq!(timeline.pdt_at(LeadTicks(90_000), 90_000), WallClock(77));
        timeline.pdt_anchor = Some((LeadTicks(90_000), WallClock(1_000)));
        assert_eq!(
            timeline.pdt_at(LeadTicks(180_000), 90_000),
            WallClock(2_000)
        );
    }
}
