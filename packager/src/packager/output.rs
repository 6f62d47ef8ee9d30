//! What comes out of the packager: objects, appends, expiries, playlist changes and
//! warnings, and the errors a `handle_*` call can return.

use bytes::Bytes;

use crate::key::ObjectKey;
use crate::media::TrackId;

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
    /// A timestamp the packager cannot place: a DTS or PTS beyond ±2^60 ns (36 years) on the
    /// frame's clock, a PTS more than an hour after its DTS, or an arrival wall clock outside
    /// the years 0000-9999. The frame is dropped.
    #[error("{track}: {what} out of range at dts {dts}; frame dropped")]
    TimestampOutOfRange {
        /// Track.
        track: TrackId,
        /// DTS (input ticks).
        dts: i64,
        /// Which value: `dts`, `pts`, `pts - dts` or `wall clock`.
        what: &'static str,
    },
    /// Frames after the end of the stream.
    #[error("the stream has ended")]
    Ended,
    /// A discontinuity changed which kinds of tracks exist.
    #[error("track set changed at a discontinuity: {0}")]
    TrackSetChanged(String),
}

/// Something the publisher should fix; the caller logs it with the advice that fits its input
/// ([`Warning::for_live_encoder`], [`Warning::for_whip_publisher`] or [`Warning::for_file`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// What happened, for one log line.
    pub message: String,
    /// Set when the fix is a shorter keyframe interval: the longest interval (seconds) that
    /// fits the configured segment target.
    pub keyframe_interval_max: Option<f64>,
}

impl Warning {
    /// The message with the advice for a live encoder (OBS, ffmpeg, a hardware encoder).
    pub fn for_live_encoder(&self) -> String {
        match self.keyframe_interval_max {
            Some(max) => format!(
                "{}. Set the encoder's keyframe interval to {} s or less (OBS: Settings > Output > Keyframe Interval; ffmpeg: -g), or raise segment_target_ms",
                self.message,
                trim(max)
            ),
            None => self.message.clone(),
        }
    }

    /// The message with the advice for a WHIP (WebRTC) publisher. The server asks it for a
    /// keyframe (RTCP PLI) before each segment target runs out, so a keyframe interval that is
    /// too long means those requests went unanswered: browsers answer them, so the advice is
    /// for publishers with a fixed interval (OBS's WHIP output, GStreamer).
    pub fn for_whip_publisher(&self) -> String {
        match self.keyframe_interval_max {
            Some(max) => format!(
                "{}. This WHIP publisher did not answer the server's keyframe requests (RTCP PLI) in time; if it cannot, set its keyframe interval to {} s or less (OBS WHIP output: Settings > Output > Keyframe Interval; GStreamer: the encoder's key-int-max), or raise segment_target_ms",
                self.message,
                trim(max)
            ),
            None => self.message.clone(),
        }
    }

    /// The message with the advice for a media file being packaged.
    pub fn for_file(&self) -> String {
        match self.keyframe_interval_max {
            Some(max) => format!(
                "{}. Re-encode the file with a keyframe at least every {} s (ffmpeg: -force_key_frames 'expr:gte(t,n_forced*{})'), or raise --segment-target-ms",
                self.message,
                trim(max),
                trim(max)
            ),
            None => self.message.clone(),
        }
    }
}

/// `2` rather than `2.0`, `1.5` as is.
fn trim(secs: f64) -> String {
    let s = format!("{secs:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
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
    /// DVR only: the segment `key` (already output) left the in-memory live window
    /// (`window_segments`) but stays listed in the DVR window until an [`Output::Expired`]
    /// names it. The caller may move its bytes to slower storage; it must keep serving it.
    /// Its parts are expired separately (they are no longer listed).
    Spill(ObjectKey),
    /// The playlists changed: read [`Packager::snapshot`](super::Packager::snapshot).
    PlaylistChanged,
    /// A problem with the input the publisher should know about.
    Warning(Warning),
}
