//! RTP payloads to access units, without I/O: H.264 (RFC 6184 single NAL unit, STAP-A and
//! FU-A packets) and VP8/VP9 (RFC 7741, RFC 9628), from packets in sequence order (see
//! [`super::jitter`]).

use std::time::{Instant, SystemTime};

use bytes::Bytes;

pub use super::jitter::Packet;

/// A complete access unit.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// RTP timestamp (90 kHz), extended to 64 bits.
    pub ts: i64,
    /// NAL units, each after its 4-byte big-endian length (the MP4 sample format).
    pub data: Bytes,
    /// False when something before it was lost (references may be missing).
    pub contiguous: bool,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// Latest RTCP sender report of the stream: (NTP wall clock, RTP time).
    pub sr: Option<(SystemTime, i64)>,
}

/// Largest access unit or frame assembled (a 4K keyframe is a few MB); a publisher that
/// sends more under one timestamp loses that access unit instead of growing our memory.
pub const MAX_ACCESS_UNIT: usize = 16 << 20;

/// Reassembles H.264 access units from ordered packets, writing length-prefixed NAL units
/// as it goes (an FU-A's length is filled in when its last fragment arrives).
#[derive(Default)]
pub struct H264Depacketizer {
    au: Vec<u8>,
    ts: Option<i64>,
    arrival: Option<Instant>,
    sr: Option<(SystemTime, i64)>,
    /// FU-A in progress: where its length prefix is in `au`.
    fu: Option<usize>,
    /// The access unit in progress lost a packet.
    broken: bool,
    /// An access unit was dropped since the last one emitted.
    dropped: bool,
    /// Malformed payloads seen.
    pub malformed: u64,
}

impl H264Depacketizer {
    /// Takes the next packet in sequence order (`gap`: packets were lost before it).
    pub fn push(&mut self, p: Packet, gap: bool, out: &mut Vec<AccessUnit>) {
        if self.ts.is_some_and(|t| t != p.ts) {
            // The previous access unit ended without a marker (lost last packet?): it is
            // complete only if nothing was lost.
            if gap {
                self.broken = true;
            }
            self.finish(out);
        } else if gap {
            self.broken = true;
            self.fu = None;
        }
        if self.ts.is_none() {
            self.ts = Some(p.ts);
            self.arrival = Some(p.arrival);
        }
        self.sr = p.sr.or(self.sr);
        if !self.broken {
            self.depacketize(&p.payload);
        }
        if self.au.len() > MAX_ACCESS_UNIT {
            self.malformed += 1;
            self.broken = true;
        }
        if self.broken {
            // Nothing of this access unit will be used.
            self.au.clear();
            self.fu = None;
        }
        if p.marker {
            self.finish(out);
        }
    }

    /// Appends one NAL unit with its length prefix.
    fn nal(&mut self, nal: &[u8]) {
        let Ok(len) = u32::try_from(nal.len()) else {
            self.broken = true;
            return;
        };
        self.au.extend_from_slice(&len.to_be_bytes());
        self.au.extend_from_slice(nal);
    }

    fn depacketize(&mut self, d: &[u8]) {
        let Some(&h) = d.first() else {
            self.malformed += 1;
            return;
        };
        match h & 0x1f {
            1..=23 => self.nal(d),
            24 => {
                // STAP-A: 16-bit size, NAL unit; repeated.
                let mut i = 1;
                while i + 2 <= d.len() {
                    let n = usize::from(u16::from_be_bytes([d[i], d[i + 1]]));
                    i += 2;
                    let Some(nal) = d.get(i..i + n) else {
                        self.malformed += 1;
                        self.broken = true;
                        return;
                    };
                    if n > 0 {
                        self.nal(nal);
                    }
                    i += n;
                }
            }
            28 => {
                let Some(&fh) = d.get(1) else {
                    self.malformed += 1;
                    self.broken = true;
                    return;
                };
                let (start, end) = (fh & 0x80 != 0, fh & 0x40 != 0);
                if start {
                    if self.fu.is_some() {
                        // The previous fragment never ended.
                        self.broken = true;
                        return;
                    }
                    // The length is filled in by the end fragment.
                    self.fu = Some(self.au.len());
                    self.au.extend_from_slice(&[0; 4]);
                    self.au.push((h & 0xe0) | (fh & 0x1f));
                } else if self.fu.is_none() {
                    // A middle or end fragment without its start.
                    self.broken = true;
                    return;
                }
                self.au.extend_from_slice(d.get(2..).unwrap_or_default());
                if end {
                    if let Some(at) = self.fu.take() {
                        let len = self.au.len().checked_sub(at + 4).map(u32::try_from);
                        match (len, self.au.get_mut(at..at + 4)) {
                            (Some(Ok(len)), Some(prefix)) => {
                                prefix.copy_from_slice(&len.to_be_bytes())
                            }
                            _ => self.broken = true,
                        }
                    }
                }
            }
            _ => {
                // STAP-B, MTAP, FU-B: not used by WebRTC senders (packetization-mode 1).
                self.malformed += 1;
                self.broken = true;
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<AccessUnit>) {
        let (Some(ts), Some(arrival)) = (self.ts.take(), self.arrival.take()) else {
            return;
        };
        let data = std::mem::take(&mut self.au);
        if self.fu.take().is_some() {
            self.broken = true;
        }
        if self.broken || data.is_empty() {
            self.broken = false;
            self.dropped = true;
            return;
        }
        out.push(AccessUnit {
            ts,
            data: Bytes::from(data),
            contiguous: !std::mem::take(&mut self.dropped),
            arrival,
            sr: self.sr,
        });
    }
}

/// VP8 (RFC 7741) or VP9 (RFC 9628): which payload descriptor to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpxKind {
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
}

/// A complete VP8/VP9 frame, for the transcoder.
#[derive(Debug, Clone)]
pub struct VpxFrame {
    /// RTP timestamp (90 kHz), extended to 64 bits.
    pub ts: i64,
    /// The frame as the decoder takes it.
    pub data: Bytes,
    /// A keyframe (decodable on its own).
    pub keyframe: bool,
    /// False when something before it was lost (the decoder needs a keyframe).
    pub contiguous: bool,
    /// When its first packet arrived.
    pub arrival: Instant,
    /// Latest RTCP sender report of the stream: (NTP wall clock, RTP time).
    pub sr: Option<(SystemTime, i64)>,
}

/// Reassembles VP8/VP9 frames from ordered packets.
pub struct VpxDepacketizer {
    kind: VpxKind,
    frame: Vec<u8>,
    ts: Option<i64>,
    arrival: Option<Instant>,
    sr: Option<(SystemTime, i64)>,
    keyframe: bool,
    started: bool,
    broken: bool,
    dropped: bool,
    /// Malformed payload descriptors seen.
    pub malformed: u64,
}

impl VpxDepacketizer {
    /// A depacketizer for `kind` payloads.
    pub fn new(kind: VpxKind) -> Self {
        VpxDepacketizer {
            kind,
            frame: Vec::new(),
            ts: None,
            arrival: None,
            sr: None,
            keyframe: false,
            started: false,
            broken: false,
            dropped: false,
            malformed: 0,
        }
    }

    /// The payload after the descriptor, whether it starts a frame, and whether the frame is
    /// a keyframe (known at the start of a frame).
    fn descriptor<'a>(&self, d: &'a [u8]) -> Option<(&'a [u8], bool, bool)> {
        let mut i = 0;
        let b0 = *d.first()?;
        match self.kind {
            VpxKind::Vp8 => {
                let (x, s, pid) = (b0 & 0x80 != 0, b0 & 0x10 != 0, b0 & 0x07);
                i += 1;
                if x {
                    let b1 = *d.get(i)?;
                    i += 1;
                    if b1 & 0x80 != 0 {
                        i += if *d.get(i)? & 0x80 != 0 { 2 } else { 1 };
                    }
                    if b1 & 0x40 != 0 {
                        i += 1;
                    }
                    if b1 & 0x30 != 0 {
                        i += 1;
                    }
                }
                let payload = d.get(i..)?;
                let start = s && pid == 0;
                // VP8 frame tag: bit 0 of the first byte is 0 for a keyframe.
                let key = start && payload.first().is_some_and(|b| b & 0x01 == 0);
                Some((payload, start, key))
            }
            VpxKind::Vp9 => {
                let (pic, p, l, f, b, v) = (
                    b0 & 0x80 != 0,
                    b0 & 0x40 != 0,
                    b0 & 0x20 != 0,
                    b0 & 0x10 != 0,
                    b0 & 0x08 != 0,
                    b0 & 0x02 != 0,
                );
                i += 1;
                if pic {
                    i += if *d.get(i)? & 0x80 != 0 { 2 } else { 1 };
                }
                if l {
                    i += 1;
                    if !f {
                        i += 1; // TL0PICIDX
                    }
                }
                if f && p {
                    // Up to three reference indices, each with a "more follow" bit.
                    for _ in 0..3 {
                        let r = *d.get(i)?;
                        i += 1;
                        if r & 0x01 == 0 {
                            break;
                        }
                    }
                }
                if v {
                    let ss = *d.get(i)?;
                    i += 1;
                    let n_s = usize::from(ss >> 5) + 1;
                    if ss & 0x10 != 0 {
                        i += 4 * n_s;
                    }
                    if ss & 0x08 != 0 {
                        let n_g = usize::from(*d.get(i)?);
                        i += 1;
                        for _ in 0..n_g {
                            let g = *d.get(i)?;
                            i += 1 + usize::from((g >> 2) & 0x03);
                        }
                    }
                }
                let payload = d.get(i..)?;
                Some((payload, b, b && !p))
            }
        }
    }

    /// Takes the next packet in sequence order (`gap`: packets were lost before it).
    pub fn push(&mut self, p: Packet, gap: bool, out: &mut Vec<VpxFrame>) {
        if self.ts.is_some_and(|t| t != p.ts) {
            if gap {
                self.broken = true;
            }
            self.finish(out);
        } else if gap {
            self.broken = true;
        }
        let Some((payload, start, key)) = self.descriptor(&p.payload) else {
            self.malformed += 1;
            self.broken = true;
            return;
        };
        if self.ts.is_none() {
            self.ts = Some(p.ts);
            self.arrival = Some(p.arrival);
            self.started = start;
            self.keyframe = key;
            if !start {
                self.broken = true;
            }
        }
        self.sr = p.sr.or(self.sr);
        if self.frame.len() + payload.len() > MAX_ACCESS_UNIT {
            self.malformed += 1;
            self.broken = true;
            self.frame.clear();
        }
        if !self.broken {
            self.frame.extend_from_slice(payload);
        }
        if p.marker {
            self.finish(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<VpxFrame>) {
        let (Some(ts), Some(arrival)) = (self.ts.take(), self.arrival.take()) else {
            return;
        };
        let data = std::mem::take(&mut self.frame);
        if self.broken || !self.started || data.is_empty() {
            self.broken = false;
            self.dropped = true;
            return;
        }
        out.push(VpxFrame {
            ts,
            data: Bytes::from(data),
            keyframe: self.keyframe,
            contiguous: !std::mem::take(&mut self.dropped),
            arrival,
            sr: self.sr,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whip::jitter::tests::pkt;

    #[test]
    fn depacketizes_single_stap_a_and_fu_a() {
        let t = Instant::now();
        let mut d = H264Depacketizer::default();
        let mut out = Vec::new();
        // STAP-A with SPS (0x67) and PPS (0x68), then an IDR in three FU-A fragments.
        let stap = [24u8, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
        d.push(pkt(1, 900, false, &stap, t), false, &mut out);
        d.push(pkt(2, 900, false, &[0x7c, 0x85, 1, 2], t), false, &mut out);
        d.push(pkt(3, 900, false, &[0x7c, 0x05, 3], t), false, &mut out);
        d.push(pkt(4, 900, true, &[0x7c, 0x45, 4], t), false, &mut out);
        d.push(pkt(5, 3900, true, &[0x41, 9, 9], t), false, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(
            &out[0].data[..],
            &[0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 2, 0x68, 0xce, 0, 0, 0, 5, 0x65, 1, 2, 3, 4]
        );
        assert_eq!(&out[1].data[..], &[0, 0, 0, 3, 0x41, 9, 9]);
        assert!(out[1].contiguous);
    }

    #[test]
    fn an_access_unit_missing_a_fragment_is_dropped_and_the_next_flagged() {
        let t = Instant::now();
        let mut d = H264Depacketizer::default();
        let mut out = Vec::new();
        d.push(pkt(1, 0, false, &[0x7c, 0x85, 1], t), false, &mut out);
        // Fragment 2 lost.
        d.push(pkt(3, 0, true, &[0x7c, 0x45, 3], t), true, &mut out);
        d.push(pkt(4, 3000, true, &[0x41, 7], t), false, &mut out);
        // A fragment without start, a truncated STAP-A, an empty payload, STAP-B.
        d.push(pkt(5, 6000, true, &[0x7c, 0x05, 3], t), false, &mut out);
        d.push(pkt(6, 9000, true, &[24, 0, 9, 0x67], t), false, &mut out);
        d.push(pkt(7, 12000, true, &[], t), false, &mut out);
        d.push(pkt(8, 15000, true, &[25, 0, 0], t), false, &mut out);
        d.push(pkt(9, 18000, true, &[0x41, 8], t), false, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].ts, 3000);
        assert!(!out[0].contiguous);
        assert!(!out[1].contiguous);
        assert!(d.malformed >= 3);
    }

    #[test]
    fn fragments_get_their_length_and_endless_access_units_are_dropped() {
        let t = Instant::now();
        let mut d = H264Depacketizer::default();
        let mut out = Vec::new();
        // A single NAL, then an FU-A: both length-prefixed in one access unit.
        d.push(pkt(1, 0, false, &[0x06, 5], t), false, &mut out);
        d.push(pkt(2, 0, false, &[0x7c, 0x85, 1, 2, 3], t), false, &mut out);
        d.push(pkt(3, 0, true, &[0x7c, 0x45, 4, 5], t), false, &mut out);
        assert_eq!(
            &out[0].data[..],
            &[0, 0, 0, 2, 0x06, 5, 0, 0, 0, 6, 0x65, 1, 2, 3, 4, 5]
        );
        // A second FU-A start before the first ended: the access unit is dropped.
        d.push(pkt(4, 3000, false, &[0x7c, 0x85, 1], t), false, &mut out);
        d.push(pkt(5, 3000, true, &[0x7c, 0x85, 2], t), false, &mut out);
        assert_eq!(out.len(), 1);
        // A publisher that never ends an access unit does not grow our memory.
        let big = vec![0x41u8; 1200];
        for i in 0..(MAX_ACCESS_UNIT / 1200 + 10) as u64 {
            d.push(pkt(6 + i, 6000, false, &big, t), false, &mut out);
            assert!(d.au.len() <= MAX_ACCESS_UNIT + 1204);
        }
        d.push(pkt(1_000_000, 9000, true, &[0x41, 1], t), false, &mut out);
        assert_eq!(out.len(), 2);
        assert!(!out[1].contiguous, "the oversized one was dropped");
        assert!(d.malformed >= 1);
    }

    #[test]
    fn vp8_frames_and_keyframes() {
        let t = Instant::now();
        let mut d = VpxDepacketizer::new(VpxKind::Vp8);
        let mut out = Vec::new();
        // X=1, S=1, PID=0; I=1 with a 15-bit picture id; payload starts with a keyframe tag.
        d.push(
            pkt(1, 0, false, &[0x90, 0x80, 0x81, 0x02, 0x10, 0xaa], t),
            false,
            &mut out,
        );
        d.push(
            pkt(2, 0, true, &[0x80, 0x80, 0x81, 0x02, 0xbb], t),
            false,
            &mut out,
        );
        // A delta frame (tag bit 0 set), no extensions.
        d.push(pkt(3, 3000, true, &[0x10, 0x31, 0xcc], t), false, &mut out);
        // A frame whose first packet was lost: dropped; the next is flagged.
        d.push(pkt(5, 6000, true, &[0x00, 0xdd], t), true, &mut out);
        d.push(pkt(6, 9000, true, &[0x10, 0x31, 0xee], t), false, &mut out);
        assert_eq!(out.len(), 3);
        assert!(out[0].keyframe && !out[1].keyframe);
        assert_eq!(&out[0].data[..], &[0x10, 0xaa, 0xbb]);
        assert!(!out[2].contiguous);
    }

    #[test]
    fn vp9_descriptor_with_scalability_structure() {
        let t = Instant::now();
        let mut d = VpxDepacketizer::new(VpxKind::Vp9);
        let mut out = Vec::new();
        // I=1 (7-bit id), B=1, V=1: SS with one spatial layer, Y=1 (4 bytes of size), G=1
        // with one picture group of one reference.
        let first = [
            0x8a, 0x05, 0x18, 0x02, 0x80, 0x01, 0x68, 0x01, 0x04, 0x01, 0x82, 0x49,
        ];
        d.push(pkt(1, 0, false, &first, t), false, &mut out);
        // I=1, E=1, continuation.
        d.push(pkt(2, 0, true, &[0x84, 0x05, 0x83], t), false, &mut out);
        // P=1 (inter), B=E=1.
        d.push(pkt(3, 3000, true, &[0xcc, 0x06, 0x90], t), false, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].keyframe && !out[1].keyframe);
        assert_eq!(&out[0].data[..], &[0x82, 0x49, 0x83]);
        // Truncated descriptors are counted, not trusted.
        d.push(pkt(4, 6000, true, &[0x80], t), false, &mut out);
        assert_eq!(d.malformed, 1);
    }
}
