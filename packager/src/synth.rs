//! A synthetic publisher for tests, benchmarks and load generators: H.264-shaped video frames
//! (real SPS/PPS, placeholder slice data) and AAC-shaped audio frames with millisecond
//! timestamps, interleaved by DTS as an RTMP publisher sends them. The payloads do not decode;
//! use real encoder output where decoding matters.

use bytes::Bytes;

use crate::codec::{AacConfig, AvcConfig, CodecConfig};
use crate::media::{Frame, MediaTime, TrackConfig, TrackId, WallClock};

/// SPS of ffmpeg 5.1 libx264, High 3.1, 1280x720 at 30 fps.
pub const SPS_720P: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
/// Its PPS.
pub const PPS: [u8; 4] = [0x68, 0xef, 0x8f, 0xcb];
/// Video track id.
pub const VIDEO: TrackId = TrackId(1);
/// Audio track id.
pub const AUDIO: TrackId = TrackId(2);

/// The H.264 track.
pub fn video_track() -> TrackConfig {
    TrackConfig {
        id: VIDEO,
        codec: CodecConfig::H264(
            AvcConfig::from_parameter_sets(vec![SPS_720P.to_vec()], vec![PPS.to_vec()])
                .expect("the constant SPS parses"),
        ),
    }
}

/// The AAC track.
pub fn audio_track() -> TrackConfig {
    TrackConfig {
        id: AUDIO,
        codec: CodecConfig::Aac(AacConfig::lc(48_000, 2).expect("48 kHz has an index")),
    }
}

/// A synthetic publisher: video at `fps` with a keyframe every `gop` frames (optionally with
/// B-frames: decode order I P B B P B B ...), AAC at 48 kHz, timestamps in milliseconds as RTMP
/// delivers them, interleaved by DTS.
/// The synthetic publisher.
pub struct Publisher {
    /// Frames per second.
    pub fps: f64,
    /// Frames per keyframe interval.
    pub gop: u32,
    /// Reorder frames like B-frames.
    pub bframes: bool,
    /// Send audio.
    pub audio: bool,
    /// Send video.
    pub video: bool,
    /// Next video frame number.
    pub frame_no: u64,
    /// Next audio frame number.
    pub audio_no: u64,
    /// Timestamp of frame 0.
    pub base_ms: i64,
    /// Wall clock at frame 0 (ms).
    pub wall0: i64,
    /// Added to successive audio timestamps, cyclically.
    pub audio_jitter_ms: Vec<i64>,
}

impl Publisher {
    /// `fps` video with a keyframe every `gop` frames, plus 48 kHz AAC.
    pub fn new(fps: f64, gop: u32) -> Self {
        Publisher {
            fps,
            gop,
            bframes: false,
            audio: true,
            video: true,
            frame_no: 0,
            audio_no: 0,
            base_ms: 0,
            wall0: 1_795_000_000_000,
            audio_jitter_ms: vec![0],
        }
    }

    /// Timestamp (ms) of video frame `n`.
    pub fn video_ms_public(&self, n: u64) -> i64 {
        self.video_ms(n)
    }

    fn video_ms(&self, n: u64) -> i64 {
        self.base_ms + (n as f64 * 1000.0 / self.fps).round() as i64
    }

    fn audio_ms(&self, n: u64) -> i64 {
        let j = self.audio_jitter_ms[(n as usize) % self.audio_jitter_ms.len()];
        self.base_ms + (n as f64 * 1024.0 * 1000.0 / 48_000.0).round() as i64 + j
    }

    /// Timestamps (ms) of the next video and audio frames (`i64::MAX` for a track not sent).
    fn next_times(&self) -> (i64, i64) {
        let vt = if self.video {
            self.video_ms(self.frame_no)
        } else {
            i64::MAX
        };
        let at = if self.audio {
            self.audio_ms(self.audio_no)
        } else {
            i64::MAX
        };
        (vt, at)
    }

    /// The wall clock (ms) the next frame arrives at.
    pub fn next_frame_wall(&self) -> i64 {
        let (vt, at) = self.next_times();
        self.wall0 + vt.min(at) - self.base_ms + 5
    }

    /// The next frame in DTS order, with the wall clock it "arrives" at.
    pub fn next_frame(&mut self) -> (Frame, WallClock) {
        let (vt, at) = self.next_times();
        if vt <= at {
            let n = self.frame_no;
            self.frame_no += 1;
            let in_gop = n % u64::from(self.gop);
            let key = in_gop == 0;
            let pts_frame = if self.bframes && !key {
                // decode order: I P B B P B B; the P is shown 2 frames later, Bs one earlier.
                match in_gop % 3 {
                    1 => n + 2,
                    _ => n - 1,
                }
            } else {
                n
            };
            // shift by 2 frames so pts >= dts always
            let delay = if self.bframes { 2 } else { 0 };
            let dts = vt;
            let pts = self.video_ms(pts_frame + delay);
            let nal_type = if key { 0x65u8 } else { 0x41 };
            let len = if key { 3000 } else { 600 };
            let mut data = vec![0u8; 4 + len];
            data[..4].copy_from_slice(&(len as u32).to_be_bytes());
            data[4] = nal_type;
            data[5] = (n % 251) as u8;
            (
                Frame {
                    track: VIDEO,
                    dts: MediaTime::from_millis(dts),
                    pts: MediaTime::from_millis(pts),
                    keyframe: key,
                    data: Bytes::from(data),
                },
                WallClock(self.wall0 + vt - self.base_ms + 5),
            )
        } else {
            let n = self.audio_no;
            self.audio_no += 1;
            (
                Frame {
                    track: AUDIO,
                    dts: MediaTime::from_millis(at),
                    pts: MediaTime::from_millis(at),
                    keyframe: true,
                    data: Bytes::from(vec![0x21, (n % 256) as u8, 0, 0]),
                },
                WallClock(self.wall0 + at - self.base_ms + 5),
            )
        }
    }

    /// The configured tracks.
    pub fn tracks(&self) -> Vec<TrackConfig> {
        let mut t = Vec::new();
        if self.video {
            t.push(video_track());
        }
        if self.audio {
            t.push(audio_track());
        }
        t
    }
}
