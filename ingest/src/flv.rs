//! FLV tag bodies as RTMP carries them: legacy AVC/AAC and enhanced RTMP (`hvc1`, `av01`,
//! `Opus`). Pure parsing, no IO; every error names what to change in the encoder.

use bytes::Bytes;
use llhls_packager::codec::{
    annex_b_to_length_prefixed, is_annex_b, AacConfig, Av1Config, AvcConfig, CodecConfig,
    HevcConfig, OpusConfig,
};

/// What one audio or video message carried.
#[derive(Debug, Clone, PartialEq)]
pub enum FlvEvent {
    /// A codec configuration (sequence header / sequence start).
    Config(CodecConfig),
    /// A coded video frame.
    Video {
        /// Sync sample.
        keyframe: bool,
        /// Composition time offset (PTS - DTS) in milliseconds.
        cts_ms: i32,
        /// Length-prefixed NAL units, or AV1 OBUs.
        data: Bytes,
    },
    /// A coded audio frame.
    Audio {
        /// Raw AAC frame or Opus packet.
        data: Bytes,
    },
    /// Nothing to do (end of sequence, metadata, command frames, empty messages).
    Ignore,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The codec is not one LL-HLS players can play.
    #[error("unsupported {kind} codec {name}: {fix}")]
    Unsupported {
        /// "video" or "audio".
        kind: &'static str,
        /// Codec name.
        name: String,
        /// What to change in OBS/ffmpeg.
        fix: &'static str,
    },
    /// The tag body is malformed.
    #[error("malformed {0}")]
    Malformed(String),
}

const VIDEO_FIX: &str = "set the encoder to H.264 (x264 or a hardware H.264 encoder), HEVC or AV1";
const AUDIO_FIX: &str =
    "set the audio encoder to AAC (OBS: Settings > Output > Audio Encoder; ffmpeg: -c:a aac)";

fn si24(b: &[u8]) -> i32 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    (v << 8) >> 8
}

fn codec_err(what: &str, e: impl std::fmt::Display) -> FlvError {
    FlvError::Malformed(format!("{what}: {e}"))
}

/// Parses one RTMP video message body.
pub fn parse_video(data: &Bytes) -> Result<FlvEvent, FlvError> {
    let Some(&b0) = data.first() else {
        return Ok(FlvEvent::Ignore);
    };
    if b0 & 0x80 != 0 {
        return parse_enhanced_video(data);
    }
    let frame_type = b0 >> 4;
    let codec = b0 & 0x0f;
    match codec {
        7 | 12 => {}
        2 => return Err(unsupported_video("Sorenson H.263")),
        3 | 6 => return Err(unsupported_video("Screen Video")),
        4 | 5 => return Err(unsupported_video("VP6")),
        n => return Err(unsupported_video(&format!("id {n}"))),
    }
    if frame_type == 5 {
        return Ok(FlvEvent::Ignore);
    }
    if data.len() < 5 {
        return Err(FlvError::Malformed(format!(
            "AVC tag of {} bytes",
            data.len()
        )));
    }
    let cts = si24(&data[2..5]);
    let body = data.slice(5..);
    match (codec, data[1]) {
        (7, 0) => AvcConfig::from_avcc(&body)
            .map(|c| FlvEvent::Config(CodecConfig::H264(c)))
            .map_err(|e| codec_err("AVC sequence header", e)),
        (12, 0) => HevcConfig::from_hvcc(&body)
            .map(|c| FlvEvent::Config(CodecConfig::Hevc(c)))
            .map_err(|e| codec_err("HEVC sequence header", e)),
        (_, 1) => coded_nals(frame_type == 1, cts, body),
        (_, 2) => Ok(FlvEvent::Ignore),
        (_, t) => Err(FlvError::Malformed(format!("AVCPacketType {t}"))),
    }
}

fn coded_nals(keyframe: bool, cts_ms: i32, body: Bytes) -> Result<FlvEvent, FlvError> {
    if body.is_empty() {
        return Ok(FlvEvent::Ignore);
    }
    // FLV carries 4-byte length-prefixed NAL units. A few encoders send Annex-B instead;
    // accept that only when the data does not parse as length-prefixed (a 256-511 byte NAL
    // unit's length prefix also starts 00 00 01).
    let data = match llhls_packager::codec::length_prefixed_nals(&body) {
        Ok(_) => body,
        Err(_) if is_annex_b(&body) => Bytes::from(annex_b_to_length_prefixed(&body)),
        Err(e) => return Err(codec_err("NAL units", e)),
    };
    Ok(FlvEvent::Video {
        keyframe,
        cts_ms,
        data,
    })
}

fn unsupported_video(name: &str) -> FlvError {
    FlvError::Unsupported {
        kind: "video",
        name: name.to_string(),
        fix: VIDEO_FIX,
    }
}

fn parse_enhanced_video(data: &Bytes) -> Result<FlvEvent, FlvError> {
    if data.len() < 5 {
        return Err(FlvError::Malformed(format!(
            "enhanced video tag of {} bytes",
            data.len()
        )));
    }
    let frame_type = (data[0] >> 4) & 7;
    let packet_type = data[0] & 0x0f;
    let fourcc = &data[1..5];
    let body = data.slice(5..);
    if frame_type == 5 || packet_type == 4 {
        return Ok(FlvEvent::Ignore); // command frame / metadata
    }
    match (fourcc, packet_type) {
        (b"hvc1", 0) => HevcConfig::from_hvcc(&body)
            .map(|c| FlvEvent::Config(CodecConfig::Hevc(c)))
            .map_err(|e| codec_err("HEVC sequence start", e)),
        (b"avc1", 0) => AvcConfig::from_avcc(&body)
            .map(|c| FlvEvent::Config(CodecConfig::H264(c)))
            .map_err(|e| codec_err("AVC sequence start", e)),
        (b"av01", 0) => Av1Config::from_av1c(&body)
            .map(|c| FlvEvent::Config(CodecConfig::Av1(c)))
            .map_err(|e| codec_err("AV1 sequence start", e)),
        (b"hvc1" | b"avc1", 1) => {
            if body.len() < 3 {
                return Err(FlvError::Malformed(
                    "coded frame without composition time".into(),
                ));
            }
            coded_nals(frame_type == 1, si24(&body[..3]), body.slice(3..))
        }
        (b"hvc1" | b"avc1", 3) => coded_nals(frame_type == 1, 0, body),
        (b"av01", 1 | 3) => Ok(if body.is_empty() {
            FlvEvent::Ignore
        } else {
            FlvEvent::Video {
                keyframe: frame_type == 1,
                cts_ms: 0,
                data: body,
            }
        }),
        (b"hvc1" | b"avc1" | b"av01", 2) => Ok(FlvEvent::Ignore),
        (b"vp09", _) => Err(unsupported_video("VP9")),
        (b"vp08", _) => Err(unsupported_video("VP8")),
        (_, 5 | 6) => Err(FlvError::Malformed(format!(
            "enhanced video packet type {packet_type} (multitrack / MPEG-2 TS) is not supported"
        ))),
        (f, _) => Err(unsupported_video(&String::from_utf8_lossy(f))),
    }
}

/// Parses one RTMP audio message body.
pub fn parse_audio(data: &Bytes) -> Result<FlvEvent, FlvError> {
    let Some(&b0) = data.first() else {
        return Ok(FlvEvent::Ignore);
    };
    let format = b0 >> 4;
    let name = match format {
        10 => {
            if data.len() < 2 {
                return Err(FlvError::Malformed("AAC tag without packet type".into()));
            }
            let body = data.slice(2..);
            return match data[1] {
                0 => AacConfig::from_asc(&body)
                    .map(|c| FlvEvent::Config(CodecConfig::Aac(c)))
                    .map_err(|e| codec_err("AAC sequence header", e)),
                1 if body.is_empty() => Ok(FlvEvent::Ignore),
                1 => Ok(FlvEvent::Audio { data: body }),
                t => Err(FlvError::Malformed(format!("AACPacketType {t}"))),
            };
        }
        9 => return parse_enhanced_audio(data),
        2 | 14 => "MP3",
        11 => "Speex",
        0 | 3 => "PCM",
        1 => "ADPCM",
        4..=6 => "Nellymoser",
        7 | 8 => "G.711",
        n => {
            return Err(FlvError::Unsupported {
                kind: "audio",
                name: format!("id {n}"),
                fix: AUDIO_FIX,
            })
        }
    };
    Err(FlvError::Unsupported {
        kind: "audio",
        name: name.to_string(),
        fix: AUDIO_FIX,
    })
}

fn parse_enhanced_audio(data: &Bytes) -> Result<FlvEvent, FlvError> {
    if data.len() < 5 {
        return Err(FlvError::Malformed(format!(
            "enhanced audio tag of {} bytes",
            data.len()
        )));
    }
    let packet_type = data[0] & 0x0f;
    let fourcc = &data[1..5];
    let body = data.slice(5..);
    match (fourcc, packet_type) {
        (b"Opus", 0) => OpusConfig::from_opus_head(&body)
            .map(|c| FlvEvent::Config(CodecConfig::Opus(c)))
            .map_err(|e| codec_err("Opus sequence start", e)),
        (b"mp4a", 0) => AacConfig::from_asc(&body)
            .map(|c| FlvEvent::Config(CodecConfig::Aac(c)))
            .map_err(|e| codec_err("AAC sequence start", e)),
        (b"Opus" | b"mp4a", 1) if !body.is_empty() => Ok(FlvEvent::Audio { data: body }),
        (b"Opus" | b"mp4a", _) => Ok(FlvEvent::Ignore),
        (f, _) => Err(FlvError::Unsupported {
            kind: "audio",
            name: String::from_utf8_lossy(f).into_owned(),
            fix: AUDIO_FIX,
        }),
    }
}

/// Unwraps 32-bit RTMP millisecond timestamps into 64 bits (they roll over every 49.7 days).
#[derive(Debug, Default, Clone, Copy)]
pub struct TimestampUnwrapper {
    last: Option<u32>,
    epoch: i64,
}

impl TimestampUnwrapper {
    /// The 64-bit value of `raw`.
    pub fn unwrap(&mut self, raw: u32) -> i64 {
        if let Some(last) = self.last {
            if raw < last && last - raw > 1 << 31 {
                // Saturating: a publisher that keeps wrapping (about four messages a wrap)
                // would need billions of messages to get there, but it costs nothing.
                self.epoch = self.epoch.saturating_add(1 << 32);
            } else if raw > last && raw - last > 1 << 31 && self.epoch > 0 {
                // A late frame from before the wrap.
                self.last = Some(last);
                return self.epoch - (1 << 32) + i64::from(raw);
            }
        }
        self.last = Some(raw);
        self.epoch.saturating_add(i64::from(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llhls_packager::synth::{PPS, SPS_720P};

    fn avc_seq_header() -> Bytes {
        let c =
            AvcConfig::from_parameter_sets(vec![SPS_720P.to_vec()], vec![PPS.to_vec()]).unwrap();
        let mut v = vec![0x17, 0, 0, 0, 0];
        v.extend_from_slice(&c.to_avcc());
        Bytes::from(v)
    }

    #[test]
    fn avc_sequence_header_and_frames() {
        let ev = parse_video(&avc_seq_header()).unwrap();
        assert!(matches!(ev, FlvEvent::Config(CodecConfig::H264(ref c)) if c.width == 1280));
        let frame = Bytes::from_static(&[0x17, 1, 0, 0, 0x42, 0, 0, 0, 2, 0x65, 0x88]);
        assert_eq!(
            parse_video(&frame).unwrap(),
            FlvEvent::Video {
                keyframe: true,
                cts_ms: 66,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88])
            }
        );
        let neg = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x41]);
        assert!(matches!(
            parse_video(&neg).unwrap(),
            FlvEvent::Video {
                keyframe: false,
                cts_ms: -2,
                ..
            }
        ));
    }

    #[test]
    fn a_256_byte_nal_is_not_mistaken_for_annex_b() {
        let mut v = vec![0x27, 1, 0, 0, 0, 0, 0, 1, 0];
        v.extend(std::iter::repeat_n(0x41u8, 256));
        let ev = parse_video(&Bytes::from(v.clone())).unwrap();
        assert_eq!(
            ev,
            FlvEvent::Video {
                keyframe: false,
                cts_ms: 0,
                data: Bytes::from(v[5..].to_vec())
            }
        );
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let bad = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65]);
        assert!(matches!(parse_video(&bad), Err(FlvError::Malformed(_))));
        assert!(parse_video(&Bytes::from_static(&[0x17, 1])).is_err());
        assert!(parse_video(&Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2])).is_err());
        assert!(parse_audio(&Bytes::from_static(&[0xaf])).is_err());
    }

    #[test]
    fn unsupported_codecs_name_the_fix() {
        let e = parse_video(&Bytes::from_static(&[0x14, 0])).unwrap_err();
        assert!(
            e.to_string().contains("VP6") && e.to_string().contains("H.264"),
            "{e}"
        );
        let e = parse_audio(&Bytes::from_static(&[0x2f, 0])).unwrap_err();
        assert!(
            e.to_string().contains("MP3") && e.to_string().contains("AAC"),
            "{e}"
        );
        let e = parse_audio(&Bytes::from_static(&[0xbf, 0])).unwrap_err();
        assert!(e.to_string().contains("Speex"), "{e}");
    }

    #[test]
    fn aac_header_and_frames() {
        let ev = parse_audio(&Bytes::from_static(&[0xaf, 0, 0x11, 0x90])).unwrap();
        assert!(matches!(ev, FlvEvent::Config(CodecConfig::Aac(_))));
        assert_eq!(
            parse_audio(&Bytes::from_static(&[0xaf, 1, 0x21, 0x10])).unwrap(),
            FlvEvent::Audio {
                data: Bytes::from_static(&[0x21, 0x10])
            }
        );
    }

    #[test]
    fn enhanced_rtmp_hevc_and_av1() {
        let av1 = Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1', 0x81, 0x08, 0x0c, 0x00]);
        assert!(matches!(
            parse_video(&av1).unwrap(),
            FlvEvent::Config(CodecConfig::Av1(_))
        ));
        let frame = Bytes::from_static(&[0x91, b'a', b'v', b'0', b'1', 0x12, 0x00]);
        assert!(matches!(
            parse_video(&frame).unwrap(),
            FlvEvent::Video { keyframe: true, .. }
        ));
        let vp9 = Bytes::from_static(&[0x90, b'v', b'p', b'0', b'9', 0]);
        assert!(matches!(
            parse_video(&vp9),
            Err(FlvError::Unsupported { .. })
        ));
        let bad_hevc = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2, 3]);
        assert!(parse_video(&bad_hevc).is_err());
    }

    #[test]
    fn timestamps_saturate_after_endless_rollovers() {
        let mut u = TimestampUnwrapper {
            last: Some(u32::MAX),
            epoch: i64::MAX - 10,
        };
        assert_eq!(u.unwrap(5), i64::MAX);
        assert_eq!(
            u.unwrap(u32::MAX - 1),
            i64::MAX - (1 << 32) + i64::from(u32::MAX - 1)
        );
        assert_eq!(u.unwrap(10), i64::MAX);
    }

    #[test]
    fn timestamps_roll_over() {
        let mut u = TimestampUnwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 10), i64::from(u32::MAX) - 10);
        assert_eq!(u.unwrap(5), (1i64 << 32) + 5);
        assert_eq!(
            u.unwrap(u32::MAX - 1),
            i64::from(u32::MAX) - 1,
            "late frame from before the wrap"
        );
        assert_eq!(u.unwrap(40), (1i64 << 32) + 40);
    }
}
