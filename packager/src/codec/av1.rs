//! AV1: the AV1CodecConfigurationRecord (av1C) and the sequence header OBU.

use super::bits::BitReader;
use super::CodecError;

/// AV1 configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Config {
    /// The av1C record (4 header bytes + configOBUs).
    pub record: Vec<u8>,
    /// seq_profile.
    pub profile: u8,
    /// seq_level_idx_0.
    pub level: u8,
    /// seq_tier_0.
    pub tier_high: bool,
    /// 8, 10 or 12.
    pub bit_depth: u8,
    /// Max frame width from the sequence header (0 when the record carries none).
    pub width: u32,
    /// Max frame height from the sequence header.
    pub height: u32,
}

impl Av1Config {
    /// From an av1C record (enhanced-RTMP `av01` sequence start, or MP4 extradata).
    pub fn from_av1c(record: &[u8]) -> Result<Self, CodecError> {
        const W: &str = "av1C";
        if record.len() < 4 {
            return Err(CodecError::Truncated {
                what: W,
                at: record.len(),
            });
        }
        if record[0] != 0x81 {
            return Err(CodecError::invalid(
                W,
                format!("marker/version byte {:#04x}", record[0]),
            ));
        }
        let profile = record[1] >> 5;
        let level = record[1] & 0x1f;
        let tier_high = record[2] & 0x80 != 0;
        let high_bitdepth = record[2] & 0x40 != 0;
        let twelve = record[2] & 0x20 != 0;
        let bit_depth = match (high_bitdepth, twelve) {
            (false, _) => 8,
            (true, false) => 10,
            (true, true) => 12,
        };
        let (width, height) = sequence_header_size(&record[4..]).unwrap_or((0, 0));
        Ok(Av1Config {
            record: record.to_vec(),
            profile,
            level,
            tier_high,
            bit_depth,
            width,
            height,
        })
    }

    /// `av01.P.LLT.DD`.
    pub fn codec_string(&self) -> String {
        format!(
            "av01.{}.{:02}{}.{:02}",
            self.profile,
            self.level,
            if self.tier_high { 'H' } else { 'M' },
            self.bit_depth
        )
    }
}

/// Finds the sequence header OBU in `obus` and reads max_frame_width/height from it.
fn sequence_header_size(obus: &[u8]) -> Result<(u32, u32), CodecError> {
    const W: &str = "AV1 sequence header";
    let mut i = 0;
    while i < obus.len() {
        let header = obus[i];
        let ty = (header >> 3) & 0xf;
        let has_ext = header & 4 != 0;
        let has_size = header & 2 != 0;
        i += 1 + usize::from(has_ext);
        let size = if has_size {
            let mut v = 0usize;
            let mut n = 0;
            loop {
                let b = *obus
                    .get(i)
                    .ok_or(CodecError::Truncated { what: W, at: i })?;
                i += 1;
                v |= usize::from(b & 0x7f) << (7 * n);
                n += 1;
                if b & 0x80 == 0 || n == 8 {
                    break;
                }
            }
            v
        } else {
            obus.len().saturating_sub(i)
        };
        let body = obus
            .get(i..i.saturating_add(size))
            .ok_or(CodecError::Truncated { what: W, at: i })?;
        if ty == 1 {
            return parse_sequence_header(body);
        }
        i += size;
    }
    Err(CodecError::invalid(W, "no sequence header OBU"))
}

fn parse_sequence_header(b: &[u8]) -> Result<(u32, u32), CodecError> {
    let mut r = BitReader::new(b, "AV1 sequence header");
    r.skip(3)?; // seq_profile
    r.skip(1)?; // still_picture
    let reduced = r.bit()?;
    if reduced {
        r.skip(5)?;
    } else {
        let timing = r.bit()?;
        let mut decoder_model = false;
        let mut buffer_delay_len = 0;
        if timing {
            r.skip(64)?;
            if r.bit()? {
                let _ = r.uvlc()?;
            }
            decoder_model = r.bit()?;
            if decoder_model {
                buffer_delay_len = r.u32(5)? + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display = r.bit()?;
        let ops = r.u32(5)? + 1;
        for _ in 0..ops {
            r.skip(12)?;
            let lvl = r.u32(5)?;
            if lvl > 7 {
                r.skip(1)?;
            }
            if decoder_model && r.bit()? {
                r.skip(2 * buffer_delay_len as usize + 1)?;
            }
            if initial_display && r.bit()? {
                r.skip(4)?;
            }
        }
    }
    let wb = r.u32(4)? + 1;
    let hb = r.u32(4)? + 1;
    let w = r.u32(wb)? + 1;
    let h = r.u32(hb)? + 1;
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_without_obus() {
        let c = Av1Config::from_av1c(&[0x81, 0x08, 0x0c, 0x00]).unwrap();
        assert_eq!(c.codec_string(), "av01.0.08M.08");
        assert!(Av1Config::from_av1c(&[0x80, 0, 0, 0]).is_err());
        assert!(Av1Config::from_av1c(&[0x81]).is_err());
    }
}
