//! Opus: the OpusHead identification header and packet durations (RFC 7845, RFC 6716 §3.1).

use super::CodecError;

/// Opus configuration (what goes into the `dOps` box).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    /// Output channel count.
    pub channels: u8,
    /// Samples (at 48 kHz) to discard at the start.
    pub pre_skip: u16,
    /// Original input sample rate (informational).
    pub input_sample_rate: u32,
    /// Output gain in Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family.
    pub mapping_family: u8,
    /// Stream count, coupled count and mapping table when `mapping_family != 0`.
    pub mapping: Vec<u8>,
}

impl OpusConfig {
    /// Parses an `OpusHead` packet (ffmpeg's Opus extradata).
    pub fn from_opus_head(head: &[u8]) -> Result<Self, CodecError> {
        const W: &str = "OpusHead";
        if head.len() < 19 {
            return Err(CodecError::Truncated {
                what: W,
                at: head.len(),
            });
        }
        if &head[..8] != b"OpusHead" {
            return Err(CodecError::invalid(W, "missing OpusHead magic"));
        }
        let channels = head[9];
        if channels == 0 {
            return Err(CodecError::invalid(W, "0 channels"));
        }
        let mapping_family = head[18];
        let mapping = if mapping_family != 0 {
            let need = 21 + usize::from(channels);
            head.get(19..need)
                .ok_or(CodecError::Truncated {
                    what: W,
                    at: head.len(),
                })?
                .to_vec()
        } else {
            Vec::new()
        };
        Ok(OpusConfig {
            channels,
            pre_skip: u16::from_le_bytes([head[10], head[11]]),
            input_sample_rate: u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
            output_gain: i16::from_le_bytes([head[16], head[17]]),
            mapping_family,
            mapping,
        })
    }

    /// A mono or stereo configuration with the usual 312-sample pre-skip (for WebRTC input).
    pub fn simple(channels: u8) -> Self {
        OpusConfig {
            channels: channels.clamp(1, 2),
            pre_skip: 312,
            input_sample_rate: 48_000,
            output_gain: 0,
            mapping_family: 0,
            mapping: Vec::new(),
        }
    }
}

/// Samples at 48 kHz in one Opus packet, from its TOC byte; `None` for an invalid packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let count = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let total = frame * count;
    (total > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_and_durations() {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        let c = OpusConfig::from_opus_head(&head).unwrap();
        assert_eq!(
            (c.channels, c.pre_skip, c.input_sample_rate),
            (2, 312, 48000)
        );
        assert_eq!(opus_packet_samples(&[0xfc]), Some(960)); // CELT 20 ms, 1 frame
        assert_eq!(opus_packet_samples(&[0x7b, 0]), None); // code 3 with 0 frames
        assert_eq!(opus_packet_samples(&[]), None);
        assert!(OpusConfig::from_opus_head(b"OpusHea").is_err());
    }
}
