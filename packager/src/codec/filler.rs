//! Filler media for a publisher that stalls: frames that repeat the last picture and silent
//! audio, so that players keep playing (a frozen picture) instead of running dry.
//!
//! A player that runs out of media rebuffers, and no default player configuration catches
//! up afterwards: every freeze of the publisher would leave its viewers further behind for
//! good. The packager fills a stall with these frames on the stream's own timeline instead
//! (see the packager's `gap` module).
//!
//! The video filler is an H.264 P picture whose every macroblock is skipped (`P_Skip`, no
//! residual, zero motion: a copy of the reference picture), written for the stream's own
//! SPS and PPS (CAVLC or CABAC), numbered to continue the stream's `frame_num` and picture
//! order count, and referring to the picture shown last. The real frames are read only for
//! that numbering ([`H264Filler::observe`]). Streams it cannot write for (interlaced,
//! `pic_order_cnt_type` 1, slice groups, colour planes, no reference frames) get none.

use bytes::Bytes;

use super::bits::{unescape_rbsp, BitReader};
use super::h264::{parse_sps, SpsInfo};
use super::{AvcConfig, CodecConfig, CodecError};

/// A silent audio frame for this configuration and its duration (track ticks), when there is
/// one: AAC-LC and Opus, mono or stereo.
pub fn silent_audio_frame(codec: &CodecConfig) -> Option<(Bytes, u32)> {
    match codec {
        // A raw_data_block with one channel element (SCE or CPE), max_sfb 0: no spectral data.
        CodecConfig::Aac(c) if c.object_type == 2 && c.channels == 1 => Some((
            Bytes::from_static(&[0x00, 0xc8, 0x00, 0x80, 0x23, 0x80]),
            c.frame_length,
        )),
        CodecConfig::Aac(c) if c.object_type == 2 && c.channels == 2 => Some((
            Bytes::from_static(&[0x21, 0x00, 0x49, 0x90, 0x02, 0x19, 0x00, 0x23, 0x80]),
            c.frame_length,
        )),
        // TOC: CELT fullband 20 ms, one frame (mono 0xf8, stereo 0xfc); a frame of silence.
        CodecConfig::Opus(c) if c.channels == 1 && c.mapping_family == 0 => {
            Some((Bytes::from_static(&[0xf8, 0xff, 0xfe]), 960))
        }
        CodecConfig::Opus(c) if c.channels == 2 && c.mapping_family == 0 => {
            Some((Bytes::from_static(&[0xfc, 0xff, 0xfe]), 960))
        }
        _ => None,
    }
}

/// What a P slice header needs from a PPS.
#[derive(Debug, Clone)]
struct Pps {
    id: u32,
    sps_id: u32,
    cabac: bool,
    bottom_field_poc: bool,
    weighted_pred: bool,
    pic_init_qp: i32,
    deblocking_control: bool,
    redundant_pic_cnt: bool,
}

fn parse_pps(nal: &[u8]) -> Result<Pps, CodecError> {
    const W: &str = "H.264 PPS";
    if nal.first().map(|b| b & 0x1f) != Some(8) {
        return Err(CodecError::invalid(W, "not a PPS NAL unit (type 8)"));
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, W);
    let id = r.ue()?;
    let sps_id = r.ue()?;
    let cabac = r.bit()?;
    let bottom_field_poc = r.bit()?;
    if r.ue()? != 0 {
        return Err(CodecError::invalid(W, "slice groups (FMO)"));
    }
    let _l0 = r.ue()?;
    let _l1 = r.ue()?;
    let weighted_pred = r.bit()?;
    let _bipred = r.bits(2)?;
    let pic_init_qp = 26i32.saturating_add(r.se()?);
    let _qs = r.se()?;
    let _chroma_qp_offset = r.se()?;
    let deblocking_control = r.bit()?;
    let _constrained_intra = r.bit()?;
    let redundant_pic_cnt = r.bit()?;
    Ok(Pps {
        id,
        sps_id,
        cabac,
        bottom_field_poc,
        weighted_pred,
        pic_init_qp,
        deblocking_control,
        redundant_pic_cnt,
    })
}

/// Can a skipped P picture be written for this SPS?
fn check_sps(sps: &SpsInfo) -> Result<(), CodecError> {
    const W: &str = "H.264 filler";
    if !sps.frame_mbs_only {
        return Err(CodecError::invalid(W, "interlaced coding"));
    }
    if sps.separate_colour_plane {
        return Err(CodecError::invalid(W, "separate colour planes"));
    }
    if !matches!(sps.poc_type, 0 | 2) {
        return Err(CodecError::invalid(W, "pic_order_cnt_type 1"));
    }
    if sps.max_refs == 0 {
        return Err(CodecError::invalid(W, "no reference frames"));
    }
    Ok(())
}

/// Writes skipped P pictures that continue an H.264 stream. See the module docs.
#[derive(Debug, Clone)]
pub struct H264Filler {
    sps: Vec<SpsInfo>,
    pps: Vec<Pps>,
    /// The PPS the last picture used.
    pps_id: u32,
    /// frame_num of the last reference picture (PrevRefFrameNum).
    prev_ref_frame_num: u32,
    /// PicOrderCntMsb and pic_order_cnt_lsb of the last reference picture (type 0).
    prev_ref_poc: (i64, u32),
    /// The highest picture order count since the last IDR picture: the picture shown last.
    max_poc: i64,
    /// frame_num of the reference picture with that count, if it is one: the filler's reference.
    shown_last_frame_num: Option<u32>,
}

impl H264Filler {
    /// A filler for a stream with this configuration, or why it cannot have one.
    pub fn new(config: &AvcConfig) -> Result<Self, CodecError> {
        let mut filler = H264Filler {
            sps: Vec::new(),
            pps: Vec::new(),
            pps_id: 0,
            prev_ref_frame_num: 0,
            prev_ref_poc: (0, 0),
            max_poc: 0,
            shown_last_frame_num: Some(0),
        };
        for nal in &config.sps {
            filler.add_sps(nal)?;
        }
        for nal in &config.pps {
            filler.add_pps(nal)?;
        }
        let first = filler
            .pps
            .first()
            .ok_or_else(|| CodecError::invalid("H.264 filler", "no PPS"))?;
        filler.pps_id = first.id;
        filler.active()?;
        Ok(filler)
    }

    fn add_sps(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        let sps = parse_sps(nal)?;
        check_sps(&sps)?;
        self.sps.retain(|s| s.id != sps.id);
        self.sps.push(sps);
        Ok(())
    }

    fn add_pps(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        let pps = parse_pps(nal)?;
        self.pps.retain(|p| p.id != pps.id);
        self.pps.push(pps);
        Ok(())
    }

    /// The PPS and SPS the next picture uses.
    fn active(&self) -> Result<(&Pps, &SpsInfo), CodecError> {
        const W: &str = "H.264 filler";
        let pps = self
            .pps
            .iter()
            .find(|p| p.id == self.pps_id)
            .ok_or_else(|| CodecError::invalid(W, format!("no PPS {}", self.pps_id)))?;
        let sps = self
            .sps
            .iter()
            .find(|s| s.id == pps.sps_id)
            .ok_or_else(|| CodecError::invalid(W, format!("no SPS {}", pps.sps_id)))?;
        Ok((pps, sps))
    }

    /// Follows one real access unit (4-byte length-prefixed NAL units): in-band parameter
    /// sets, and the numbering of its first slice. Input it cannot read changes nothing.
    /// Returns whether the access unit is an IDR picture.
    pub fn observe(&mut self, access_unit: &[u8]) -> bool {
        let mut rest = access_unit;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(nal) = rest.get(4..4 + len) else {
                return false;
            };
            rest = &rest[4 + len..];
            match nal.first().map(|b| b & 0x1f) {
                // An unusable in-band parameter set is not kept (the configuration's stays).
                Some(7) => {
                    let _ = self.add_sps(nal);
                }
                Some(8) => {
                    let _ = self.add_pps(nal);
                }
                Some(kind @ (1 | 5)) => {
                    let _ = self.observe_slice(nal);
                    return kind == 5;
                }
                _ => {}
            }
        }
        false
    }

    fn observe_slice(&mut self, nal: &[u8]) -> Result<(), CodecError> {
        let idr = nal[0] & 0x1f == 5;
        let reference = nal[0] & 0x60 != 0;
        let rbsp = unescape_rbsp(&nal[1..nal.len().min(64)]);
        let mut r = BitReader::new(&rbsp, "H.264 slice header");
        if r.ue()? != 0 {
            // Not the picture's first slice.
            return Ok(());
        }
        let _slice_type = r.ue()?;
        let pps_id = r.ue()?;
        self.pps_id = pps_id;
        let (_, sps) = self.active()?;
        let (log2_frame_num, poc_type, log2_poc_lsb) =
            (sps.log2_max_frame_num, sps.poc_type, sps.log2_max_poc_lsb);
        let frame_num = r.u32(log2_frame_num)?;
        if idr {
            let _idr_pic_id = r.ue()?;
        }
        let lsb = if poc_type == 0 {
            r.u32(log2_poc_lsb)?
        } else {
            0
        };
        let max_lsb = 1i64 << log2_poc_lsb;
        let poc = if idr {
            self.max_poc = i64::MIN;
            self.prev_ref_poc = (0, 0);
            i64::from(lsb)
        } else if poc_type == 0 {
            let (prev_msb, prev_lsb) = self.prev_ref_poc;
            let (lsb_i, prev_i) = (i64::from(lsb), i64::from(prev_lsb));
            let msb = if lsb_i < prev_i && prev_i - lsb_i >= max_lsb / 2 {
                prev_msb + max_lsb
            } else if lsb_i > prev_i && lsb_i - prev_i > max_lsb / 2 {
                prev_msb - max_lsb
            } else {
                prev_msb
            };
            msb + lsb_i
        } else {
            // Type 2: output order is decoding order.
            self.max_poc.saturating_add(2)
        };
        if reference && poc_type == 0 {
            self.prev_ref_poc = (poc - i64::from(lsb), lsb);
        }
        if reference {
            self.prev_ref_frame_num = frame_num;
        }
        if poc >= self.max_poc {
            self.max_poc = poc;
            self.shown_last_frame_num = reference.then_some(frame_num);
        }
        Ok(())
    }

    /// The next filler picture: one length-prefixed NAL unit (a reference P slice).
    pub fn next_frame(&mut self) -> Bytes {
        let Ok((pps, sps)) = self.active() else {
            return Bytes::new();
        };
        let (pps, sps) = (pps.clone(), sps.clone());
        let max_frame_num = 1u32 << sps.log2_max_frame_num;
        let frame_num = (self.prev_ref_frame_num + 1) % max_frame_num;
        // The reference: the picture shown last, when it is a reference picture (with
        // B-pyramids the last one decoded may be shown earlier); otherwise the last decoded.
        let wrap = |n: u32| {
            if n > frame_num {
                i64::from(n) - i64::from(max_frame_num)
            } else {
                i64::from(n)
            }
        };
        let reorder = self
            .shown_last_frame_num
            .map(|n| i64::from(frame_num) - wrap(n))
            .filter(|diff| *diff > 1 && *diff <= i64::from(max_frame_num));
        let max_poc = self.max_poc.max(0);
        let poc = max_poc + 2;
        let max_lsb = 1i64 << sps.log2_max_poc_lsb;
        let lsb = if sps.poc_type == 0 {
            poc.rem_euclid(max_lsb)
        } else {
            0
        };

        let mut w = BitWriter::default();
        w.ue(0); // first_mb_in_slice
        w.ue(0); // slice_type P
        w.ue(pps.id);
        w.bits(u64::from(frame_num), sps.log2_max_frame_num);
        if sps.poc_type == 0 {
            w.bits(lsb as u64, sps.log2_max_poc_lsb);
            if pps.bottom_field_poc {
                w.se(0);
            }
        }
        if pps.redundant_pic_cnt {
            w.ue(0);
        }
        w.bit(true); // num_ref_idx_active_override_flag
        w.ue(0); // one reference
        match reorder {
            Some(diff) => {
                w.bit(true); // ref_pic_list_modification_flag_l0
                w.ue(0); // subtract from the current picture number
                w.ue((diff - 1) as u32);
                w.ue(3);
            }
            None => w.bit(false),
        }
        if pps.weighted_pred {
            w.ue(0); // luma_log2_weight_denom
            if sps.chroma_array_type != 0 {
                w.ue(0);
            }
            w.bit(false);
            if sps.chroma_array_type != 0 {
                w.bit(false);
            }
        }
        w.bit(false); // adaptive_ref_pic_marking_mode_flag: sliding window
        if pps.cabac {
            w.ue(0); // cabac_init_idc
        }
        // SliceQPY 51: no residual is coded, and with it the CABAC context of mb_skip_flag
        // starts with "skipped" as its most probable symbol (see `Cabac`).
        w.se(51 - pps.pic_init_qp);
        if pps.deblocking_control {
            w.ue(1); // no deblocking
        }
        let mbs = sps.frame_mbs.max(1);
        if pps.cabac {
            while !w.aligned() {
                w.bit(true); // cabac_alignment_one_bit
            }
            let mut c = Cabac::new(&mut w);
            for mb in 0..mbs {
                c.skip_flag();
                c.end_of_slice(mb + 1 == mbs);
            }
        } else {
            w.ue(mbs); // mb_skip_run
            w.bit(true); // rbsp_stop_one_bit
        }
        while !w.aligned() {
            w.bit(false);
        }

        self.prev_ref_frame_num = frame_num;
        self.prev_ref_poc = (poc - lsb, lsb as u32);
        self.max_poc = poc;
        self.shown_last_frame_num = Some(frame_num);

        let mut nal = vec![0x41]; // nal_ref_idc 2, coded slice of a non-IDR picture
        let mut zeros = 0;
        for b in w.bytes {
            if zeros >= 2 && b <= 3 {
                nal.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            nal.push(b);
        }
        let mut out = Vec::with_capacity(nal.len() + 4);
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(&nal);
        Bytes::from(out)
    }
}

/// A big-endian bit writer with Exp-Golomb codes.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    used: u32,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.used.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 0x80 >> (self.used % 8);
        }
        self.used += 1;
    }

    fn bits(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    fn ue(&mut self, v: u32) {
        let v = u64::from(v) + 1;
        let len = 64 - v.leading_zeros();
        self.bits(0, len - 1);
        self.bits(v, len);
    }

    fn se(&mut self, v: i32) {
        let mapped = if v > 0 {
            2 * i64::from(v) - 1
        } else {
            -2 * i64::from(v)
        };
        self.ue(mapped as u32);
    }

    fn aligned(&self) -> bool {
        self.used.is_multiple_of(8)
    }
}

/// rangeTabLPS (H.264 Table 9-44), by pStateIdx and qCodIRangeIdx.
#[rustfmt::skip]
const RANGE_LPS: [[u16; 4]; 64] = [
    [128, 176, 208, 240], [128, 167, 197, 227], [128, 158, 187, 216], [123, 150, 178, 205],
    [116, 142, 169, 195], [111, 135, 160, 185], [105, 128, 152, 175], [100, 122, 144, 166],
    [95, 116, 137, 158], [90, 110, 130, 150], [85, 104, 123, 142], [81, 99, 117, 135],
    [77, 94, 111, 128], [73, 89, 105, 122], [69, 85, 100, 116], [66, 80, 95, 110],
    [62, 76, 90, 104], [59, 72, 86, 99], [56, 69, 81, 94], [53, 65, 77, 89],
    [51, 62, 73, 85], [48, 59, 69, 80], [46, 56, 66, 76], [43, 53, 63, 72],
    [41, 50, 59, 69], [39, 48, 56, 65], [37, 45, 54, 62], [35, 43, 51, 59],
    [33, 41, 48, 56], [32, 39, 46, 53], [30, 37, 43, 50], [29, 35, 41, 48],
    [27, 33, 39, 45], [26, 31, 37, 43], [24, 30, 35, 41], [23, 28, 33, 39],
    [22, 27, 32, 37], [21, 26, 30, 35], [20, 24, 29, 33], [19, 23, 27, 31],
    [18, 22, 26, 30], [17, 21, 25, 28], [16, 20, 23, 27], [15, 19, 22, 25],
    [14, 18, 21, 24], [14, 17, 20, 23], [13, 16, 19, 22], [12, 15, 18, 21],
    [12, 14, 17, 20], [11, 14, 16, 19], [11, 13, 15, 18], [10, 12, 15, 17],
    [10, 12, 14, 16], [9, 11, 13, 15], [9, 11, 12, 14], [8, 10, 12, 14],
    [8, 9, 11, 13], [7, 9, 11, 12], [7, 9, 10, 12], [7, 8, 10, 11],
    [6, 8, 9, 11], [6, 7, 9, 10], [6, 7, 8, 9], [2, 2, 2, 2],
];

/// The CABAC encoder (H.264 9.3.4.2) for the two syntax elements of an all-skipped P slice:
/// `mb_skip_flag` = 1 (ctxIdx 11: neither neighbour is ever a coded macroblock) and
/// `end_of_slice_flag`. With cabac_init_idc 0 (m = 23, n = 33) and SliceQPY 51 the context
/// starts at pStateIdx 42 with valMPS 1, so every skip flag is the most probable symbol.
struct Cabac<'a> {
    w: &'a mut BitWriter,
    low: u32,
    range: u32,
    first_bit: bool,
    outstanding: u32,
    state: usize,
}

impl<'a> Cabac<'a> {
    fn new(w: &'a mut BitWriter) -> Self {
        let pre = ((23 * 51) >> 4) + 33;
        debug_assert!(pre > 63, "valMPS is 1");
        Cabac {
            w,
            low: 0,
            range: 510,
            first_bit: true,
            outstanding: 0,
            state: pre - 64,
        }
    }

    fn put_bit(&mut self, b: bool) {
        if self.first_bit {
            self.first_bit = false;
        } else {
            self.w.bit(b);
        }
        while self.outstanding > 0 {
            self.w.bit(!b);
            self.outstanding -= 1;
        }
    }

    fn renorm(&mut self) {
        while self.range < 256 {
            if self.low < 256 {
                self.put_bit(false);
            } else if self.low >= 512 {
                self.low -= 512;
                self.put_bit(true);
            } else {
                self.low -= 256;
                self.outstanding += 1;
            }
            self.range <<= 1;
            self.low <<= 1;
        }
    }

    /// mb_skip_flag = 1, the most probable symbol.
    fn skip_flag(&mut self) {
        let lps = u32::from(RANGE_LPS[self.state][((self.range >> 6) & 3) as usize]);
        self.range -= lps;
        self.state = (self.state + 1).min(62);
        self.renorm();
    }

    /// end_of_slice_flag (EncodeTerminate, then EncodeFlush at the end: its last bit written
    /// is the rbsp_stop_one_bit).
    fn end_of_slice(&mut self, last: bool) {
        self.range -= 2;
        if !last {
            self.renorm();
            return;
        }
        self.low += self.range;
        self.range = 2;
        self.renorm();
        self.put_bit((self.low >> 9) & 1 == 1);
        self.w.bits(u64::from(((self.low >> 7) & 3) | 1), 2);
    }
}
