//! Prometheus metrics, lock-free counters rendered as text on `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What kind of object a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `index.m3u8`.
    Multivariant = 0,
    /// Media playlist without `_HLS_msn`.
    Playlist = 1,
    /// Media playlist with `_HLS_msn` (blocking reload).
    BlockingPlaylist = 2,
    /// Init segment.
    Init = 3,
    /// Part.
    Part = 4,
    /// Segment.
    Segment = 5,
    /// Anything else (pages, metrics, 404s).
    Other = 6,
}

const CLASSES: [&str; 7] = [
    "multivariant",
    "playlist",
    "blocking_playlist",
    "init",
    "part",
    "segment",
    "other",
];
const STATUSES: [u16; 12] = [200, 204, 206, 400, 403, 404, 405, 416, 429, 431, 503, 0];
const WAKE_BUCKETS_MS: [f64; 11] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0,
];

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; 12]; 7],
    /// Bytes of response bodies sent (as queued to the connection).
    pub bytes_out: AtomicU64,
    /// Requests currently held (blocking playlists and hinted parts).
    pub held: AtomicUsize,
    /// Live streams (stream tasks running).
    pub live_streams: AtomicUsize,
    /// Open connections.
    pub connections: AtomicUsize,
    /// Connections refused at the limit.
    pub connections_refused: AtomicU64,
    /// Parts published, over all streams and renditions.
    pub parts_published: AtomicU64,
    /// ABR ladder rungs withdrawn (encoder behind, failed or skipping frames).
    pub rungs_withdrawn: AtomicU64,
    /// DVR segments that could not be written to disk.
    pub dvr_write_errors: AtomicU64,
    /// Recording files (segments, init sections, playlists) that could not be written.
    pub record_write_errors: AtomicU64,
    wake_buckets: [AtomicU64; 11],
    wake_count: AtomicU64,
    wake_sum_us: AtomicU64,
}

impl Metrics {
    /// Counts one response.
    pub fn request(&self, class: Class, status: u16) {
        let si = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[class as usize][si].fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time from publish to the release of a held request.
    pub fn wake(&self, secs: f64) {
        let ms = secs * 1000.0;
        for (i, b) in WAKE_BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.wake_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.wake_count.fetch_add(1, Ordering::Relaxed);
        self.wake_sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP llhls_requests_total HTTP responses by object class and status.\n# TYPE llhls_requests_total counter\n");
        for (ci, class) in CLASSES.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let v = self.requests[ci][si].load(Ordering::Relaxed);
                if v > 0 {
                    let status = if *status == 0 {
                        "other".to_string()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "llhls_requests_total{{class=\"{class}\",status=\"{status}\"}} {v}"
                    );
                }
            }
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: u64, kind: &str| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            &mut out,
            "llhls_bytes_out_total",
            "Response body bytes sent.",
            self.bytes_out.load(Ordering::Relaxed),
            "counter",
        );
        gauge(
            &mut out,
            "llhls_held_requests",
            "Requests held waiting for a part or playlist update.",
            self.held.load(Ordering::Relaxed) as u64,
            "gauge",
        );
        gauge(
            &mut out,
            "llhls_live_streams",
            "Streams with a running packager.",
            self.live_streams.load(Ordering::Relaxed) as u64,
            "gauge",
        );
        gauge(
            &mut out,
            "llhls_connections",
            "Open client connections.",
            self.connections.load(Ordering::Relaxed) as u64,
            "gauge",
        );
        gauge(
            &mut out,
            "llhls_parts_published_total",
            "Parts published, over all streams and renditions.",
            self.parts_published.load(Ordering::Relaxed),
            "counter",
        );
        gauge(
            &mut out,
            "llhls_ladder_rungs_withdrawn_total",
            "ABR ladder rungs withdrawn (encoder behind, failed, or skipping frames).",
            self.rungs_withdrawn.load(Ordering::Relaxed),
            "counter",
        );
        gauge(
            &mut out,
            "llhls_dvr_write_errors_total",
            "DVR segments that could not be written to disk (the DVR window shrinks instead).",
            self.dvr_write_errors.load(Ordering::Relaxed),
            "counter",
        );
        gauge(
            &mut out,
            "llhls_record_write_errors_total",
            "Recording files that could not be written (the recording skips them).",
            self.record_write_errors.load(Ordering::Relaxed),
            "counter",
        );
        gauge(
            &mut out,
            "llhls_connections_refused_total",
            "Connections refused at the connection limit (in all, or per client IP).",
            self.connections_refused.load(Ordering::Relaxed),
            "counter",
        );
        out.push_str("# HELP llhls_wake_latency_seconds Time from playlist publish to release of a held request.\n# TYPE llhls_wake_latency_seconds histogram\n");
        for (i, b) in WAKE_BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "llhls_wake_latency_seconds_bucket{{le=\"{}\"}} {}",
                b / 1000.0,
                self.wake_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.wake_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "llhls_wake_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "llhls_wake_latency_seconds_sum {}",
            self.wake_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "llhls_wake_latency_seconds_count {count}");
        out
    }
}
