//! Codec configuration parsed from what publishers send, and the facts the packager derives
//! from it: RFC 6381 codec strings, picture size, frame rate, sample rate, frame durations.
//!
//! Every parser takes untrusted bytes and returns [`CodecError`] rather than panicking.

mod aac;
mod av1;
mod bits;
mod filler;
mod h264;
mod hevc;
mod opus;

pub use aac::AacConfig;
pub use av1::Av1Config;
pub use filler::{silent_audio_frame, H264Filler};
pub use h264::AvcConfig;
pub use hevc::HevcConfig;
pub use opus::{opus_packet_samples, OpusConfig};

#[cfg(test)]
pub(crate) use h264::tests as h264_test_vectors;

use crate::media::{Timescale, TrackKind};

/// Why a codec configuration or parameter set was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes ended before the structure did.
    #[error("{what}: truncated after {at} bytes")]
    Truncated {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes consumed before running out.
        at: usize,
    },
    /// A field holds a value the standard forbids or we do not support.
    #[error("{what}: {detail}")]
    Invalid {
        /// The structure being parsed.
        what: &'static str,
        /// What was wrong, for the log line.
        detail: String,
    },
}

impl CodecError {
    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        CodecError::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// Parsed configuration of one track.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CodecConfig {
    /// H.264 / AVC.
    H264(AvcConfig),
    /// H.265 / HEVC.
    Hevc(HevcConfig),
    /// AV1.
    Av1(Av1Config),
    /// AAC (LC, HE, HEv2).
    Aac(AacConfig),
    /// Opus.
    Opus(OpusConfig),
}

impl CodecConfig {
    /// Video or audio.
    pub fn kind(&self) -> TrackKind {
        match self {
            CodecConfig::H264(_) | CodecConfig::Hevc(_) | CodecConfig::Av1(_) => TrackKind::Video,
            CodecConfig::Aac(_) | CodecConfig::Opus(_) => TrackKind::Audio,
        }
    }

    /// The RFC 6381 string for CODECS, derived from the parameter sets.
    pub fn codec_string(&self) -> String {
        match self {
            CodecConfig::H264(c) => c.codec_string(),
            CodecConfig::Hevc(c) => c.codec_string(),
            CodecConfig::Av1(c) => c.codec_string(),
            CodecConfig::Aac(c) => c.codec_string(),
            CodecConfig::Opus(_) => "opus".to_string(),
        }
    }

    /// A short human name for logs ("H.264 High 3.1", "AAC-LC 48000 Hz 2 ch").
    pub fn describe(&self) -> String {
        match self {
            CodecConfig::H264(c) => {
                format!("H.264 {}x{} ({})", c.width, c.height, c.codec_string())
            }
            CodecConfig::Hevc(c) => format!("HEVC {}x{} ({})", c.width, c.height, c.codec_string()),
            CodecConfig::Av1(c) => format!("AV1 {}x{} ({})", c.width, c.height, c.codec_string()),
            CodecConfig::Aac(c) => format!(
                "AAC {} Hz {} ch ({})",
                c.sample_rate,
                c.channels,
                c.codec_string()
            ),
            CodecConfig::Opus(c) => format!("Opus {} ch", c.channels),
        }
    }

    /// The output timescale of this track: 90 kHz for video, the sample rate for audio.
    pub fn timescale(&self) -> Timescale {
        let hz = match self {
            CodecConfig::H264(_) | CodecConfig::Hevc(_) | CodecConfig::Av1(_) => 90_000,
            CodecConfig::Aac(c) => c.sample_rate,
            CodecConfig::Opus(_) => 48_000,
        };
        Timescale::new(hz).unwrap_or(Timescale::MPEG)
    }

    /// Picture size in pixels (0x0 when unknown or for audio).
    pub fn resolution(&self) -> (u32, u32) {
        match self {
            CodecConfig::H264(c) => (c.width, c.height),
            CodecConfig::Hevc(c) => (c.width, c.height),
            CodecConfig::Av1(c) => (c.width, c.height),
            _ => (0, 0),
        }
    }

    /// Frame rate signalled in the parameter sets, if any.
    pub fn frame_rate(&self) -> Option<f64> {
        match self {
            CodecConfig::H264(c) => c.frame_rate,
            CodecConfig::Hevc(c) => c.frame_rate,
            _ => None,
        }
    }

    /// Samples per audio frame in the output timescale when fixed by the codec (AAC: 1024).
    pub fn audio_frame_ticks(&self) -> Option<i64> {
        match self {
            CodecConfig::Aac(c) => Some(i64::from(c.frame_length)),
            _ => None,
        }
    }

    /// Audio channel count (for EXT-X-MEDIA CHANNELS).
    pub fn channels(&self) -> Option<u8> {
        match self {
            CodecConfig::Aac(c) => Some(c.channels),
            CodecConfig::Opus(c) => Some(c.channels),
            _ => None,
        }
    }
}

/// Splits Annex-B byte-stream data (start codes) into NAL units.
pub fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                out.push(&data[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        if s < data.len() {
            out.push(&data[s..]);
        }
    }
    out
}

/// True when `data` starts with an Annex-B start code rather than a NAL length prefix.
pub fn is_annex_b(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])
}

/// Converts Annex-B data to 4-byte length-prefixed NAL units (the MP4 sample format).
pub fn annex_b_to_length_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in split_annex_b(data) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// Iterates 4-byte length-prefixed NAL units; `Err` on a length that runs past the end.
pub fn length_prefixed_nals(data: &[u8]) -> Result<Vec<&[u8]>, CodecError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if i + 4 > data.len() {
            return Err(CodecError::Truncated {
                what: "NAL length prefix",
                at: i,
            });
        }
        let len = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize;
        i += 4;
        if len > data.len() - i {
            return Err(CodecError::invalid(
                "NAL unit",
                format!(
                    "length {len} at offset {} runs past the {}-byte frame",
                    i - 4,
                    data.len()
                ),
            ));
        }
        out.push(&data[i..i + len]);
        i += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_split_and_convert() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals = split_annex_b(&data);
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        let lp = annex_b_to_length_prefixed(&data);
        assert_eq!(length_prefixed_nals(&lp).unwrap(), nals);
    }

    #[test]
    fn length_prefix_overrun_is_an_error() {
        assert!(length_prefixed_nals(&[0, 0, 0, 9, 1, 2]).is_err());
        assert!(length_prefixed_nals(&[0, 0]).is_err());
    }
}
