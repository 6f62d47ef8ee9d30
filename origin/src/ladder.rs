//! ABR ladder in the stream task: transcoded rungs packaged on the source's grid.
//!
//! The origin does no transcoding: a [`LadderFactory`] (the ingest crate's FFmpeg ladder)
//! starts a [`Transcoder`] per stream, which takes the source's video frames without blocking
//! and sends each rung's encoded frames back as [`RungEvent`]s. The stream task keeps a log
//! of every call it makes on the source packager (frames, timeouts, discontinuities, the end)
//! and replays it, call for call, into one packager per rung, with each source video frame
//! replaced by that rung's encoding of it as soon as the encoding arrives. A packager is a pure
//! function of its calls that never reads video payloads, so every rung is cut on the source's
//! grid (same MSNs, part indexes, durations, INDEPENDENT, GAP, discontinuities and
//! PROGRAM-DATE-TIMEs; see `llhls_packager::ladder`). A rung lags its source by its encoder
//! delay and publishes a part only when the part is complete; the source is never held back.
//! A rung that falls too far behind, loses a frame or fails is withdrawn and the others carry
//! on: it leaves the multivariant playlist and the rendition reports, and its own playlist goes
//! on along the source's timeline with GAP segments and parts ([`GapMirror`]), so a player on it
//! moves to another rung without a 404 and the objects it was given stay served.

use std::collections::VecDeque;

use bytes::Bytes;
use llhls_packager::ladder::{check_aligned, rename_key, rename_rendition, with_rungs, GapMirror};
use llhls_packager::playlist::{RenditionKind, RenditionSnapshot};
use llhls_packager::{
    Frame, MediaTime, ObjectKey, Output, Packager, PackagerConfig, StreamSnapshot, TrackConfig,
    TrackKind, WallClock,
};
use tokio::sync::mpsc;

/// A rung's description: its rendition name and its video track (the source video track's id,
/// the rung's parameter sets).
#[derive(Debug, Clone)]
pub struct RungInfo {
    /// Rendition name: the playlist is `{name}.m3u8` (e.g. `360p`).
    pub name: String,
    /// Its video track.
    pub track: TrackConfig,
}

/// What a transcoder sends back.
#[derive(Debug)]
pub enum RungEvent {
    /// Rung `rung`'s encoding of source video frame `seq`.
    Frame {
        /// Index into [`LadderStart::rungs`].
        rung: usize,
        /// The source frame's number (as given to [`Transcoder::frame`]).
        seq: u64,
        /// Presentation time of the encoded picture (the encoder keeps no reorder delay, so
        /// encoded frames come in presentation order).
        pts: MediaTime,
        /// The encoder made an IDR.
        keyframe: bool,
        /// The access unit, 4-byte length-prefixed NAL units.
        data: Bytes,
    },
    /// Rung `rung` stops (encoder error, or it fell behind): withdraw it.
    Failed {
        /// Index into [`LadderStart::rungs`].
        rung: usize,
        /// Why, for the log.
        reason: String,
    },
}

/// A stream's transcoder. Calls must not block the stream task.
pub trait Transcoder: Send {
    /// Source video frame number `seq` (0, 1, 2... in decode order).
    fn frame(&mut self, seq: u64, frame: &Frame);
    /// The source's timeline breaks here (reconnect, timestamp reset): pictures held in the
    /// decoder come out now. `video` is the new source video configuration, when it changed.
    fn discontinuity(&mut self, video: Option<&TrackConfig>);
    /// No more input: flush, then close the event channel.
    fn finish(&mut self);
}

/// A started ladder.
pub struct LadderStart {
    /// The rungs, highest first.
    pub rungs: Vec<RungInfo>,
    /// The transcoder fed with the source's video.
    pub transcoder: Box<dyn Transcoder>,
    /// Its output.
    pub events: mpsc::UnboundedReceiver<RungEvent>,
}

impl std::fmt::Debug for LadderStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LadderStart")
            .field("rungs", &self.rungs)
            .finish()
    }
}

/// Starts ladders for new streams.
pub trait LadderFactory: Send + Sync {
    /// The ladder for stream `name` with these source tracks, or `None` (no rung below the
    /// source, no video, or transcoding unavailable: the reason is logged).
    fn start(&self, name: &str, tracks: &[TrackConfig]) -> Option<LadderStart>;
}

/// How far (in media time) a rung may lag its source before it is withdrawn: a rung this far
/// behind is of no use to a low-latency player, and its playlist would hold players back.
pub const MAX_LAG: std::time::Duration = std::time::Duration::from_secs(3);

/// One call made on the source packager.
#[derive(Debug, Clone)]
enum Call {
    /// A source video frame: replaced by the rung's encoding of it.
    Video {
        seq: u64,
        frame: Frame,
        at: WallClock,
    },
    /// Anything else is replayed as it was.
    Other(Frame, WallClock),
    Timeout(WallClock),
    Discontinuity(Option<Vec<TrackConfig>>, WallClock),
    End(WallClock),
}

struct Rung {
    info: RungInfo,
    packager: Packager,
    /// Index into the log (absolute) of the next call to replay.
    cursor: u64,
    /// DTS (seconds) of the last source video frame replayed.
    replayed_at: Option<f64>,
    /// Source video frames replayed.
    replayed: u64,
    withdrawn: bool,
    /// The settled lines of its renamed rendition, kept from one snapshot to the next (the
    /// rung packager's own text names its segments under the packager's name).
    settled: llhls_packager::render::SettledText,
    /// Its rendition as last put in a snapshot (under its name).
    last: Option<RenditionSnapshot>,
    /// Once withdrawn after it was published: its playlist, going on with GAPs.
    mirror: Option<GapMirror>,
}

/// The ladder side of a stream task. See the module docs.
pub struct Ladder {
    rungs: Vec<Rung>,
    transcoder: Box<dyn Transcoder>,
    /// Calls not yet replayed by every rung; `log[0]` has absolute index `base`.
    log: VecDeque<Call>,
    base: u64,
    next_seq: u64,
    /// DTS (seconds) of the first and of the latest source video frame.
    first_dts: Option<f64>,
    last_dts: f64,
    source_video: Option<llhls_packager::TrackId>,
    ended: bool,
}

/// What the stream task must do after a ladder step.
#[derive(Debug, Default)]
pub struct Step {
    /// The rungs' objects, appends and expiries to apply to the store (already under the
    /// rungs' names; never a `PlaylistChanged` or `Warning`).
    pub outputs: Vec<Output>,
    /// A rung's playlist changed: publish again.
    pub changed: bool,
    /// Rungs withdrawn in this step (for the metrics).
    pub withdrawn: Vec<String>,
    /// Rungs withdrawn before any snapshot listed them: remove their objects (a rung that was
    /// listed keeps its objects until its segments leave the window, see [`GapMirror`]).
    pub removed: Vec<String>,
}

impl Ladder {
    /// The ladder for a stream packaged with `config` from `tracks`: one packager per rung,
    /// fed by `transcoder` (whose events the stream task passes to [`Ladder::event`]).
    pub fn new(
        config: &PackagerConfig,
        tracks: &[TrackConfig],
        rungs_info: Vec<RungInfo>,
        transcoder: Box<dyn Transcoder>,
    ) -> Result<Self, llhls_packager::PackagerError> {
        let source_video = tracks
            .iter()
            .find(|t| t.kind() == TrackKind::Video)
            .map(|t| t.id);
        let mut rungs = Vec::new();
        for info in rungs_info {
            let rung_tracks: Vec<TrackConfig> = tracks
                .iter()
                .map(|t| {
                    if Some(t.id) == source_video {
                        TrackConfig {
                            id: t.id,
                            codec: info.track.codec.clone(),
                        }
                    } else {
                        t.clone()
                    }
                })
                .collect();
            rungs.push(Rung {
                packager: Packager::new(config.clone(), rung_tracks)?,
                info,
                cursor: 0,
                replayed_at: None,
                replayed: 0,
                withdrawn: false,
                settled: Default::default(),
                last: None,
                mirror: None,
            });
        }
        Ok(Ladder {
            rungs,
            transcoder,
            log: VecDeque::new(),
            base: 0,
            next_seq: 0,
            first_dts: None,
            last_dts: 0.0,
            source_video,
            ended: false,
        })
    }

    /// Names of the rungs still on air.
    pub fn rung_names(&self) -> Vec<String> {
        self.active().map(|r| r.info.name.clone()).collect()
    }

    fn active(&self) -> impl Iterator<Item = &Rung> {
        self.rungs.iter().filter(|r| !r.withdrawn)
    }

    /// Is any rung still on air?
    pub fn is_active(&self) -> bool {
        self.active().next().is_some()
    }

    /// Source video frames given to the transcoder that some rung on air has not replayed yet
    /// (for a caller that paces itself on the transcoder, such as `llhls package`).
    pub fn in_flight(&self) -> u64 {
        self.active()
            .map(|r| self.next_seq.saturating_sub(r.replayed))
            .max()
            .unwrap_or(0)
    }

    /// Has every rung on air published its first playlist?
    pub fn all_live(&self) -> bool {
        self.active().all(|r| r.packager.is_live())
    }

    /// Records a frame the source packager was given; source video goes to the transcoder.
    pub fn frame(&mut self, frame: &Frame, at: WallClock) -> Step {
        if !self.is_active() {
            // Every rung is gone: nothing to transcode or replay.
            return Step::default();
        }
        if Some(frame.track) == self.source_video {
            let seq = self.next_seq;
            self.next_seq += 1;
            let dts = frame.dts.as_secs_f64();
            self.first_dts.get_or_insert(dts);
            self.last_dts = dts;
            self.transcoder.frame(seq, frame);
            self.log.push_back(Call::Video {
                seq,
                frame: frame.clone(),
                at,
            });
            self.check_lag()
        } else {
            self.log.push_back(Call::Other(frame.clone(), at));
            Step::default()
        }
    }

    /// Records a `handle_timeout` of the source packager.
    pub fn timeout(&mut self, now: WallClock) -> Step {
        if !self.is_active() {
            return Step::default();
        }
        self.log.push_back(Call::Timeout(now));
        self.replay_idle()
    }

    /// Records a `handle_discontinuity` of the source packager.
    pub fn discontinuity(&mut self, tracks: Option<Vec<TrackConfig>>, now: WallClock) -> Step {
        if !self.is_active() {
            return Step::default();
        }
        let video = tracks
            .as_ref()
            .and_then(|t| t.iter().find(|c| Some(c.id) == self.source_video).cloned());
        self.transcoder.discontinuity(video.as_ref());
        // Timestamps may restart: lag is measured from the next frame on.
        self.first_dts = None;
        self.log.push_back(Call::Discontinuity(tracks, now));
        self.replay_idle()
    }

    /// The source ends: flush the transcoder (its remaining events still arrive), then call
    /// [`Ladder::end`] once the event channel is closed.
    pub fn finish(&mut self) {
        self.transcoder.finish();
    }

    /// Records the end of the source and replays it into every rung that has caught up. Call
    /// after the transcoder's events are drained.
    pub fn end(&mut self, now: WallClock) -> Step {
        self.ended = true;
        self.log.push_back(Call::End(now));
        let mut step = self.replay_idle();
        // A rung still waiting for a frame will never get it.
        for i in 0..self.rungs.len() {
            if !self.rungs[i].withdrawn && self.rungs[i].cursor < self.base + self.log.len() as u64
            {
                self.withdraw(
                    i,
                    "it never caught up with the end of the stream",
                    &mut step,
                );
            }
        }
        step
    }

    /// Applies one transcoder event.
    pub fn event(&mut self, ev: RungEvent) -> Step {
        let mut step = Step::default();
        match ev {
            RungEvent::Failed { rung, reason } => {
                if rung < self.rungs.len() {
                    self.withdraw(rung, &reason, &mut step);
                }
            }
            RungEvent::Frame {
                rung,
                seq,
                pts,
                keyframe,
                data,
            } => {
                if rung < self.rungs.len() && !self.rungs[rung].withdrawn {
                    self.replay(rung, Some((seq, pts, keyframe, data)), &mut step);
                }
            }
        }
        self.trim();
        step
    }

    /// Replays into every rung the calls that need no new encoded frame (a timeout, a
    /// discontinuity or the end right after frames they already have).
    fn replay_idle(&mut self) -> Step {
        let mut step = Step::default();
        for i in 0..self.rungs.len() {
            if !self.rungs[i].withdrawn {
                self.replay(i, None, &mut step);
            }
        }
        self.trim();
        step
    }

    /// Replays rung `i`'s log up to (and including) the video frame `encoded` answers, or up
    /// to the next video frame when none.
    fn replay(
        &mut self,
        i: usize,
        mut encoded: Option<(u64, MediaTime, bool, Bytes)>,
        step: &mut Step,
    ) {
        loop {
            let at = self.rungs[i].cursor;
            let Some(call) = at
                .checked_sub(self.base)
                .and_then(|k| self.log.get(k as usize))
                .cloned()
            else {
                break;
            };
            let rung = &mut self.rungs[i];
            let result = match call {
                Call::Video { seq, frame, at } => {
                    let Some((got, pts, keyframe, data)) = encoded.take() else {
                        break;
                    };
                    if got != seq {
                        let why = format!("its encoder skipped source frame {seq} (got {got})");
                        self.withdraw(i, &why, step);
                        return;
                    }
                    if keyframe != frame.keyframe {
                        let why = format!(
                            "its encoder made frame {seq} {} where the source has {}",
                            if keyframe { "an IDR" } else { "no IDR" },
                            if frame.keyframe { "a keyframe" } else { "none" }
                        );
                        self.withdraw(i, &why, step);
                        return;
                    }
                    rung.replayed_at = Some(frame.dts.as_secs_f64());
                    rung.replayed += 1;
                    // The source's DTS (so the grid is the source's), the picture's PTS.
                    let pts = MediaTime::new(pts.rescale(frame.dts.scale), frame.dts.scale);
                    let f = Frame {
                        pts: if pts.ticks >= frame.dts.ticks {
                            pts
                        } else {
                            frame.dts
                        },
                        data,
                        ..frame
                    };
                    rung.packager.handle_frame(f, at)
                }
                Call::Other(f, at) => rung.packager.handle_frame(f, at),
                Call::Timeout(now) => {
                    rung.packager.handle_timeout(now);
                    Ok(())
                }
                Call::Discontinuity(tracks, now) => {
                    rung.replayed_at = None;
                    // The rung keeps its own video configuration (its size does not change).
                    let tracks = tracks.map(|t| {
                        t.into_iter()
                            .map(|c| {
                                if Some(c.id) == self.source_video {
                                    TrackConfig {
                                        id: c.id,
                                        codec: rung.info.track.codec.clone(),
                                    }
                                } else {
                                    c
                                }
                            })
                            .collect()
                    });
                    rung.packager.handle_discontinuity(tracks, now)
                }
                Call::End(now) => {
                    rung.packager.handle_end_of_stream(now);
                    Ok(())
                }
            };
            // The source got the same call: an error here is the source's error too (already
            // logged by the stream task), not the rung's.
            let _ = result;
            rung.cursor += 1;
            self.drain(i, step);
        }
    }

    fn drain(&mut self, i: usize, step: &mut Step) {
        let rung = &mut self.rungs[i];
        while let Some(out) = rung.packager.poll_output() {
            match out {
                Output::Object { key, bytes } if key.rendition() == "video" => {
                    step.outputs.push(Output::Object {
                        key: rename_key(&key, &rung.info.name),
                        bytes,
                    });
                }
                Output::Append { key, bytes, offset } if key.rendition() == "video" => {
                    step.outputs.push(Output::Append {
                        key: rename_key(&key, &rung.info.name),
                        bytes,
                        offset,
                    });
                }
                Output::Expired(keys) => {
                    let keys: Vec<ObjectKey> = keys
                        .iter()
                        .filter(|k| k.rendition() == "video")
                        .map(|k| rename_key(k, &rung.info.name))
                        .collect();
                    if !keys.is_empty() {
                        step.outputs.push(Output::Expired(keys));
                    }
                }
                Output::Spill(key) if key.rendition() == "video" => {
                    step.outputs
                        .push(Output::Spill(rename_key(&key, &rung.info.name)));
                }
                Output::PlaylistChanged => step.changed = true,
                // The rung's audio is the source's (published once, by the source) and its
                // warnings are the source's too.
                _ => {}
            }
        }
    }

    /// Withdraws rung `i`: it leaves the multivariant playlist and the reports; a rung already
    /// published goes on as a [`GapMirror`], one never published goes with its objects.
    fn withdraw(&mut self, i: usize, why: &str, step: &mut Step) {
        let rung = &mut self.rungs[i];
        if rung.withdrawn {
            return;
        }
        rung.withdrawn = true;
        tracing::warn!(rung = %rung.info.name, "ABR rung withdrawn: {why}");
        step.withdrawn.push(rung.info.name.clone());
        match rung.last.take() {
            Some(last) => rung.mirror = Some(GapMirror::new(last)),
            None => step.removed.push(rung.info.name.clone()),
        }
        step.changed = true;
        self.trim();
    }

    /// DVR: a segment of MSN `msn` could not be kept on disk: every rung's DVR window drops
    /// it and everything older, as the source's does (the renditions keep one window).
    pub fn drop_dvr_through(&mut self, msn: u64) -> Step {
        let mut step = Step::default();
        for i in 0..self.rungs.len() {
            if !self.rungs[i].withdrawn {
                self.rungs[i].packager.drop_dvr_through(msn);
                self.drain(i, &mut step);
            }
        }
        step
    }

    /// Withdraws every rung still on air.
    pub fn withdraw_all(&mut self, why: &str) -> Step {
        let mut step = Step::default();
        for i in 0..self.rungs.len() {
            self.withdraw(i, why, &mut step);
        }
        step
    }

    /// Withdraws the rungs that have not published their first playlist (the stream's first
    /// playlist does not wait for them any longer).
    pub fn withdraw_not_live(&mut self) -> Step {
        let mut step = Step::default();
        for i in 0..self.rungs.len() {
            if !self.rungs[i].packager.is_live() {
                self.withdraw(
                    i,
                    "it had no playlist when the source published its first",
                    &mut step,
                );
            }
        }
        step
    }

    /// A rung more than [`MAX_LAG`] behind the source (in media time) is withdrawn.
    fn check_lag(&mut self) -> Step {
        let mut step = Step::default();
        let max = MAX_LAG.as_secs_f64();
        for i in 0..self.rungs.len() {
            let r = &self.rungs[i];
            // Before its first frame a rung is as far behind as the source is from its start;
            // a timestamp reset (discontinuity) makes the distance meaningless until it
            // catches up, so only a lag in the right direction counts.
            let behind = self.last_dts - r.replayed_at.or(self.first_dts).unwrap_or(self.last_dts);
            if !r.withdrawn && behind > max {
                let why = format!("its encoder is {behind:.1} s behind the source");
                self.withdraw(i, &why, &mut step);
            }
        }
        step
    }

    /// Drops the calls every rung on air has replayed.
    fn trim(&mut self) {
        let min = self
            .rungs
            .iter()
            .filter(|r| !r.withdrawn)
            .map(|r| r.cursor)
            .min()
            .unwrap_or(self.base + self.log.len() as u64);
        while self.base < min && !self.log.is_empty() {
            self.log.pop_front();
            self.base += 1;
        }
    }

    /// The source's snapshot with every rung on air that has a playlist: what the stream task
    /// renders and publishes, so rendition reports come from one snapshot. A rung whose timing
    /// or grid differs from the source's (which the replay rules out; this is the safety net
    /// should the packager ever cut on something a rung does not share) is withdrawn.
    pub fn combine(&mut self, source: &StreamSnapshot) -> (StreamSnapshot, Step) {
        let mut step = Step::default();
        let video = source
            .renditions
            .iter()
            .find(|v| v.kind == RenditionKind::Video);
        let mut rungs = Vec::new();
        for i in 0..self.rungs.len() {
            let r = &mut self.rungs[i];
            if r.withdrawn {
                follow_mirror(r, video, &mut step, &mut rungs);
                continue;
            }
            if !r.packager.is_live() {
                continue;
            }
            let Some(snap) = r.packager.snapshot() else {
                continue;
            };
            let Some(mine) = snap
                .renditions
                .iter()
                .find(|v| v.kind == RenditionKind::Video)
            else {
                continue;
            };
            let mut renamed = rename_rendition(mine, &r.info.name);
            r.settled.sync(&renamed.segments);
            renamed.settled = r.settled.clone();
            let misaligned = if snap.timing != source.timing {
                Some("its TARGETDURATION or PART-TARGET differs from the source's".to_string())
            } else {
                video.and_then(|v| check_aligned(v, &renamed).err().map(|e| e.to_string()))
            };
            match misaligned {
                Some(why) => {
                    let why = format!("it is not on the source's grid: {why}");
                    self.withdraw(i, &why, &mut step);
                    // Its playlist goes on from what was published, in this snapshot too.
                    follow_mirror(&mut self.rungs[i], video, &mut step, &mut rungs);
                }
                None => {
                    r.last = Some(renamed.clone());
                    rungs.push(renamed);
                }
            }
        }
        let mut out = with_rungs(source, rungs);
        out.ended = source.ended && (self.ended || !self.is_active());
        (out, step)
    }
}

/// A withdrawn rung's [`GapMirror`] brought up to the source's `video` rendition: its
/// rendition goes into `rungs`, the expired objects into `step`.
fn follow_mirror(
    r: &mut Rung,
    video: Option<&RenditionSnapshot>,
    step: &mut Step,
    rungs: &mut Vec<RenditionSnapshot>,
) {
    if let (Some(m), Some(video)) = (r.mirror.as_mut(), video) {
        let (mirrored, expired) = m.follow(video);
        if !expired.is_empty() {
            step.outputs.push(Output::Expired(expired));
        }
        rungs.push(mirrored);
    }
}

impl std::fmt::Debug for Ladder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ladder")
            .field("rungs", &self.rung_names())
            .field("log", &self.log.len())
            .finish()
    }
}
