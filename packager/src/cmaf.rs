//! CMAF box writing: the init segment (`ftyp` + `moov` with `mvex`) and fragments
//! (`moof` + `mdat`), byte for byte as ISO 14496-12 and the CMAF rules (LLHLS-RULES §6) want.
//!
//! Our own writer rather than `mp4`, which cannot write fragmented MP4 at all: `mp4-atom` could,
//! but it stays out of this path so the tests can use it as an independent parser.

use bytes::Bytes;

use crate::codec::CodecConfig;

/// Sample flags of a sync sample (depends_on = 2, non_sync = 0), rule 69.
pub const SYNC_FLAGS: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample (depends_on = 1, non_sync = 1), rule 69.
pub const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// One sample ready to be written into a fragment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Duration in the track timescale.
    pub duration: u32,
    /// Composition offset (PTS - DTS) in the track timescale; signed (trun v1).
    pub cts_offset: i32,
    /// Sync sample?
    pub sync: bool,
    /// Payload (length-prefixed NAL units, OBUs, or an audio frame).
    pub data: Bytes,
}

/// One track's run of samples in a fragment.
#[derive(Debug, Clone)]
pub struct TrackRun<'a> {
    /// Track id (matches the init segment).
    pub track_id: u32,
    /// tfdt baseMediaDecodeTime: DTS of the first sample in the track timescale.
    pub base_dts: u64,
    /// True for video (per-sample flags and composition offsets are written).
    pub video: bool,
    /// The samples, in decode order.
    pub samples: &'a [Sample],
}

/// What the init segment needs to know about a track.
#[derive(Debug, Clone)]
pub struct InitTrack<'a> {
    /// Track id.
    pub track_id: u32,
    /// Media timescale.
    pub timescale: u32,
    /// Codec configuration.
    pub codec: &'a CodecConfig,
}

struct W {
    buf: Vec<u8>,
    stack: Vec<usize>,
}

impl W {
    fn with_capacity(n: usize) -> Self {
        W {
            buf: Vec::with_capacity(n),
            stack: Vec::new(),
        }
    }
    fn open(&mut self, fourcc: &[u8; 4]) {
        self.stack.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(fourcc);
    }
    fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) {
        self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0xff_ffff));
    }
    fn close(&mut self) {
        let start = self.stack.pop().expect("close() matches an open()");
        let size = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }
}

/// Writes the init segment for `tracks` (rule 65: iso6/cmfc brands, mvex/trex, no samples).
pub fn init_segment(tracks: &[InitTrack<'_>]) -> Bytes {
    let mut w = W::with_capacity(1024);
    w.open(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41"] {
        w.bytes(brand);
    }
    w.close();

    w.open(b"moov");
    w.open_full(b"mvhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(1000);
    w.u32(0);
    w.u32(0x0001_0000);
    w.u16(0x0100);
    w.zeros(10);
    w.matrix();
    w.zeros(24);
    w.u32(tracks.iter().map(|t| t.track_id).max().unwrap_or(0) + 1);
    w.close();

    for t in tracks {
        let video = matches!(t.codec.kind(), crate::media::TrackKind::Video);
        let (width, height) = t.codec.resolution();
        w.open(b"trak");
        w.open_full(b"tkhd", 0, 3);
        w.u32(0);
        w.u32(0);
        w.u32(t.track_id);
        w.u32(0);
        w.u32(0);
        w.zeros(8);
        w.u16(0);
        w.u16(0);
        w.u16(if video { 0 } else { 0x0100 });
        w.u16(0);
        w.matrix();
        w.u32(width << 16);
        w.u32(height << 16);
        w.close();

        w.open(b"mdia");
        w.open_full(b"mdhd", 0, 0);
        w.u32(0);
        w.u32(0);
        w.u32(t.timescale);
        w.u32(0);
        w.u16(0x55c4); // "und"
        w.u16(0);
        w.close();
        w.open_full(b"hdlr", 0, 0);
        w.u32(0);
        w.bytes(if video { b"vide" } else { b"soun" });
        w.zeros(12);
        w.bytes(if video {
            b"llhls video\0"
        } else {
            b"llhls audio\0"
        });
        w.close();

        w.open(b"minf");
        if video {
            w.open_full(b"vmhd", 0, 1);
            w.zeros(8);
        } else {
            w.open_full(b"smhd", 0, 0);
            w.zeros(4);
        }
        w.close();
        w.open(b"dinf");
        w.open_full(b"dref", 0, 0);
        w.u32(1);
        w.open_full(b"url ", 0, 1);
        w.close();
        w.close();
        w.close();
        w.open(b"stbl");
        w.open_full(b"stsd", 0, 0);
        w.u32(1);
        sample_entry(&mut w, t.codec);
        w.close();
        for fourcc in [b"stts", b"stsc"] {
            w.open_full(fourcc, 0, 0);
            w.u32(0);
            w.close();
        }
        w.open_full(b"stsz", 0, 0);
        w.u32(0);
        w.u32(0);
        w.close();
        w.open_full(b"stco", 0, 0);
        w.u32(0);
        w.close();
        w.close(); // stbl
        w.close(); // minf
        w.close(); // mdia
        w.close(); // trak
    }

    w.open(b"mvex");
    for t in tracks {
        w.open_full(b"trex", 0, 0);
        w.u32(t.track_id);
        w.u32(1);
        w.u32(0);
        w.u32(0);
        w.u32(0);
        w.close();
    }
    w.close();
    w.close(); // moov
    Bytes::from(w.buf)
}

fn visual_entry_head(w: &mut W, fourcc: &[u8; 4], width: u32, height: u32) {
    w.open(fourcc);
    w.zeros(6);
    w.u16(1);
    w.zeros(16);
    w.u16(width.min(0xffff) as u16);
    w.u16(height.min(0xffff) as u16);
    w.u32(0x0048_0000);
    w.u32(0x0048_0000);
    w.u32(0);
    w.u16(1);
    w.zeros(32);
    w.u16(0x0018);
    w.u16(0xffff);
}

fn audio_entry_head(w: &mut W, fourcc: &[u8; 4], channels: u8, rate: u32) {
    w.open(fourcc);
    w.zeros(6);
    w.u16(1);
    w.zeros(8);
    w.u16(u16::from(channels));
    w.u16(16);
    w.u16(0);
    w.u16(0);
    w.u32(if rate <= 0xffff { rate << 16 } else { 0 });
}

fn sample_entry(w: &mut W, codec: &CodecConfig) {
    match codec {
        CodecConfig::H264(c) => {
            visual_entry_head(w, b"avc1", c.width, c.height);
            w.open(b"avcC");
            w.bytes(&c.to_avcc());
            w.close();
            if let Some((h, v)) = c.sar {
                w.open(b"pasp");
                w.u32(u32::from(h));
                w.u32(u32::from(v));
                w.close();
            }
            w.close();
        }
        CodecConfig::Hevc(c) => {
            visual_entry_head(w, b"hvc1", c.width, c.height);
            w.open(b"hvcC");
            w.bytes(&c.to_hvcc());
            w.close();
            w.close();
        }
        CodecConfig::Av1(c) => {
            visual_entry_head(w, b"av01", c.width, c.height);
            w.open(b"av1C");
            w.bytes(&c.record);
            w.close();
            w.close();
        }
        CodecConfig::Aac(c) => {
            audio_entry_head(w, b"mp4a", c.channels, c.sample_rate);
            w.open_full(b"esds", 0, 0);
            let dsi_len = c.asc.len();
            let dcd_len = 13 + 5 + dsi_len;
            let es_len = 3 + 5 + dcd_len + 5 + 1;
            descriptor_header(w, 0x03, es_len);
            w.u16(0);
            w.u8(0);
            descriptor_header(w, 0x04, dcd_len);
            w.u8(0x40);
            w.u8(0x15);
            w.bytes(&[0, 0, 0]);
            w.u32(0);
            w.u32(0);
            descriptor_header(w, 0x05, dsi_len);
            w.bytes(&c.asc);
            descriptor_header(w, 0x06, 1);
            w.u8(2);
            w.close();
            w.close();
        }
        CodecConfig::Opus(c) => {
            audio_entry_head(w, b"Opus", c.channels, 48_000);
            w.open(b"dOps");
            w.u8(0);
            w.u8(c.channels);
            w.u16(c.pre_skip);
            w.u32(c.input_sample_rate);
            w.u16(c.output_gain as u16);
            w.u8(c.mapping_family);
            if c.mapping_family != 0 {
                w.bytes(&c.mapping);
            }
            w.close();
            w.close();
        }
    }
}

/// Descriptor tag + 4-byte expandable size (always 4 bytes, as ffmpeg writes them).
fn descriptor_header(w: &mut W, tag: u8, len: usize) {
    w.u8(tag);
    let len = len as u32;
    w.u8(0x80 | ((len >> 21) & 0x7f) as u8);
    w.u8(0x80 | ((len >> 14) & 0x7f) as u8);
    w.u8(0x80 | ((len >> 7) & 0x7f) as u8);
    w.u8((len & 0x7f) as u8);
}

/// Writes one CMAF chunk: `moof` (mfhd, one traf per run: tfhd default-base-is-moof, tfdt v1,
/// trun v1) followed by one `mdat` holding every run's sample data in traf order (rules 66-71).
pub fn fragment(sequence: u32, runs: &[TrackRun<'_>]) -> Bytes {
    let data_len: usize = runs
        .iter()
        .flat_map(|r| r.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let mut w = W::with_capacity(
        data_len + 64 + runs.len() * 64 + 16 * runs.iter().map(|r| r.samples.len()).sum::<usize>(),
    );
    w.open(b"moof");
    w.open_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.close();
    let mut offset_fields = Vec::with_capacity(runs.len());
    for run in runs {
        w.open(b"traf");
        if run.video {
            w.open_full(b"tfhd", 0, 0x02_0000);
            w.u32(run.track_id);
        } else {
            // default-base-is-moof | default-sample-flags-present: every audio sample is sync.
            w.open_full(b"tfhd", 0, 0x02_0020);
            w.u32(run.track_id);
            w.u32(SYNC_FLAGS);
        }
        w.close();
        w.open_full(b"tfdt", 1, 0);
        w.u64(run.base_dts);
        w.close();
        let flags = if run.video {
            0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800
        } else {
            0x0001 | 0x0100 | 0x0200
        };
        w.open_full(b"trun", 1, flags);
        w.u32(run.samples.len() as u32);
        offset_fields.push(w.buf.len());
        w.u32(0);
        for s in run.samples {
            w.u32(s.duration);
            w.u32(s.data.len() as u32);
            if run.video {
                w.u32(if s.sync { SYNC_FLAGS } else { NON_SYNC_FLAGS });
                w.u32(s.cts_offset as u32);
            }
        }
        w.close();
        w.close();
    }
    w.close(); // moof
    let moof_len = w.buf.len();
    let mut offset = moof_len + 8;
    for (run, field) in runs.iter().zip(offset_fields) {
        w.buf[field..field + 4].copy_from_slice(&(offset as u32).to_be_bytes());
        offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    w.u32((data_len + 8) as u32);
    w.bytes(b"mdat");
    for run in runs {
        for s in run.samples {
            w.bytes(&s.data);
        }
    }
    Bytes::from(w.buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{AacConfig, AvcConfig};

    fn avc() -> CodecConfig {
        use crate::codec::h264_test_vectors::{PPS, SPS_720P};
        CodecConfig::H264(
            AvcConfig::from_parameter_sets(vec![SPS_720P.to_vec()], vec![PPS.to_vec()]).unwrap(),
        )
    }

    #[test]
    fn init_segment_parses_with_mp4_atom() {
        use mp4_atom::{Any, DecodeMaybe};
        let v = avc();
        let a = CodecConfig::Aac(AacConfig::lc(48000, 2).unwrap());
        let init = init_segment(&[
            InitTrack {
                track_id: 1,
                timescale: 90000,
                codec: &v,
            },
            InitTrack {
                track_id: 2,
                timescale: 48000,
                codec: &a,
            },
        ]);
        let mut buf = &init[..];
        let ftyp = Any::decode_maybe(&mut buf).unwrap().unwrap();
        assert!(matches!(ftyp, Any::Ftyp(ref f) if f.major_brand == b"iso6".into()));
        let moov = match Any::decode_maybe(&mut buf).unwrap().unwrap() {
            Any::Moov(m) => m,
            other => panic!("expected moov, got {other:?}"),
        };
        assert!(buf.is_empty());
        assert_eq!(moov.trak.len(), 2);
        let mvex = moov.mvex.expect("mvex present");
        assert_eq!(mvex.trex.len(), 2);
        let stsd = &moov.trak[0].mdia.minf.stbl.stsd;
        match &stsd.codecs[0] {
            mp4_atom::Codec::Avc1(avc1) => {
                assert_eq!((avc1.visual.width, avc1.visual.height), (1280, 720));
            }
            other => panic!("expected avc1, got {other:?}"),
        }
        assert!(matches!(
            moov.trak[1].mdia.minf.stbl.stsd.codecs[0],
            mp4_atom::Codec::Mp4a(_)
        ));
    }

    #[test]
    fn fragment_parses_with_mp4_atom() {
        use mp4_atom::{Any, DecodeMaybe};
        let samples = vec![
            Sample {
                duration: 3000,
                cts_offset: 3000,
                sync: true,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            },
            Sample {
                duration: 3000,
                cts_offset: -3000,
                sync: false,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x41, 0]),
            },
        ];
        let audio = vec![Sample {
            duration: 1024,
            cts_offset: 0,
            sync: true,
            data: Bytes::from_static(&[1, 2, 3]),
        }];
        let frag = fragment(
            7,
            &[
                TrackRun {
                    track_id: 1,
                    base_dts: 1 << 40,
                    video: true,
                    samples: &samples,
                },
                TrackRun {
                    track_id: 2,
                    base_dts: 5,
                    video: false,
                    samples: &audio,
                },
            ],
        );
        let mut buf = &frag[..];
        let moof = match Any::decode_maybe(&mut buf).unwrap().unwrap() {
            Any::Moof(m) => m,
            other => panic!("expected moof, got {other:?}"),
        };
        let moof_len = frag.len() - buf.len();
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(
            moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
            1 << 40
        );
        let trun = &moof.traf[0].trun[0];
        assert_eq!(trun.data_offset, Some(moof_len as i32 + 8));
        assert_eq!(trun.samples.get(1).unwrap().cts, Some(-3000));
        let trun_a = &moof.traf[1].trun[0];
        assert_eq!(trun_a.data_offset, Some(moof_len as i32 + 8 + 11));
        match Any::decode_maybe(&mut buf).unwrap().unwrap() {
            Any::Mdat(m) => assert_eq!(m.data.len(), 14),
            other => panic!("expected mdat, got {other:?}"),
        }
    }
}
