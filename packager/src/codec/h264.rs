//! H.264: SPS parsing and the AVCDecoderConfigurationRecord (avcC).

use super::bits::{unescape_rbsp, BitReader};
use super::CodecError;

/// H.264 configuration: parameter sets plus what the SPS says.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// Sequence parameter sets (NAL units without start code or length).
    pub sps: Vec<Vec<u8>>,
    /// Picture parameter sets.
    pub pps: Vec<Vec<u8>>,
    /// profile_idc.
    pub profile: u8,
    /// constraint_set flags byte.
    pub compatibility: u8,
    /// level_idc.
    pub level: u8,
    /// Cropped luma width.
    pub width: u32,
    /// Cropped luma height.
    pub height: u32,
    /// chroma_format_idc (1 = 4:2:0).
    pub chroma_format: u8,
    /// Luma bit depth.
    pub bit_depth_luma: u8,
    /// Chroma bit depth.
    pub bit_depth_chroma: u8,
    /// Frame rate from VUI timing info, when present.
    pub frame_rate: Option<f64>,
    /// Sample aspect ratio from VUI, when present.
    pub sar: Option<(u16, u16)>,
}

impl AvcConfig {
    /// From the AVCDecoderConfigurationRecord an FLV sequence header or an MP4 avcC carries.
    pub fn from_avcc(record: &[u8]) -> Result<Self, CodecError> {
        const W: &str = "avcC";
        let t = |at| CodecError::Truncated { what: W, at };
        if record.len() < 7 {
            return Err(t(record.len()));
        }
        if record[0] != 1 {
            return Err(CodecError::invalid(
                W,
                format!("configurationVersion {}", record[0]),
            ));
        }
        if record[4] & 3 != 3 {
            return Err(CodecError::invalid(
                W,
                format!(
                    "NAL length size {} (only 4 is supported)",
                    (record[4] & 3) + 1
                ),
            ));
        }
        let mut i = 5;
        let mut sps = Vec::new();
        let mut pps = Vec::new();
        for (count_mask, list) in [(0x1f, &mut sps), (0xff, &mut pps)] {
            let n = *record.get(i).ok_or(t(i))? & count_mask;
            i += 1;
            for _ in 0..n {
                let len = usize::from(u16::from_be_bytes([
                    *record.get(i).ok_or(t(i))?,
                    *record.get(i + 1).ok_or(t(i))?,
                ]));
                i += 2;
                let nal = record.get(i..i + len).ok_or(t(i))?;
                list.push(nal.to_vec());
                i += len;
            }
        }
        Self::from_parameter_sets(sps, pps)
    }

    /// From SPS and PPS NAL units (as found in-band in Annex-B streams).
    pub fn from_parameter_sets(sps: Vec<Vec<u8>>, pps: Vec<Vec<u8>>) -> Result<Self, CodecError> {
        let first = sps
            .first()
            .ok_or_else(|| CodecError::invalid("avcC", "no SPS"))?;
        if pps.is_empty() {
            return Err(CodecError::invalid("avcC", "no PPS"));
        }
        let info = parse_sps(first)?;
        Ok(AvcConfig {
            profile: info.profile,
            compatibility: info.compatibility,
            level: info.level,
            width: info.width,
            height: info.height,
            chroma_format: info.chroma_format,
            bit_depth_luma: info.bit_depth_luma,
            bit_depth_chroma: info.bit_depth_chroma,
            frame_rate: info.frame_rate,
            sar: info.sar,
            sps,
            pps,
        })
    }

    /// `avc1.PPCCLL` from the SPS.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }

    /// The avcC record bytes (4-byte NAL lengths), built from the parsed parameter sets.
    pub fn to_avcc(&self) -> Vec<u8> {
        let mut out = vec![1, self.profile, self.compatibility, self.level, 0xff];
        out.push(0xe0 | (self.sps.len().min(31) as u8));
        for s in self.sps.iter().take(31) {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        }
        out.push(self.pps.len().min(255) as u8);
        for p in self.pps.iter().take(255) {
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            out.extend_from_slice(p);
        }
        if matches!(self.profile, 100 | 110 | 122 | 144) {
            out.push(0xfc | (self.chroma_format & 3));
            out.push(0xf8 | (self.bit_depth_luma.saturating_sub(8) & 7));
            out.push(0xf8 | (self.bit_depth_chroma.saturating_sub(8) & 7));
            out.push(0);
        }
        out
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SpsInfo {
    /// seq_parameter_set_id.
    pub(crate) id: u32,
    /// log2_max_frame_num_minus4 + 4.
    pub(crate) log2_max_frame_num: u32,
    /// pic_order_cnt_type.
    pub(crate) poc_type: u32,
    /// log2_max_pic_order_cnt_lsb_minus4 + 4 (pic_order_cnt_type 0).
    pub(crate) log2_max_poc_lsb: u32,
    /// max_num_ref_frames.
    pub(crate) max_refs: u32,
    /// Macroblocks in a frame (pic_width_in_mbs * frame height in macroblocks).
    pub(crate) frame_mbs: u32,
    /// frame_mbs_only_flag.
    pub(crate) frame_mbs_only: bool,
    /// ChromaArrayType (0 with separate colour planes or monochrome).
    pub(crate) chroma_array_type: u32,
    /// separate_colour_plane_flag.
    pub(crate) separate_colour_plane: bool,
    profile: u8,
    compatibility: u8,
    level: u8,
    width: u32,
    height: u32,
    chroma_format: u8,
    bit_depth_luma: u8,
    bit_depth_chroma: u8,
    frame_rate: Option<f64>,
    sar: Option<(u16, u16)>,
}

pub(crate) fn parse_sps(nal: &[u8]) -> Result<SpsInfo, CodecError> {
    const W: &str = "H.264 SPS";
    if nal.first().map(|b| b & 0x1f) != Some(7) {
        return Err(CodecError::invalid(W, "not an SPS NAL unit (type 7)"));
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, W);
    let profile = r.u32(8)? as u8;
    let compatibility = r.u32(8)? as u8;
    let level = r.u32(8)? as u8;
    let id = r.ue()?;
    let mut chroma_format = 1u32;
    let mut bit_depth_luma = 8;
    let mut bit_depth_chroma = 8;
    let mut separate_colour_plane = false;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format > 3 {
            return Err(CodecError::invalid(
                W,
                format!("chroma_format_idc {chroma_format}"),
            ));
        }
        if chroma_format == 3 {
            separate_colour_plane = r.bit()?;
        }
        bit_depth_luma = r.ue()?.saturating_add(8);
        bit_depth_chroma = r.ue()?.saturating_add(8);
        if bit_depth_luma > 14 || bit_depth_chroma > 14 {
            return Err(CodecError::invalid(W, "bit depth above 14"));
        }
        let _qpprime = r.bit()?;
        if r.bit()? {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            let delta = r.se()?;
                            // In i64: delta_scale is any 32-bit value in hostile input.
                            next =
                                (i64::from(last) + i64::from(delta) + 256).rem_euclid(256) as i32;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    let log2_max_frame_num = r.ue()?.saturating_add(4);
    let poc_type = r.ue()?;
    let mut log2_max_poc_lsb = 0;
    match poc_type {
        0 => {
            log2_max_poc_lsb = r.ue()?.saturating_add(4);
        }
        1 => {
            let _ = r.bit()?;
            let _ = r.se()?;
            let _ = r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return Err(CodecError::invalid(
                    W,
                    "num_ref_frames_in_pic_order_cnt_cycle > 255",
                ));
            }
            for _ in 0..n {
                let _ = r.se()?;
            }
        }
        2 => {}
        t => return Err(CodecError::invalid(W, format!("pic_order_cnt_type {t}"))),
    }
    if log2_max_frame_num > 16 || log2_max_poc_lsb > 16 {
        return Err(CodecError::invalid(
            W,
            "log2_max_frame_num or log2_max_pic_order_cnt_lsb above 16",
        ));
    }
    let max_refs = r.ue()?;
    let _gaps = r.bit()?;
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        let _mbaff = r.bit()?;
    }
    let _direct8x8 = r.bit()?;
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bit()? {
        cl = r.ue()?;
        cr = r.ue()?;
        ct = r.ue()?;
        cb = r.ue()?;
    }
    let array_type = if separate_colour_plane {
        0
    } else {
        chroma_format
    };
    let (sub_w, sub_h) = match array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_unit_x = if array_type == 0 { 1 } else { sub_w };
    let crop_unit_y = (if array_type == 0 { 1 } else { sub_h }) * (2 - u32::from(frame_mbs_only));
    let full_w = width_mbs.saturating_mul(16);
    let full_h = height_map_units
        .saturating_mul(16)
        .saturating_mul(2 - u32::from(frame_mbs_only));
    let width = full_w.saturating_sub(cl.saturating_add(cr).saturating_mul(crop_unit_x));
    let height = full_h.saturating_sub(ct.saturating_add(cb).saturating_mul(crop_unit_y));
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return Err(CodecError::invalid(
            W,
            format!("picture size {width}x{height}"),
        ));
    }
    let mut frame_rate = None;
    let mut sar = None;
    // VUI is optional and its tail is often truncated by encoders; a failure here only loses
    // the frame rate.
    let vui = (|| -> Result<(), CodecError> {
        if !r.bit()? {
            return Ok(());
        }
        if r.bit()? {
            let idc = r.u32(8)?;
            const SAR: [(u16, u16); 17] = [
                (0, 0),
                (1, 1),
                (12, 11),
                (10, 11),
                (16, 11),
                (40, 33),
                (24, 11),
                (20, 11),
                (32, 11),
                (80, 33),
                (18, 11),
                (15, 11),
                (64, 33),
                (160, 99),
                (4, 3),
                (3, 2),
                (2, 1),
            ];
            if idc == 255 {
                sar = Some((r.u32(16)? as u16, r.u32(16)? as u16));
            } else if let Some(&s) = SAR.get(idc as usize).filter(|s| s.0 != 0) {
                sar = Some(s);
            }
        }
        if r.bit()? {
            let _overscan_appropriate = r.bit()?;
        }
        if r.bit()? {
            r.skip(4)?;
            if r.bit()? {
                r.skip(24)?;
            }
        }
        if r.bit()? {
            let _ = r.ue()?;
            let _ = r.ue()?;
        }
        if r.bit()? {
            let units = r.u32(32)?;
            let scale = r.u32(32)?;
            if units > 0 && scale > 0 {
                frame_rate = Some(f64::from(scale) / (2.0 * f64::from(units)));
            }
        }
        Ok(())
    })();
    let _ = vui;
    Ok(SpsInfo {
        id,
        log2_max_frame_num,
        poc_type,
        log2_max_poc_lsb,
        max_refs,
        frame_mbs: width_mbs
            .saturating_mul(height_map_units.saturating_mul(2 - u32::from(frame_mbs_only))),
        frame_mbs_only,
        chroma_array_type: array_type,
        separate_colour_plane,
        profile,
        compatibility,
        level,
        width,
        height,
        chroma_format: chroma_format as u8,
        bit_depth_luma: bit_depth_luma as u8,
        bit_depth_chroma: bit_depth_chroma as u8,
        frame_rate: frame_rate.filter(|f| (1.0..=1000.0).contains(f)),
        sar,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// SPS of x264 High profile 1280x720 level 3.1 (ffmpeg 5.1 libx264 testsrc2 at 30 fps).
    pub(crate) const SPS_720P: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
        0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
    ];
    pub(crate) const PPS: [u8; 4] = [0x68, 0xef, 0x8f, 0xcb];

    #[test]
    fn parses_x264_720p_sps() {
        let c = AvcConfig::from_parameter_sets(vec![SPS_720P.to_vec()], vec![PPS.to_vec()])
            .expect("valid SPS");
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!(c.codec_string(), "avc1.64001f");
        assert_eq!(c.chroma_format, 1);
    }

    #[test]
    fn avcc_round_trip() {
        let c = AvcConfig::from_parameter_sets(vec![SPS_720P.to_vec()], vec![PPS.to_vec()])
            .expect("valid SPS");
        let again = AvcConfig::from_avcc(&c.to_avcc()).expect("own avcC parses");
        assert_eq!(again, c);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(AvcConfig::from_avcc(&[]).is_err());
        assert!(AvcConfig::from_avcc(&[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 50, 0x67]).is_err());
        assert!(AvcConfig::from_parameter_sets(vec![vec![0x67]], vec![PPS.to_vec()]).is_err());
        assert!(AvcConfig::from_parameter_sets(vec![vec![0x68, 1]], vec![PPS.to_vec()]).is_err());
        for n in 0..SPS_720P.len() {
            let _ =
                AvcConfig::from_parameter_sets(vec![SPS_720P[..n].to_vec()], vec![PPS.to_vec()]);
        }
    }

    /// Found by `fuzz/` (codec_h264): Exp-Golomb fields near 2^32 overflowed `+ 8` (bit depth),
    /// the scaling-list `last + delta` and the crop sums. Each is an error now, never a panic.
    #[test]
    fn exp_golomb_extremes_do_not_overflow() {
        // High profile, bit_depth_luma_minus8 = 2^32 - 2.
        let bit_depth = [
            0x67, 0x64, 0x00, 0x1f, 0xa0, 0x00, 0x00, 0x03, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xf8,
        ];
        // High profile, a scaling list whose first delta_scale is 2^31 - 1.
        let mut scaling = vec![
            0x67, 0x64, 0x00, 0x1f, 0xad, 0x80, 0x00, 0x00, 0x03, 0x00, 0xff, 0xff, 0xff, 0xfe,
        ];
        scaling.extend([0x00, 0x00, 0x03].repeat(13));
        scaling.extend([0x00, 0x80]);
        // Baseline 1280x720 with frame_crop_left/right_offset = 2^32 - 2 each.
        let crop = [
            0x67, 0x42, 0x00, 0x1e, 0xf4, 0x02, 0x80, 0x2d, 0xe0, 0x00, 0x00, 0x03, 0x00, 0x3f,
            0xff, 0xff, 0xff, 0xc0, 0x00, 0x00, 0x03, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xf0,
        ];
        // The fuzzer's minimized input (fuzz/regressions/codec_h264/bit-depth-overflow).
        let fuzzed = [
            0x67, 0x64, 0x00, 0x67, 0x64, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
        ];
        for sps in [&bit_depth[..], &scaling, &crop, &fuzzed] {
            let r = AvcConfig::from_parameter_sets(vec![sps.to_vec()], vec![PPS.to_vec()]);
            assert!(r.is_err(), "{r:?}");
        }
    }
}
