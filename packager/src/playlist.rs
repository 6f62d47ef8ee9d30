//! Playlist state as an immutable snapshot: what the renderer, the directive classifier and the
//! origin's blocking logic read. The packager builds a new snapshot after every change.

use crate::media::WallClock;
use crate::render::SettledText;

mod segments;

pub use segments::{Iter, IterMut, Segments};

/// One EXT-X-PART.
#[derive(Debug, Clone, PartialEq)]
pub struct PartEntry {
    /// Duration in seconds (Σ of the lead track's sample durations).
    pub duration: f64,
    /// DURATION as written, in microseconds: a few microseconds over `duration` inside its
    /// segment and under it at the segment's end ([`crate::render::listed_part_end_us`]).
    pub listed_us: u64,
    /// URI relative to the media playlist.
    pub uri: String,
    /// Begins with a sync sample.
    pub independent: bool,
    /// GAP=YES: no media.
    pub gap: bool,
    /// BYTERANGE (length, offset) in byte-range addressing.
    pub byterange: Option<(u64, u64)>,
}

/// One media segment (complete) or the parent in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    /// Media sequence number.
    pub msn: u64,
    /// EXTINF seconds (= Σ part durations).
    pub duration: f64,
    /// Segment URI.
    pub uri: String,
    /// EXT-X-PROGRAM-DATE-TIME of its first sample.
    pub program_date_time: WallClock,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// The init segment (EXT-X-MAP URI) that applies.
    pub map_uri: String,
    /// EXT-X-GAP.
    pub gap: bool,
    /// Parts, listed while the segment is within 3 target durations of the end.
    pub parts: Vec<PartEntry>,
    /// Whether the parts are still listed.
    pub parts_listed: bool,
    /// Segment size in bytes (for bandwidth).
    pub bytes: u64,
    /// Starts with an IDR (false after a forced cut).
    pub independent: bool,
}

/// Is the newest complete segment (`newest`) listed as still open, its parts without its
/// EXTINF and URI? On a live stream, until the segment after it has a part (`open_parts`: its
/// parts so far); `render_media` says why. The renderer and the packager's window (which keeps
/// one segment more meanwhile) both decide it here.
pub fn newest_listed_open(
    ended: bool,
    open_parts: Option<usize>,
    newest: Option<&SegmentEntry>,
) -> bool {
    !ended && open_parts == Some(0) && newest.is_some_and(|s| s.parts_listed && !s.parts.is_empty())
}

/// The parent segment in progress: its parts so far.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenSegment {
    /// Its media sequence number.
    pub msn: u64,
    /// URI it will have.
    pub uri: String,
    /// EXT-X-PROGRAM-DATE-TIME of its first sample.
    pub program_date_time: WallClock,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// EXT-X-MAP URI.
    pub map_uri: String,
    /// Parts published so far.
    pub parts: Vec<PartEntry>,
    /// Bytes so far (offset of the next byte-range part).
    pub bytes: u64,
}

/// EXT-X-PRELOAD-HINT for the next part.
#[derive(Debug, Clone, PartialEq)]
pub struct PreloadHint {
    /// The URI the next part will have.
    pub uri: String,
    /// BYTERANGE-START in byte-range addressing.
    pub byterange_start: Option<u64>,
}

/// Video, audio, or both in one playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenditionKind {
    /// Video only (audio, if any, is in its own rendition).
    Video,
    /// Audio only.
    Audio,
    /// Video and audio in the same fragments.
    Muxed,
}

/// One media playlist's state.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionSnapshot {
    /// Name: the playlist is `{name}.m3u8`.
    pub name: String,
    /// What it carries.
    pub kind: RenditionKind,
    /// RFC 6381 codecs of its tracks.
    pub codecs: Vec<String>,
    /// Picture size (video).
    pub resolution: Option<(u32, u32)>,
    /// Frame rate (video).
    pub frame_rate: Option<f64>,
    /// Audio channels (audio).
    pub channels: Option<u8>,
    /// PART-TARGET in seconds (already rounded up at DURATION precision).
    pub part_target: f64,
    /// EXT-X-MEDIA-SEQUENCE.
    pub media_sequence: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE.
    pub discontinuity_sequence: u64,
    /// Complete segments in the window, oldest first (shared with the packager's later
    /// snapshots: copying it does not copy the window).
    pub segments: Segments,
    /// The parent in progress (absent after the end of the stream).
    pub open: Option<OpenSegment>,
    /// The next part's hint (absent after the end).
    pub preload_hint: Option<PreloadHint>,
    /// The lines of the leading segments whose parts are no longer listed, rendered once by
    /// the packager and shared between its snapshots (see [`SettledText`]). Empty is always
    /// correct (the renderer then renders every segment); a snapshot whose segments are
    /// changed after the packager made it must clear it.
    pub settled: SettledText,
    /// An ABR rung taken off the air ([`crate::ladder::GapMirror`]): its playlist goes on with
    /// GAP segments and parts for the players already on it, but the multivariant playlist
    /// does not list it and the other renditions do not report it.
    pub withdrawn: bool,
}

impl RenditionSnapshot {
    /// (MSN, part index) of the last EXT-X-PART in the playlist, if any part is listed.
    pub fn last_part(&self) -> Option<(u64, u32)> {
        if let Some(open) = &self.open {
            if !open.parts.is_empty() {
                return Some((open.msn, open.parts.len() as u32 - 1));
            }
        }
        self.segments
            .iter()
            .rev()
            .find(|s| s.parts_listed && !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() as u32 - 1))
    }

    /// MSN of the last complete segment.
    pub fn last_msn(&self) -> Option<u64> {
        self.segments.last().map(|s| s.msn)
    }

    /// Does this playlist already hold what `_HLS_msn=msn[&_HLS_part=part]` asks for (or later)?
    /// Rules 38-39: a part index beyond the parent's last part rolls over to (msn+1, 0);
    /// msn-only requests release at (msn, 0) when the playlist has parts.
    pub fn satisfies(&self, msn: u64, part: Option<u32>) -> bool {
        let has_parts = self.part_target > 0.0;
        if !has_parts {
            return self.last_msn().is_some_and(|m| m >= msn);
        }
        let part = part.unwrap_or(0);
        match self.last_part() {
            Some((last_msn, last_part)) => msn < last_msn || (msn == last_msn && part <= last_part),
            None => self.last_msn().is_some_and(|m| m > msn),
        }
    }

    /// Sum of EXTINF over the complete segments (seconds).
    pub fn window_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }

    /// The oldest segment whose parts are listed although it ends more than three target
    /// durations before the playlist's end (its open segment's parts included), with that
    /// distance in seconds: HLS2 6.2.2 removes them by then. `None` when the rule holds.
    pub fn parts_listed_too_long(&self, target_duration: f64) -> Option<(u64, f64)> {
        let mut from_end: f64 = self
            .open
            .iter()
            .flat_map(|o| o.parts.iter())
            .map(|p| p.duration)
            .sum();
        let mut oldest = None;
        for s in self.segments.iter().rev() {
            if s.parts_listed && from_end > 3.0 * target_duration + 1e-6 {
                oldest = Some((s.msn, from_end));
            }
            from_end += s.duration;
        }
        oldest
    }
}

/// Values fixed for the life of a stream (rule 13: never change between reloads).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamTiming {
    /// EXT-X-TARGETDURATION.
    pub target_duration: u32,
    /// PART-HOLD-BACK seconds (3 × the largest PART-TARGET).
    pub part_hold_back: f64,
    /// HOLD-BACK seconds (3 × TD).
    pub hold_back: f64,
    /// CAN-SKIP-UNTIL seconds (6 × TD), or `None` without delta updates.
    pub can_skip_until: Option<f64>,
}

/// The whole stream's playlist state at one instant: every rendition from the same update, so
/// rendition reports are consistent (rule 19).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSnapshot {
    /// Increases by one with every published change.
    pub version: u64,
    /// Fixed timing values.
    pub timing: StreamTiming,
    /// Renditions; the first is the main (video or muxed) one.
    pub renditions: Vec<RenditionSnapshot>,
    /// EXT-X-ENDLIST is out.
    pub ended: bool,
    /// Every segment so far began with an IDR.
    pub independent_segments: bool,
}

impl StreamSnapshot {
    /// The rendition whose playlist is `{name}.m3u8`.
    pub fn rendition(&self, name: &str) -> Option<&RenditionSnapshot> {
        self.renditions.iter().find(|r| r.name == name)
    }

    /// The renditions players are pointed at: all but withdrawn ABR rungs (whose playlists
    /// still answer, see [`RenditionSnapshot::withdrawn`]).
    pub fn listed(&self) -> impl Iterator<Item = &RenditionSnapshot> {
        self.renditions.iter().filter(|r| !r.withdrawn)
    }
}
