//! MPEG-2 transport stream demuxing without I/O: TS bytes in (any chunking), codec
//! configurations and frames out. What SRT publishers (and UDP/file sources) carry.
//!
//! - Packets: 188 bytes from a `0x47` sync byte; after a bad sync byte the demuxer searches
//!   for the next byte that starts two consecutive packets (counted in [`TsStats::resyncs`]).
//! - PSI: the PAT names the first program's PMT, the PMT names the streams. H.264
//!   (stream type `0x1B`), HEVC (`0x24`) and AAC in ADTS (`0x0F`) are demuxed (the first video
//!   and the first audio stream); other streams are reported
//!   once ([`TsEvent::Warning`]) and ignored, as are null packets and unknown PIDs. A new PMT
//!   version replaces the stream set. Sections must fit one packet and pass their CRC.
//! - PES: reassembled per PID from one payload-unit start to the next (or to the PES length
//!   when it is given: video PES usually have length 0). A continuity-counter jump drops
//!   the PES in progress on that PID ([`TsStats::cc_errors`]).
//! - Timestamps: the 33-bit PTS/DTS are widened across their wrap (one timeline for every
//!   PID, so audio and video stay aligned) and come out in 90 kHz ticks.
//! - H.264 and HEVC: Annex B access units become length-prefixed NAL units without parameter
//!   sets or access unit delimiters; new parameter sets come out as a [`TsEvent::Config`]
//!   before the frame.
//! - AAC: each ADTS frame becomes a raw AAC frame; its header gives the [`AacConfig`].
//!
//! Nothing here panics on any input; malformed pieces are counted and dropped.

use std::collections::VecDeque;

use bytes::Bytes;
use llhls_packager::codec::{split_annex_b, AacConfig, AvcConfig, CodecConfig, HevcConfig};
use llhls_packager::{Frame, MediaTime, Timescale};

use crate::tracks::{AUDIO, VIDEO};

/// The size of a transport stream packet.
pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const NULL_PID: u16 = 0x1fff;
/// A PES larger than this is dropped (no video frame is this large).
const MAX_PES: usize = 16 * 1024 * 1024;

/// What the demuxer found, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum TsEvent {
    /// A new or changed codec configuration (for [`crate::tracks::VIDEO`] or
    /// [`crate::tracks::AUDIO`]); the frames after it use it.
    Config(CodecConfig),
    /// One frame (video: length-prefixed NAL units; audio: one raw AAC frame), timestamps
    /// in 90 kHz ticks.
    Frame(Frame),
    /// Something the operator should know (an unsupported stream, a malformed frame).
    Warning(String),
}

/// Counters of what went wrong (and how much went through).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TsStats {
    /// Packets read.
    pub packets: u64,
    /// Times the demuxer lost sync and searched for the next packet start.
    pub resyncs: u64,
    /// Continuity-counter jumps on a demuxed PID (lost or reordered packets).
    pub cc_errors: u64,
    /// Malformed packets, sections, PES headers and frames dropped.
    pub errors: u64,
    /// Frames out.
    pub frames: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    H264,
    Hevc,
    AdtsAac,
}

#[derive(Debug)]
struct Es {
    pid: u16,
    kind: Kind,
    /// The continuity counter of the last packet with payload.
    cc: Option<u8>,
    /// The PES being reassembled (from its header on), if any.
    pes: Option<Vec<u8>>,
}

/// Widens 33-bit timestamps into one 64-bit timeline.
#[derive(Debug, Default)]
struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    const WRAP: i64 = 1 << 33;

    fn unwrap(&mut self, raw: u64) -> i64 {
        let raw = (raw & (Self::WRAP as u64 - 1)) as i64;
        let v = match self.last {
            None => raw,
            Some(last) => {
                // The nearest value to `last` that is `raw` modulo 2^33.
                let diff = (raw - last.rem_euclid(Self::WRAP)).rem_euclid(Self::WRAP);
                let diff = if diff >= Self::WRAP / 2 {
                    diff - Self::WRAP
                } else {
                    diff
                };
                last.saturating_add(diff)
            }
        };
        self.last = Some(v);
        v
    }
}

/// The transport stream demuxer (see the module docs).
#[derive(Debug, Default)]
pub struct TsDemuxer {
    buf: Vec<u8>,
    pmt_pid: Option<u16>,
    pmt_version: Option<u8>,
    streams: Vec<Es>,
    /// Stream types already reported as unsupported.
    unsupported: Vec<u8>,
    clock: Unwrapper,
    vps: Vec<Vec<u8>>,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
    video: Option<CodecConfig>,
    audio: Option<CodecConfig>,
    stats: TsStats,
    out: VecDeque<TsEvent>,
    /// Warnings so far: the first five and every hundredth come out, so a flood of faults
    /// logs a few lines.
    warned: u64,
}

impl TsDemuxer {
    /// A demuxer waiting for a PAT.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters so far.
    pub fn stats(&self) -> TsStats {
        self.stats
    }

    /// Which tracks the current PMT announces that this demuxer decodes: (video, audio).
    pub fn announced(&self) -> (bool, bool) {
        let v = self
            .streams
            .iter()
            .any(|s| matches!(s.kind, Kind::H264 | Kind::Hevc));
        let a = self.streams.iter().any(|s| s.kind == Kind::AdtsAac);
        (v, a)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TsEvent> {
        self.out.pop_front()
    }

    /// Feeds transport stream bytes (any chunking).
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            if rest.len() < PACKET {
                break;
            }
            // A sync byte not followed by another where the next packet starts (when that
            // has arrived) is a stray 0x47 inside garbage.
            if rest[0] != SYNC || rest.get(PACKET).is_some_and(|&b| b != SYNC) {
                // Look for a byte that starts a packet followed by another (or by the end).
                let found = (1..rest.len())
                    .find(|&i| rest[i] == SYNC && rest.get(i + PACKET).is_none_or(|&b| b == SYNC));
                self.stats.resyncs += 1;
                match found {
                    Some(i) => {
                        pos += i;
                        continue;
                    }
                    None => {
                        pos = self.buf.len();
                        break;
                    }
                }
            }
            let mut pkt = [0u8; PACKET];
            pkt.copy_from_slice(&rest[..PACKET]);
            pos += PACKET;
            self.packet(&pkt);
        }
        self.buf.drain(..pos);
    }

    /// Ends the input: the PES in progress on each PID is complete.
    pub fn flush(&mut self) {
        for i in 0..self.streams.len() {
            if let Some(pes) = self.streams[i].pes.take() {
                let kind = self.streams[i].kind;
                self.pes(kind, &pes);
            }
        }
    }

    fn warn(&mut self, msg: String) {
        self.warned += 1;
        let n = self.warned;
        if n <= 5 || n.is_multiple_of(100) {
            self.out.push_back(TsEvent::Warning(msg));
        }
    }

    fn error(&mut self, what: &str) {
        self.stats.errors += 1;
        let n = self.stats.errors;
        self.warn(format!("dropped {what} ({n} errors so far)"));
    }

    fn packet(&mut self, p: &[u8; PACKET]) {
        self.stats.packets += 1;
        let tei = p[1] & 0x80 != 0;
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0f;
        if pid == NULL_PID {
            return;
        }
        if tei {
            self.error("a packet marked as damaged (transport error indicator)");
            return;
        }
        let mut start = 4;
        let mut discontinuity = false;
        if afc & 2 != 0 {
            let len = usize::from(p[4]);
            if len > 183 {
                self.error("a packet with an adaptation field longer than the packet");
                return;
            }
            if len > 0 {
                discontinuity = p[5] & 0x80 != 0;
            }
            start = 5 + len;
        }
        let has_payload = afc & 1 != 0;
        if afc == 0 {
            self.error("a packet with reserved adaptation field control");
            return;
        }
        let payload = if has_payload { &p[start..] } else { &[][..] };
        if pid == 0 {
            if pusi {
                self.pat(payload);
            }
            return;
        }
        if Some(pid) == self.pmt_pid {
            if pusi {
                self.pmt(payload);
            }
            return;
        }
        let Some(i) = self.streams.iter().position(|s| s.pid == pid) else {
            return; // Unknown PID.
        };
        if !has_payload {
            return;
        }
        let es = &mut self.streams[i];
        if let Some(prev) = es.cc {
            if !discontinuity && cc == prev {
                return; // A duplicate packet (allowed once).
            }
            if !discontinuity && cc != (prev + 1) & 0x0f {
                es.cc = Some(cc);
                let dropped = es.pes.take().is_some();
                self.stats.cc_errors += 1;
                let n = self.stats.cc_errors;
                self.warn(format!(
                    "continuity counter jump on PID {pid} (packets lost; {n} so far){}",
                    if dropped {
                        ": the frame in progress is dropped"
                    } else {
                        ""
                    }
                ));
                if !pusi {
                    return;
                }
            }
        }
        let es = &mut self.streams[i];
        es.cc = Some(cc);
        let kind = es.kind;
        if pusi {
            if let Some(done) = es.pes.replace(payload.to_vec()) {
                self.pes(kind, &done);
            }
        } else if let Some(pes) = es.pes.as_mut() {
            if pes.len() + payload.len() > MAX_PES {
                es.pes = None;
                self.error("a PES larger than 16 MB");
                return;
            }
            pes.extend_from_slice(payload);
        }
        // A PES whose length is given is complete as soon as it has that length.
        let es = &mut self.streams[i];
        if let Some(pes) = es.pes.as_ref() {
            if pes.len() >= 6 {
                let len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
                if len > 0 && pes.len() >= 6 + len {
                    let mut done = es.pes.take().unwrap_or_default();
                    done.truncate(6 + len);
                    self.pes(kind, &done);
                }
            }
        }
    }

    /// The section in a PSI payload (pointer field skipped), CRC checked.
    fn section<'a>(&mut self, payload: &'a [u8], table_id: u8) -> Option<&'a [u8]> {
        let ptr = usize::from(*payload.first()?);
        let s = payload.get(1 + ptr..)?;
        if s.len() < 3 {
            self.error("a truncated PSI section");
            return None;
        }
        if s[0] != table_id {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([s[1], s[2]]) & 0x0fff);
        let Some(s) = s.get(..3 + len) else {
            self.error("a PSI section longer than its packet");
            return None;
        };
        if len < 9 || crc32_mpeg2(s) != 0 {
            self.error("a PSI section with a bad CRC");
            return None;
        }
        // Only the current table counts (current_next_indicator).
        if s[5] & 1 == 0 {
            return None;
        }
        Some(s)
    }

    fn pat(&mut self, payload: &[u8]) {
        let Some(s) = self.section(payload, 0) else {
            return;
        };
        let programs = &s[8..s.len() - 4];
        let pmt = programs
            .chunks_exact(4)
            .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
            .map(|e| u16::from_be_bytes([e[2], e[3]]) & 0x1fff);
        if pmt.is_some() && pmt != self.pmt_pid {
            self.pmt_pid = pmt;
            self.pmt_version = None;
        }
    }

    fn pmt(&mut self, payload: &[u8]) {
        let Some(s) = self.section(payload, 2) else {
            return;
        };
        let version = (s[5] >> 1) & 0x1f;
        if self.pmt_version == Some(version) {
            return;
        }
        let body = &s[..s.len() - 4];
        let info_len = usize::from(u16::from_be_bytes([body[10], body[11]]) & 0x0fff);
        let mut i = 12 + info_len;
        let mut streams = Vec::new();
        let mut unsupported = Vec::new();
        while i + 5 <= body.len() {
            let stream_type = body[i];
            let pid = u16::from_be_bytes([body[i + 1], body[i + 2]]) & 0x1fff;
            let es_len = usize::from(u16::from_be_bytes([body[i + 3], body[i + 4]]) & 0x0fff);
            i += 5 + es_len;
            let kind = match stream_type {
                0x1b => Kind::H264,
                0x24 => Kind::Hevc,
                0x0f => Kind::AdtsAac,
                t => {
                    unsupported.push(t);
                    continue;
                }
            };
            // One video and one audio stream: the first of each.
            let video = |k: Kind| matches!(k, Kind::H264 | Kind::Hevc);
            if !streams
                .iter()
                .any(|s: &Es| s.kind == kind || (video(s.kind) && video(kind)))
            {
                let old = self.streams.iter().find(|s| s.pid == pid && s.kind == kind);
                streams.push(Es {
                    pid,
                    kind,
                    cc: old.and_then(|o| o.cc),
                    pes: None,
                });
            }
        }
        // Keep a PES in progress on a PID that stays.
        for s in &mut streams {
            if let Some(old) = self.streams.iter_mut().find(|o| o.pid == s.pid) {
                s.pes = old.pes.take();
            }
        }
        self.pmt_version = Some(version);
        self.streams = streams;
        for t in unsupported {
            if !self.unsupported.contains(&t) {
                self.unsupported.push(t);
                self.out.push_back(TsEvent::Warning(format!(
                    "stream type 0x{t:02x} ({}) is not supported and is ignored; send H.264 or HEVC video and AAC (ADTS) audio",
                    stream_type_name(t)
                )));
            }
        }
    }

    fn pes(&mut self, kind: Kind, pes: &[u8]) {
        let Some((pts, dts, data)) = parse_pes(pes) else {
            self.error("a malformed PES header");
            return;
        };
        let Some(pts) = pts else {
            self.error("a PES without a timestamp");
            return;
        };
        let pts = self.clock.unwrap(pts);
        let dts = match dts {
            Some(d) => self.clock.unwrap(d),
            None => pts,
        };
        match kind {
            Kind::H264 => self.video(false, pts, dts, data),
            Kind::Hevc => self.video(true, pts, dts, data),
            Kind::AdtsAac => self.adts(pts, data),
        }
    }

    /// One H.264 or HEVC access unit (Annex B): parameter sets to a configuration, the rest
    /// to a length-prefixed sample.
    fn video(&mut self, hevc: bool, pts: i64, dts: i64, data: &[u8]) {
        let mut keyframe = false;
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        let mut out = Vec::with_capacity(data.len() + 16);
        for nal in split_annex_b(data) {
            let Some(&h) = nal.first() else { continue };
            // (parameter set slot: 0 VPS, 1 SPS, 2 PPS; 3 delimiter; else a picture's NAL)
            let (slot, key) = if hevc {
                match (h >> 1) & 0x3f {
                    32 => (0, false),
                    33 => (1, false),
                    34 => (2, false),
                    35 => (3, false),
                    t => (4, (16..=23).contains(&t)),
                }
            } else {
                match h & 0x1f {
                    7 => (1, false),
                    8 => (2, false),
                    9 => (3, false),
                    t => (4, t == 5),
                }
            };
            match slot {
                0 => vps.push(nal.to_vec()),
                1 => sps.push(nal.to_vec()),
                2 => pps.push(nal.to_vec()),
                3 => {}
                _ => {
                    keyframe |= key;
                    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    out.extend_from_slice(nal);
                }
            }
        }
        let changed = |new: &Vec<Vec<u8>>, old: &Vec<Vec<u8>>| !new.is_empty() && new != old;
        if changed(&vps, &self.vps) || changed(&sps, &self.sps) || changed(&pps, &self.pps) {
            for (new, old) in [
                (vps, &mut self.vps),
                (sps, &mut self.sps),
                (pps, &mut self.pps),
            ] {
                if !new.is_empty() {
                    *old = new;
                }
            }
            let complete = !self.sps.is_empty() && !self.pps.is_empty();
            if complete && (!hevc || !self.vps.is_empty()) {
                let parsed = if hevc {
                    HevcConfig::from_parameter_sets(
                        self.vps.clone(),
                        self.sps.clone(),
                        self.pps.clone(),
                    )
                    .map(CodecConfig::Hevc)
                } else {
                    AvcConfig::from_parameter_sets(self.sps.clone(), self.pps.clone())
                        .map(CodecConfig::H264)
                };
                match parsed {
                    Ok(c) => {
                        if self.video.as_ref() != Some(&c) {
                            self.video = Some(c.clone());
                            self.out.push_back(TsEvent::Config(c));
                        }
                    }
                    Err(e) => {
                        self.sps.clear();
                        let codec = if hevc { "HEVC" } else { "H.264" };
                        self.error(&format!("{codec} parameter sets that do not parse: {e}"));
                    }
                }
            }
        }
        if out.is_empty() {
            return;
        }
        self.emit(Frame {
            track: VIDEO,
            dts: MediaTime::new(dts, Timescale::MPEG),
            pts: MediaTime::new(pts, Timescale::MPEG),
            keyframe,
            data: Bytes::from(out),
        });
    }

    fn adts(&mut self, pts: i64, mut data: &[u8]) {
        let mut samples: i64 = 0;
        while !data.is_empty() {
            let Some(h) = Adts::parse(data) else {
                self.error("an AAC frame with a bad ADTS header");
                return;
            };
            let Some(frame) = data.get(h.header_len..h.frame_len) else {
                self.error("an ADTS frame cut short");
                return;
            };
            if h.blocks != 1 {
                self.error("an ADTS frame with several raw data blocks");
                data = &data[h.frame_len..];
                continue;
            }
            let config = match AacConfig::from_asc(&h.asc()) {
                Ok(c) => CodecConfig::Aac(c),
                Err(e) => {
                    self.error(&format!("an AAC frame with an unusable configuration: {e}"));
                    return;
                }
            };
            let (rate, frame_length) = match &config {
                CodecConfig::Aac(c) => (c.sample_rate, c.frame_length),
                _ => (48_000, 1024),
            };
            if self.audio.as_ref() != Some(&config) {
                self.audio = Some(config.clone());
                self.out.push_back(TsEvent::Config(config));
            }
            let t = pts.saturating_add(llhls_packager::media::rescale(samples, rate, 90_000));
            samples += i64::from(frame_length);
            self.emit(Frame {
                track: AUDIO,
                dts: MediaTime::new(t, Timescale::MPEG),
                pts: MediaTime::new(t, Timescale::MPEG),
                keyframe: true,
                data: Bytes::copy_from_slice(frame),
            });
            data = &data[h.frame_len..];
        }
    }

    fn emit(&mut self, f: Frame) {
        self.stats.frames += 1;
        self.out.push_back(TsEvent::Frame(f));
    }
}

/// The PTS, DTS and payload of a PES packet (with its header); `None` if malformed.
type Pes<'a> = (Option<u64>, Option<u64>, &'a [u8]);

fn parse_pes(pes: &[u8]) -> Option<Pes<'_>> {
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return None;
    }
    // Streams without the optional header (padding, private 2...) carry no media here.
    let flags = pes[7];
    let header_len = usize::from(pes[8]);
    let payload = pes.get(9 + header_len..)?;
    let fields = &pes[9..9 + header_len];
    let pts = if flags & 0x80 != 0 {
        Some(timestamp(fields.get(..5)?)?)
    } else {
        None
    };
    let dts = if flags & 0xc0 == 0xc0 {
        Some(timestamp(fields.get(5..10)?)?)
    } else {
        None
    };
    Some((pts, dts, payload))
}

fn timestamp(b: &[u8]) -> Option<u64> {
    if b.len() < 5 {
        return None;
    }
    Some(
        (u64::from(b[0] >> 1 & 7) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1),
    )
}

/// An ADTS header (ISO 14496-3 §1.A.2.2).
struct Adts {
    object_type: u8,
    rate_index: u8,
    channels: u8,
    header_len: usize,
    frame_len: usize,
    blocks: u8,
}

impl Adts {
    fn parse(b: &[u8]) -> Option<Adts> {
        if b.len() < 7 || b[0] != 0xff || b[1] & 0xf0 != 0xf0 {
            return None;
        }
        let protection_absent = b[1] & 1 != 0;
        let header_len = if protection_absent { 7 } else { 9 };
        let frame_len =
            (usize::from(b[3] & 3) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
        if frame_len < header_len || frame_len > b.len() {
            return None;
        }
        Some(Adts {
            object_type: (b[2] >> 6) + 1,
            rate_index: (b[2] >> 2) & 0x0f,
            channels: ((b[2] & 1) << 2) | (b[3] >> 6),
            header_len,
            frame_len,
            blocks: (b[6] & 3) + 1,
        })
    }

    /// The AudioSpecificConfig this header implies.
    fn asc(&self) -> [u8; 2] {
        let v: u16 = (u16::from(self.object_type) << 11)
            | (u16::from(self.rate_index) << 7)
            | (u16::from(self.channels) << 3);
        v.to_be_bytes()
    }
}

fn stream_type_name(t: u8) -> &'static str {
    match t {
        0x01 | 0x02 => "MPEG-2 video",
        0x03 | 0x04 => "MPEG audio",
        0x11 => "AAC in LATM",
        0x06 => "private data (Opus, AC-3, subtitles...)",
        0x15 => "metadata",
        0x81 => "AC-3",
        _ => "unknown",
    }
}

/// CRC-32/MPEG-2 (a section including its CRC yields 0).
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_widen_across_the_wrap() {
        let mut u = Unwrapper::default();
        let wrap = 1i64 << 33;
        assert_eq!(u.unwrap((wrap - 3000) as u64), wrap - 3000);
        assert_eq!(u.unwrap(0), wrap);
        assert_eq!(u.unwrap(3000), wrap + 3000);
        // A little backwards stays backwards (B-frames, audio behind video).
        assert_eq!(u.unwrap((wrap - 1000) as u64), wrap - 1000);
        assert_eq!(u.unwrap(6000), wrap + 6000);
    }

    #[test]
    fn crc_of_a_known_pat() {
        // ffmpeg's PAT: program 1 -> PMT PID 0x1000.
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1,
            0x04, 0xb2,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0);
    }

    #[test]
    fn adts_header_to_asc() {
        // AAC-LC, 48 kHz (index 3), stereo, 7-byte header, 10-byte frame.
        let h = [0xff, 0xf1, 0x4c, 0x80, 0x01, 0x5f, 0xfc, 1, 2, 3];
        let a = Adts::parse(&h).unwrap();
        assert_eq!((a.header_len, a.frame_len, a.blocks), (7, 10, 1));
        assert_eq!(a.asc(), [0x11, 0x90]);
    }
}
