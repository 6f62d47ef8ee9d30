//! Per-stream figures for `/metrics` and `/streams.json`: counters the stream task and the
//! playlist handler bump (lock-free), and a summary read from the published snapshot.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use llhls_packager::{RenditionSnapshot, StreamSnapshot};

use crate::live::Stream;

/// Counters of one stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Frames received from the publisher (every track).
    pub frames_in: AtomicU64,
    /// Payload bytes of those frames.
    pub bytes_in: AtomicU64,
    /// Discontinuities: publisher reconnects, takeovers and codec changes.
    pub discontinuities: AtomicU64,
    /// GAP parts published in the main rendition (the input stalled).
    pub gap_parts: AtomicU64,
    /// Blocking playlist requests held right now: an LL-HLS player keeps one per media
    /// playlist it follows, so this estimates the players (behind a CDN: the edges).
    pub held_playlists: AtomicUsize,
}

/// Counts the GAP parts of `r` after `cursor` (the last part counted, as MSN and index) and
/// moves the cursor to its last part. Parts stay listed for three target durations, so a
/// stream task that calls this on every snapshot sees each part.
pub(crate) fn new_gap_parts(r: &RenditionSnapshot, cursor: &mut Option<(u64, usize)>) -> u64 {
    // Parts are listed for the newest segments only: look at those, not the whole window.
    let recent = r
        .segments
        .iter()
        .rev()
        .take_while(|s| s.parts_listed)
        .count();
    let listed = r
        .segments
        .iter()
        .skip(r.segments.len() - recent)
        .map(|s| (s.msn, &s.parts))
        .chain(r.open.iter().map(|o| (o.msn, &o.parts)));
    let mut gaps = 0;
    for (msn, parts) in listed {
        for (i, part) in parts.iter().enumerate() {
            if cursor.is_none_or(|c| (msn, i) > c) {
                gaps += u64::from(part.gap);
                *cursor = Some((msn, i));
            }
        }
    }
    gaps
}

/// What `/streams.json` says about a live stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    /// Stream name.
    pub name: String,
    /// RFC 6381 codecs of every rendition.
    pub codecs: Vec<String>,
    /// Picture size.
    pub resolution: Option<(u32, u32)>,
    /// Frame rate.
    pub frame_rate: Option<f64>,
    /// Average bit rate over the segments in the window (bits/s, every rendition).
    pub bitrate: u64,
    /// Players following the stream (see [`StreamStats::held_playlists`]).
    pub viewers: usize,
    /// `None` while the stream is live; once it has ended, until when it is kept (see
    /// [`Stream::kept_until`]).
    pub kept_until: Option<llhls_packager::WallClock>,
}

impl StreamSummary {
    /// The summary of `stream` at `snapshot`.
    pub fn new(stream: &Stream, snapshot: &StreamSnapshot) -> Self {
        let mut codecs: Vec<String> = Vec::new();
        for c in snapshot.renditions.iter().flat_map(|r| r.codecs.iter()) {
            if !codecs.contains(c) {
                codecs.push(c.clone());
            }
        }
        let video = snapshot.renditions.iter().find(|r| r.resolution.is_some());
        // Each rendition's bytes over its own duration, summed (separate audio adds its rate).
        let bitrate: f64 = snapshot
            .renditions
            .iter()
            .map(|r| {
                let (bytes, secs) = r
                    .segments
                    .iter()
                    .filter(|s| !s.gap)
                    .fold((0u64, 0f64), |(b, d), s| (b + s.bytes, d + s.duration));
                if secs > 0.0 {
                    bytes as f64 * 8.0 / secs
                } else {
                    0.0
                }
            })
            .sum();
        // Every media rendition is one held request per player.
        let renditions = snapshot.listed().count().max(1);
        let held = stream.stats.held_playlists.load(Ordering::Relaxed);
        StreamSummary {
            name: stream.name.clone(),
            codecs,
            resolution: video.and_then(|r| r.resolution),
            frame_rate: video.and_then(|r| r.frame_rate),
            bitrate: bitrate as u64,
            viewers: held.div_ceil(renditions),
            kept_until: stream.kept_until(),
        }
    }

    /// One JSON object (names, codecs and numbers need no escaping: names are
    /// `[A-Za-z0-9_-]`, codecs RFC 6381 strings).
    pub fn json(&self) -> String {
        let mut out = String::with_capacity(200);
        let codecs: Vec<String> = self
            .codecs
            .iter()
            .map(|c| format!("\"{}\"", c.replace(['"', '\\'], "")))
            .collect();
        let _ = write!(
            out,
            "{{\"name\":\"{n}\",\"playlist\":\"/live/{n}/index.m3u8\",\"codecs\":[{}]",
            codecs.join(","),
            n = self.name
        );
        if let Some((w, h)) = self.resolution {
            let _ = write!(out, ",\"width\":{w},\"height\":{h}");
        }
        if let Some(f) = self.frame_rate.filter(|f| f.is_finite()) {
            let _ = write!(out, ",\"frame_rate\":{}", (f * 100.0).round() / 100.0);
        }
        match self.kept_until {
            None => out.push_str(",\"state\":\"live\""),
            Some(t) => {
                let _ = write!(
                    out,
                    ",\"state\":\"ended\",\"kept_until\":\"{}\"",
                    t.to_rfc3339()
                );
            }
        }
        let _ = write!(
            out,
            ",\"bitrate\":{},\"viewers\":{}}}",
            self.bitrate, self.viewers
        );
        out
    }
}

/// One per-stream series: name, type, help, how to read it.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StreamStats) -> u64,
);

/// Per-stream Prometheus series, labelled `stream="NAME"`.
pub(crate) fn render(streams: &[std::sync::Arc<Stream>]) -> String {
    let mut out = String::new();
    let series: [Series; 5] = [
        (
            "llhls_stream_frames_in_total",
            "counter",
            "Frames received from the stream's publisher.",
            |s| s.frames_in.load(Ordering::Relaxed),
        ),
        (
            "llhls_stream_bytes_in_total",
            "counter",
            "Frame payload bytes received from the stream's publisher (rate x 8 = bit rate in).",
            |s| s.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "llhls_stream_discontinuities_total",
            "counter",
            "Discontinuities: publisher reconnects, takeovers and codec changes.",
            |s| s.discontinuities.load(Ordering::Relaxed),
        ),
        (
            "llhls_stream_gap_parts_total",
            "counter",
            "GAP parts published while the input stalled.",
            |s| s.gap_parts.load(Ordering::Relaxed),
        ),
        (
            "llhls_stream_held_playlists",
            "gauge",
            "Blocking playlist requests held now: about one per player and media playlist.",
            |s| s.held_playlists.load(Ordering::Relaxed) as u64,
        ),
    ];
    for (name, kind, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in streams {
            let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", s.name, get(&s.stats));
        }
    }
    out
}
