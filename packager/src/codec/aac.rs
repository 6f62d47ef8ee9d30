//! AAC: the AudioSpecificConfig (ISO 14496-3 §1.6.2.1).

use super::bits::BitReader;
use super::CodecError;

const RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// AAC configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// audioObjectType (2 = AAC-LC, 5 = HE-AAC/SBR, 29 = HE-AACv2/PS).
    pub object_type: u8,
    /// Core sampling frequency in Hz (the output timescale).
    pub sample_rate: u32,
    /// Channel count (from channelConfiguration; 7 means 8 channels).
    pub channels: u8,
    /// Samples per frame: 1024 (or 960).
    pub frame_length: u32,
    /// The AudioSpecificConfig bytes as received, for the esds box.
    pub asc: Vec<u8>,
}

impl AacConfig {
    /// Parses an AudioSpecificConfig (what an FLV AAC sequence header carries).
    pub fn from_asc(asc: &[u8]) -> Result<Self, CodecError> {
        const W: &str = "AAC AudioSpecificConfig";
        let mut r = BitReader::new(asc, W);
        let mut object_type = r.u32(5)?;
        if object_type == 31 {
            object_type = 32 + r.u32(6)?;
        }
        let idx = r.u32(4)?;
        let sample_rate = if idx == 15 {
            r.u32(24)?
        } else {
            *RATES
                .get(idx as usize)
                .ok_or_else(|| CodecError::invalid(W, format!("samplingFrequencyIndex {idx}")))?
        };
        let chan_cfg = r.u32(4)?;
        let channels = match chan_cfg {
            1..=6 => chan_cfg as u8,
            7 => 8,
            0 => {
                return Err(CodecError::invalid(
                    W,
                    "channelConfiguration 0 (PCE) is not supported",
                ))
            }
            c => return Err(CodecError::invalid(W, format!("channelConfiguration {c}"))),
        };
        if !(7350..=96000).contains(&sample_rate) {
            return Err(CodecError::invalid(W, format!("sample rate {sample_rate}")));
        }
        let mut frame_length = 1024;
        if matches!(object_type, 1 | 2 | 3 | 4 | 6 | 7) {
            // GASpecificConfig: frameLengthFlag.
            if r.bit().unwrap_or(false) {
                frame_length = 960;
            }
        } else if !matches!(object_type, 5 | 29) {
            return Err(CodecError::invalid(
                W,
                format!("audioObjectType {object_type} (only AAC-LC, HE-AAC and HE-AACv2 play in browsers)"),
            ));
        }
        Ok(AacConfig {
            object_type: object_type as u8,
            sample_rate,
            channels,
            frame_length,
            asc: asc.to_vec(),
        })
    }

    /// `mp4a.40.N`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// A plain AAC-LC AudioSpecificConfig for the given rate and channels (for transcoders).
    pub fn lc(sample_rate: u32, channels: u8) -> Result<Self, CodecError> {
        let idx = RATES
            .iter()
            .position(|&r| r == sample_rate)
            .ok_or_else(|| CodecError::invalid("AAC", format!("no index for {sample_rate} Hz")))?;
        let v: u16 = (2 << 11) | ((idx as u16) << 7) | (u16::from(channels & 0xf) << 3);
        Self::from_asc(&v.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_48k_stereo() {
        let c = AacConfig::from_asc(&[0x11, 0x90]).unwrap();
        assert_eq!(
            (c.object_type, c.sample_rate, c.channels, c.frame_length),
            (2, 48000, 2, 1024)
        );
        assert_eq!(c.codec_string(), "mp4a.40.2");
        assert_eq!(AacConfig::lc(48000, 2).unwrap(), c);
    }

    #[test]
    fn bad_configs() {
        assert!(AacConfig::from_asc(&[]).is_err());
        assert!(AacConfig::from_asc(&[0x17, 0x80]).is_err()); // index 15 truncated
        assert!(AacConfig::from_asc(&[0x11, 0x80]).is_err()); // 0 channels
        assert!(AacConfig::from_asc(&[0x69, 0x90]).is_err()); // object type 13
    }
}
