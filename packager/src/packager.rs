//! The packager state machine: frames in, CMAF objects and playlist changes out.
//!
//! Contract: call a `handle_*` method, then drain [`Packager::poll_output`] until `None`. After
//! a [`Output::PlaylistChanged`], [`Packager::snapshot`] describes the new playlists; every URI
//! they list was emitted as an [`Output::Object`] or [`Output::Append`] before it.
//!
//! The state is split by concern, each part in its own module: [`config`] (settings),
//! [`output`] (outputs and errors), [`time`] (the three time scales as types), [`timeline`]
//! (input to output time, resets, PROGRAM-DATE-TIME), [`probe`] (TD and PART-TARGET),
//! [`segmenter`] (part and segment cuts), [`fragment`] (CMAF fragments and init segments),
//! [`gap`] (GAP parts, stalls), [`window`] (sliding window, retention) and [`snapshot`]
//! (playlist snapshots).

mod bridge;
mod config;
mod fragment;
mod gap;
mod output;
mod probe;
mod segmenter;
mod snapshot;
mod time;
mod timeline;
mod window;

use std::collections::VecDeque;

use crate::media::{Frame, TrackConfig, TrackKind, WallClock};
use crate::playlist::{RenditionKind, StreamTiming};

pub use config::{Addressing, Bridge, Layout, PackagerConfig, MAX_DVR_WINDOW_SECS, MAX_FIRST_MSN};
use gap::{Filler, Stall};
pub use output::{Output, PackagerError, Warning};
use probe::Phase;
use segmenter::Segmenter;
use time::LeadTicks;
use timeline::{check_timestamps, earliest_arrival, Jump, Timeline, Track};
use window::{Rendition, Retention};

/// Complete segments a stream has before its first playlist is published. Players start a
/// few segments back from the live edge: Chromium's built-in HLS player fails to parse a
/// playlist with fewer than three, and hls.js and Shaka joining a one-segment playlist start
/// further behind than later viewers and never catch up. The first segments are cut short
/// (see the `segmenter` module) so that three come quickly.
pub const FIRST_PLAYLIST_SEGMENTS: usize = 3;

/// The sans-IO LL-HLS packager for one stream. See the crate docs for the contract.
pub struct Packager {
    config: PackagerConfig,
    tracks: Vec<Track>,
    renditions: Vec<Rendition>,
    /// Index of the lead track (video, or audio for audio-only streams) in `tracks`.
    lead: usize,
    /// The lead track's output timescale (Hz).
    lead_scale: i64,
    phase: Phase,
    timing: Option<StreamTiming>,
    timeline: Timeline,
    segmenter: Segmenter,
    gap: Stall,
    /// Media to fill stalls with, when [`PackagerConfig::stall_filler`] is set and the codecs
    /// allow.
    filler: Option<Filler>,
    retention: Retention,
    ended: bool,
    /// The stream ended while probing: the probe takes what it has as the first segment.
    probe_at_end: bool,
    independent_segments: bool,
    outputs: VecDeque<Output>,
    /// Snapshot version: one more per PlaylistChanged.
    version: u64,
    /// Something changed since the last PlaylistChanged.
    dirty: bool,
    /// A segment closed (or the stream ended) since the window last slid to its final size:
    /// [`Packager::trim_live_window`] has work to do (it otherwise returns at once, as it is
    /// called before every publish).
    trim_pending: bool,
}

impl Packager {
    /// A packager for the given tracks. At most one video track; audio tracks join the video
    /// (muxed) or get their own rendition (separate).
    pub fn new(config: PackagerConfig, tracks: Vec<TrackConfig>) -> Result<Self, PackagerError> {
        config.validate()?;
        let videos = tracks
            .iter()
            .filter(|track| track.kind() == TrackKind::Video)
            .count();
        let audios = tracks
            .iter()
            .filter(|track| track.kind() == TrackKind::Audio)
            .count();
        if videos > 1 || audios > 1 || tracks.is_empty() {
            return Err(PackagerError::Config(format!(
                "need one video and/or one audio track, got {videos} video and {audios} audio"
            )));
        }
        let lead = tracks
            .iter()
            .position(|track| track.kind() == TrackKind::Video)
            .unwrap_or(0);
        let lead_scale = i64::from(tracks[lead].codec.timescale().hz());
        let tracks: Vec<Track> = tracks
            .into_iter()
            .enumerate()
            .map(|(i, cfg)| Track::new(cfg, i == lead))
            .collect();
        let mut renditions = Vec::new();
        let video_idx = tracks
            .iter()
            .position(|track| track.cfg.kind() == TrackKind::Video);
        let audio_idx = tracks
            .iter()
            .position(|track| track.cfg.kind() == TrackKind::Audio);
        let first_msn = config.first_msn;
        let first_ds = config.first_discontinuity_sequence;
        let rendition = |name: &str, kind, tracks: Vec<usize>| {
            let mut r = Rendition::new(name, kind, tracks, first_msn);
            r.discontinuity_sequence = first_ds;
            r
        };
        match (video_idx, audio_idx, config.layout) {
            (Some(v), Some(a), Layout::Muxed) => {
                renditions.push(rendition("media", RenditionKind::Muxed, vec![v, a]))
            }
            (Some(v), Some(a), Layout::Separate) => {
                renditions.push(rendition("video", RenditionKind::Video, vec![v]));
                renditions.push(rendition("audio", RenditionKind::Audio, vec![a]));
            }
            (Some(v), None, _) => {
                renditions.push(rendition("video", RenditionKind::Video, vec![v]))
            }
            (None, Some(a), _) => {
                renditions.push(rendition("audio", RenditionKind::Audio, vec![a]))
            }
            (None, None, _) => unreachable!("checked above: at least one track"),
        }
        let filler = Filler::for_tracks(config.stall_filler, &tracks, lead);
        Ok(Packager {
            filler,
            config,
            tracks,
            renditions,
            lead,
            lead_scale,
            phase: Phase::Probing(Vec::new()),
            timing: None,
            timeline: Timeline::new(),
            segmenter: Segmenter::new(first_msn),
            gap: Stall::default(),
            retention: VecDeque::new(),
            ended: false,
            probe_at_end: false,
            independent_segments: true,
            outputs: VecDeque::new(),
            version: 0,
            dirty: false,
            trim_pending: false,
        })
    }

    /// The next output, or `None` when drained.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Has the first playlist been published? That waits for [`FIRST_PLAYLIST_SEGMENTS`]
    /// complete segments listed as such (or the end of the stream), so that every player can
    /// start from the first playlist it sees: a segment that just closed is listed as still
    /// open until the next one has a part (`render_media` says why), and Chromium's player
    /// fails on a first playlist with two complete segments and a third listed open.
    pub fn is_live(&self) -> bool {
        let needed = FIRST_PLAYLIST_SEGMENTS.min(self.config.window_segments);
        // A continued stream's bridge ([`PackagerConfig::bridge`]) is GAP: not media to start on.
        let first_msn = self.config.first_msn;
        self.timing.is_some()
            && self.renditions.iter().all(|r| {
                let bridged = r.segments.iter().take_while(|s| s.msn < first_msn).count();
                r.segments
                    .len()
                    .saturating_sub(bridged + usize::from(r.newest_deferred(self.ended)))
                    >= needed
            })
    }

    /// Does this packager fill stalls with filler media ([`PackagerConfig::stall_filler`], and
    /// codecs that allow it)? Otherwise it holds the playlist, then publishes GAP parts.
    pub fn fills_stalls(&self) -> bool {
        self.filler.is_some()
    }

    /// Has the stream ended ([`Packager::handle_end_of_stream`]): its snapshots carry
    /// EXT-X-ENDLIST? (Cheaper than taking a snapshot to ask.)
    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Has every rendition a complete segment?
    fn has_segments(&self) -> bool {
        self.timing.is_some() && self.renditions.iter().all(|r| !r.segments.is_empty())
    }

    /// The fixed timing values, once the first segment has fixed them.
    pub fn timing(&self) -> Option<StreamTiming> {
        self.timing
    }

    /// The track configurations in use.
    pub fn track_configs(&self) -> Vec<TrackConfig> {
        self.tracks.iter().map(|track| track.cfg.clone()).collect()
    }

    /// Feeds one frame. `now` is the wall-clock time the frame arrived (for
    /// EXT-X-PROGRAM-DATE-TIME).
    pub fn handle_frame(&mut self, frame: Frame, now: WallClock) -> Result<(), PackagerError> {
        if self.ended {
            return Err(PackagerError::Ended);
        }
        let ti = self
            .tracks
            .iter()
            .position(|track| track.cfg.id == frame.track)
            .ok_or(PackagerError::UnknownTrack(frame.track))?;
        if frame.data.is_empty() {
            return Err(PackagerError::EmptyFrame {
                track: frame.track,
                dts: frame.dts.ticks,
            });
        }
        let (jump, dts_ns) = check_timestamps(&self.tracks[ti], &frame, now)?;
        if jump == Jump::Reset {
            // Timestamps reset (encoder restart): a discontinuity, not an error.
            self.discontinuity_internal();
        }
        self.tracks[ti].last_in = Some((frame.dts.ticks, dts_ns));
        self.gap.clock_warned = false;
        self.gap.last_timeout = None;
        self.timeline.last_wall = now;
        match &mut self.phase {
            Phase::Probing(buf) => {
                buf.push((frame, now));
                self.finish_probe();
            }
            Phase::Running(_) => self.run_frame(frame, now),
        }
        self.publish();
        Ok(())
    }

    /// Fixes the timing once the probe has enough, and runs the probed frames.
    fn finish_probe(&mut self) {
        let Some(locked) = self.probe_done() else {
            return;
        };
        let probing = std::mem::replace(&mut self.phase, Phase::Running(locked));
        // probe_done answers only while probing: `Running` cannot come back here.
        let buf = match probing {
            Phase::Probing(buf) => buf,
            Phase::Running(_) => Vec::new(),
        };
        self.lock_timing(locked);
        let offset = self.least_delay_offset(&buf);
        for (frame, arrival) in buf {
            let arrival = earliest_arrival(offset, &frame, arrival);
            self.run_frame(frame, arrival);
        }
    }

    /// The publisher went away and came back (or its timestamps reset): close the segment in
    /// progress; the next segment carries EXT-X-DISCONTINUITY. When `tracks` is given and a
    /// codec configuration changed, a new init segment (EXT-X-MAP) follows.
    pub fn handle_discontinuity(
        &mut self,
        tracks: Option<Vec<TrackConfig>>,
        now: WallClock,
    ) -> Result<(), PackagerError> {
        if self.ended {
            return Err(PackagerError::Ended);
        }
        self.timeline.see_wall_clock(now);
        if let Some(new) = tracks {
            let same_kinds = new.len() == self.tracks.len()
                && self.tracks.iter().all(|track| {
                    new.iter()
                        .any(|n| n.id == track.cfg.id && n.kind() == track.cfg.kind())
                });
            if !same_kinds {
                return Err(PackagerError::TrackSetChanged(format!(
                    "had {}, got {}",
                    describe_tracks(self.tracks.iter().map(|t| &t.cfg)),
                    describe_tracks(new.iter())
                )));
            }
            self.discontinuity_internal();
            let mut changed = false;
            for n in new {
                if let Some(track) = self.tracks.iter_mut().find(|track| track.cfg.id == n.id) {
                    if track.cfg != n {
                        track.scale = n.codec.timescale().hz();
                        track.cfg = n;
                        changed = true;
                    }
                }
            }
            if changed {
                self.segmenter.init_pending = true;
                self.filler = Filler::for_tracks(self.config.stall_filler, &self.tracks, self.lead);
            }
        } else {
            self.discontinuity_internal();
        }
        self.publish();
        Ok(())
    }

    /// The stream is over: close the segment in progress and publish EXT-X-ENDLIST.
    pub fn handle_end_of_stream(&mut self, now: WallClock) {
        if self.ended {
            return;
        }
        self.timeline.see_wall_clock(now);
        if matches!(self.phase, Phase::Probing(_)) {
            // A stream (or a file) shorter than the probe: what it has is the first segment.
            self.probe_at_end = true;
            self.finish_probe();
        }
        self.flush_timeline();
        self.ended = true;
        self.trim_pending = true;
        self.changed();
        self.publish();
    }

    /// Marks the playlists as changed; [`Packager::publish`] announces it.
    fn changed(&mut self) {
        self.dirty = true;
    }

    /// Ends a `handle_*` call: one PlaylistChanged after every object it produced, so anything
    /// a snapshot lists has already been output (publish order, rule 46).
    fn publish(&mut self) {
        for open in self.renditions.iter_mut().filter_map(|r| r.open.as_mut()) {
            open.published = open.parts.len();
        }
        if self.dirty {
            self.trim_live_window();
        }
        if self.dirty && self.timing.is_some() && (self.is_live() || self.ended) {
            self.dirty = false;
            self.version += 1;
            self.outputs.push_back(Output::PlaylistChanged);
        }
    }

    fn warn(&mut self, message: String) {
        self.outputs.push_back(Output::Warning(Warning {
            message,
            keyframe_interval_max: None,
        }));
    }

    /// A warning whose fix is a keyframe interval no longer than the segment target.
    fn warn_keyframes(&mut self, message: String) {
        let max = self.config.segment_target.as_secs_f64();
        self.outputs.push_back(Output::Warning(Warning {
            message,
            keyframe_interval_max: Some(max),
        }));
    }

    fn discontinuity_internal(&mut self) {
        self.flush_timeline();
        self.timeline.pending_discontinuity = true;
        self.timeline.waiting_for_keyframe = true;
        for track in &mut self.tracks {
            track.last_in = None;
        }
    }

    /// Closes everything in progress at the end of the last sample.
    fn flush_timeline(&mut self) {
        let Some(locked) = self.locked() else {
            // Still probing: nothing was published; start over.
            if let Phase::Probing(buf) = &mut self.phase {
                buf.clear();
            }
            return;
        };
        // What waits for its date goes out first: it was accepted.
        self.release_paced(self.timeline.last_wall, locked, true);
        self.close_gap();
        if let Some(mut prev) = self.segmenter.lead_pending.take() {
            // The last frame's duration is a guess: the last frame interval (the nominal one
            // when they agree within 10%, as millisecond timestamps jitter), never more than
            // PART-TARGET nor what the segment has left (found by the packager fuzz target: a
            // stream that went from 1 fps to 24 fps ended on a frame guessed at 1 s).
            let start = LeadTicks::of_lead_sample(prev.dts);
            let last = LeadTicks(i64::from(self.tracks[self.lead].last_dur));
            let nominal = locked.frame_ticks;
            let interval = if last.get() == 0 {
                nominal
            } else if (last.get() - nominal.get()).abs() * 10 <= nominal.get() {
                last.max(nominal)
            } else {
                last
            };
            let left = locked.segment_limit - (start - self.segment_start(start));
            let guess = interval.min(locked.part_target).min(left).get().max(1);
            let dur = prev.dur.unwrap_or(u32::try_from(guess).unwrap_or(u32::MAX));
            prev.dur = Some(dur);
            let end = start + LeadTicks(i64::from(dur));
            // The part in progress would overflow with the last frame: close it before.
            if end - self.segmenter.part_start > locked.part_target {
                self.close_part(start);
            }
            self.segmenter.part_samples.push(prev);
            self.close_part(end);
            for ti in 0..self.tracks.len() {
                if !self.tracks[ti].lead {
                    // What is dropped was never packaged: the track's next frame continues
                    // from the first of it (a stall whose held timeline closes when frames
                    // resume late has queued some audio of the burst meanwhile).
                    let track = &mut self.tracks[ti];
                    if let Some(first) = track.pending.front() {
                        track.next_dts = Some(first.dts);
                    }
                    track.pending.clear();
                }
            }
            self.close_segments(end);
            self.timeline.end = self.timeline.end.max(end);
        }
        self.segmenter.part_samples.clear();
    }
}

fn describe_tracks<'a>(tracks: impl Iterator<Item = &'a TrackConfig>) -> String {
    tracks
        .map(|c| format!("{} {}", c.id, c.codec.codec_string()))
        .collect::<Vec<_>>()
        .join(", ")
}
