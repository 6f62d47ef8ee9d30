//! Stalls, filler and GAP parts and segments (rules 6 and 34). A stalled publisher (no input
//! for two part targets of wall-clock time, seen in [`Packager::handle_timeout`]) first has
//! the timeline held open: frames that continue it on time are packaged as if there had been
//! no stall. Then, with [`Filler`] (`PackagerConfig::stall_filler` and codecs that allow it),
//! the stream goes on with filler media on the wall clock for [`HOLD_TARGET_DURATIONS`], so
//! players keep playing; without it the playlist stays held that long. A longer stall, and a
//! hole in the input inside the timeline (a DTS step longer than the gap threshold), keep the
//! playlist moving with GAP parts, which have no media.

use bytes::Bytes;

use crate::codec::{silent_audio_frame, CodecConfig, H264Filler};
use crate::key::ObjectKey;
use crate::media::WallClock;

use super::fragment::part_target_us;
use super::probe::Locked;
use super::time::{wall_clock_in_range, LeadTicks, TrackTicks};
use super::timeline::{Pending, Track};
use super::Packager;

/// The stall in progress, if any.
#[derive(Debug, Default)]
pub(super) struct Stall {
    /// While the input is stalled: the end of the GAP parts published so far.
    pub(super) end: Option<LeadTicks>,
    /// While the input is stalled and no GAP part is published yet (the hold, see
    /// [`HOLD_TARGET_DURATIONS`]): where the media stopped.
    pub(super) held_from: Option<LeadTicks>,
    /// The PDT anchor before the stall, so GAP parts keep following the wall clock.
    pub(super) anchor_before_stall: Option<(LeadTicks, WallClock)>,
    /// A warning about an unusable `handle_timeout` clock was given since the last frame.
    pub(super) clock_warned: bool,
    /// How late (ms, arrival minus PROGRAM-DATE-TIME) the last lead keyframe before the stall
    /// arrived: the publisher's usual lateness, against which a backlog is judged.
    pub(super) usual_lateness_ms: Option<i64>,
    /// Lateness beyond the usual of the last backlog keyframe dropped in this stall.
    pub(super) dropped_backlog_ms: Option<i64>,
    /// Keyframes dropped as backlog in this stall.
    pub(super) dropped_backlog_keyframes: u64,
    /// The lateness of the keyframe the stream resumes on, on the dates' clock from before the
    /// stall: the new timeline's `pdt_lag_ms`.
    pub(super) resume_lateness_ms: Option<i64>,
    /// The clock of the last `handle_timeout` since the last frame: filler starts only once
    /// two timeouts in a row, at most [`REGULAR_TIMEOUT_MS`] apart, found no input.
    pub(super) last_timeout: Option<WallClock>,
    /// This stall outlasted its filler: GAP parts follow (warned once).
    pub(super) filler_gave_way: bool,
}

/// Filler starts only when the timeouts come regularly: a timeout this much (ms) after the one
/// before, with no frame between, means the publisher sends nothing while this process runs.
/// After a freeze of the whole machine (this process included) the first timeout comes late,
/// and the frames the publisher sent meanwhile, queued in the socket, continue the timeline
/// instead (see [`HICCUP_MS`]).
const REGULAR_TIMEOUT_MS: i64 = 250;

/// Media to fill a stall with: each filler segment starts with a copy of the last IDR access
/// unit published (so every segment stays independent: a viewer joining or switching
/// renditions during the stall starts there), followed by pictures that repeat it
/// ([`H264Filler`]); audio tracks get silence. Players keep playing, on a frozen picture,
/// and stay at their latency: measured with a 3 s publisher freeze, hls.js stayed about
/// 0.4 s and Shaka about 1.1 s further behind for good after rebuffering on a held playlist
/// (neither catches up in its default configuration).
#[derive(Debug)]
pub(super) struct Filler {
    video: H264Filler,
    /// Per track (by index): the silent frame and its duration (ticks); `None` for the lead.
    silence: Vec<Option<(Bytes, u32)>>,
    /// The last IDR access unit published.
    last_idr: Option<Bytes>,
    /// The latest presentation time (lead ticks) of a real frame.
    max_pts: Option<LeadTicks>,
    /// The composition offset of the filler run in progress: its pictures are presented
    /// one frame after each other, after the last real one.
    run_cts: Option<i32>,
}

impl Filler {
    /// Filler for these tracks, when `enabled` and their codecs allow.
    pub(super) fn for_tracks(enabled: bool, tracks: &[Track], lead: usize) -> Option<Filler> {
        if !enabled {
            return None;
        }
        let CodecConfig::H264(avc) = &tracks[lead].cfg.codec else {
            return None;
        };
        let video = H264Filler::new(avc).ok()?;
        let mut silence = Vec::with_capacity(tracks.len());
        for (i, track) in tracks.iter().enumerate() {
            if i == lead {
                silence.push(None);
            } else {
                silence.push(Some(silent_audio_frame(&track.cfg.codec)?));
            }
        }
        Some(Filler {
            video,
            silence,
            last_idr: None,
            max_pts: None,
            run_cts: None,
        })
    }

    /// A real lead sample, in decoding order.
    pub(super) fn observe(&mut self, sample: &Pending) {
        if self.video.observe(&sample.data) {
            self.last_idr = Some(sample.data.clone());
        }
        let pts = LeadTicks::of_lead_sample(sample.dts) + LeadTicks(i64::from(sample.cts));
        self.max_pts = Some(self.max_pts.map_or(pts, |m| m.max(pts)));
        self.run_cts = None;
    }

    /// Can a stall be filled now (an IDR picture has been published)?
    pub(super) fn ready(&self) -> bool {
        self.last_idr.is_some()
    }
}

/// A stalled publisher's playlist is held (no new parts; blocking requests wait, up to the
/// origin's limit of three target durations) for this many target durations before GAP parts
/// fill the hole. A publisher that resumes within the hold continues the media timeline without
/// a hole; its PROGRAM-DATE-TIME jumps forward by the stall (the dropped backlog), without
/// EXT-X-DISCONTINUITY, which made Shaka 5.2 fail in a loop. Measured with a 3 s freeze
/// (player-test `--stall 3`): hls.js 1.7 got stuck for good at a hole of GAP parts in 2 runs of
/// 4 and Shaka failed with SEGMENT_MISSING on GAP parts at the live edge in 2 of 4, while both
/// play on after a held playlist.
pub(super) const HOLD_TARGET_DURATIONS: i64 = 3;

/// After a stall, a keyframe that arrives later than the publisher's usual lateness by more
/// than this (or than one PART-TARGET, if longer) is backlog: the publisher is sending what it
/// captured during the stall in a burst.
pub(super) const BACKLOG_MS: i64 = 250;
/// During a hold whose timeline is still open, a frame that continues it is published (the
/// hold ends as if nothing had happened) when it arrives at most this much (ms) later than
/// usual (or one PART-TARGET, if longer): a machine or network hiccup of up to a second, after which the publisher sends what it captured meanwhile in a
/// burst. Cutting there instead dropped every frame up to the next keyframe: up to a second of
/// media gone and viewers stalled for it (six streams and six players on a two-core machine,
/// where Chromium's start-up took both cores for half a second). Longer stalls still cut and
/// drop the backlog, so viewers are not pushed seconds behind for good.
pub(super) const HICCUP_MS: i64 = 1_000;
/// A backlog keyframe is dropped only while the burst is catching up: each keyframe at least
/// this much less late than the one before. A publisher that stays late resumes at once.
const CATCHING_UP_MS: i64 = 100;

/// What to do with the first lead keyframe after a stall.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Resume {
    /// Resume on it; its PROGRAM-DATE-TIME is this lateness (ms, at least 0) before its arrival.
    At(i64),
    /// Drop it: it is part of a backlog that is catching up.
    DropBacklog,
}

/// Decides on a lead keyframe arriving `lateness_ms` late (arrival minus its date on the
/// clock before the stall) after a stall, given the publisher's usual lateness, the lateness
/// beyond usual of the previous backlog keyframe dropped, and the backlog threshold.
pub(super) fn resume_on_keyframe(
    lateness_ms: i64,
    usual_ms: i64,
    previous_excess_ms: Option<i64>,
    threshold_ms: i64,
) -> Resume {
    let excess = lateness_ms - usual_ms;
    let catching_up = previous_excess_ms.is_none_or(|p| excess < p - CATCHING_UP_MS);
    if excess > threshold_ms && catching_up {
        Resume::DropBacklog
    } else {
        Resume::At(lateness_ms.max(0))
    }
}

/// Splits `len` ticks into `ceil(len / part_target)` (at least one) near-equal GAP parts.
pub(super) fn gap_part_lengths(
    len: LeadTicks,
    part_target: LeadTicks,
) -> impl Iterator<Item = LeadTicks> {
    let (len, part_target) = (len.get(), part_target.get().max(1));
    let parts = ((len + part_target - 1) / part_target).max(1);
    (0..parts).map(move |k| LeadTicks(len * (k + 1) / parts - len * k / parts))
}

impl Packager {
    /// The lead track's media time that wall clock `now` stands for: on the dated clock of the
    /// stream (its program date time anchor), or on the clock from before a stall when the
    /// anchor was dropped with it. `None` before the stream is dated or out of range.
    fn media_time_at(&self, now: WallClock) -> Option<LeadTicks> {
        let (anchor, anchor_wall) = self.timeline.pdt_anchor.or(self.gap.anchor_before_stall)?;
        LeadTicks::at_wall_clock(now, anchor, anchor_wall, self.lead_scale)
    }

    /// Time passes without input: call this about once per part target (the packager never
    /// reads a clock). When no frame has come for more than two part targets of wall-clock
    /// time, the segment in progress is closed and GAP parts (in GAP segments) keep the
    /// playlist moving, one per part target (rules 6 and 34), until frames resume; the next
    /// keyframe then continues right after the gap.
    pub fn handle_timeout(&mut self, now: WallClock) {
        let Some(locked) = self.locked() else { return };
        self.release_paced(now, locked, false);
        if self.ended || !self.has_segments() {
            return;
        }
        if self
            .timeline
            .pdt_anchor
            .or(self.gap.anchor_before_stall)
            .is_none()
        {
            return;
        }
        let lead_scale = self.lead_scale;
        let media_now = self.media_time_at(now).filter(|_| wall_clock_in_range(now));
        let Some(media_now) = media_now else {
            self.warn_clock(format!(
                "handle_timeout: wall clock {} ms is out of range; ignored",
                now.0
            ));
            return;
        };
        let end = match (
            self.gap.end,
            self.gap.held_from,
            &self.segmenter.lead_pending,
        ) {
            (Some(gap_end), _, _) => gap_end,
            (None, Some(held_from), _) => held_from,
            (None, None, Some(last)) => {
                let dur = last.dur.unwrap_or(self.tracks[self.lead].last_dur.max(1));
                LeadTicks::of_lead_sample(last.dts) + LeadTicks(i64::from(dur))
            }
            (None, None, None) => return,
        };
        let regular = self
            .gap
            .last_timeout
            .replace(now)
            .is_some_and(|before| (0..=REGULAR_TIMEOUT_MS).contains(&(now.0 - before.0)));
        let fill = self.filler.as_ref().is_some_and(Filler::ready);
        let part_target = locked.part_target;
        let segment_len = LeadTicks(i64::from(locked.target_duration) * lead_scale);
        if end - media_now > 10 * segment_len {
            self.warn_clock(format!(
                "handle_timeout: the wall clock is {:.1} s behind the media; ignored",
                (end - media_now).secs(lead_scale)
            ));
            return;
        }
        if media_now - end <= 2 * part_target {
            return;
        }
        let stalled = self.gap.end.is_some() || self.gap.held_from.is_some();
        if !stalled && media_now - end > 10 * segment_len {
            // `now` and the frames' arrival clock disagree by more than a plausible stall
            // (a stepped clock, or frames stamped with another clock): do not invent media.
            self.warn_clock(format!(
                "handle_timeout: the wall clock is {:.1} s ahead of the frames' arrival clock; no GAP parts",
                (media_now - end).secs(lead_scale)
            ));
            return;
        }
        let hold = HOLD_TARGET_DURATIONS * segment_len;
        if !stalled {
            // The timeline stays open during the hold (nothing is closed at a guessed end):
            // frames that continue it on time (an ingest that delivers its last frames late,
            // as an SRT publisher's final frame comes only when its connection closes) go on
            // in the same segment, see [`Packager::leave_open_hold`].
            self.gap.anchor_before_stall = self.timeline.pdt_anchor;
            self.gap.dropped_backlog_ms = None;
            self.gap.dropped_backlog_keyframes = 0;
            self.gap.filler_gave_way = false;
            self.gap.held_from = Some(end);
            if !fill {
                self.warn(format!(
                    "no input for {:.1} s: holding the playlist until the publisher resumes (GAP parts after {:.0} s)",
                    (media_now - end).secs(lead_scale),
                    hold.secs(lead_scale)
                ));
            }
        }
        if self.gap.end.is_none() {
            if fill && !regular {
                self.publish();
                return;
            }
            if !fill && media_now - end <= hold {
                self.publish();
                return;
            }
            if self.hold_is_open() {
                // The media held so far closes its part and segment, published on its own:
                // the GAP parts (many at once after a clock step) start at the next call.
                self.close_held_timeline();
                if !fill {
                    self.publish();
                    return;
                }
            }
            self.warn(if fill {
                format!(
                    "no input for {:.1} s: filling with the last keyframe's picture and silence until the publisher resumes",
                    (media_now - end).secs(lead_scale)
                )
            } else {
                format!(
                    "no input for {:.1} s: publishing GAP parts until the publisher resumes",
                    (media_now - end).secs(lead_scale)
                )
            });
        }
        self.extend_stall(media_now, fill, locked);
        self.publish();
    }

    /// Publishes filler or GAP parts from the end of the stall so far up to the wall clock's
    /// media time `media_now` (see [`Packager::handle_timeout`]).
    fn extend_stall(&mut self, media_now: LeadTicks, fill: bool, locked: Locked) {
        let lead_scale = self.lead_scale;
        let part_target = locked.part_target;
        let segment_len = LeadTicks(i64::from(locked.target_duration) * lead_scale);
        let hold = HOLD_TARGET_DURATIONS * segment_len;
        let mut gap_end = self.gap.end.unwrap_or(self.timeline.end);
        // Filler covers the first HOLD_TARGET_DURATIONS of a stall (a segment it started is
        // finished with it); a longer stall goes on with GAP parts, as for a publisher that
        // is gone. Parts (filler ones: whole frames) stay a part target (or the publisher's
        // usual lateness, if longer) behind the wall clock: the keyframe a publisher resumes
        // on comes later than usual (216 ms against 36 ms measured with ffmpeg after a 3 s
        // freeze), and filler that ran past where it belongs dated it, and the media after
        // it, ahead of its capture.
        let stall_from = self.gap.held_from.unwrap_or(gap_end);
        let frame = locked.frame_ticks.get().max(1);
        let filler_step = LeadTicks((part_target.get() / frame).max(1) * frame);
        let usual_ms = self.gap.usual_lateness_ms.unwrap_or(0).clamp(0, 1_000);
        let filler_slack = LeadTicks(usual_ms * lead_scale / 1000).max(part_target);
        // Bound the work of one call.
        let mut budget = 4 * segment_len.get() / filler_step.get().max(1) + 1;
        loop {
            let filling = self.stall_fills(fill, gap_end, stall_from, hold);
            let (step, slack) = if filling {
                (filler_step, filler_slack)
            } else {
                (part_target, part_target)
            };
            if budget == 0 || gap_end + step > media_now - slack {
                break;
            }
            budget -= 1;
            if fill && !filling && !std::mem::replace(&mut self.gap.filler_gave_way, true) {
                self.warn(format!(
                    "no input for {:.0} s: publishing GAP parts until the publisher resumes",
                    (media_now - stall_from).secs(lead_scale)
                ));
            }
            gap_end = self.push_stall_part(gap_end, step, filling, locked);
        }
        if self.renditions[0].open.is_none() {
            // The next GAP part (or the resumed media) goes into a new segment: open it now so
            // that the playlist hints it.
            self.open_segments(gap_end, fill && gap_end - stall_from < hold);
        }
        self.gap.end = Some(gap_end);
    }

    /// A frame dropped while a filled stall waits for the keyframe to resume on (the burst of
    /// a publisher's backlog, and its frames up to the next keyframe: a second of input in
    /// which no timeout comes): the filler goes on with the wall clock meanwhile, or players
    /// run dry just before the stream resumes.
    pub(super) fn keep_filling(&mut self, now: WallClock, locked: Locked) {
        if self.gap.end.is_none() || !self.filler.as_ref().is_some_and(Filler::ready) {
            return;
        }
        if let Some(media_now) = self.media_time_at(now) {
            self.extend_stall(media_now, true, locked);
        }
    }

    /// Is the playlist held with its timeline still open (a stall seen, no GAP part yet,
    /// nothing closed)?
    pub(super) fn hold_is_open(&self) -> bool {
        self.gap.held_from.is_some()
            && self.gap.end.is_none()
            && !self.timeline.waiting_for_keyframe
    }

    /// Closes the timeline held open at the end of its last frame: the stream resumes on a
    /// keyframe (after GAP parts, or with its media timeline continued, see `run_frame`).
    pub(super) fn close_held_timeline(&mut self) {
        if !self.hold_is_open() {
            return;
        }
        self.flush_timeline();
        self.timeline.waiting_for_keyframe = true;
        self.gap.held_from = Some(self.timeline.end);
    }

    /// Lead frame `dts` (output clock) arrived `lateness_ms` late during a hold whose timeline
    /// is still open: it continues the timeline (the hold ends as if nothing had happened)
    /// when it follows the last frame within the gap threshold and is late by no more than a
    /// hiccup (see [`HICCUP_MS`]); otherwise the timeline closes and the stream resumes on a
    /// keyframe as after any stall. Nothing the publisher sent on time is dropped, and nothing
    /// was published at a guessed frame duration that a late frame could contradict.
    pub(super) fn leave_open_hold(
        &mut self,
        dts: Option<LeadTicks>,
        lateness_ms: Option<i64>,
        locked: Locked,
    ) {
        let follows = match (dts, &self.segmenter.lead_pending) {
            (Some(at), Some(prev)) => {
                let step = at - LeadTicks::of_lead_sample(prev.dts);
                step.get() > 0 && step <= locked.gap_threshold
            }
            _ => false,
        };
        let threshold = HICCUP_MS.max(locked.part_target.to_ns(self.lead_scale) / 1_000_000);
        let usual = self.gap.usual_lateness_ms.unwrap_or(0);
        let on_time = lateness_ms.is_some_and(|l| l - usual <= threshold);
        if follows && on_time {
            self.gap.held_from = None;
            self.gap.anchor_before_stall = None;
        } else {
            // The media held so far closes its part and segment, published on its own before
            // the GAP parts (which may be many at once after a clock step).
            self.close_held_timeline();
            self.publish();
        }
    }

    /// Warns once (until the next frame) that `handle_timeout`'s clock cannot be used.
    fn warn_clock(&mut self, message: String) {
        if !std::mem::replace(&mut self.gap.clock_warned, true) {
            self.warn(message);
        }
    }

    /// Closes a GAP segment left open by [`Packager::handle_timeout`], and ends a hold.
    pub(super) fn close_gap(&mut self) {
        self.gap.held_from = None;
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
                    .last()
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
        let at = LeadTicks::of_lead_sample(sample.dts);
        let nominal =
            i64::from(self.tracks[self.lead].last_dur.max(1)).min(locked.frame_ticks.get().max(1));
        prev.dur = Some(u32::try_from(nominal).unwrap_or(u32::MAX));
        let end = LeadTicks::of_lead_sample(prev.dts) + LeadTicks(nominal);
        self.segmenter.part_samples.push(prev);
        self.close_part(end);
        self.close_segments(end);
        self.fill_gap(end, at, locked);
        self.segmenter.part_start = at;
        self.open_segments(at, sample.sync);
        if !sample.sync {
            self.warn(format!(
                "input stalled for {:.2} s and resumed without a keyframe: segment {} does not start with one",
                (at - end).secs(self.lead_scale),
                self.segmenter.next_msn - 1
            ));
            self.independent_segments = false;
        }
        self.segmenter.lead_pending = Some(sample);
    }

    /// A lead sample at `at` came more than PART-TARGET but less than the gap threshold after
    /// `prev`: `prev` gets a nominal duration and closes its part, and the rest of the interval
    /// becomes parts of the segment in progress holding only the other tracks' samples (GAP
    /// parts where a rendition has none). A part never outgrows PART-TARGET, which AVPlayer
    /// treats as a fatal playlist error, and the segment is not cut as for a stall.
    pub(super) fn bridge_short_hole(&mut self, mut prev: Pending, at: LeadTicks, locked: Locked) {
        let start = LeadTicks::of_lead_sample(prev.dts);
        let nominal = LeadTicks(i64::from(self.tracks[self.lead].last_dur))
            .min(locked.frame_ticks)
            .min(at - start)
            .max(LeadTicks(1));
        prev.dur = Some(u32::try_from(nominal.get()).unwrap_or(u32::MAX));
        let end = start + nominal;
        if !self.segmenter.part_samples.is_empty()
            && end - self.segmenter.part_start > locked.part_target
        {
            self.close_part(start);
            self.maybe_force_cut(start, prev.sync, locked);
        }
        self.segmenter.part_samples.push(prev);
        self.close_part(end);
        self.maybe_force_cut(end, false, locked);
        let mut boundary = end;
        for len in gap_part_lengths(at - end, locked.part_target) {
            boundary += len;
            self.close_hole_part(boundary);
            self.maybe_force_cut(boundary, false, locked);
        }
    }

    /// Appends a GAP part of `len` to every rendition's open segment.
    fn push_gap_part(&mut self, len: LeadTicks) {
        let duration = len.secs(self.lead_scale);
        for r in &mut self.renditions {
            if let Some(open) = r.open.as_mut() {
                let index = open.parts.len() as u32;
                open.push_part(
                    duration,
                    ObjectKey::part(&r.name, open.msn, index).to_string(),
                    false,
                    true,
                    None,
                    part_target_us(r.part_target),
                );
            }
        }
    }

    /// The stream resumes on a keyframe that belongs at lead time `at` (on the timeline from
    /// before the stall) while filler runs: filler frames up to it (the last part may be
    /// short: it ends its segment, which the keyframe's closes), never past the wall clock.
    /// Without it the stream resumed up to a part and a half early, and viewers were pushed
    /// that much closer to the edge than they were, with a buffer too thin to play on.
    pub(super) fn top_up_filler(&mut self, at: LeadTicks, now: WallClock, locked: Locked) {
        let (Some(mut gap_end), Some(held_from)) = (self.gap.end, self.gap.held_from) else {
            return;
        };
        if !self.filler.as_ref().is_some_and(Filler::ready) {
            return;
        }
        let lead_scale = self.lead_scale;
        let Some(media_now) = self.media_time_at(now) else {
            return;
        };
        let hold =
            HOLD_TARGET_DURATIONS * LeadTicks(i64::from(locked.target_duration) * lead_scale);
        if !self.stall_fills(true, gap_end, held_from, hold) {
            return;
        }
        let frame = locked.frame_ticks.get().max(1);
        let per_part = (locked.part_target.get() / frame).max(1);
        let mut frames = ((at.min(media_now) - gap_end).get() / frame).min(4 * per_part);
        while frames > 0 {
            let n = frames.min(per_part);
            frames -= n;
            gap_end = self.push_stall_part(gap_end, LeadTicks(n * frame), true, locked);
        }
        self.gap.end = Some(gap_end);
    }

    /// Does a stall's next part get filler (with `fill`: filler is possible)? A segment in
    /// progress goes on with what it started with; a new one gets filler while the stall is
    /// younger than `hold` (it started at `stall_from`).
    fn stall_fills(
        &self,
        fill: bool,
        gap_end: LeadTicks,
        stall_from: LeadTicks,
        hold: LeadTicks,
    ) -> bool {
        match self.renditions[0]
            .open
            .as_ref()
            .and_then(|o| o.parts.last())
        {
            Some(last) => fill && !last.gap,
            None => fill && gap_end - stall_from < hold,
        }
    }

    /// Publishes one part of a stall, filler or GAP, of `len` at `gap_end` (opening a segment
    /// for it, and closing the segment once full); returns where the stall now ends.
    fn push_stall_part(
        &mut self,
        gap_end: LeadTicks,
        len: LeadTicks,
        filling: bool,
        locked: Locked,
    ) -> LeadTicks {
        if self.renditions[0].open.is_none() {
            self.open_segments(gap_end, filling);
        }
        let segment_start = self.segment_start(gap_end);
        if filling {
            self.push_filler_part(gap_end, len, locked, gap_end == segment_start);
        } else {
            self.push_gap_part(len);
        }
        let end = gap_end + len;
        self.timeline.end = end;
        self.unlist_old_parts();
        self.changed();
        let segment_len = LeadTicks(i64::from(locked.target_duration) * self.lead_scale);
        if end - segment_start + locked.part_target > segment_len {
            self.close_segments(end);
        }
        end
    }

    /// Publishes a filler part of `len` (whole frames) at lead time `from` in every rendition:
    /// the last IDR access unit first when it opens a segment, pictures repeating it after, and
    /// silence in the audio tracks.
    fn push_filler_part(&mut self, from: LeadTicks, len: LeadTicks, locked: Locked, opens: bool) {
        let lead_scale = self.lead_scale;
        let Some(filler) = self.filler.as_mut() else {
            return;
        };
        let frame = locked.frame_ticks.get().max(1);
        let cts = *filler.run_cts.get_or_insert_with(|| {
            let last_pts = filler.max_pts.unwrap_or(from);
            (last_pts + LeadTicks(frame) - from)
                .get()
                .clamp(0, i64::from(i32::MAX)) as i32
        });
        let mut at = from;
        while at < from + len {
            let idr = if at == from && opens {
                filler.last_idr.clone()
            } else {
                None
            };
            let data = match &idr {
                Some(idr) => {
                    filler.video.observe(idr);
                    idr.clone()
                }
                None => filler.video.next_frame(),
            };
            self.segmenter.part_samples.push(Pending {
                dts: TrackTicks(at.get()),
                cts,
                sync: idr.is_some(),
                data,
                dur: Some(frame as u32),
            });
            at += LeadTicks(frame);
        }
        let boundary = from + len;
        for (ti, track) in self.tracks.iter_mut().enumerate() {
            let Some((silence, dur)) = filler.silence.get(ti).cloned().flatten() else {
                continue;
            };
            let scale = track.scale;
            let mut next = track
                .next_dts
                .unwrap_or_else(|| TrackTicks(from.get() * i64::from(scale) / lead_scale));
            while next.to_lead(scale, lead_scale) < boundary {
                track
                    .pending
                    .push_back(Pending::silent(next, silence.clone(), dur));
                next += TrackTicks(i64::from(dur));
            }
            track.next_dts = Some(next);
        }
        self.segmenter.part_start = from;
        self.close_part(boundary);
    }

    /// GAP segments and parts covering lead time [from, to).
    fn fill_gap(&mut self, from: LeadTicks, to: LeadTicks, locked: Locked) {
        let segment_len = LeadTicks(
            (i64::from(locked.target_duration) * self.lead_scale)
                .min(locked.segment_close.get().max(1) * 4 / 3),
        );
        let mut start = from;
        while to > start {
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
    fn a_backlog_burst_is_dropped_up_to_a_keyframe_on_time() {
        // A 3 s stall, then the backlog in a burst: keyframes 2.6 s, 1.6 s, 0.6 s late, then
        // the first one captured after the burst (usual lateness 40 ms).
        let mut previous = None;
        for lateness in [2600, 1600, 600] {
            assert_eq!(
                resume_on_keyframe(lateness, 40, previous, 250),
                Resume::DropBacklog
            );
            previous = Some(lateness - 40);
        }
        assert_eq!(resume_on_keyframe(60, 40, previous, 250), Resume::At(60));
        // Within the threshold of the usual lateness: resume at once.
        assert_eq!(resume_on_keyframe(280, 40, None, 250), Resume::At(280));
    }

    #[test]
    fn a_publisher_that_stays_late_resumes_on_its_second_keyframe() {
        assert_eq!(resume_on_keyframe(3000, 0, None, 250), Resume::DropBacklog);
        assert_eq!(
            resume_on_keyframe(2990, 0, Some(3000), 250),
            Resume::At(2990)
        );
        // Early frames (a fast publisher clock) never date the stream ahead of the wall clock.
        assert_eq!(resume_on_keyframe(-500, 0, None, 250), Resume::At(0));
    }

    #[test]
    fn gap_parts_split_evenly_and_sum_to_the_hole() {
        let lengths = |len, part_target| -> Vec<i64> {
            gap_part_lengths(LeadTicks(len), LeadTicks(part_target))
                .map(LeadTicks::get)
                .collect()
        };
        assert_eq!(lengths(50_000, 18_181), [16_666, 16_667, 16_667]);
        assert_eq!(lengths(18_181, 18_181), [18_181]);
        assert_eq!(lengths(1, 18_181), [1]);
        for len in [1, 999, 18_182, 180_000, 224_999] {
            let parts = lengths(len, 18_181);
            assert_eq!(parts.iter().sum::<i64>(), len);
            assert!(parts.iter().all(|p| *p <= 18_181 && *p > 0), "{parts:?}");
        }
    }
}
