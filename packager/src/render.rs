//! The playlist renderer: pure functions from a [`StreamSnapshot`] to playlist text.
//!
//! Tag order follows LLHLS-RULES §1 and hls.js: header tags, then MEDIA-SEQUENCE and
//! DISCONTINUITY-SEQUENCE *before* EXT-X-SKIP (rule 24), segments with their parts before each
//! EXTINF, the open parent's parts, the preload hint, then rendition reports.

use std::fmt::Write;
use std::sync::Arc;

use crate::playlist::{RenditionKind, RenditionSnapshot, SegmentEntry, Segments, StreamSnapshot};

/// Which view of a media playlist to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipMode {
    /// The full playlist.
    Full,
    /// `_HLS_skip=YES`: delta update skipping old segments.
    Yes,
    /// `_HLS_skip=v2`: delta update that may also skip date ranges.
    V2,
}

/// Decimal places of EXTINF, DURATION and PART-TARGET.
const PRECISION: i32 = 5;

fn fmt_secs(s: f64) -> String {
    format!("{:.*}", PRECISION as usize, s)
}

/// An EXTINF as written: rounded down at the precision. Players add these up
/// to place each segment, and rounded to nearest the sum can pass the media's real end (three
/// 1.002667 s and two 2.005333 s AAC segments written 1.00267 and 2.00533 add up to 3.3 us past
/// it): hls.js, looking for the fragment at its buffer's end with no tolerance, then found none
/// and stalled there. Rounded down, the sum stays at or before the media.
pub fn fmt_duration(s: f64) -> String {
    fmt_secs(floor_at_precision(s))
}

/// `s` rounded down at the DURATION precision, as EXTINF writes it ([`fmt_duration`]).
fn floor_at_precision(s: f64) -> f64 {
    let scale = 10f64.powi(PRECISION);
    // The small addend keeps a sum of parts that is a float's breath under a whole value
    // (1.9999999999999998) at that value.
    ((s * scale) + 1e-6).floor() / scale
}

/// Where a part's DURATIONs end, in microseconds from its segment's start, as the playlist
/// lists them: `real_end` is the part's real end (seconds from the segment's start), `index`
/// its index in the segment, `last` whether it ends the segment.
///
/// Players place a part at its segment's start plus the DURATIONs before it, and two of them
/// compare that place with the media they buffered, so which side of the media the sum lands
/// on matters, not only by how much:
///
/// - Shaka 5.2 (`MediaSourceEngine.appendBuffer`) computes each part's timestampOffset as its
///   place minus its first media timestamp and, when that differs by 1 ms or more from the
///   SourceBuffer's, calls `abort()` and sets it. A negative offset is written 1 ms higher (a
///   legacy Edge workaround, shaka-player#1281) and compared as read back, so once one was set,
///   every later part whose offset is not above it is aborted, and Chromium then drops its
///   frames up to the next keyframe: a hole of the rest of the GOP, and a stall. Parts listed
///   under their media (their offsets falling by a microsecond a part) did that to every part
///   after a start mid-segment; listed exactly, float noise decided it part by part. Inside a
///   segment the sum is therefore listed over the media, by 3-4 us more at each part than at
///   the one before, so each part's offset is above every earlier one's in its segment
///   (whatever the segment's start, a few microseconds under from EXTINF or from its parts'
///   sum): only a segment's first part, a keyframe, can be aborted, and it loses nothing.
/// - hls.js 1.7 compares a loaded segment's end as the sum of its parts with its buffer's end
///   (`isLoopLoading`): a sum past the media (by float noise when listed exactly) left it
///   waiting for a fragment it had. The part that ends a segment therefore brings the sum back
///   at least 1 us under the media, and never past the EXTINF written for the segment.
///
/// Shaka fixed its side upstream (shaka-player#10559, not in a release yet); neither player
/// needs more than microseconds, far below the 5-decimal precision of EXTINF.
pub fn listed_part_end_us(real_end: f64, index: usize, last: bool) -> u64 {
    // The addend keeps a float's breath under a whole microsecond at it.
    let floor_us = (real_end * 1e6 + 1e-3).floor().max(0.0) as u64;
    if last {
        let extinf_us = (floor_at_precision(real_end) * 1e6).round().max(0.0) as u64;
        extinf_us.min(floor_us.saturating_sub(1))
    } else {
        floor_us + 4 * (index as u64 + 1)
    }
}

/// A DURATION written from microseconds.
pub fn fmt_us(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// Rounds `s` up at the DURATION precision (rule 3 REC), so no DURATION printed from a value
/// `<= s` can exceed it.
pub fn round_up_precision(s: f64) -> f64 {
    let scale = 10f64.powi(PRECISION);
    (s * scale - 1e-6).ceil() / scale
}

fn trim_secs(s: f64) -> String {
    let mut t = format!("{s:.5}");
    while t.ends_with('0') {
        t.pop();
    }
    if t.ends_with('.') {
        t.push('0');
    }
    t
}

/// Renders the multivariant playlist.
pub fn render_multivariant(snap: &StreamSnapshot) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("#EXTM3U\n");
    if snap.independent_segments {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let audio = snap
        .renditions
        .iter()
        .find(|r| r.kind == RenditionKind::Audio);
    // Every video (or muxed) rendition is a variant: the source, then an ABR ladder's rungs
    // in snapshot order, all sharing the one audio group. An audio-only stream's variant is
    // its audio playlist.
    let videos: Vec<&RenditionSnapshot> = snap
        .listed()
        .filter(|r| r.kind != RenditionKind::Audio)
        .collect();
    let main = videos.first().copied();
    let audio_bw = audio.map(bandwidth).unwrap_or((0, 0));
    if let (Some(a), Some(_)) = (audio, main) {
        let _ = write!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES"
        );
        if let Some(ch) = a.channels {
            let _ = write!(out, ",CHANNELS=\"{ch}\"");
        }
        let _ = writeln!(out, ",URI=\"{}.m3u8\"", a.name);
    }
    let variants: Vec<&RenditionSnapshot> = if videos.is_empty() {
        audio.into_iter().collect()
    } else {
        videos
    };
    for v in variants {
        let (peak, avg) = bandwidth(v);
        let (peak, avg) = if main.is_some() {
            (peak + audio_bw.0, avg + audio_bw.1)
        } else {
            (peak, avg)
        };
        let mut codecs = v.codecs.clone();
        if main.is_some() {
            if let Some(a) = audio {
                codecs.extend(a.codecs.iter().cloned());
            }
        }
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            peak.max(1),
            avg.max(1),
            codecs.join(",")
        );
        if let Some((w, h)) = v.resolution.filter(|r| r.0 > 0) {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(f) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={f:.3}");
        }
        if main.is_some() && audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        if main.is_some() {
            // No closed captions in the video. Without this, Shaka Player downloads whole
            // segments to look for CEA-608/708 captions before it starts, and on a young live
            // playlist it asks for the in-progress segment, which has no URI yet, and fails
            // (Shaka 5.2 `HlsParser.makeNetworkRequest_`).
            out.push_str(",CLOSED-CAPTIONS=NONE");
        }
        let _ = writeln!(out, "\n{}.m3u8", v.name);
    }
    out
}

/// (peak, average) bits per second over the complete segments in the window.
fn bandwidth(r: &RenditionSnapshot) -> (u64, u64) {
    let mut peak = 0f64;
    let (mut bytes, mut secs) = (0u64, 0f64);
    for s in r.segments.iter().filter(|s| !s.gap && s.duration > 0.0) {
        peak = peak.max(s.bytes as f64 * 8.0 / s.duration);
        bytes += s.bytes;
        secs += s.duration;
    }
    let avg = if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    };
    (peak.ceil() as u64, avg.ceil() as u64)
}

/// Renders one media playlist view. `skip` is ignored (full playlist) when the stream has
/// ended or delta updates are off (rules 44-45).
pub fn render_media(
    snap: &StreamSnapshot,
    rendition: &RenditionSnapshot,
    skip: SkipMode,
) -> String {
    let t = &snap.timing;
    let skip = if snap.ended || t.can_skip_until.is_none() {
        SkipMode::Full
    } else {
        skip
    };
    // The segment that closed in this update, while the next one has no part yet, is listed
    // still open: its parts without its EXTINF and URI, which come with the next segment's
    // first part. hls.js 1.7.4 mistakes a segment for fully loaded when the update that
    // completes it lands while the part before its last is being parsed (the fragment it
    // tracked as the open segment, with the duration of the parts so far, is taken for the
    // whole), loads nothing until the segment's parts leave the playlist, and stalls 5-6 s
    // (README, player notes; a part that takes about a part's duration to arrive, on a slow
    // link or a busy machine, makes it likely). Completed one part later, the same race can only
    // fall on the segment's last part, when the segment is in fact whole. The part and segment
    // objects and the blocking answers (`satisfies`, rendition reports: the last part) are as
    // before; a client that loads whole segments sees each one a part later. Until then the
    // segment counts as the open one, for the skip boundary too (it is measured from the end of
    // the last listed parent segment).
    let defer_last = crate::playlist::newest_listed_open(
        snap.ended,
        rendition.open.as_ref().map(|o| o.parts.len()),
        rendition.segments.last(),
    );
    // Rule 21: skip only segments whose end is at least CAN-SKIP-UNTIL before the end of the
    // last complete segment. Never a segment with EXT-X-DISCONTINUITY: the client counts
    // discontinuities from EXT-X-DISCONTINUITY-SEQUENCE over the segments it sees, so a skipped
    // one would shift every later segment's discontinuity number (hls.js 1.7 then fails with
    // "discontinuity sequence mismatch", a fatal levelParsingError, after a reconnect or a
    // WHIP publisher's resolution change).
    let skipped = if skip == SkipMode::Full {
        0
    } else {
        let until = t.can_skip_until.unwrap_or(f64::INFINITY);
        let deferred = match (defer_last, rendition.segments.last()) {
            (true, Some(last)) => last.duration,
            _ => 0.0,
        };
        let total = rendition.window_duration() - deferred;
        let mut end = 0.0;
        rendition
            .segments
            .iter()
            .take_while(|s| {
                end += s.duration;
                !s.discontinuity && end <= total - until + 1e-9
            })
            .count()
    };
    // Rule 26: a YES delta with nothing to skip is the full playlist (as Apple's origin does);
    // v2 keeps its EXT-X-SKIP for RECENTLY-REMOVED-DATERANGES.
    let skip = if skip == SkipMode::Yes && skipped == 0 {
        SkipMode::Full
    } else {
        skip
    };
    let mut out = String::with_capacity(4096 + rendition.settled.text_len());
    let version = match skip {
        SkipMode::Full => 6,
        SkipMode::Yes => 9,
        SkipMode::V2 => 10,
    };
    let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:{version}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", t.target_duration);
    let has_parts = rendition.part_target > 0.0;
    if has_parts {
        let _ = writeln!(
            out,
            "#EXT-X-PART-INF:PART-TARGET={}",
            fmt_secs(rendition.part_target)
        );
    }
    {
        // Kept after ENDLIST too: SERVER-CONTROL values never change mid-stream (rule 13).
        out.push_str("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES");
        if let Some(until) = t.can_skip_until {
            let _ = write!(out, ",CAN-SKIP-UNTIL={}", trim_secs(until));
        }
        let _ = write!(out, ",HOLD-BACK={}", trim_secs(t.hold_back));
        if has_parts {
            let _ = write!(out, ",PART-HOLD-BACK={}", trim_secs(t.part_hold_back));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", rendition.media_sequence);
    let _ = writeln!(
        out,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        rendition.discontinuity_sequence
    );

    if skip != SkipMode::Full {
        let _ = write!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        if skip == SkipMode::V2 {
            // No EXT-X-DATERANGE is ever emitted, so none was removed.
            out.push_str(",RECENTLY-REMOVED-DATERANGES=\"\"");
        }
        out.push('\n');
    }

    let mut map: Option<&str> = None;
    let mut next = skipped;
    // The segments whose lines can no longer change were rendered once, as they settled: the
    // first one listed gets its own DISCONTINUITY and MAP lines (it has no predecessor here),
    // the rest is copied.
    let settled = rendition.settled.covers(&rendition.segments);
    if skipped < settled {
        let first = &rendition.segments[skipped];
        write_head(&mut out, first, &mut map);
        rendition.settled.write_from(&mut out, skipped);
        map = Some(&rendition.segments[settled - 1].map_uri);
        next = settled;
    }
    let count = rendition.segments.len();
    for (i, s) in rendition.segments.iter().enumerate().skip(next) {
        if defer_last && i + 1 == count {
            write_head(&mut out, s, &mut map);
            write_open_body(&mut out, s);
        } else {
            write_segment(&mut out, s, &mut map);
        }
    }
    if let Some(open) = &rendition.open {
        if !open.parts.is_empty() {
            if open.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if map != Some(open.map_uri.as_str()) {
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", open.map_uri);
            }
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                open.program_date_time.to_rfc3339()
            );
            for p in &open.parts {
                write_part(&mut out, p);
            }
        }
    }
    if !snap.ended {
        if let Some(h) = &rendition.preload_hint {
            let _ = write!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", h.uri);
            if let Some(start) = h.byterange_start {
                let _ = write!(out, ",BYTERANGE-START={start}");
            }
            out.push('\n');
        }
        for other in snap.listed().filter(|o| o.name != rendition.name) {
            let _ = write!(out, "#EXT-X-RENDITION-REPORT:URI=\"{}.m3u8\"", other.name);
            if let Some((msn, part)) = other.last_part() {
                let _ = write!(out, ",LAST-MSN={msn},LAST-PART={part}");
            } else if let Some(msn) = other.last_msn() {
                let _ = write!(out, ",LAST-MSN={msn}");
            }
            out.push('\n');
        }
    } else {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// Renders a finished stream as a VOD media playlist (`llhls package`): every segment, with
/// EXT-X-PLAYLIST-TYPE:VOD and EXT-X-ENDLIST, and none of the live-only tags (parts,
/// PART-INF, SERVER-CONTROL with its hold-backs, preload hints, rendition reports,
/// PROGRAM-DATE-TIME), which a VOD playlist should not carry.
pub fn render_vod(rendition: &RenditionSnapshot, target_duration: u32) -> String {
    let mut out = String::with_capacity(64 * rendition.segments.len() + 256);
    let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:6");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target_duration}");
    out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", rendition.media_sequence);
    if rendition.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            rendition.discontinuity_sequence
        );
    }
    let mut map: Option<&str> = None;
    for s in &rendition.segments {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if map != Some(s.map_uri.as_str()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", s.map_uri);
            map = Some(&s.map_uri);
        }
        if s.gap {
            out.push_str("#EXT-X-GAP\n");
        }
        let _ = writeln!(out, "#EXTINF:{},\n{}", fmt_duration(s.duration), s.uri);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// A segment's DISCONTINUITY line and, when its init segment differs from the previous one
/// listed (`map`), its MAP line.
fn write_head<'a>(out: &mut String, s: &'a SegmentEntry, map: &mut Option<&'a str>) {
    if s.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *map != Some(s.map_uri.as_str()) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", s.map_uri);
        *map = Some(&s.map_uri);
    }
}

/// A segment's lines from its PROGRAM-DATE-TIME on: its listed parts, GAP, EXTINF and URI.
fn write_body(out: &mut String, s: &SegmentEntry) {
    write_open_body(out, s);
    if s.gap {
        out.push_str("#EXT-X-GAP\n");
    }
    let _ = writeln!(out, "#EXTINF:{},\n{}", fmt_duration(s.duration), s.uri);
}

/// A segment's lines as while it was open: PROGRAM-DATE-TIME and its listed parts (all of a
/// segment that has just closed, when it is listed so).
fn write_open_body(out: &mut String, s: &SegmentEntry) {
    let _ = writeln!(
        out,
        "#EXT-X-PROGRAM-DATE-TIME:{}",
        s.program_date_time.to_rfc3339()
    );
    if s.parts_listed {
        for p in &s.parts {
            write_part(out, p);
        }
    }
}

/// All of a complete segment's lines in a live media playlist.
fn write_segment<'a>(out: &mut String, s: &'a SegmentEntry, map: &mut Option<&'a str>) {
    write_head(out, s, map);
    write_body(out, s);
}

/// Segments in one chunk of [`SettledText`].
const CHUNK: usize = 64;

/// Up to [`CHUNK`] settled segments' text.
#[derive(Debug, Clone, Default)]
struct Chunk {
    text: String,
    /// Per segment: its MSN, where its lines start in `text`, and where its
    /// PROGRAM-DATE-TIME line starts.
    segments: Vec<(u64, u32, u32)>,
}

/// The media playlist lines of a rendition's settled segments, rendered once.
///
/// A segment settles when its parts stop being listed: from then on its lines never change
/// (nothing else about a complete segment does). The packager renders them once, as each
/// segment settles, and drops them as the segment leaves the window; snapshots share the text
/// (chunks of [`CHUNK`] segments behind `Arc`s, only the last one still growing), so a
/// snapshot costs no copy of a long window and a full playlist of one costs a copy of its
/// text, not a render of every segment. [`render_media`] uses it only for the leading segments
/// it matches (by MSN), and renders everything else as before: the output is the same either
/// way.
#[derive(Clone, Default)]
pub struct SettledText {
    chunks: Vec<Arc<Chunk>>,
    /// Segments at the start of the first chunk that have left the window.
    skip: usize,
    /// Segments held.
    len: usize,
    /// Bytes of text held (of segments in the window).
    bytes: usize,
}

impl std::fmt::Debug for SettledText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SettledText({} segments)", self.len)
    }
}

/// A cache: it never makes two snapshots differ.
impl PartialEq for SettledText {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl SettledText {
    /// Settled segments held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no segment is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of playlist text held.
    pub fn text_len(&self) -> usize {
        self.bytes
    }

    /// The (chunk, index in it) of the `i`th segment held.
    fn at(&self, i: usize) -> (&Chunk, usize) {
        let g = self.skip + i;
        (&self.chunks[g / CHUNK], g % CHUNK)
    }

    /// How many leading segments of `segments` this text holds: all it holds when they are
    /// the same segments (first and last MSN), else none.
    pub fn covers(&self, segments: &Segments) -> usize {
        if self.len == 0 || segments.len() < self.len {
            return 0;
        }
        let msn = |i: usize| {
            let (c, j) = self.at(i);
            c.segments[j].0
        };
        if msn(0) == segments[0].msn && msn(self.len - 1) == segments[self.len - 1].msn {
            self.len
        } else {
            0
        }
    }

    /// Appends segment `s`, whose predecessor in the window (if any) refers to `prev_map`.
    pub fn push(&mut self, s: &SegmentEntry, prev_map: Option<&str>) {
        if self.chunks.last().is_none_or(|c| c.segments.len() == CHUNK) {
            self.chunks.push(Arc::new(Chunk::default()));
        }
        // Copies the growing chunk (at most CHUNK segments) only when a snapshot holds it.
        let Some(chunk) = self.chunks.last_mut().map(Arc::make_mut) else {
            return;
        };
        let start = chunk.text.len();
        let mut map = prev_map;
        write_head(&mut chunk.text, s, &mut map);
        let body = chunk.text.len();
        write_body(&mut chunk.text, s);
        chunk.segments.push((s.msn, start as u32, body as u32));
        self.bytes += chunk.text.len() - start;
        self.len += 1;
    }

    /// Drops the oldest segment when it is `msn` (it left the window).
    pub fn pop_front(&mut self, msn: u64) {
        if self.len == 0 {
            return;
        }
        let (c, j) = self.at(0);
        if c.segments[j].0 != msn {
            // Not what this text holds: it no longer matches the window.
            *self = SettledText::default();
            return;
        }
        let end = c
            .segments
            .get(j + 1)
            .map_or(c.text.len(), |next| next.1 as usize);
        self.bytes -= end - c.segments[j].1 as usize;
        self.len -= 1;
        self.skip += 1;
        if self.len == 0 {
            *self = SettledText::default();
        } else if self.skip == CHUNK {
            self.chunks.remove(0);
            self.skip = 0;
        }
    }

    /// Brings this text in line with `segments` (a window that slid and grew since, or one
    /// renamed): drops the segments that left its front and renders the newly settled ones
    /// (those whose parts are no longer listed, oldest first). Text that does not match them
    /// is started again.
    pub fn sync(&mut self, segments: &Segments) {
        let Some(front) = segments.first() else {
            *self = SettledText::default();
            return;
        };
        while self.len > 0 {
            let (c, j) = self.at(0);
            let msn = c.segments[j].0;
            if msn >= front.msn {
                break;
            }
            self.pop_front(msn);
        }
        if self.len > 0 && self.covers(segments) == 0 {
            *self = SettledText::default();
        }
        while let Some(s) = segments.get(self.len) {
            if s.parts_listed {
                break;
            }
            let prev = self
                .len
                .checked_sub(1)
                .map(|p| segments[p].map_uri.as_str());
            self.push(s, prev);
        }
    }

    /// Appends the text of held segments `i..`, the first from its PROGRAM-DATE-TIME line.
    fn write_from(&self, out: &mut String, i: usize) {
        let g = self.skip + i;
        let (first, j) = (g / CHUNK, g % CHUNK);
        for (n, chunk) in self.chunks.iter().enumerate().skip(first) {
            let from = if n == first {
                chunk.segments[j].2 as usize
            } else {
                0
            };
            out.push_str(&chunk.text[from..]);
        }
    }
}

fn write_part(out: &mut String, p: &crate::playlist::PartEntry) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        fmt_us(p.listed_us),
        p.uri
    );
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    if let Some((len, off)) = p.byterange {
        let _ = write!(out, ",BYTERANGE=\"{len}@{off}\"");
    }
    if p.gap {
        out.push_str(",GAP=YES");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_up_keeps_exact_values() {
        assert_eq!(round_up_precision(0.2), 0.2);
        assert_eq!(round_up_precision(0.333333), 0.33334);
        assert_eq!(fmt_secs(round_up_precision(0.2083333)), "0.20834");
        assert_eq!(fmt_duration(1.0 + 1.0 / 375.0), "1.00266");
        assert_eq!(fmt_duration(0.2), "0.20000");
        assert_eq!(fmt_duration(0.1 + 0.2 + 0.3 + 0.4 + 0.5 + 0.5), "2.00000");
        assert_eq!(fmt_duration(1.9999999999999998), "2.00000");
        assert_eq!(fmt_us(199_996), "0.199996");
        assert_eq!(fmt_us(2_000_004), "2.000004");
        // Written durations never add up past the media they describe.
        let aac = [1.0 + 1.0 / 375.0; 3]
            .into_iter()
            .chain([2.0 + 2.0 / 375.0; 2])
            .collect::<Vec<_>>();
        let written: f64 = aac
            .iter()
            .map(|d| fmt_duration(*d).parse::<f64>().unwrap())
            .sum();
        assert!(written <= aac.iter().sum::<f64>(), "{written}");
        assert_eq!(trim_secs(0.6), "0.6");
        assert_eq!(trim_secs(12.0), "12.0");
    }

    /// Parts of `frames` frames of `frame` ticks at `scale` Hz, `parts` to a segment, for
    /// `segments` segments: (segment EXTINF as written, [(part DURATION as written, media
    /// start in seconds)]).
    fn listed_stream(
        scale: u64,
        frame: u64,
        frames: u64,
        parts: usize,
        segments: usize,
    ) -> Vec<(f64, Vec<(f64, f64)>)> {
        let mut out = Vec::new();
        let mut tick = 0u64;
        for _ in 0..segments {
            let start = tick;
            let mut listed_end = 0u64;
            let mut listed = Vec::new();
            for k in 0..parts {
                let part_start = tick;
                tick += frames * frame;
                let real_end = (tick - start) as f64 / scale as f64;
                let end = listed_part_end_us(real_end, k, k + 1 == parts);
                listed.push((
                    fmt_us(end - listed_end).parse::<f64>().unwrap(),
                    part_start as f64 / scale as f64,
                ));
                listed_end = end;
            }
            let extinf = fmt_duration((tick - start) as f64 / scale as f64);
            out.push((extinf.parse::<f64>().unwrap(), listed));
        }
        out
    }

    #[test]
    fn listed_part_durations_let_shaka_and_hls_js_append_every_part() {
        // 30 fps (6 frames a part, 2 s segments), 29.97 fps (1.001 s segments), 25 fps with
        // 0.16 s parts and 6 s segments (the longest run of parts a segment has here).
        for (scale, frame, frames, parts) in [
            (90_000, 3_000, 6, 10),
            (30_000, 1_001, 6, 5),
            (90_000, 3_600, 4, 37),
            (1_000, 33, 6, 10),
        ] {
            let stream = listed_stream(scale, frame, frames, parts, 40);
            // Shaka: each part placed at the sum of EXTINFs before its segment plus the
            // DURATIONs before it in the segment (from either, the way it sums them), its
            // timestampOffset computed against the media and compared as Shaka 5.2 does.
            for from_parts in [false, true] {
                let mut placed = Vec::new();
                let mut seg_start = 0.0f64;
                for (extinf, listed) in &stream {
                    let mut at = seg_start;
                    for (k, (duration, media)) in listed.iter().enumerate() {
                        placed.push((k, at - media));
                        at += duration;
                    }
                    seg_start += if from_parts { at - seg_start } else { *extinf };
                }
                // Whatever part the player starts on (a join, a seek, a switch forces the
                // offset there), no later part but a segment's first is aborted.
                for first in 0..placed.len() {
                    let set = |offset: f64| if offset < 0.0 { offset + 0.001 } else { offset };
                    let mut current = set(placed[first].1);
                    for &(k, offset) in &placed[first + 1..] {
                        if (current - offset).abs() >= 0.001 {
                            assert_eq!(k, 0, "{scale} {frame} {frames}: part {k} aborted after a start at {first}");
                            current = set(offset);
                        }
                    }
                }
            }
            // hls.js: a segment's parts add up to at most its media, and to at most its EXTINF.
            for (extinf, listed) in &stream {
                let media_end = (frames * frame * parts as u64) as f64 / scale as f64;
                let sum: f64 = listed.iter().map(|(d, _)| d).sum();
                assert!(sum <= media_end - 0.5e-6, "{sum} vs {media_end}");
                assert!(sum <= *extinf + 1e-9, "{sum} vs EXTINF {extinf}");
                assert!(listed.iter().all(|(d, _)| *d > 0.0));
            }
        }
    }
}
