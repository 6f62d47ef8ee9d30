//! HEVC: the HEVCDecoderConfigurationRecord (hvcC) and the SPS fields the packager needs.

use super::bits::{unescape_rbsp, BitReader};
use super::CodecError;

/// HEVC configuration: parameter sets plus the profile/tier/level and picture size.
#[derive(Debug, Clone, PartialEq)]
pub struct HevcConfig {
    /// VPS NAL units.
    pub vps: Vec<Vec<u8>>,
    /// SPS NAL units.
    pub sps: Vec<Vec<u8>>,
    /// PPS NAL units.
    pub pps: Vec<Vec<u8>>,
    /// general_profile_space (0-3).
    pub profile_space: u8,
    /// general_tier_flag.
    pub tier_high: bool,
    /// general_profile_idc.
    pub profile_idc: u8,
    /// general_profile_compatibility_flags.
    pub compatibility: u32,
    /// general constraint indicator flags (48 bits).
    pub constraints: [u8; 6],
    /// general_level_idc.
    pub level_idc: u8,
    /// chroma_format_idc.
    pub chroma_format: u8,
    /// Luma bit depth.
    pub bit_depth_luma: u8,
    /// Chroma bit depth.
    pub bit_depth_chroma: u8,
    /// Cropped width.
    pub width: u32,
    /// Cropped height.
    pub height: u32,
    /// Frame rate, when the SPS VUI signals it (not parsed yet: always `None`).
    pub frame_rate: Option<f64>,
}

impl HevcConfig {
    /// From an hvcC record (enhanced-RTMP `hvc1` sequence start, or MP4 extradata).
    pub fn from_hvcc(record: &[u8]) -> Result<Self, CodecError> {
        const W: &str = "hvcC";
        let t = |at| CodecError::Truncated { what: W, at };
        if record.len() < 23 {
            return Err(t(record.len()));
        }
        if record[0] != 1 {
            return Err(CodecError::invalid(
                W,
                format!("configurationVersion {}", record[0]),
            ));
        }
        if record[21] & 3 != 3 {
            return Err(CodecError::invalid(W, "NAL length size other than 4"));
        }
        let mut vps = Vec::new();
        let mut sps = Vec::new();
        let mut pps = Vec::new();
        let arrays = record[22];
        let mut i = 23;
        for _ in 0..arrays {
            let ty = *record.get(i).ok_or(t(i))? & 0x3f;
            let n = u16::from_be_bytes([
                *record.get(i + 1).ok_or(t(i))?,
                *record.get(i + 2).ok_or(t(i))?,
            ]);
            i += 3;
            for _ in 0..n {
                let len = usize::from(u16::from_be_bytes([
                    *record.get(i).ok_or(t(i))?,
                    *record.get(i + 1).ok_or(t(i))?,
                ]));
                i += 2;
                let nal = record.get(i..i + len).ok_or(t(i))?.to_vec();
                i += len;
                match ty {
                    32 => vps.push(nal),
                    33 => sps.push(nal),
                    34 => pps.push(nal),
                    _ => {}
                }
            }
        }
        Self::from_parameter_sets(vps, sps, pps)
    }

    /// From VPS, SPS and PPS NAL units (Annex-B input).
    pub fn from_parameter_sets(
        vps: Vec<Vec<u8>>,
        sps: Vec<Vec<u8>>,
        pps: Vec<Vec<u8>>,
    ) -> Result<Self, CodecError> {
        const W: &str = "HEVC SPS";
        if vps.is_empty() || pps.is_empty() {
            return Err(CodecError::invalid("hvcC", "missing VPS or PPS"));
        }
        let first = sps
            .first()
            .ok_or_else(|| CodecError::invalid("hvcC", "no SPS"))?;
        if first.len() < 3 || (first[0] >> 1) & 0x3f != 33 {
            return Err(CodecError::invalid(W, "not an SPS NAL unit (type 33)"));
        }
        let rbsp = unescape_rbsp(&first[2..]);
        let mut r = BitReader::new(&rbsp, W);
        r.skip(4)?;
        let max_sub_layers_minus1 = r.u32(3)?;
        r.skip(1)?;
        let profile_space = r.u32(2)? as u8;
        let tier_high = r.bit()?;
        let profile_idc = r.u32(5)? as u8;
        let compatibility = r.u32(32)?;
        let mut constraints = [0u8; 6];
        for c in &mut constraints {
            *c = r.u32(8)? as u8;
        }
        let level_idc = r.u32(8)? as u8;
        let mut sub_profile = [false; 8];
        let mut sub_level = [false; 8];
        for i in 0..max_sub_layers_minus1 as usize {
            sub_profile[i] = r.bit()?;
            sub_level[i] = r.bit()?;
        }
        if max_sub_layers_minus1 > 0 {
            for _ in max_sub_layers_minus1..8 {
                r.skip(2)?;
            }
        }
        for i in 0..max_sub_layers_minus1 as usize {
            if sub_profile[i] {
                r.skip(88)?;
            }
            if sub_level[i] {
                r.skip(8)?;
            }
        }
        let _sps_id = r.ue()?;
        let chroma_format = r.ue()?;
        if chroma_format > 3 {
            return Err(CodecError::invalid(
                W,
                format!("chroma_format_idc {chroma_format}"),
            ));
        }
        if chroma_format == 3 {
            r.skip(1)?;
        }
        let w = r.ue()?;
        let h = r.ue()?;
        let (sub_w, sub_h) = match chroma_format {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
        if r.bit()? {
            cl = r.ue()?;
            cr = r.ue()?;
            ct = r.ue()?;
            cb = r.ue()?;
        }
        let bit_depth_luma = r.ue()?.saturating_add(8);
        let bit_depth_chroma = r.ue()?.saturating_add(8);
        let width = w.saturating_sub(cl.saturating_add(cr).saturating_mul(sub_w));
        let height = h.saturating_sub(ct.saturating_add(cb).saturating_mul(sub_h));
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(CodecError::invalid(
                W,
                format!("picture size {width}x{height}"),
            ));
        }
        Ok(HevcConfig {
            vps,
            sps,
            pps,
            profile_space,
            tier_high,
            profile_idc,
            compatibility,
            constraints,
            level_idc,
            chroma_format: chroma_format as u8,
            bit_depth_luma: bit_depth_luma.min(16) as u8,
            bit_depth_chroma: bit_depth_chroma.min(16) as u8,
            width,
            height,
            frame_rate: None,
        })
    }

    /// `hvc1.P.C.TL.B...` per ISO 14496-15 Annex E.
    pub fn codec_string(&self) -> String {
        let space = ["", "A", "B", "C"][usize::from(self.profile_space & 3)];
        let compat = self.compatibility.reverse_bits();
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.profile_idc,
            compat,
            if self.tier_high { 'H' } else { 'L' },
            self.level_idc
        );
        let last = self.constraints.iter().rposition(|&b| b != 0);
        if let Some(last) = last {
            for b in &self.constraints[..=last] {
                s.push_str(&format!(".{b:X}"));
            }
        }
        s
    }

    /// The hvcC record bytes.
    pub fn to_hvcc(&self) -> Vec<u8> {
        let mut out = vec![
            1,
            (self.profile_space << 6) | (u8::from(self.tier_high) << 5) | (self.profile_idc & 0x1f),
        ];
        out.extend_from_slice(&self.compatibility.to_be_bytes());
        out.extend_from_slice(&self.constraints);
        out.push(self.level_idc);
        out.extend_from_slice(&[0xf0, 0x00]); // min_spatial_segmentation_idc = 0
        out.push(0xfc); // parallelismType = 0
        out.push(0xfc | (self.chroma_format & 3));
        out.push(0xf8 | (self.bit_depth_luma.saturating_sub(8) & 7));
        out.push(0xf8 | (self.bit_depth_chroma.saturating_sub(8) & 7));
        out.extend_from_slice(&[0, 0]); // avgFrameRate
        out.push(0x0f); // constantFrameRate 0, numTemporalLayers 1, nested 1, lengthSize 4
        out.push(3);
        for (ty, list) in [(32u8, &self.vps), (33, &self.sps), (34, &self.pps)] {
            out.push(0x80 | ty);
            out.extend_from_slice(&(list.len() as u16).to_be_bytes());
            for nal in list {
                out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
                out.extend_from_slice(nal);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_hvcc_is_an_error() {
        assert!(HevcConfig::from_hvcc(&[]).is_err());
        assert!(HevcConfig::from_hvcc(&[1; 40]).is_err());
        let mut rec = vec![1u8; 23];
        rec[21] = 0xff;
        rec[22] = 3;
        assert!(HevcConfig::from_hvcc(&rec).is_err());
    }

    /// Found by `fuzz/` (codec_hevc, fuzz/regressions/codec_hevc/bit-depth-overflow): an SPS
    /// whose bit_depth_luma_minus8 is 2^32 - 2 overflowed `+ 8`. An error now, never a panic.
    #[test]
    fn exp_golomb_extremes_do_not_overflow() {
        let annex_b = [
            0x00, 0x00, 0x01, 0x42, 0x01, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03, 0x00, 0x00,
            0x03, 0x00, 0x54, 0x00, 0x00, 0x00, 0x24, 0xca, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0x40, 0x00, 0x00, 0x01, 0x44,
        ];
        let nals = crate::codec::split_annex_b(&annex_b);
        let of = |t: u8| -> Vec<Vec<u8>> {
            nals.iter()
                .filter(|n| n.first().is_some_and(|b| (b >> 1) & 0x3f == t))
                .map(|n| n.to_vec())
                .collect()
        };
        assert!(HevcConfig::from_parameter_sets(of(32), of(33), of(34)).is_err());
    }
}
