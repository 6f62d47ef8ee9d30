//! The media half of an RTMP publish: FLV tag bodies to frames, codec configurations, the
//! start-up buffer that waits for every announced track's sequence header, and timestamp
//! unwrapping. Driven by [`super::publish::Publish`].

use std::collections::VecDeque;

use bytes::Bytes;
use llhls_packager::{CodecConfig, Frame, MediaTime, TrackConfig, TrackKind};
use rml_rtmp::sessions::StreamMetadata;

use super::publish::{Output, RtmpError};
use crate::flv::{self, FlvError, FlvEvent, TimestampUnwrapper};
use crate::tracks::{self, AUDIO, VIDEO};

/// Frames buffered while waiting for both sequence headers.
pub const MAX_STARTUP_FRAMES: usize = 600;

/// Per-publish state: codec configurations, timestamps, the start-up buffer.
#[derive(Default)]
pub(super) struct Media {
    video: Option<CodecConfig>,
    audio: Option<CodecConfig>,
    video_ts: TimestampUnwrapper,
    audio_ts: TimestampUnwrapper,
    pending: Vec<Frame>,
    started: bool,
    keyframes: Vec<i64>,
    logged: bool,
    errors: u64,
    metadata: Option<StreamMetadata>,
}

impl Media {
    /// A new publish on the same connection: a new stream, codec headers seen before stay
    /// known.
    pub(super) fn restart(&mut self) {
        self.started = false;
    }

    /// The stream metadata (`@setDataFrame onMetaData`): which tracks to wait for.
    pub(super) fn set_metadata(&mut self, metadata: StreamMetadata) {
        self.metadata = Some(metadata);
    }

    /// One video message.
    pub(super) fn video(
        &mut self,
        data: &Bytes,
        raw_ts: u32,
        out: &mut VecDeque<Output>,
    ) -> Result<(), RtmpError> {
        let ev = flv::parse_video(data);
        let ts = self.video_ts.unwrap(raw_ts);
        self.message(ev, ts, true, out)
    }

    /// One audio message.
    pub(super) fn audio(
        &mut self,
        data: &Bytes,
        raw_ts: u32,
        out: &mut VecDeque<Output>,
    ) -> Result<(), RtmpError> {
        let ev = flv::parse_audio(data);
        let ts = self.audio_ts.unwrap(raw_ts);
        self.message(ev, ts, false, out)
    }

    /// One audio or video message body, parsed, at `ts` (ms, unwrapped).
    fn message(
        &mut self,
        ev: Result<FlvEvent, FlvError>,
        ts: i64,
        video: bool,
        out: &mut VecDeque<Output>,
    ) -> Result<(), RtmpError> {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e @ FlvError::Unsupported { .. }) => return Err(RtmpError::Unsupported(e)),
            Err(e) => {
                self.errors += 1;
                let n = self.errors;
                if n <= 5 || n.is_multiple_of(100) {
                    out.push_back(Output::Warning(format!(
                        "dropped a malformed {} message ({n} so far): {e}",
                        if video { "video" } else { "audio" }
                    )));
                }
                return Ok(());
            }
        };
        match ev {
            FlvEvent::Ignore => {}
            FlvEvent::Config(c) => {
                let slot = if c.kind() == TrackKind::Video {
                    &mut self.video
                } else {
                    &mut self.audio
                };
                let changed = slot.as_ref().is_some_and(|old| *old != c);
                *slot = Some(c);
                if changed && self.started {
                    out.push_back(Output::Warning(
                        "codec configuration changed mid-stream; the next segment starts a new init section".into(),
                    ));
                    out.push_back(Output::Reconfigure(self.tracks()));
                }
            }
            FlvEvent::Video {
                keyframe,
                cts_ms,
                data,
            } => {
                if keyframe && self.keyframes.len() < 3 {
                    self.keyframes.push(ts);
                }
                self.frame(
                    out,
                    Frame {
                        track: VIDEO,
                        dts: MediaTime::from_millis(ts),
                        pts: MediaTime::from_millis(ts.saturating_add(i64::from(cts_ms))),
                        keyframe,
                        data,
                    },
                );
            }
            FlvEvent::Audio { data } => {
                self.frame(
                    out,
                    Frame {
                        track: AUDIO,
                        dts: MediaTime::from_millis(ts),
                        pts: MediaTime::from_millis(ts),
                        keyframe: true,
                        data,
                    },
                );
            }
        }
        Ok(())
    }

    fn tracks(&self) -> Vec<TrackConfig> {
        tracks::tracks(self.video.as_ref(), self.audio.as_ref())
    }

    /// Do we know every track the publisher will send?
    fn ready(&self) -> bool {
        let md = self.metadata.as_ref();
        let want_video = md
            .map(|m| m.video_codec_id.is_some() || m.video_width.is_some())
            .unwrap_or(true);
        let want_audio = md
            .map(|m| m.audio_codec_id.is_some() || m.audio_sample_rate.is_some())
            .unwrap_or(true);
        let have_v = self.video.is_some();
        let have_a = self.audio.is_some();
        (have_v || !want_video) && (have_a || !want_audio) && (have_v || have_a)
    }

    fn frame(&mut self, out: &mut VecDeque<Output>, f: Frame) {
        if !self.started {
            let has_config = match f.track {
                VIDEO => self.video.is_some(),
                _ => self.audio.is_some(),
            };
            if !has_config {
                // Media before its sequence header cannot be packaged.
                self.errors += 1;
                if self.errors == 1 {
                    out.push_back(Output::Warning(
                        "media before its sequence header: dropped".into(),
                    ));
                }
                return;
            }
            self.pending.push(f);
            if !self.ready() && self.pending.len() < MAX_STARTUP_FRAMES {
                return;
            }
            self.started = true;
            let encoder = self.metadata.as_ref().and_then(|m| m.encoder.clone());
            out.push_back(Output::Start {
                tracks: self.tracks(),
                encoder,
            });
            let pending = std::mem::take(&mut self.pending);
            out.extend(pending.into_iter().map(Output::Frame));
            return;
        }
        if !self.logged {
            if let [first, _, third] = self.keyframes[..] {
                self.logged = true;
                let secs = third.saturating_sub(first) as f64 / 2000.0;
                out.push_back(Output::KeyframeInterval { secs });
            }
        }
        out.push_back(Output::Frame(f));
    }
}
