//! The packager state machine: frames in, CMAF objects and playlist changes out.
//!
//! Contract: call a `handle_*` method, then drain [`Packager::poll_output`] until `None`. After
//! a [`Output::PlaylistChanged`], [`Packager::snapshot`] describes the new playlists; every URI
//! they list was emitted as an [`Output::Object`] or [`Output::Append`] before it.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::cmaf::{self, InitTrack, Sample, TrackRun};
use crate::codec::{opus_packet_samples, CodecConfig};
use crate::key::ObjectKey;
use crate::media::{rescale, Frame, TrackConfig, TrackId, TrackKind, WallClock};
use crate::playlist::{
    OpenSegment, PartEntry, PreloadHint, RenditionKind, RenditionSnapshot, SegmentEntry,
    StreamSnapshot, StreamTiming,
};
use crate::render::round_up_precision;

/// Where audio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Video and audio in the same fragments and one media playlist (half the blocking
    /// requests per viewer).
    #[default]
    Muxed,
    /// Video and audio as separate CMAF tracks with their own media playlists, audio in an
    /// EXT-X-MEDIA group (the CMAF way).
    Separate,
}

/// How parts are addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// One URI per part (`video/123.4.m4s`), plus one per segment.
    #[default]
    Files,
    /// Parts are byte ranges of the growing segment (`BYTERANGE`, `BYTERANGE-START` hints).
    ByteRange,
}

/// Packager settings. Timing values derived from them are fixed when the stream starts.
#[derive(Debug, Clone)]
pub struct PackagerConfig {
    /// Nominal part duration (rounded to whole frames at stream start).
    pub part_target: Duration,
    /// Nominal segment duration; segments close on the first keyframe after 3/4 of it.
    pub segment_target: Duration,
    /// Largest EXT-X-TARGETDURATION accepted when the keyframe interval is long (seconds).
    pub max_target_duration: u32,
    /// Complete segments kept in the playlist (at least 6).
    pub window_segments: usize,
    /// Muxed or separate audio.
    pub layout: Layout,
    /// Part files or byte ranges.
    pub addressing: Addressing,
    /// First media sequence number (>= 1). Use a value derived from the wall clock (`llhls`
    /// uses Unix time in tenths of a second) so a restarted stream never reuses a URI a CDN may
    /// have cached.
    pub first_msn: u64,
    /// Offer delta updates (CAN-SKIP-UNTIL = 6 × TD).
    pub delta_updates: bool,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        PackagerConfig {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(2),
            max_target_duration: 10,
            window_segments: 12,
            layout: Layout::Muxed,
            addressing: Addressing::Files,
            first_msn: 1,
            delta_updates: true,
        }
    }
}

/// Errors from the packager. The state stays consistent after any of them: the offending
/// frame is dropped and nothing already published changes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PackagerError {
    /// The configuration cannot produce a valid stream.
    #[error("invalid packager configuration: {0}")]
    Config(String),
    /// A frame for a track that was not configured.
    #[error("frame for unknown {0}")]
    UnknownTrack(TrackId),
    /// A frame with no payload.
    #[error("{track}: empty frame at dts {dts}")]
    EmptyFrame {
        /// Track.
        track: TrackId,
        /// DTS (input ticks).
        dts: i64,
    },
    /// PTS earlier than DTS.
    #[error("{track}: pts {pts} is before dts {dts}")]
    PtsBeforeDts {
        /// Track.
        track: TrackId,
        /// DTS (input ticks).
        dts: i64,
        /// PTS (input ticks).
        pts: i64,
    },
    /// DTS not increasing (by less than the reset threshold; larger resets are handled as a
    /// discontinuity).
    #[error("{track}: dts {dts} does not increase (last {last}); frame dropped")]
    DtsNotIncreasing {
        /// Track.
        track: TrackId,
        /// DTS (input ticks).
        dts: i64,
        /// Previous DTS (input ticks).
        last: i64,
    },
    /// Frames after the end of the stream.
    #[error("the stream has ended")]
    Ended,
    /// A discontinuity changed which kinds of tracks exist.
    #[error("track set changed at a discontinuity: {0}")]
    TrackSetChanged(String),
}

/// Something the publisher should fix; the caller logs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// What happened and what to change, for one log line.
    pub message: String,
}

/// What the packager produced.
#[derive(Debug, Clone)]
pub enum Output {
    /// A complete, immutable object: init segment, part file, or whole segment.
    Object {
        /// Its key; `key.to_string()` is the URI relative to the stream root (e.g.
        /// `video/1000.3.m4s`).
        key: ObjectKey,
        /// Its bytes.
        bytes: Bytes,
    },
    /// Byte-range addressing: bytes appended to the growing segment `key` at `offset`.
    Append {
        /// The segment's key.
        key: ObjectKey,
        /// Offset of the first byte.
        offset: u64,
        /// The part's bytes.
        bytes: Bytes,
    },
    /// Objects no longer listed and past their retention (3 × TD): they may be deleted.
    Expired(Vec<ObjectKey>),
    /// The playlists changed: read [`Packager::snapshot`].
    PlaylistChanged,
    /// A problem with the input the publisher should know about.
    Warning(Warning),
}

#[derive(Debug, Clone)]
struct Pending {
    dts: i64,
    cts: i32,
    sync: bool,
    data: Bytes,
    dur: Option<u32>,
}

#[derive(Debug)]
struct Track {
    cfg: TrackConfig,
    scale: u32,
    lead: bool,
    /// Output = rescale(input ns + stream shift ns + cts_shift ns).
    cts_shift_ns: Option<i64>,
    last_in: Option<(i64, u32)>,
    next_dts: Option<i64>,
    pending: VecDeque<Pending>,
    last_dur: u32,
}

#[derive(Debug)]
struct Open {
    msn: u64,
    start: i64,
    pdt: WallClock,
    discontinuity: bool,
    map_uri: String,
    parts: Vec<PartEntry>,
    part_bytes: Vec<Bytes>,
    bytes: u64,
    independent: bool,
}

#[derive(Debug)]
struct Rendition {
    name: String,
    kind: RenditionKind,
    tracks: Vec<usize>,
    part_target: f64,
    segments: VecDeque<SegmentEntry>,
    seg_starts: VecDeque<i64>,
    open: Option<Open>,
    media_sequence: u64,
    discontinuity_sequence: u64,
    map_uri: String,
    fragment_seq: u32,
}

#[derive(Debug, Clone, Copy)]
struct Locked {
    pt_ticks: i64,
    fd: i64,
    td: u32,
    seg_close: i64,
    seg_limit: i64,
    gap_threshold: i64,
}

enum Phase {
    Probing(Vec<(Frame, WallClock)>),
    Running(Locked),
}

/// The sans-IO LL-HLS packager for one stream. See the crate docs for the contract.
pub struct Packager {
    config: PackagerConfig,
    tracks: Vec<Track>,
    renditions: Vec<Rendition>,
    lead: usize,
    lead_scale: i64,
    phase: Phase,
    timing: Option<StreamTiming>,
    outputs: VecDeque<Output>,
    version: u64,
    /// Stream shift in ns: output time = input time + shift.
    shift_ns: Option<i64>,
    /// End of the output timeline so far (lead ticks) for re-anchoring after discontinuities.
    timeline_end: i64,
    pdt_anchor: Option<(i64, WallClock)>,
    next_msn: u64,
    part_start: i64,
    part_samples: Vec<Pending>,
    lead_pending: Option<Pending>,
    pending_discontinuity: bool,
    waiting_for_keyframe: bool,
    dropped_before_keyframe: u64,
    retention: VecDeque<(i64, Vec<ObjectKey>)>,
    ended: bool,
    independent_segments: bool,
    last_wall: WallClock,
    dirty: bool,
    /// While the input is stalled: the end (lead ticks) of the GAP parts published so far.
    gap_end: Option<i64>,
    /// The PDT anchor before a stall, so GAP parts keep following the wall clock.
    last_anchor: Option<(i64, WallClock)>,
}

const NS: u32 = 1_000_000_000;
/// A DTS jump larger than this (either way) is read as a timestamp reset: a discontinuity.
const RESET_NS: i64 = 5_000_000_000;

impl Packager {
    /// A packager for the given tracks. At most one video track; audio tracks join the video
    /// (muxed) or get their own rendition (separate).
    pub fn new(config: PackagerConfig, tracks: Vec<TrackConfig>) -> Result<Self, PackagerError> {
        if config.window_segments < 6 {
            return Err(PackagerError::Config(
                "window_segments must be at least 6 (Apple authoring spec 8.11)".into(),
            ));
        }
        if config.first_msn == 0 {
            return Err(PackagerError::Config("first_msn must be at least 1".into()));
        }
        let pt = config.part_target.as_secs_f64();
        if !(0.05..=2.0).contains(&pt) {
            return Err(PackagerError::Config(format!(
                "part target {pt} s is outside 0.05-2 s"
            )));
        }
        let st = config.segment_target.as_secs_f64();
        if st < 2.0 * pt || st > f64::from(config.max_target_duration) {
            return Err(PackagerError::Config(format!(
                "segment target {st} s must be at least two part targets and at most max_target_duration"
            )));
        }
        let videos = tracks
            .iter()
            .filter(|t| t.kind() == TrackKind::Video)
            .count();
        let audios = tracks
            .iter()
            .filter(|t| t.kind() == TrackKind::Audio)
            .count();
        if videos > 1 || audios > 1 || tracks.is_empty() {
            return Err(PackagerError::Config(format!(
                "need one video and/or one audio track, got {videos} video and {audios} audio"
            )));
        }
        let lead = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .unwrap_or(0);
        let lead_scale = i64::from(tracks[lead].codec.timescale().hz());
        let tracks: Vec<Track> = tracks
            .into_iter()
            .enumerate()
            .map(|(i, cfg)| Track {
                scale: cfg.codec.timescale().hz(),
                lead: i == lead,
                cfg,
                cts_shift_ns: None,
                last_in: None,
                next_dts: None,
                pending: VecDeque::new(),
                last_dur: 0,
            })
            .collect();
        let mut renditions = Vec::new();
        let video_idx = tracks.iter().position(|t| t.cfg.kind() == TrackKind::Video);
        let audio_idx = tracks.iter().position(|t| t.cfg.kind() == TrackKind::Audio);
        let mk = |name: &str, kind, tracks: Vec<usize>| Rendition {
            name: name.to_string(),
            kind,
            tracks,
            part_target: 0.0,
            segments: VecDeque::new(),
            seg_starts: VecDeque::new(),
            open: None,
            media_sequence: config.first_msn,
            discontinuity_sequence: 0,
            map_uri: String::new(),
            fragment_seq: 0,
        };
        match (video_idx, audio_idx, config.layout) {
            (Some(v), Some(a), Layout::Muxed) => {
                renditions.push(mk("media", RenditionKind::Muxed, vec![v, a]))
            }
            (Some(v), Some(a), Layout::Separate) => {
                renditions.push(mk("video", RenditionKind::Video, vec![v]));
                renditions.push(mk("audio", RenditionKind::Audio, vec![a]));
            }
            (Some(v), None, _) => renditions.push(mk("video", RenditionKind::Video, vec![v])),
            (None, Some(a), _) => renditions.push(mk("audio", RenditionKind::Audio, vec![a])),
            (None, None, _) => unreachable!("checked above: at least one track"),
        }
        let next_msn = config.first_msn;
        let mut p = Packager {
            config,
            tracks,
            renditions,
            lead,
            lead_scale,
            phase: Phase::Probing(Vec::new()),
            timing: None,
            outputs: VecDeque::new(),
            version: 0,
            shift_ns: None,
            timeline_end: 0,
            pdt_anchor: None,
            next_msn,
            part_start: 0,
            part_samples: Vec::new(),
            lead_pending: None,
            pending_discontinuity: false,
            waiting_for_keyframe: true,
            dropped_before_keyframe: 0,
            retention: VecDeque::new(),
            ended: false,
            independent_segments: true,
            last_wall: WallClock(0),
            dirty: false,
            gap_end: None,
            last_anchor: None,
        };
        p.emit_init();
        Ok(p)
    }

    /// The next output, or `None` when drained.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Has the first playlist been published (at least one complete segment)?
    pub fn is_live(&self) -> bool {
        self.timing.is_some() && self.renditions.iter().all(|r| !r.segments.is_empty())
    }

    /// The fixed timing values, once the first segment has fixed them.
    pub fn timing(&self) -> Option<StreamTiming> {
        self.timing
    }

    /// The track configurations in use.
    pub fn track_configs(&self) -> Vec<TrackConfig> {
        self.tracks.iter().map(|t| t.cfg.clone()).collect()
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
            .position(|t| t.cfg.id == frame.track)
            .ok_or(PackagerError::UnknownTrack(frame.track))?;
        if frame.data.is_empty() {
            return Err(PackagerError::EmptyFrame {
                track: frame.track,
                dts: frame.dts.ticks,
            });
        }
        let dts_ns = rescale(frame.dts.ticks, frame.dts.scale.hz(), NS);
        let pts_ns = rescale(frame.pts.ticks, frame.pts.scale.hz(), NS);
        if pts_ns < dts_ns {
            return Err(PackagerError::PtsBeforeDts {
                track: frame.track,
                dts: frame.dts.ticks,
                pts: frame.pts.ticks,
            });
        }
        if let Some((last, scale)) = self.tracks[ti].last_in {
            let last_ns = rescale(last, scale, NS);
            if dts_ns <= last_ns {
                if last_ns - dts_ns > RESET_NS {
                    // Timestamps reset (encoder restart): a discontinuity, not an error.
                    self.discontinuity_internal();
                } else {
                    return Err(PackagerError::DtsNotIncreasing {
                        track: frame.track,
                        dts: frame.dts.ticks,
                        last,
                    });
                }
            } else if dts_ns - last_ns > RESET_NS {
                self.discontinuity_internal();
            }
        }
        self.tracks[ti].last_in = Some((frame.dts.ticks, frame.dts.scale.hz()));
        self.last_wall = now;
        match &mut self.phase {
            Phase::Probing(buf) => {
                buf.push((frame, now));
                if let Some(locked) = self.probe_done() {
                    let Phase::Probing(buf) =
                        std::mem::replace(&mut self.phase, Phase::Running(locked))
                    else {
                        unreachable!("phase was Probing")
                    };
                    self.lock_timing(locked);
                    let offset = self.least_delay_offset(&buf);
                    for (f, w) in buf {
                        let w = earliest_arrival(offset, &f, w);
                        self.run_frame(f, w);
                    }
                }
            }
            Phase::Running(_) => self.run_frame(frame, now),
        }
        self.publish();
        Ok(())
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
        self.last_wall = self.last_wall.max(now);
        if let Some(new) = tracks {
            let same_kinds = new.len() == self.tracks.len()
                && self.tracks.iter().all(|t| {
                    new.iter()
                        .any(|n| n.id == t.cfg.id && n.kind() == t.cfg.kind())
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
                if let Some(t) = self.tracks.iter_mut().find(|t| t.cfg.id == n.id) {
                    if t.cfg != n {
                        t.scale = n.codec.timescale().hz();
                        t.cfg = n;
                        changed = true;
                    }
                }
            }
            if changed {
                self.emit_init();
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
        self.last_wall = self.last_wall.max(now);
        self.flush_timeline();
        self.ended = true;
        self.changed();
        self.publish();
    }

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
        let Some((t0, w0)) = self.pdt_anchor.or(self.last_anchor) else {
            return;
        };
        let l = self.lead_scale;
        let t_now = t0 + (now.0 - w0.0) * l / 1000;
        let end = match (self.gap_end, &self.lead_pending) {
            (Some(g), _) => g,
            (None, Some(p)) => {
                p.dts + i64::from(p.dur.unwrap_or(self.tracks[self.lead].last_dur.max(1)))
            }
            (None, None) => return,
        };
        let pt = locked.pt_ticks;
        if t_now - end <= 2 * pt {
            return;
        }
        let seg_len = i64::from(locked.td) * l;
        if self.gap_end.is_none() && t_now - end > 10 * seg_len {
            // `now` and the frames' arrival clock disagree by more than a plausible stall
            // (a stepped clock, or frames stamped with another clock): do not invent media.
            return;
        }
        if self.gap_end.is_none() {
            self.flush_timeline();
            self.waiting_for_keyframe = true;
            self.last_anchor = self.pdt_anchor;
            self.warn(format!(
                "no input for {:.1} s: publishing GAP parts until the publisher resumes",
                (t_now - end) as f64 / l as f64
            ));
        }
        let mut g = self.gap_end.unwrap_or(self.timeline_end);
        // Keep one part of slack behind the wall clock, and bound the work of one call.
        let mut budget = 4 * seg_len / pt + 1;
        while g + pt <= t_now - pt && budget > 0 {
            budget -= 1;
            if self.renditions[0].open.is_none() {
                self.open_segments(g, false);
            }
            let seg_start = self.renditions[0]
                .open
                .as_ref()
                .map(|o| o.start)
                .unwrap_or(g);
            self.push_gap_part(pt);
            g += pt;
            self.timeline_end = g;
            self.changed();
            if g - seg_start + pt > seg_len {
                self.close_segments(g);
            }
        }
        self.gap_end = Some(g);
        self.publish();
    }

    /// Closes a GAP segment left open by [`Packager::handle_timeout`].
    fn close_gap(&mut self) {
        if let Some(g) = self.gap_end.take() {
            if self.renditions[0]
                .open
                .as_ref()
                .is_some_and(|o| !o.parts.is_empty())
            {
                self.close_segments(g);
            } else {
                for r in &mut self.renditions {
                    r.open = None;
                }
                self.next_msn = self.renditions[0]
                    .segments
                    .back()
                    .map(|s| s.msn + 1)
                    .unwrap_or(self.next_msn);
            }
            self.timeline_end = self.timeline_end.max(g);
        }
    }

    /// The current playlist state (cheap enough to call once per change).
    pub fn snapshot(&self) -> Option<StreamSnapshot> {
        let timing = self.timing?;
        let renditions = self
            .renditions
            .iter()
            .map(|r| {
                let track_cfgs: Vec<&TrackConfig> =
                    r.tracks.iter().map(|&i| &self.tracks[i].cfg).collect();
                let video = track_cfgs.iter().find(|c| c.kind() == TrackKind::Video);
                let audio = track_cfgs.iter().find(|c| c.kind() == TrackKind::Audio);
                let open = r.open.as_ref().map(|o| OpenSegment {
                    msn: o.msn,
                    uri: ObjectKey::segment(&r.name, o.msn).to_string(),
                    program_date_time: o.pdt,
                    discontinuity: o.discontinuity,
                    map_uri: o.map_uri.clone(),
                    parts: o.parts.clone(),
                    bytes: o.bytes,
                });
                let preload_hint = if self.ended {
                    None
                } else {
                    r.open.as_ref().map(|o| match self.config.addressing {
                        Addressing::Files => PreloadHint {
                            uri: ObjectKey::part(&r.name, o.msn, o.parts.len() as u32).to_string(),
                            byterange_start: None,
                        },
                        Addressing::ByteRange => PreloadHint {
                            uri: ObjectKey::segment(&r.name, o.msn).to_string(),
                            byterange_start: Some(o.bytes),
                        },
                    })
                };
                RenditionSnapshot {
                    name: r.name.clone(),
                    kind: r.kind,
                    codecs: track_cfgs.iter().map(|c| c.codec.codec_string()).collect(),
                    resolution: video.map(|v| v.codec.resolution()),
                    frame_rate: video
                        .and_then(|v| v.codec.frame_rate())
                        .or_else(|| video.and(self.frame_rate_measured())),
                    channels: audio.and_then(|a| a.codec.channels()),
                    part_target: r.part_target,
                    media_sequence: r.media_sequence,
                    discontinuity_sequence: r.discontinuity_sequence,
                    segments: r.segments.iter().cloned().collect(),
                    open,
                    preload_hint,
                }
            })
            .collect();
        Some(StreamSnapshot {
            version: self.version,
            timing,
            renditions,
            ended: self.ended,
            independent_segments: self.independent_segments,
        })
    }

    fn frame_rate_measured(&self) -> Option<f64> {
        match self.phase {
            Phase::Running(l) if l.fd > 0 => {
                Some((self.lead_scale as f64 / l.fd as f64 * 1000.0).round() / 1000.0)
            }
            _ => None,
        }
    }

    fn changed(&mut self) {
        self.dirty = true;
    }

    /// Ends a `handle_*` call: one PlaylistChanged after every object it produced, so anything
    /// a snapshot lists has already been output (publish order, rule 46).
    fn publish(&mut self) {
        if self.dirty && self.timing.is_some() && (self.is_live() || self.ended) {
            self.dirty = false;
            self.version += 1;
            self.outputs.push_back(Output::PlaylistChanged);
        }
    }

    fn warn(&mut self, message: String) {
        self.outputs.push_back(Output::Warning(Warning { message }));
    }

    fn emit_init(&mut self) {
        let msn = self.next_msn;
        for ri in 0..self.renditions.len() {
            let tracks: Vec<InitTrack<'_>> = self.renditions[ri]
                .tracks
                .iter()
                .map(|&i| InitTrack {
                    track_id: i as u32 + 1,
                    timescale: self.tracks[i].scale,
                    codec: &self.tracks[i].cfg.codec,
                })
                .collect();
            let bytes = cmaf::init_segment(&tracks);
            let key = ObjectKey::init(&self.renditions[ri].name, msn);
            self.renditions[ri].map_uri = key.to_string();
            self.outputs.push_back(Output::Object { key, bytes });
        }
    }

    /// Decides whether the probe buffer holds enough to fix TD and PT.
    fn probe_done(&mut self) -> Option<Locked> {
        let Phase::Probing(buf) = &mut self.phase else {
            return None;
        };
        let lead_id = self.tracks[self.lead].cfg.id;
        let lead_video = self.tracks[self.lead].cfg.kind() == TrackKind::Video;
        // Drop anything before the first lead keyframe.
        if let Some(first_key) = buf
            .iter()
            .position(|(f, _)| f.track == lead_id && f.keyframe)
        {
            let key_ns = rescale(
                buf[first_key].0.dts.ticks,
                buf[first_key].0.dts.scale.hz(),
                NS,
            );
            let mut idx = 0;
            let mut dropped_lead = 0;
            buf.retain(|(f, _)| {
                idx += 1;
                let f_ns = rescale(f.dts.ticks, f.dts.scale.hz(), NS);
                let keep = idx > first_key || (f.track != lead_id && f_ns >= key_ns);
                if !keep && f.track == lead_id {
                    dropped_lead += 1;
                }
                keep
            });
            // Only lead frames count: audio slightly ahead of the first keyframe is normal.
            self.dropped_before_keyframe += dropped_lead;
        } else {
            let lead_frames = buf.iter().filter(|(f, _)| f.track == lead_id).count();
            buf.clear();
            self.dropped_before_keyframe += lead_frames as u64;
            return None;
        }
        let lead: Vec<(i64, bool)> = buf
            .iter()
            .filter(|(f, _)| f.track == lead_id)
            .map(|(f, _)| (rescale(f.dts.ticks, f.dts.scale.hz(), NS), f.keyframe))
            .collect();
        let first = lead.first()?.0;
        let &(last, last_key) = lead.last()?;
        let st_ns = self.config.segment_target.as_nanos() as i64;
        let elapsed = last - first;
        let max_ns = i64::from(self.config.max_target_duration) * 1_000_000_000;
        let closes = last_key && elapsed >= st_ns * 3 / 4;
        if !(closes || elapsed >= max_ns) || lead.len() < 3 {
            return None;
        }
        // Frame duration: the mean DTS delta (millisecond timestamps make single deltas
        // jitter), or the SPS frame rate when it agrees within 10%.
        let mean_ns = (last - first) / (lead.len() as i64 - 1);
        let l = self.lead_scale;
        let mut fd = rescale(mean_ns, NS, l as u32).max(1);
        if let Some(fixed) = self.tracks[self.lead].cfg.codec.audio_frame_ticks() {
            fd = fixed;
        } else if let Some(fps) = self.tracks[self.lead].cfg.codec.frame_rate() {
            let sps_fd = (l as f64 / fps).round() as i64;
            if (sps_fd - fd).abs() * 10 <= fd {
                fd = sps_fd;
            }
        }
        let pt_cfg = rescale(self.config.part_target.as_nanos() as i64, NS, l as u32);
        let frames_per_part = ((pt_cfg as f64 / fd as f64).round() as i64).max(1);
        // Jitter allowance: two input ticks (ms timestamps from RTMP jitter by one at each end).
        let in_scale = buf
            .iter()
            .find(|(f, _)| f.track == lead_id)
            .map(|(f, _)| f.dts.scale.hz())
            .unwrap_or(l as u32);
        let jitter = if in_scale as i64 >= l {
            1
        } else {
            2 * l / in_scale as i64 + 1
        };
        let pt_ticks = frames_per_part * fd + jitter;
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
            self.warn(format!(
                "keyframe interval {gop} is longer than the {:.1} s segment target: TARGETDURATION is fixed at {td} s for this stream{}. Set the encoder's keyframe interval to 1 or 2 s (OBS: Settings > Output > Keyframe Interval)",
                self.config.segment_target.as_secs_f64(),
                if closes { "" } else { " and segments will be cut between keyframes" }
            ));
        }
        let td_ticks = i64::from(td) * l;
        Some(Locked {
            pt_ticks,
            fd,
            td,
            seg_close: rescale(st_ns * 3 / 4, NS, l as u32),
            seg_limit: td_ticks + l / 2 - 1,
            gap_threshold: (pt_ticks).max(3 * fd),
        })
    }

    fn lock_timing(&mut self, locked: Locked) {
        let l = self.lead_scale as f64;
        let lead_pt = round_up_precision(locked.pt_ticks as f64 / l);
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
                        let t = &self.tracks[i];
                        let frame = t
                            .cfg
                            .codec
                            .audio_frame_ticks()
                            .unwrap_or(i64::from(t.scale) / 50);
                        frame as f64 / f64::from(t.scale)
                    })
                    .fold(0.0, f64::max);
                round_up_precision(locked.pt_ticks as f64 / l + extra)
            };
            max_pt = max_pt.max(r.part_target);
        }
        let td = f64::from(locked.td);
        self.timing = Some(StreamTiming {
            target_duration: locked.td,
            part_hold_back: round_up_precision(3.0 * max_pt),
            hold_back: 3.0 * td,
            can_skip_until: self.config.delta_updates.then_some(6.0 * td),
        });
        if self.dropped_before_keyframe > 0 {
            let n = self.dropped_before_keyframe;
            self.warn(format!(
                "dropped {n} frames that arrived before the first keyframe"
            ));
        }
    }

    fn locked(&self) -> Option<Locked> {
        match self.phase {
            Phase::Running(l) => Some(l),
            Phase::Probing(_) => None,
        }
    }

    fn to_out(&self, ti: usize, in_ticks: i64, in_scale: u32) -> i64 {
        let t = &self.tracks[ti];
        let ns = rescale(in_ticks, in_scale, NS)
            + self.shift_ns.unwrap_or(0)
            + t.cts_shift_ns.unwrap_or(0);
        rescale(ns, NS, t.scale)
    }

    fn run_frame(&mut self, frame: Frame, now: WallClock) {
        let Some(locked) = self.locked() else { return };
        let ti = match self.tracks.iter().position(|t| t.cfg.id == frame.track) {
            Some(i) => i,
            None => return,
        };
        let is_lead = ti == self.lead;
        if self.waiting_for_keyframe {
            if !(is_lead && frame.keyframe) {
                self.dropped_before_keyframe += 1;
                return;
            }
            self.waiting_for_keyframe = false;
            self.close_gap();
            let dts_ns = rescale(frame.dts.ticks, frame.dts.scale.hz(), NS);
            // Map the first keyframe to the end of the timeline so far: tfdt stays continuous
            // across reconnects.
            let end_ns = rescale(self.timeline_end, self.lead_scale as u32, NS);
            self.shift_ns = Some(end_ns - dts_ns);
            for t in &mut self.tracks {
                // next_dts survives: audio of the new timeline must not overlap the old.
                t.cts_shift_ns = None;
                t.pending.clear();
            }
            self.pdt_anchor = None;
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
        let pts_plain = {
            let t = &self.tracks[ti];
            let ns =
                rescale(frame.pts.ticks, frame.pts.scale.hz(), NS) + self.shift_ns.unwrap_or(0);
            rescale(ns, NS, t.scale)
        };
        // Audio: count samples rather than trust rounded (millisecond) timestamps.
        let audio_dur = match &self.tracks[ti].cfg.codec {
            CodecConfig::Aac(c) => Some(c.frame_length),
            CodecConfig::Opus(_) => opus_packet_samples(&frame.data),
            _ => None,
        };
        if let (Some(dur), Some(expected)) = (audio_dur, self.tracks[ti].next_dts) {
            let d = i64::from(dur);
            let diff = dts - expected;
            if diff.abs() <= d / 2 {
                dts = expected;
            } else if diff < 0 {
                // Would overlap audio already packaged (after a reconnect, or a publisher
                // whose audio clock runs fast): drop it so tfdt never goes backwards.
                return;
            }
            // diff > d/2: a real gap in the audio; keep the timestamp.
        }
        if !is_lead {
            // Non-lead samples before the lead's first sample of this timeline are dropped.
            if self.lead_pending.is_none() && self.part_samples.is_empty() {
                return;
            }
            let dur = audio_dur.unwrap_or(self.tracks[ti].last_dur.max(1));
            let t = &mut self.tracks[ti];
            t.next_dts = Some(dts + i64::from(dur));
            t.pending.push_back(Pending {
                dts,
                cts: 0,
                sync: true,
                data: frame.data,
                dur: Some(dur),
            });
            return;
        }
        let cts = (pts_plain - dts).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        if let Some(d) = audio_dur {
            self.tracks[ti].next_dts = Some(dts + i64::from(d));
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
    fn least_delay_offset(&self, buf: &[(Frame, WallClock)]) -> Option<i64> {
        let lead = self.tracks[self.lead].cfg.id;
        buf.iter()
            .filter(|(f, _)| f.track == lead)
            .map(|(f, w)| w.0 - rescale(f.dts.ticks, f.dts.scale.hz(), 1000))
            .min()
    }

    fn on_lead_sample(&mut self, sample: Pending, now: WallClock, locked: Locked) {
        let t = sample.dts;
        if self.pdt_anchor.is_none() {
            self.pdt_anchor = Some((t, now));
        }
        if self.renditions[0].open.is_none() {
            // First sample of a timeline: open a segment.
            self.part_start = t;
            self.open_segments(t, sample.sync);
        }
        if let Some(mut prev) = self.lead_pending.take() {
            let mut dur = t - prev.dts;
            if dur > locked.gap_threshold {
                // A stall: the frame before it gets a nominal duration and the hole becomes
                // GAP parts, so the playlist timeline keeps its shape (rule 34).
                let nominal =
                    i64::from(self.tracks[self.lead].last_dur.max(1)).min(locked.fd.max(1));
                prev.dur = Some(nominal as u32);
                self.part_samples.push(prev);
                let end = self
                    .part_samples
                    .last()
                    .map(|p| p.dts + nominal)
                    .unwrap_or(t);
                self.close_part(end);
                self.close_segments(end);
                self.fill_gap(end, t, locked);
                self.part_start = t;
                self.open_segments(t, sample.sync);
                if !sample.sync {
                    self.warn(format!(
                        "input stalled for {:.2} s and resumed without a keyframe: segment {} does not start with one",
                        (t - end) as f64 / self.lead_scale as f64,
                        self.next_msn - 1
                    ));
                    self.independent_segments = false;
                }
                self.lead_pending = Some(sample);
                return;
            }
            dur = dur.max(1);
            prev.dur = Some(dur as u32);
            self.tracks[self.lead].last_dur = dur as u32;
            self.part_samples.push(prev);
        }
        if !self.part_samples.is_empty() {
            let seg_start = self.renditions[0]
                .open
                .as_ref()
                .map(|o| o.start)
                .unwrap_or(t);
            let seg_dur = t - seg_start;
            let part_dur = t - self.part_start;
            let next_est = i64::from(self.tracks[self.lead].last_dur.max(1));
            if sample.sync && seg_dur >= locked.seg_close {
                self.close_part(t);
                self.close_segments(t);
                self.open_segments(t, true);
            } else if part_dur > locked.pt_ticks && self.part_samples.len() > 1 {
                // Jitter pushed the part over PART-TARGET: close it before the last sample.
                let b = self.part_samples.last().map(|p| p.dts).unwrap_or(t);
                self.close_part(b);
                let next_sync = self.part_samples.first().is_some_and(|p| p.sync);
                self.maybe_force_cut(b, seg_start, next_sync, locked);
            } else if part_dur + next_est > locked.pt_ticks {
                self.close_part(t);
                self.maybe_force_cut(t, seg_start, sample.sync, locked);
            }
        }
        self.lead_pending = Some(sample);
    }

    fn maybe_force_cut(&mut self, t: i64, seg_start: i64, next_sync: bool, locked: Locked) {
        if t - seg_start + locked.pt_ticks > locked.seg_limit {
            let msn = self.renditions[0].open.as_ref().map(|o| o.msn).unwrap_or(0);
            self.close_segments(t);
            self.open_segments(t, next_sync);
            self.independent_segments = false;
            self.warn(format!(
                "no keyframe within the {} s target duration: segment {msn} was cut between keyframes, so the next one does not start with a keyframe. Set the encoder's keyframe interval to 1 or 2 s",
                locked.td
            ));
        }
    }

    fn pdt_at(&self, t: i64) -> WallClock {
        match self.pdt_anchor {
            Some((t0, w0)) => WallClock(w0.0 + (t - t0) * 1000 / self.lead_scale),
            None => self.last_wall,
        }
    }

    fn open_segments(&mut self, t: i64, independent: bool) {
        let msn = self.next_msn;
        self.next_msn += 1;
        let pdt = self.pdt_at(t);
        let disc = std::mem::take(&mut self.pending_discontinuity);
        for r in &mut self.renditions {
            r.open = Some(Open {
                msn,
                start: t,
                pdt,
                discontinuity: disc,
                map_uri: r.map_uri.clone(),
                parts: Vec::new(),
                part_bytes: Vec::new(),
                bytes: 0,
                independent,
            });
        }
    }

    /// Publishes the part ending at lead time `b` in every rendition.
    fn close_part(&mut self, b: i64) {
        let n = self.part_samples.iter().take_while(|p| p.dts < b).count();
        if n == 0 {
            return;
        }
        let lead_samples: Vec<Pending> = self.part_samples.drain(..n).collect();
        let lead_dur: i64 = lead_samples
            .iter()
            .map(|p| i64::from(p.dur.unwrap_or(0)))
            .sum();
        let independent = lead_samples.first().is_some_and(|p| p.sync);
        let lead_scale = self.lead_scale;
        let addressing = self.config.addressing;
        for ri in 0..self.renditions.len() {
            let mut runs_owned: Vec<(u32, u64, bool, Vec<Sample>)> = Vec::new();
            let mut rendition_dur_secs: f64 = 0.0;
            let has_lead = self.renditions[ri].tracks.contains(&self.lead);
            let cap = self.renditions[ri].part_target;
            for &ti in &self.renditions[ri].tracks.clone() {
                let track = &mut self.tracks[ti];
                let samples: Vec<Pending> = if ti == self.lead {
                    lead_samples.clone()
                } else {
                    // Samples that start before the boundary; in an audio-only rendition, never
                    // more than PART-TARGET worth.
                    let mut taken = Vec::new();
                    let mut secs = 0.0;
                    while let Some(front) = track.pending.front() {
                        let front_lead = rescale(front.dts, track.scale, lead_scale as u32);
                        let d = f64::from(front.dur.unwrap_or(0)) / f64::from(track.scale);
                        if front_lead >= b || (!has_lead && secs + d > cap + 1e-9) {
                            break;
                        }
                        secs += d;
                        taken.push(track.pending.pop_front().expect("front exists"));
                    }
                    if !has_lead {
                        rendition_dur_secs += secs;
                    }
                    taken
                };
                if samples.is_empty() {
                    continue;
                }
                let base = samples[0].dts.max(0) as u64;
                let video = track.cfg.kind() == TrackKind::Video;
                let out: Vec<Sample> = samples
                    .into_iter()
                    .map(|p| Sample {
                        duration: p.dur.unwrap_or(0),
                        cts_offset: p.cts,
                        sync: p.sync,
                        data: p.data,
                    })
                    .collect();
                runs_owned.push((ti as u32 + 1, base, video, out));
            }
            if has_lead {
                rendition_dur_secs = lead_dur as f64 / lead_scale as f64;
            }
            let r = &mut self.renditions[ri];
            let Some(open) = r.open.as_mut() else {
                continue;
            };
            let index = open.parts.len() as u32;
            if runs_owned.is_empty() {
                // Nothing for this rendition yet (audio not arrived): a GAP part keeps the grid.
                open.parts.push(PartEntry {
                    duration: (lead_dur as f64 / lead_scale as f64).min(r.part_target),
                    uri: ObjectKey::part(&r.name, open.msn, index).to_string(),
                    independent: false,
                    gap: true,
                    byterange: None,
                });
                continue;
            }
            r.fragment_seq += 1;
            let runs: Vec<TrackRun<'_>> = runs_owned
                .iter()
                .map(|(id, base, video, s)| TrackRun {
                    track_id: *id,
                    base_dts: *base,
                    video: *video,
                    samples: s,
                })
                .collect();
            let bytes = cmaf::fragment(r.fragment_seq, &runs);
            let len = bytes.len() as u64;
            let key = part_key(addressing, &r.name, open.msn, index);
            let entry = PartEntry {
                duration: rendition_dur_secs,
                uri: key.to_string(),
                independent: if has_lead { independent } else { true },
                gap: false,
                byterange: match addressing {
                    Addressing::Files => None,
                    Addressing::ByteRange => Some((len, open.bytes)),
                },
            };
            match addressing {
                Addressing::Files => self.outputs.push_back(Output::Object {
                    key,
                    bytes: bytes.clone(),
                }),
                Addressing::ByteRange => self.outputs.push_back(Output::Append {
                    key,
                    offset: open.bytes,
                    bytes: bytes.clone(),
                }),
            }
            open.bytes += len;
            open.parts.push(entry);
            open.part_bytes.push(bytes);
        }
        self.part_start = b;
        self.timeline_end = self.timeline_end.max(b);
        self.changed();
    }

    /// Closes the open segment of every rendition at lead time `b`.
    fn close_segments(&mut self, b: i64) {
        let Some(locked) = self.locked() else { return };
        let l = self.lead_scale;
        let td3 = 3 * i64::from(locked.td) * l;
        let addressing = self.config.addressing;
        let mut expired = Vec::new();
        for r in &mut self.renditions {
            let Some(open) = r.open.take() else { continue };
            if open.parts.is_empty() {
                continue;
            }
            let duration: f64 = open.parts.iter().map(|p| p.duration).sum();
            let key = ObjectKey::segment(&r.name, open.msn);
            let total: usize = open.part_bytes.iter().map(|b| b.len()).sum();
            let mut seg = BytesMut::with_capacity(total);
            for p in &open.part_bytes {
                seg.extend_from_slice(p);
            }
            let gap = open.parts.iter().all(|p| p.gap);
            if !gap {
                self.outputs.push_back(Output::Object {
                    key: key.clone(),
                    bytes: seg.freeze(),
                });
            }
            r.segments.push_back(SegmentEntry {
                msn: open.msn,
                duration,
                uri: key.to_string(),
                program_date_time: open.pdt,
                discontinuity: open.discontinuity,
                map_uri: open.map_uri,
                gap,
                parts: open.parts,
                parts_listed: true,
                bytes: open.bytes,
                independent: open.independent,
            });
            r.seg_starts.push_back(open.start);
            // Sliding window (rule 36: removals in order, never below 6 segments).
            while r.segments.len() > self.config.window_segments {
                let old = r.segments.pop_front().expect("len > window");
                r.seg_starts.pop_front();
                r.media_sequence += 1;
                if old.discontinuity {
                    r.discontinuity_sequence += 1;
                }
                let mut keys: Vec<ObjectKey> = old
                    .parts
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.gap)
                    .map(|(index, _)| part_key(addressing, &r.name, old.msn, index as u32))
                    .collect();
                keys.push(ObjectKey::segment(&r.name, old.msn));
                keys.dedup();
                expired.push((b + td3, keys));
            }
            // Parts listed only for parents overlapping the last 3 × TD, a whole parent at a
            // time (rule 7 / decision E).
            let n = r.segments.len();
            for (i, s) in r.segments.iter_mut().enumerate() {
                let end = r.seg_starts.get(i + 1).copied().unwrap_or(b);
                if i + 2 < n && b - end > td3 {
                    s.parts_listed = false;
                }
            }
        }
        self.retention.extend(expired);
        let mut due = Vec::new();
        while self.retention.front().is_some_and(|(t, _)| *t <= b) {
            due.extend(self.retention.pop_front().expect("front exists").1);
        }
        if !due.is_empty() {
            self.outputs.push_back(Output::Expired(due));
        }
        self.timeline_end = self.timeline_end.max(b);
        self.changed();
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
        let seg_len = (i64::from(locked.td) * self.lead_scale).min(locked.seg_close.max(1) * 4 / 3);
        let mut s = from;
        while to - s > 0 {
            let len = (to - s).min(seg_len);
            self.open_segments(s, false);
            let parts = ((len + locked.pt_ticks - 1) / locked.pt_ticks).max(1);
            for k in 0..parts {
                let ps = s + len * k / parts;
                let pe = s + len * (k + 1) / parts;
                self.push_gap_part(pe - ps);
            }
            s += len;
            self.close_segments(s);
        }
        self.timeline_end = self.timeline_end.max(to);
    }

    fn discontinuity_internal(&mut self) {
        self.flush_timeline();
        self.pending_discontinuity = true;
        self.waiting_for_keyframe = true;
        for t in &mut self.tracks {
            t.last_in = None;
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
        self.close_gap();
        if let Some(mut prev) = self.lead_pending.take() {
            let d = prev
                .dur
                .unwrap_or(self.tracks[self.lead].last_dur.max(locked.fd as u32));
            prev.dur = Some(d);
            let end = prev.dts + i64::from(d);
            self.part_samples.push(prev);
            self.close_part(end);
            for ti in 0..self.tracks.len() {
                if !self.tracks[ti].lead {
                    self.tracks[ti].pending.clear();
                }
            }
            self.close_segments(end);
            self.timeline_end = self.timeline_end.max(end);
        }
        self.part_samples.clear();
    }
}

/// The key a part is stored under: its own file, or the growing segment it is a byte range of.
fn part_key(addressing: Addressing, rendition: &str, msn: u64, index: u32) -> ObjectKey {
    match addressing {
        Addressing::Files => ObjectKey::part(rendition, msn, index),
        Addressing::ByteRange => ObjectKey::segment(rendition, msn),
    }
}

fn describe_tracks<'a>(t: impl Iterator<Item = &'a TrackConfig>) -> String {
    t.map(|c| format!("{} {}", c.id, c.codec.codec_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The arrival `w` of a probed frame, moved earlier to what the least-delayed frame implies
/// (`offset` from [`Packager::least_delay_offset`]), by at most 2 s.
fn earliest_arrival(offset: Option<i64>, f: &Frame, w: WallClock) -> WallClock {
    match offset {
        Some(off) => {
            let t_ms = rescale(f.dts.ticks, f.dts.scale.hz(), 1000);
            WallClock(w.0.min(off + t_ms).max(w.0 - 2000))
        }
        None => w,
    }
}
