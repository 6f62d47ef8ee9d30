//! MPEG-2 transport stream demuxing without I/O: TS bytes in (any chunking), codec
//! configurations and frames out. What SRT publishers (and UDP/file sources) carry.
//!
//! - Packets: 188 bytes from a `0x47` sync byte; after a bad sync byte the demuxer searches
//!   for the next byte that starts two consecutive packets (counted in [`TsStats::resyncs`]).
//! - PSI: the PAT names the first program's PMT, the PMT names the streams. H.264
//!   (stream type `0x1B`), HEVC (`0x24`), AAC in ADTS (`0x0F`), AAC in LATM/LOAS (`0x11`) and
//!   Opus (`0x06` with the `Opus` registration descriptor) are demuxed (the first video and the
//!   first audio stream); other streams are reported once ([`TsEvent::Warning`]) and ignored,
//!   as are null packets and unknown PIDs. A PMT with a new version or new content (two
//!   encoders' output one after the other often both say version 0) replaces the stream set;
//!   a codec that changes comes out as a new [`TsEvent::Config`]. Sections must fit one packet
//!   and pass their CRC.
//! - PES: reassembled per PID from one payload-unit start to the next (or to the PES length
//!   when it is given: video PES usually have length 0). A continuity-counter jump drops
//!   the PES in progress on that PID ([`TsStats::cc_errors`]).
//! - Timestamps: the 33-bit PTS/DTS are widened across their wrap (one timeline for every
//!   PID, so audio and video stay aligned) and come out in 90 kHz ticks.
//! - H.264 and HEVC: Annex B access units become length-prefixed NAL units without parameter
//!   sets or access unit delimiters; new parameter sets come out as a [`TsEvent::Config`]
//!   before the frame.
//! - AAC: each ADTS frame becomes a raw AAC frame; its header gives the [`AacConfig`]. In
//!   LATM (ISO 14496-3 §1.7, LOAS sync layer): the StreamMuxConfig gives the configuration
//!   (one program, one layer, frame length type 0: what ffmpeg's `-mpegts_flags latm` and
//!   broadcast encoders write), each subframe's payload is one raw AAC frame.
//! - Opus (the Opus-in-TS mapping ffmpeg's muxer and broadcast encoders write): each packet
//!   after its `opus_control_header` becomes one frame; the extension descriptor gives the
//!   channel count (mono or stereo). The packager takes Opus as it is (fMP4 `Opus`), as for a
//!   WHIP publisher with `whip_audio = "opus"`.
//!
//! Nothing here panics on any input; malformed pieces are counted and dropped.

use std::collections::VecDeque;

use bytes::Bytes;
use llhls_packager::codec::{
    opus_packet_samples, split_annex_b, AacConfig, AvcConfig, CodecConfig, HevcConfig, OpusConfig,
};
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
    /// Frames the end of the input cut short, dropped (see [`TsDemuxer::flush`]).
    pub truncated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    H264,
    Hevc,
    AdtsAac,
    LatmAac,
    /// Opus with this many channels (1 or 2).
    Opus(u8),
}

impl Kind {
    fn video(self) -> bool {
        matches!(self, Kind::H264 | Kind::Hevc)
    }
}

/// What a LATM StreamMuxConfig said (for the frames that reuse it).
#[derive(Debug, Clone, PartialEq)]
struct LatmConfig {
    config: CodecConfig,
    /// Subframes (raw AAC frames) in each AudioMuxElement.
    subframes: u32,
}

#[derive(Debug)]
struct Es {
    pid: u16,
    kind: Kind,
    /// The continuity counter of the last packet with payload.
    cc: Option<u8>,
    /// The PES being reassembled (from its header on), if any.
    pes: Option<Vec<u8>>,
    /// The last packet added to `pes` was full (184 bytes of payload, no adaptation field).
    last_full: bool,
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
    /// The current PMT's version and CRC (a new either is a new stream set).
    pmt_version: Option<(u8, u32)>,
    latm: Option<LatmConfig>,
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
        let a = self.streams.iter().any(|s| !s.kind.video());
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

    /// Ends the input: the PES in progress on each PID ends here. One that is visibly cut
    /// short is dropped with a warning ([`TsStats::truncated`]), never passed on as a whole
    /// frame: a PES shorter than its PES_packet_length, or a video PES of unbounded length
    /// whose last packet was full. A PES must end at a packet's end, so muxers fill the last
    /// packet of each PES with adaptation-field stuffing (unless the data fits it exactly,
    /// about one PES in 184, or a PCR took the room); a publisher that drops what it has not
    /// sent when it closes (ffmpeg over SRT with libsrt's default linger of 0) cuts the stream
    /// at a packet boundary, inside a PES, where packets are full.
    pub fn flush(&mut self) {
        for i in 0..self.streams.len() {
            self.end_pes(i);
        }
    }

    /// The input for stream `i` ends: its PES in progress ends here (see [`TsDemuxer::flush`]).
    fn end_pes(&mut self, i: usize) {
        let Some(pes) = self.streams[i].pes.take() else {
            return;
        };
        let kind = self.streams[i].kind;
        let declared = pes
            .get(4..6)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
        let cut = match declared {
            // (A PES that reaches its length is passed on as soon as it does.)
            Some(len) if len > 0 => pes.len() < 6 + len,
            _ => kind.video() && self.streams[i].last_full,
        };
        if cut {
            self.stats.truncated += 1;
            let what = if kind.video() { "video" } else { "audio" };
            self.warn(format!(
                "the input ended inside a {what} frame (PID {}, {} bytes): the incomplete frame is dropped; a publisher that closes without sending everything cuts its last frame (ffmpeg: add &linger=2 to the srt:// URL)",
                self.streams[i].pid,
                pes.len()
            ));
            return;
        }
        self.pes(kind, &pes);
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
        es.last_full = payload.len() == PACKET - 4;
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
        let crc = u32::from_be_bytes([
            s[s.len() - 4],
            s[s.len() - 3],
            s[s.len() - 2],
            s[s.len() - 1],
        ]);
        if self.pmt_version == Some((version, crc)) {
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
            let descriptors = body.get(i + 5..i + 5 + es_len).unwrap_or(&[]);
            i += 5 + es_len;
            let kind = match stream_type {
                0x1b => Kind::H264,
                0x24 => Kind::Hevc,
                0x0f => Kind::AdtsAac,
                0x11 => Kind::LatmAac,
                0x06 if is_opus(descriptors) => match opus_channels(descriptors) {
                    Some(c) => Kind::Opus(c),
                    None => {
                        self.warn(
                            "an Opus stream with more than two channels (or no channel configuration) is not supported and is ignored".into(),
                        );
                        continue;
                    }
                },
                t => {
                    unsupported.push(t);
                    continue;
                }
            };
            // One video and one audio stream: the first of each.
            if !streams.iter().any(|s: &Es| s.kind.video() == kind.video()) {
                let old = self.streams.iter().find(|s| s.pid == pid && s.kind == kind);
                streams.push(Es {
                    pid,
                    kind,
                    cc: old.and_then(|o| o.cc),
                    pes: None,
                    last_full: false,
                });
            }
        }
        // Keep a PES in progress on a PID that stays with its codec; one on a stream that
        // goes (or changes codec) ends here, before the new configuration: the PMT marks
        // the end of the old program (an encoder's output switching from H.264 to HEVC).
        for s in &mut streams {
            if let Some(old) = self
                .streams
                .iter_mut()
                .find(|o| o.pid == s.pid && o.kind == s.kind)
            {
                s.pes = old.pes.take();
                s.last_full = old.last_full;
            }
        }
        for i in 0..self.streams.len() {
            self.end_pes(i);
        }
        self.pmt_version = Some((version, crc));
        self.streams = streams;
        for t in unsupported {
            if !self.unsupported.contains(&t) {
                self.unsupported.push(t);
                self.out.push_back(TsEvent::Warning(format!(
                    "stream type 0x{t:02x} ({}) is not supported and is ignored; send H.264 or HEVC video and AAC or Opus audio",
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
            Kind::LatmAac => self.loas(pts, data),
            Kind::Opus(channels) => self.opus(pts, channels, data),
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
            self.audio_config(config);
            let t = pts.saturating_add(llhls_packager::media::rescale(samples, rate, 90_000));
            samples += i64::from(frame_length);
            self.audio_frame(t, frame);
            data = &data[h.frame_len..];
        }
    }

    /// A configuration for the audio track: out as an event if it is new.
    fn audio_config(&mut self, config: CodecConfig) {
        if self.audio.as_ref() != Some(&config) {
            self.audio = Some(config.clone());
            self.out.push_back(TsEvent::Config(config));
        }
    }

    fn audio_frame(&mut self, t: i64, data: &[u8]) {
        self.emit(Frame {
            track: AUDIO,
            dts: MediaTime::new(t, Timescale::MPEG),
            pts: MediaTime::new(t, Timescale::MPEG),
            keyframe: true,
            data: Bytes::copy_from_slice(data),
        });
    }

    /// LOAS frames (AudioSyncStream): each an AudioMuxElement with its configuration or
    /// reusing the last one.
    fn loas(&mut self, pts: i64, mut data: &[u8]) {
        let mut samples: i64 = 0;
        while !data.is_empty() {
            if data.len() < 3 || data[0] != 0x56 || data[1] & 0xe0 != 0xe0 {
                self.error("an AAC LATM frame without its LOAS sync word");
                return;
            }
            let len = (usize::from(data[1] & 0x1f) << 8) | usize::from(data[2]);
            let Some(element) = data.get(3..3 + len) else {
                self.error("a LOAS frame cut short");
                return;
            };
            data = &data[3 + len..];
            let frames = match audio_mux_element(element, self.latm.as_ref()) {
                Ok((config, frames)) => {
                    if let Some(c) = config {
                        self.audio_config(c.config.clone());
                        self.latm = Some(c);
                    }
                    frames
                }
                Err(e) => {
                    self.error(&format!("an AAC LATM frame: {e}"));
                    continue;
                }
            };
            let (rate, frame_length) = match &self.audio {
                Some(CodecConfig::Aac(c)) => (c.sample_rate, c.frame_length),
                _ => continue,
            };
            for f in frames {
                let t = pts.saturating_add(llhls_packager::media::rescale(samples, rate, 90_000));
                samples += i64::from(frame_length);
                self.audio_frame(t, &f);
            }
        }
    }

    /// Opus packets, each behind its `opus_control_header`.
    fn opus(&mut self, pts: i64, channels: u8, mut data: &[u8]) {
        self.audio_config(CodecConfig::Opus(OpusConfig::simple(channels)));
        let mut samples: i64 = 0;
        while !data.is_empty() {
            let Some((packet, rest)) = opus_packet(data) else {
                self.error("an Opus packet with a bad or cut-short control header");
                return;
            };
            data = rest;
            let Some(n) = opus_packet_samples(packet) else {
                self.error("an invalid Opus packet");
                continue;
            };
            let t = pts.saturating_add(llhls_packager::media::rescale(samples, 48_000, 90_000));
            samples += i64::from(n);
            self.audio_frame(t, packet);
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

/// Does a PMT entry's descriptor loop carry the `Opus` registration descriptor?
fn is_opus(descriptors: &[u8]) -> bool {
    descriptor_list(descriptors).any(|(tag, body)| tag == 0x05 && body == b"Opus")
}

/// The channel count of an Opus stream from its extension descriptor (tag 0x7F, extension
/// tag 0x80, channel_config_code): mono or stereo, `None` for anything else.
fn opus_channels(descriptors: &[u8]) -> Option<u8> {
    let code = descriptor_list(descriptors)
        .find(|(tag, body)| *tag == 0x7f && body.len() >= 2 && body[0] == 0x80)
        .map(|(_, body)| body[1])?;
    match code {
        // 0 is "two channels, no Opus-specific layout" (dual mono).
        0 | 2 => Some(2),
        1 => Some(1),
        _ => None,
    }
}

/// The (tag, body) of each descriptor in a descriptor loop, up to the first that does not fit.
fn descriptor_list(mut d: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = d.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let body = rest.get(..usize::from(len))?;
        d = &rest[usize::from(len)..];
        Some((tag, body))
    })
}

/// One Opus packet after its `opus_control_header` (11-bit prefix 0x3FF, trim and extension
/// flags, the size as a run of 0xFF bytes plus one, the trims and extension), and what
/// follows it; `None` if the header is wrong or the packet is cut short.
fn opus_packet(d: &[u8]) -> Option<(&[u8], &[u8])> {
    if d.len() < 2 || d[0] != 0x7f || d[1] & 0xe0 != 0xe0 {
        return None;
    }
    let flags = d[1];
    let mut i = 2;
    let mut size = 0usize;
    loop {
        let b = *d.get(i)?;
        i += 1;
        size += usize::from(b);
        if b != 0xff {
            break;
        }
    }
    if flags & 0x10 != 0 {
        i += 2; // start_trim
    }
    if flags & 0x08 != 0 {
        i += 2; // end_trim
    }
    if flags & 0x04 != 0 {
        i += 1 + usize::from(*d.get(i)?); // control_extension
    }
    let packet = d.get(i..i.checked_add(size)?)?;
    Some((packet, &d[i + size..]))
}

/// A big-endian bit reader over a byte slice; reads past the end are `None`.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn u(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.pos = self.pos.checked_add(n)?;
        (self.pos <= self.data.len() * 8).then_some(())
    }

    /// LatmGetValue (ISO 14496-3 §1.7.3): 2 bits of byte count - 1, then the bytes.
    fn latm_value(&mut self) -> Option<u32> {
        let n = self.u(2)?;
        let mut v = 0u32;
        for _ in 0..=n {
            v = (v << 8) | self.u(8)?;
        }
        Some(v)
    }

    /// The bits from `start` to the current position, left-aligned in bytes.
    fn copy_from(&self, start: usize) -> Vec<u8> {
        let mut r = Bits {
            data: self.data,
            pos: start,
        };
        let mut out = Vec::new();
        while r.pos < self.pos {
            let n = (self.pos - r.pos).min(8) as u32;
            let v = r.u(n).unwrap_or(0);
            out.push((v << (8 - n)) as u8);
        }
        out
    }
}

/// Reads past an AudioSpecificConfig (ISO 14496-3 §1.6.2.1) of the AAC object types that
/// carry a GASpecificConfig, as LATM embeds it (unaligned, length not given).
fn skip_asc(r: &mut Bits) -> Option<()> {
    fn object_type(r: &mut Bits) -> Option<u32> {
        let t = r.u(5)?;
        if t == 31 {
            Some(32 + r.u(6)?)
        } else {
            Some(t)
        }
    }
    fn rate(r: &mut Bits) -> Option<()> {
        if r.u(4)? == 15 {
            r.u(24)?;
        }
        Some(())
    }
    let mut ot = object_type(r)?;
    rate(r)?;
    let channels = r.u(4)?;
    if ot == 5 || ot == 29 {
        // Explicit SBR/PS signalling: the extension rate, then the core object type.
        rate(r)?;
        ot = object_type(r)?;
        if ot == 22 {
            r.u(4)?;
        }
    }
    if !matches!(ot, 1..=4 | 6 | 7 | 17 | 19..=23) || channels == 0 {
        return None;
    }
    // GASpecificConfig.
    r.u(1)?; // frameLengthFlag
    if r.u(1)? == 1 {
        r.u(14)?; // coreCoderDelay
    }
    let extension = r.u(1)?;
    if ot == 6 || ot == 20 {
        r.u(3)?; // layerNr
    }
    if extension == 1 {
        if ot == 22 {
            r.u(16)?;
        }
        if matches!(ot, 17 | 19 | 20 | 23) {
            r.u(3)?;
        }
        r.u(1)?;
    }
    if matches!(ot, 17 | 19..=27) && r.u(2)? >= 2 {
        return None; // epConfig 2 and 3 carry error protection data
    }
    Some(())
}

/// A new LATM configuration (if the element carries one) and the raw AAC frames.
type MuxElement = (Option<LatmConfig>, Vec<Vec<u8>>);

/// One AudioMuxElement with muxConfigPresent (ISO 14496-3 §1.7.3, what LOAS carries): its
/// StreamMuxConfig, unless it reuses `last`, and its payloads. Only one program with one
/// layer and frame length type 0 (byte counts), what AAC encoders write.
fn audio_mux_element(e: &[u8], last: Option<&LatmConfig>) -> Result<MuxElement, String> {
    let mut r = Bits { data: e, pos: 0 };
    let short = || "cut short".to_string();
    let mut new = None;
    let current = if r.u(1).ok_or_else(short)? == 1 {
        // useSameStreamMux: until the first configuration, nothing can be decoded.
        match last {
            Some(c) => c.clone(),
            None => return Ok((None, Vec::new())),
        }
    } else {
        let version = r.u(1).ok_or_else(short)?;
        if version == 1 {
            if r.u(1).ok_or_else(short)? == 1 {
                return Err("audioMuxVersionA 1 is not supported".into());
            }
            r.latm_value().ok_or_else(short)?; // taraBufferFullness
        }
        r.u(1).ok_or_else(short)?; // allStreamsSameTimeFraming
        let subframes = r.u(6).ok_or_else(short)? + 1;
        let programs = r.u(4).ok_or_else(short)? + 1;
        let layers = r.u(3).ok_or_else(short)? + 1;
        if programs != 1 || layers != 1 {
            return Err(format!(
                "{programs} programs with {layers} layers (one of each is supported)"
            ));
        }
        let (start, end) = if version == 1 {
            let len = r.latm_value().ok_or_else(short)? as usize;
            let start = r.pos;
            let mut inner = Bits {
                data: e,
                pos: start,
            };
            skip_asc(&mut inner).ok_or("an unsupported AudioSpecificConfig")?;
            r.skip(len).ok_or_else(short)?;
            (start, inner.pos.min(r.pos))
        } else {
            let start = r.pos;
            skip_asc(&mut r).ok_or("an unsupported AudioSpecificConfig")?;
            (start, r.pos)
        };
        let asc = Bits { data: e, pos: end }.copy_from(start);
        let config = AacConfig::from_asc(&asc).map_err(|e| e.to_string())?;
        let frame_length_type = r.u(3).ok_or_else(short)?;
        if frame_length_type != 0 {
            return Err(format!(
                "frameLengthType {frame_length_type} is not supported"
            ));
        }
        r.u(8).ok_or_else(short)?; // latmBufferFullness
        if r.u(1).ok_or_else(short)? == 1 {
            // otherDataPresent
            if version == 1 {
                r.latm_value().ok_or_else(short)?;
            } else {
                while r.u(1).ok_or_else(short)? == 1 {
                    r.u(8).ok_or_else(short)?;
                }
                r.u(8).ok_or_else(short)?;
            }
        }
        if r.u(1).ok_or_else(short)? == 1 {
            r.u(8).ok_or_else(short)?; // crcCheckSum
        }
        let c = LatmConfig {
            config: CodecConfig::Aac(config),
            subframes,
        };
        new = Some(c.clone());
        c
    };
    let mut frames = Vec::new();
    for _ in 0..current.subframes {
        // PayloadLengthInfo: byte counts of 255 continue.
        let mut len = 0usize;
        loop {
            let b = r.u(8).ok_or_else(short)?;
            len += b as usize;
            if b != 255 {
                break;
            }
        }
        // PayloadMux: the frame's bytes, not aligned to a byte after a configuration.
        if len > e.len() {
            return Err(short());
        }
        let start = r.pos;
        r.skip(len * 8).ok_or_else(short)?;
        frames.push(r.copy_from(start));
    }
    Ok((new, frames))
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
    fn opus_control_header() {
        // ffmpeg's first packet: start trim (312 samples), size 3.
        let d = [
            0x7f, 0xf0, 3, 0x01, 0x38, 0xfc, 0xff, 0xfe, 0x7f, 0xe0, 1, 0xf8,
        ];
        let (p, rest) = opus_packet(&d).unwrap();
        assert_eq!(p, [0xfc, 0xff, 0xfe]);
        let (p, rest) = opus_packet(rest).unwrap();
        assert_eq!((p, rest), (&[0xf8][..], &[][..]));
        // A size of 255 + 2, an end trim and a 1-byte extension.
        let mut d = vec![0x7f, 0xec, 0xff, 2, 0, 9, 1, 0xaa];
        d.extend(std::iter::repeat_n(0xf8, 257));
        let (p, rest) = opus_packet(&d).unwrap();
        assert_eq!((p.len(), rest.len()), (257, 0));
        // Wrong prefix, cut short.
        assert!(opus_packet(&[0x7f, 0x00, 1, 0]).is_none());
        assert!(opus_packet(&d[..100]).is_none());
        assert!(opus_packet(&[0x7f, 0xe0, 0xff]).is_none());
    }

    #[test]
    fn opus_descriptors() {
        let d = [0x05, 0x04, b'O', b'p', b'u', b's', 0x7f, 0x02, 0x80, 0x02];
        assert!(is_opus(&d));
        assert_eq!(opus_channels(&d), Some(2));
        assert_eq!(opus_channels(&[0x7f, 0x02, 0x80, 0x01]), Some(1));
        // 5.1 (code 6) is refused; no descriptor, no channels; a length past the end stops.
        assert_eq!(opus_channels(&[0x7f, 0x02, 0x80, 0x06]), None);
        assert!(!is_opus(&[0x05, 0x04, b'A', b'C', b'-', b'3']));
        assert!(!is_opus(&[0x05, 0x09, b'O', b'p', b'u', b's']));
    }

    #[test]
    fn latm_stream_mux_config() {
        // What ffmpeg writes: a configuration (AAC-LC 44.1 kHz stereo, frame length type 0,
        // buffer fullness 0xFF), then one 2-byte payload at a bit offset of 45 + 8.
        // Bits: 0 0 1 000000 0000 000 | 00010 0100 0010 000 | 000 11111111 0 0 | 00000010 | payload
        let mut w = BitWriter::default();
        for (v, n) in [(0, 1), (0, 1), (1, 1), (0, 6), (0, 4), (0, 3)] {
            w.put(v, n);
        }
        for (v, n) in [(2, 5), (4, 4), (2, 4), (0, 3)] {
            w.put(v, n);
        }
        for (v, n) in [
            (0, 3),
            (0xff, 8),
            (0, 1),
            (0, 1),
            (2, 8),
            (0xab, 8),
            (0xcd, 8),
        ] {
            w.put(v, n);
        }
        let e = w.bytes();
        let (config, frames) = audio_mux_element(&e, None).unwrap();
        let config = config.expect("a configuration");
        let CodecConfig::Aac(aac) = &config.config else {
            panic!("{config:?}")
        };
        assert_eq!((aac.sample_rate, aac.channels), (44_100, 2));
        assert_eq!(frames, vec![vec![0xab, 0xcd]]);
        // useSameStreamMux: nothing before a configuration, the payload after one.
        let mut w = BitWriter::default();
        for (v, n) in [(1, 1), (1, 8), (0x5a, 8)] {
            w.put(v, n);
        }
        let e = w.bytes();
        assert_eq!(audio_mux_element(&e, None).unwrap(), (None, vec![]));
        assert_eq!(
            audio_mux_element(&e, Some(&config)).unwrap(),
            (None, vec![vec![0x5a]])
        );
        // Cut short, or a length longer than the element: errors, not panics.
        assert!(audio_mux_element(&e[..1], Some(&config)).is_err());
        let mut w = BitWriter::default();
        for (v, n) in [(1, 1), (200, 8), (0x5a, 8)] {
            w.put(v, n);
        }
        assert!(audio_mux_element(&w.bytes(), Some(&config)).is_err());
    }

    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn put(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
        }

        fn bytes(&self) -> Vec<u8> {
            self.bits
                .chunks(8)
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u8, |b, (i, &bit)| b | (u8::from(bit) << (7 - i)))
                })
                .collect()
        }
    }

    /// A transport stream of one H.264 stream (PID 0x100): PAT, PMT, then each access unit
    /// as one PES of unbounded length (as ffmpeg writes video), its last packet filled with
    /// adaptation-field stuffing.
    fn h264_ts(frames: &[Vec<u8>]) -> Vec<u8> {
        fn section(mut body: Vec<u8>) -> Vec<u8> {
            let crc = crc32_mpeg2(&body);
            body.extend_from_slice(&crc.to_be_bytes());
            body
        }
        fn psi(pid: u16, section: &[u8]) -> Vec<u8> {
            let mut p = vec![0x47, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0];
            p.extend_from_slice(section);
            p.resize(PACKET, 0xff);
            p
        }
        let pat = section(vec![
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00,
        ]);
        let pmt = section(vec![
            0x02, 0xb0, 0x12, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1,
            0x00, 0xf0, 0x00,
        ]);
        let mut ts = psi(0, &pat);
        ts.extend(psi(0x1000, &pmt));
        let mut cc = 0u8;
        for (n, au) in frames.iter().enumerate() {
            let pts = 90_000 + 3_000 * n as u64;
            let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
            pes.extend_from_slice(&[
                0x21 | ((pts >> 29) & 0x0e) as u8,
                (pts >> 22) as u8,
                0x01 | (pts >> 14) as u8,
                (pts >> 7) as u8,
                0x01 | (pts << 1) as u8,
            ]);
            pes.extend_from_slice(au);
            for (i, chunk) in pes.chunks(PACKET - 4).enumerate() {
                let pusi = if i == 0 { 0x40 } else { 0 };
                let mut p = vec![0x47, pusi | 0x01, 0x00];
                if chunk.len() < PACKET - 4 {
                    // Stuffing: an adaptation field filling the rest of the packet.
                    let af = PACKET - 4 - chunk.len();
                    p.push(0x30 | cc);
                    p.push((af - 1) as u8);
                    if af > 1 {
                        p.push(0);
                        p.resize(4 + af, 0xff);
                    }
                } else {
                    p.push(0x10 | cc);
                }
                p.extend_from_slice(chunk);
                ts.extend(p);
                cc = (cc + 1) & 0x0f;
            }
        }
        ts
    }

    /// An Annex B access unit: AUD, SPS and PPS on keyframes, one slice of `len` bytes.
    fn access_unit(key: bool, len: usize) -> Vec<u8> {
        let CodecConfig::H264(avc) = llhls_packager::synth::video_track().codec else {
            unreachable!()
        };
        let mut au = vec![0, 0, 0, 1, 0x09, 0xf0];
        if key {
            for nal in [&avc.sps[0], &avc.pps[0]] {
                au.extend_from_slice(&[0, 0, 0, 1]);
                au.extend_from_slice(nal);
            }
        }
        au.extend_from_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }]);
        au.extend((0..len).map(|i| (i % 200 + 1) as u8));
        au
    }

    fn video_frames(d: &mut TsDemuxer) -> Vec<Frame> {
        std::iter::from_fn(|| d.poll_event())
            .filter_map(|e| match e {
                TsEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_end_of_the_input_completes_the_last_frame_unless_it_was_cut() {
        let frames = [access_unit(true, 900), access_unit(false, 700)];
        let ts = h264_ts(&frames);
        // Whole: the last PES (unbounded) ends at the end of the input, complete.
        let mut d = TsDemuxer::new();
        d.feed(&ts);
        assert_eq!(video_frames(&mut d).len(), 1, "the last PES is still open");
        d.flush();
        let out = video_frames(&mut d);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.len(), 4 + 1 + 700);
        assert_eq!(d.stats().truncated, 0);
        // Cut two packets before its end (a publisher that dropped its unsent tail): the
        // packets that arrived are full, the stuffing that ends a PES never came.
        let mut d = TsDemuxer::new();
        d.feed(&ts[..ts.len() - 2 * PACKET]);
        assert_eq!(video_frames(&mut d).len(), 1);
        d.flush();
        assert!(video_frames(&mut d).is_empty(), "the cut frame is dropped");
        assert_eq!(d.stats().truncated, 1);
        // A PES whose given length is not reached is cut too.
        let mut ts = ts;
        let second = ts
            .chunks(PACKET)
            .rposition(|p| p[1] & 0x40 != 0 && p[2] == 0x00)
            .unwrap();
        // Its PES_packet_length (after the 4-byte header): longer than what follows.
        ts[second * PACKET + 4 + 4..second * PACKET + 4 + 6]
            .copy_from_slice(&2000u16.to_be_bytes());
        let mut d = TsDemuxer::new();
        d.feed(&ts);
        d.flush();
        assert_eq!(video_frames(&mut d).len(), 1, "only the first frame");
        assert_eq!(d.stats().truncated, 1);
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
