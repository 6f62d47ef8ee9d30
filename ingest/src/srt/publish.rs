//! One SRT publisher as machines without I/O: the stream id it connects with
//! ([`parse_stream_id`]), and its MPEG-TS bytes into the track set and frames
//! ([`TsPublish`]: the [`crate::ts`] demuxer, the start-up rule: the stream starts once
//! every track the PMT announces has its configuration, and an interleaver).
//!
//! The interleaver is there because TS muxers send audio late: ffmpeg packs several AAC
//! frames into one PES (a third of a second of mono AAC), and hardware encoders have their own
//! buffering. The packager cuts parts as video arrives, so audio that comes after the video of
//! the same time would land in the next part, and every segment's first part would lack its
//! audio. Frames are therefore released in DTS order once every track has a frame queued (a
//! track that falls [`MAX_INTERLEAVE_WAIT_TICKS`] behind is not waited for).

use std::collections::VecDeque;

use llhls_packager::Timescale;

use llhls_packager::codec::CodecConfig;
use llhls_packager::{Frame, TrackConfig, TrackKind};

use crate::rtmp::publish::APP;
use crate::tracks::{self, VIDEO};
use crate::ts::{TsDemuxer, TsEvent, TsStats};

/// Frames buffered while waiting for every announced track's configuration.
pub const MAX_STARTUP_FRAMES: usize = 600;
/// The longest a track waits for the other (90 kHz ticks: 1 s) before its frames go out
/// without it.
pub const MAX_INTERLEAVE_WAIT_TICKS: i64 = 90_000;

/// What a publisher asked for in its stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// The stream name (`NAME` of `live/NAME`).
    pub name: String,
    /// The publish key (`?key=K`), if given.
    pub key: Option<String>,
}

/// The stream id forms publishers use, for refusals.
pub const STREAM_ID_HELP: &str =
    "set the SRT stream id to publish:live/NAME (or #!::r=live/NAME,m=publish), with ?key=KEY when publish keys are configured";

/// Reads an SRT stream id: `publish:live/NAME[?key=K]`, or the access control form
/// `#!::r=live/NAME[?key=K],m=publish` (other `#!::` keys are ignored). `Err` says why,
/// for the log.
pub fn parse_stream_id(id: Option<&str>) -> Result<PublishRequest, String> {
    let Some(id) = id.filter(|s| !s.is_empty()) else {
        return Err(format!("no stream id: {STREAM_ID_HELP}"));
    };
    let resource = if let Some(rest) = id.strip_prefix("#!::") {
        let mut resource = None;
        let mut mode = None;
        for kv in rest.split(',') {
            match kv.split_once('=') {
                Some(("r", v)) => resource = Some(v),
                Some(("m", v)) => mode = Some(v),
                _ => {}
            }
        }
        if mode != Some("publish") {
            return Err(format!(
                "stream id {id:?} does not ask to publish (m={}); this server only takes publishers: {STREAM_ID_HELP}",
                mode.unwrap_or("request")
            ));
        }
        resource
            .ok_or_else(|| format!("stream id {id:?} names no resource (r=): {STREAM_ID_HELP}"))?
    } else if let Some(rest) = id.strip_prefix("publish:") {
        rest
    } else {
        return Err(format!(
            "stream id {id:?} is not a publish request: {STREAM_ID_HELP}"
        ));
    };
    let (path, query) = match resource.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (resource, None),
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let Some((app, name)) = path.split_once('/') else {
        return Err(format!(
            "stream id {id:?} names no stream: {STREAM_ID_HELP}"
        ));
    };
    if app != APP {
        return Err(format!(
            "stream id {id:?}: the application must be `{APP}`, not `{app}`"
        ));
    }
    let key = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("key="))
            .map(str::to_string)
    });
    Ok(PublishRequest {
        name: name.to_string(),
        key,
    })
}

/// What the caller should do, in order.
#[derive(Debug)]
pub enum Output {
    /// Every announced track is configured: start the stream with them. Frames follow.
    Start(Vec<TrackConfig>),
    /// A codec configuration changed mid-stream: continue with a discontinuity.
    Reconfigure(Vec<TrackConfig>),
    /// One frame for the packager.
    Frame(Frame),
    /// Something the operator should know; the stream goes on.
    Warning(String),
}

/// A publisher's transport stream into the stream's track set and frames.
#[derive(Debug, Default)]
pub struct TsPublish {
    demux: TsDemuxer,
    video: Option<CodecConfig>,
    audio: Option<CodecConfig>,
    pending: Vec<Frame>,
    started: bool,
    early: u64,
    /// Started frames not released yet, per track (video, audio), in arrival order.
    queued: [VecDeque<Frame>; 2],
    /// Which tracks the stream was started with (video, audio).
    live: [bool; 2],
    /// The DTS of the last frame queued, per track (video, audio).
    last_dts: [Option<i64>; 2],
    /// Which track's timestamps jumped while the other's have not yet (see `queue`).
    jumped: [bool; 2],
    out: VecDeque<Output>,
}

impl TsPublish {
    /// A publish waiting for its first PAT.
    pub fn new() -> Self {
        Self::default()
    }

    /// The demuxer's counters.
    pub fn stats(&self) -> TsStats {
        self.demux.stats()
    }

    /// Has the stream started ([`Output::Start`] given)?
    pub fn started(&self) -> bool {
        self.started
    }

    /// Feeds transport stream bytes (any chunking; SRT delivers 7 packets a message).
    pub fn handle_input(&mut self, data: &[u8]) {
        self.demux.feed(data);
        self.drain();
    }

    /// The publisher is gone: what it sent last is complete.
    pub fn finish(&mut self) {
        self.demux.flush();
        self.drain();
        self.release(true);
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn tracks(&self) -> Vec<TrackConfig> {
        tracks::tracks(self.video.as_ref(), self.audio.as_ref())
    }

    fn drain(&mut self) {
        while let Some(ev) = self.demux.poll_event() {
            match ev {
                TsEvent::Warning(w) => self.out.push_back(Output::Warning(w)),
                TsEvent::Config(c) => {
                    let slot = if c.kind() == TrackKind::Video {
                        &mut self.video
                    } else {
                        &mut self.audio
                    };
                    let changed = slot.as_ref().is_some_and(|old| *old != c);
                    *slot = Some(c);
                    if changed && self.started {
                        // The frames before the change go out before the discontinuity.
                        self.release(true);
                        self.out.push_back(Output::Warning(
                            "codec configuration changed mid-stream; the next segment starts a new init section".into(),
                        ));
                        let tracks = self.tracks();
                        self.out.push_back(Output::Reconfigure(tracks));
                    }
                }
                TsEvent::Frame(f) => self.frame(f),
            }
        }
        self.release(false);
    }

    /// Moves queued frames out in DTS order, as far as every live track has frames to
    /// compare (or all of them at the end).
    fn release(&mut self, all: bool) {
        let dts = |f: &Frame| f.dts.rescale(Timescale::MPEG);
        loop {
            let heads: Vec<Option<i64>> = self.queued.iter().map(|q| q.front().map(dts)).collect();
            let pick = match (heads[0], heads[1]) {
                (Some(v), Some(a)) => Some(if a < v { 1 } else { 0 }),
                (Some(_), None) | (None, Some(_)) => {
                    let i = if heads[0].is_some() { 0 } else { 1 };
                    let other_live = self.live[1 - i];
                    let q = &self.queued[i];
                    let span = q.back().map(dts).unwrap_or(0) - q.front().map(dts).unwrap_or(0);
                    (all || !other_live || span > MAX_INTERLEAVE_WAIT_TICKS).then_some(i)
                }
                (None, None) => None,
            };
            let Some(i) = pick else { break };
            if let Some(f) = self.queued[i].pop_front() {
                self.out.push_back(Output::Frame(f));
            }
        }
    }

    fn queue(&mut self, f: Frame) {
        let i = usize::from(f.track != VIDEO);
        if self.live[i] {
            // A track whose timestamps jump (a new program whose clock starts over, an
            // encoder restart) starts a new timeline: what is queued belongs to the old one
            // and goes out first, in its order, rather than wait for frames of the other
            // track that will never come. When the other track jumps in turn, what it finds
            // queued is already of the new timeline: the interleaving just goes on.
            let dts = f.dts.rescale(Timescale::MPEG);
            if self.last_dts[i].is_some_and(|last| (dts - last).abs() > MAX_INTERLEAVE_WAIT_TICKS) {
                if self.jumped[1 - i] {
                    self.jumped = [false; 2];
                } else {
                    self.release(true);
                    self.jumped[i] = true;
                }
            }
            self.last_dts[i] = Some(dts);
            self.queued[i].push_back(f);
        }
    }

    fn frame(&mut self, f: Frame) {
        if self.started {
            self.queue(f);
            return;
        }
        let configured = if f.track == VIDEO {
            self.video.is_some()
        } else {
            self.audio.is_some()
        };
        if !configured {
            // Video before its first SPS/PPS cannot be decoded: wait for them.
            self.early += 1;
            if self.early == 1 {
                self.out.push_back(Output::Warning(
                    "video before its parameter sets (SPS/PPS): dropped until they come".into(),
                ));
            }
            return;
        }
        self.pending.push(f);
        let (want_video, want_audio) = self.demux.announced();
        let ready = (self.video.is_some() || !want_video) && (self.audio.is_some() || !want_audio);
        if !ready && self.pending.len() < MAX_STARTUP_FRAMES {
            return;
        }
        self.started = true;
        self.live = [self.video.is_some(), self.audio.is_some()];
        let tracks = self.tracks();
        self.out.push_back(Output::Start(tracks));
        let pending = std::mem::take(&mut self.pending);
        // Audio from before the first video frame would start the stream without a picture:
        // the stream starts with the video when there is some.
        let first_video = pending.iter().find(|f| f.track == VIDEO).map(|f| f.dts);
        for f in pending {
            if first_video.is_none_or(|v| f.track == VIDEO || f.dts.rescale(v.scale) >= v.ticks) {
                self.queue(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, key: Option<&str>) -> PublishRequest {
        PublishRequest {
            name: name.into(),
            key: key.map(str::to_string),
        }
    }

    #[test]
    fn stream_ids() {
        assert_eq!(
            parse_stream_id(Some("publish:live/cam1")),
            Ok(req("cam1", None))
        );
        assert_eq!(
            parse_stream_id(Some("publish:live/cam1?key=s3cret")),
            Ok(req("cam1", Some("s3cret")))
        );
        assert_eq!(
            parse_stream_id(Some("publish:/live/cam1")),
            Ok(req("cam1", None))
        );
        assert_eq!(
            parse_stream_id(Some("#!::r=live/cam1,m=publish")),
            Ok(req("cam1", None))
        );
        assert_eq!(
            parse_stream_id(Some("#!::m=publish,u=alice,r=live/cam1?key=k")),
            Ok(req("cam1", Some("k")))
        );
        // Refused: players, no id, other applications, no name.
        for bad in [
            None,
            Some(""),
            Some("#!::r=live/cam1"),
            Some("#!::r=live/cam1,m=request"),
            Some("#!::m=publish"),
            Some("live/cam1"),
            Some("publish:app/cam1"),
            Some("publish:live"),
            Some("read:live/cam1"),
        ] {
            let e = parse_stream_id(bad).unwrap_err();
            assert!(e.contains("publish"), "{bad:?}: {e}");
        }
        // The name is checked by the registry (with the RTMP rules), not here.
        assert_eq!(
            parse_stream_id(Some("publish:live/a/b")),
            Ok(req("a/b", None))
        );
    }
}
