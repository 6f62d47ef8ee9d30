//! The public vocabulary shared by ingest and the packager: tracks, media time, frames, wall-clock.

use std::fmt;

use bytes::Bytes;

use crate::codec::CodecConfig;

/// Identifies a track within one stream (FLV: 1 = video, 2 = audio; any small number works).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u32);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "track {}", self.0)
    }
}

/// Ticks per second of a media clock. Never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timescale(u32);

impl Timescale {
    /// Milliseconds: what RTMP/FLV timestamps use.
    pub const MILLIS: Timescale = Timescale(1000);
    /// The MPEG 90 kHz clock, used for video tracks in the output.
    pub const MPEG: Timescale = Timescale(90_000);

    /// A timescale of `hz` ticks per second; `None` for zero.
    pub const fn new(hz: u32) -> Option<Self> {
        if hz == 0 {
            None
        } else {
            Some(Timescale(hz))
        }
    }

    /// Ticks per second.
    pub const fn hz(self) -> u32 {
        self.0
    }
}

/// A point or span on a media clock: 64-bit ticks of a [`Timescale`]. Never wraps in practice
/// (2^63 ticks of 90 kHz is three million years).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaTime {
    /// Ticks since the track's origin (may be negative for B-frame PTS before the first DTS).
    pub ticks: i64,
    /// The clock the ticks count.
    pub scale: Timescale,
}

impl MediaTime {
    /// `ticks` on clock `scale`.
    pub const fn new(ticks: i64, scale: Timescale) -> Self {
        MediaTime { ticks, scale }
    }

    /// Milliseconds, the FLV/RTMP unit.
    pub const fn from_millis(ms: i64) -> Self {
        MediaTime::new(ms, Timescale::MILLIS)
    }

    /// The same instant on another clock, rounded to the nearest tick.
    pub fn rescale(self, to: Timescale) -> i64 {
        rescale(self.ticks, self.scale.hz(), to.hz())
    }

    /// Seconds as a float, for display and logs only.
    pub fn as_secs_f64(self) -> f64 {
        self.ticks as f64 / f64::from(self.scale.hz())
    }
}

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.ticks, self.scale.hz())
    }
}

/// Converts `ticks` from clock `from` Hz to clock `to` Hz, rounding to nearest (half away from
/// zero), in 128-bit arithmetic so it cannot overflow.
pub fn rescale(ticks: i64, from: u32, to: u32) -> i64 {
    if from == to {
        return ticks;
    }
    let num = i128::from(ticks) * i128::from(to);
    let den = i128::from(from);
    let q = if num >= 0 {
        (num + den / 2) / den
    } else {
        (num - den / 2) / den
    };
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Wall-clock time as milliseconds since the Unix epoch, passed in by the caller (the packager
/// never reads a clock). Used for EXT-X-PROGRAM-DATE-TIME and delta-update bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WallClock(pub i64);

impl WallClock {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Formats as `YYYY-MM-DDThh:mm:ss.SSSZ` (RFC 3339 with milliseconds, rule 32).
    pub fn to_rfc3339(self) -> String {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// A video track (H.264, HEVC, AV1).
    Video,
    /// An audio track (AAC, Opus).
    Audio,
}

/// A track as the publisher announced it: its id and its parsed codec configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackConfig {
    /// The track id frames refer to.
    pub id: TrackId,
    /// Parsed codec configuration (parameter sets, sample rate...).
    pub codec: CodecConfig,
}

impl TrackConfig {
    /// Video or audio, from the codec.
    pub fn kind(&self) -> TrackKind {
        self.codec.kind()
    }
}

/// One encoded access unit (a video frame or an audio frame) with explicit timestamps.
///
/// Video payloads are length-prefixed NAL units (4-byte lengths, as in FLV and MP4) for H.264
/// and HEVC, or a temporal unit of OBUs for AV1. Audio payloads are raw AAC frames (no ADTS) or
/// Opus packets.
#[derive(Clone, PartialEq)]
pub struct Frame {
    /// The track this frame belongs to.
    pub track: TrackId,
    /// Decode timestamp.
    pub dts: MediaTime,
    /// Presentation timestamp (>= dts).
    pub pts: MediaTime,
    /// True for sync samples (IDR / key frames; every audio frame).
    pub keyframe: bool,
    /// The encoded payload.
    pub data: Bytes,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: Vec<u8> = self.data.iter().take(8).copied().collect();
        f.debug_struct("Frame")
            .field("track", &self.track)
            .field("dts", &self.dts)
            .field("pts", &self.pts)
            .field("keyframe", &self.keyframe)
            .field("len", &self.data.len())
            .field("head", &head)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_to_nearest() {
        assert_eq!(rescale(1, 1000, 90_000), 90);
        assert_eq!(rescale(21, 1000, 48_000), 1008);
        assert_eq!(rescale(1024, 48_000, 1000), 21);
        assert_eq!(rescale(-1, 1000, 90_000), -90);
        assert_eq!(rescale(1, 3, 2), 1);
        assert_eq!(rescale(i64::MAX, 1, 90_000), i64::MAX);
        assert_eq!(rescale(i64::MIN, 1, u32::MAX), i64::MIN);
        assert_eq!(rescale(i64::MAX, u32::MAX, 1), 2_147_483_648);
        assert_eq!(
            rescale(i64::MIN, u32::MAX, u32::MAX - 1),
            -9_223_372_034_707_292_159
        );
    }

    #[test]
    fn rfc3339_with_millis() {
        assert_eq!(WallClock(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            WallClock(1_795_000_000_123).to_rfc3339(),
            "2026-11-18T11:06:40.123Z"
        );
        assert_eq!(
            WallClock(951_782_400_000).to_rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
