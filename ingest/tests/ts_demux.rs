//! The TS demuxer fed what ffmpeg's MPEG-TS muxer writes (`fixtures/ffmpeg-h264-aac*.ts`):
//! whole, in odd-sized pieces, across the 33-bit timestamp wrap, and truncated, corrupted
//! or shuffled (which must never panic); Opus and AAC in LATM; one encoder's output after
//! another's (a codec change).

use llhls_ingest::tracks::{AUDIO, VIDEO};
use llhls_ingest::ts::{TsDemuxer, TsEvent, TsStats, PACKET};
use llhls_packager::{CodecConfig, Frame};

const PLAIN: &[u8] = include_bytes!("fixtures/ffmpeg-h264-aac.ts");
const WRAP: &[u8] = include_bytes!("fixtures/ffmpeg-h264-aac-wrap.ts");
const HEVC: &[u8] = include_bytes!("fixtures/ffmpeg-hevc-aac.ts");
const OPUS: &[u8] = include_bytes!("fixtures/ffmpeg-h264-opus.ts");
const LATM: &[u8] = include_bytes!("fixtures/ffmpeg-h264-latm.ts");

#[derive(Default)]
struct Run {
    configs: Vec<CodecConfig>,
    frames: Vec<Frame>,
    warnings: Vec<String>,
    stats: TsStats,
}

fn run(chunks: &mut dyn Iterator<Item = &[u8]>) -> Run {
    let mut d = TsDemuxer::new();
    let mut r = Run::default();
    let drain = |d: &mut TsDemuxer, r: &mut Run| {
        while let Some(ev) = d.poll_event() {
            match ev {
                TsEvent::Config(c) => r.configs.push(c),
                TsEvent::Frame(f) => r.frames.push(f),
                TsEvent::Warning(w) => r.warnings.push(w),
            }
        }
    };
    for c in chunks {
        d.feed(c);
        drain(&mut d, &mut r);
    }
    d.flush();
    drain(&mut d, &mut r);
    r.stats = d.stats();
    r
}

fn whole(data: &[u8]) -> Run {
    run(&mut std::iter::once(data))
}

fn video(r: &Run) -> Vec<&Frame> {
    r.frames.iter().filter(|f| f.track == VIDEO).collect()
}

fn audio(r: &Run) -> Vec<&Frame> {
    r.frames.iter().filter(|f| f.track == AUDIO).collect()
}

#[test]
fn ffmpeg_ts_whole() {
    let r = whole(PLAIN);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.stats.cc_errors, 0);
    assert_eq!(r.stats.errors, 0);
    assert_eq!(r.stats.resyncs, 0);
    assert_eq!(r.stats.packets as usize, PLAIN.len() / PACKET);
    // One H.264 and one AAC configuration, from the in-band SPS/PPS and the ADTS headers.
    assert_eq!(r.configs.len(), 2, "{:?}", r.configs);
    let avc = r.configs.iter().find_map(|c| match c {
        CodecConfig::H264(a) => Some(a),
        _ => None,
    });
    let avc = avc.expect("an H.264 configuration");
    assert_eq!((avc.width, avc.height), (320, 180));
    let aac = r.configs.iter().find_map(|c| match c {
        CodecConfig::Aac(a) => Some(a),
        _ => None,
    });
    let aac = aac.expect("an AAC configuration");
    assert_eq!(
        (aac.sample_rate, aac.channels, aac.object_type),
        (48_000, 1, 2)
    );

    // 2 s at 30 fps; a keyframe a second; the first frame is one.
    let v = video(&r);
    assert_eq!(v.len(), 60);
    assert!(v[0].keyframe);
    assert_eq!(v.iter().filter(|f| f.keyframe).count(), 2);
    assert!(v[30].keyframe);
    // Decode order: DTS strictly increasing by 1/30 s, PTS never before DTS.
    for w in v.windows(2) {
        assert_eq!(w[1].dts.ticks - w[0].dts.ticks, 3000);
    }
    assert!(v.iter().all(|f| f.pts.ticks >= f.dts.ticks));
    // Samples are length-prefixed NAL units without parameter sets or delimiters.
    for f in &v {
        let nals = llhls_packager::codec::length_prefixed_nals(&f.data).unwrap();
        assert!(!nals.is_empty());
        assert!(nals.iter().all(|n| !matches!(n[0] & 0x1f, 7..=9)));
    }
    // Audio: 1024-sample frames at 48 kHz, 21.33 ms apart, raw (no ADTS header).
    let a = audio(&r);
    assert!((93..=95).contains(&a.len()), "{} audio frames", a.len());
    for w in a.windows(2) {
        let d = w[1].dts.ticks - w[0].dts.ticks;
        assert!((1919..=1921).contains(&d), "audio step {d}");
    }
    assert!(a
        .iter()
        .all(|f| f.data[0] != 0xff || f.data[1] & 0xf0 != 0xf0));
    // Audio and video start together (within a frame).
    assert!((a[0].dts.ticks - v[0].pts.ticks).abs() < 3000);
}

#[test]
fn any_chunking_gives_the_same_result() {
    let want = whole(PLAIN);
    for size in [1, 7, 187, 188, 189, 1316, 4096] {
        let got = run(&mut PLAIN.chunks(size));
        assert_eq!(got.frames, want.frames, "chunks of {size}");
        assert_eq!(got.configs, want.configs, "chunks of {size}");
    }
}

#[test]
fn timestamps_widen_past_the_33_bit_wrap() {
    let r = whole(WRAP);
    let v = video(&r);
    assert_eq!(v.len(), 60);
    for w in v.windows(2) {
        assert_eq!(w[1].dts.ticks - w[0].dts.ticks, 3000);
    }
    let wrap = 1i64 << 33;
    assert!(
        v[0].dts.ticks < wrap && v[59].dts.ticks > wrap,
        "the clip crosses the wrap"
    );
    let a = audio(&r);
    for w in a.windows(2) {
        let d = w[1].dts.ticks - w[0].dts.ticks;
        assert!((1919..=1921).contains(&d), "audio step {d}");
    }
}

#[test]
fn lost_packets_are_counted_and_the_stream_goes_on() {
    // Drop every 50th packet: continuity errors, frames lost, never a panic; the frames
    // that do come out keep their order.
    let kept: Vec<u8> = PLAIN
        .chunks(PACKET)
        .enumerate()
        .filter(|(i, _)| i % 50 != 49)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let r = whole(&kept);
    assert!(r.stats.cc_errors > 0);
    let v = video(&r);
    assert!(!v.is_empty() && v.len() < 60);
    for w in v.windows(2) {
        assert!(w[1].dts.ticks > w[0].dts.ticks);
    }
}

#[test]
fn garbage_between_packets_resyncs() {
    let mut data = Vec::new();
    for (i, p) in PLAIN.chunks(PACKET).enumerate() {
        if i % 40 == 20 {
            data.extend_from_slice(b"\x47garbage\x00\x47");
        }
        data.extend_from_slice(p);
    }
    let r = whole(&data);
    assert!(r.stats.resyncs > 0);
    // Nothing was lost: every packet is found again.
    assert_eq!(r.stats.packets as usize, PLAIN.len() / PACKET);
    assert_eq!(video(&r).len(), 60);
    assert_eq!(r.stats.cc_errors, 0);
}

#[test]
fn null_packets_and_unknown_pids_are_ignored() {
    let mut null = [0xffu8; PACKET];
    null[..4].copy_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
    let mut other = [0u8; PACKET];
    other[..4].copy_from_slice(&[0x47, 0x40, 0x42, 0x10]);
    let mut data = Vec::new();
    for p in PLAIN.chunks(PACKET) {
        data.extend_from_slice(p);
        data.extend_from_slice(&null);
        data.extend_from_slice(&other);
    }
    let r = whole(&data);
    let want = whole(PLAIN);
    assert_eq!(r.frames, want.frames);
    assert_eq!(r.stats.errors, 0);
}

#[test]
fn truncated_input_never_panics() {
    for end in (0..PLAIN.len()).step_by(97) {
        let r = whole(&PLAIN[..end]);
        assert!(r.frames.len() <= 60 + 95);
    }
}

#[test]
fn corrupted_input_never_panics() {
    // Deterministic pseudo-random byte flips, over many seeds.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..300 {
        let mut data = [PLAIN, OPUS, LATM][i % 3].to_vec();
        let flips = 1 + next() % 64;
        for _ in 0..flips {
            let i = (next() % data.len() as u64) as usize;
            data[i] = next() as u8;
        }
        let _ = whole(&data);
    }
    // Lying lengths: PES lengths and adaptation field lengths set to their maximum.
    let mut data = PLAIN.to_vec();
    for p in data.chunks_mut(PACKET) {
        if p[3] & 0x20 != 0 {
            p[4] = 0xff;
        }
    }
    let _ = whole(&data);
    let mut data = PLAIN.to_vec();
    for i in 0..data.len() - 6 {
        if data[i..i + 3] == [0, 0, 1] && data[i + 3] >= 0xc0 {
            data[i + 4] = 0xff;
            data[i + 5] = 0xff;
        }
    }
    let _ = whole(&data);
}

#[test]
fn srt_publish_starts_with_both_tracks_and_interleaves_by_dts() {
    use llhls_ingest::srt::publish::{Output, TsPublish};
    // 1316-byte messages, as SRT delivers them.
    let mut p = TsPublish::new();
    let mut outs = Vec::new();
    for chunk in PLAIN.chunks(1316) {
        p.handle_input(chunk);
        while let Some(o) = p.poll_output() {
            outs.push(o);
        }
    }
    p.finish();
    while let Some(o) = p.poll_output() {
        outs.push(o);
    }
    let Some(Output::Start(tracks)) = outs.first() else {
        panic!("starts first: {:?}", outs.first());
    };
    assert_eq!(tracks.len(), 2);
    let frames: Vec<&Frame> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    // Every frame comes out, video from the first keyframe, audio from the first picture.
    assert_eq!(frames.iter().filter(|f| f.track == VIDEO).count(), 60);
    assert!(frames.iter().filter(|f| f.track == AUDIO).count() >= 93);
    assert!(frames[0].track == VIDEO && frames[0].keyframe);
    // In DTS order across the tracks (ffmpeg sends audio in bursts, late).
    for w in frames.windows(2) {
        assert!(
            w[1].dts.ticks >= w[0].dts.ticks,
            "{:?} then {:?}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn hevc_in_ts() {
    let r = whole(HEVC);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let hevc = r.configs.iter().find_map(|c| match c {
        CodecConfig::Hevc(h) => Some(h),
        _ => None,
    });
    let hevc = hevc.expect("an HEVC configuration from the in-band VPS/SPS/PPS");
    assert_eq!((hevc.width, hevc.height), (320, 180));
    assert!(hevc.codec_string().starts_with("hvc1."));
    let v = video(&r);
    assert_eq!(v.len(), 30);
    assert!(v[0].keyframe);
    assert_eq!(v.iter().filter(|f| f.keyframe).count(), 1);
    for f in &v {
        let nals = llhls_packager::codec::length_prefixed_nals(&f.data).unwrap();
        // No VPS/SPS/PPS/AUD left in the samples.
        assert!(nals
            .iter()
            .all(|n| !(32..=35).contains(&((n[0] >> 1) & 0x3f))));
    }
    assert!(!audio(&r).is_empty());
}

#[test]
fn opus_in_ts() {
    let r = whole(OPUS);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.stats.errors, 0);
    let opus = r.configs.iter().find_map(|c| match c {
        CodecConfig::Opus(o) => Some(o),
        _ => None,
    });
    assert_eq!(opus.expect("an Opus configuration").channels, 2);
    assert_eq!(video(&r).len(), 30);
    // ffprobe counts 51 packets of 20 ms (the encoder's pre-skip adds one).
    let a = audio(&r);
    assert_eq!(a.len(), 51);
    for f in &a {
        // The control header is gone: each frame is one Opus packet.
        assert_eq!(
            llhls_packager::codec::opus_packet_samples(&f.data),
            Some(960)
        );
    }
    for w in a.windows(2) {
        assert_eq!(w[1].dts.ticks - w[0].dts.ticks, 1800, "20 ms apart");
    }
    assert!((a[0].dts.ticks - video(&r)[0].pts.ticks).abs() < 3000);
    let got = run(&mut OPUS.chunks(7));
    assert_eq!(got.frames, r.frames);
}

#[test]
fn aac_in_latm() {
    let r = whole(LATM);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.stats.errors, 0);
    let aac = r.configs.iter().find_map(|c| match c {
        CodecConfig::Aac(a) => Some(a),
        _ => None,
    });
    let aac = aac.expect("an AAC configuration from the StreamMuxConfig");
    assert_eq!(
        (aac.sample_rate, aac.channels, aac.object_type),
        (48_000, 1, 2)
    );
    assert_eq!(video(&r).len(), 30);
    let a = audio(&r);
    assert_eq!(a.len(), 48, "ffprobe counts 48 frames");
    for w in a.windows(2) {
        let d = w[1].dts.ticks - w[0].dts.ticks;
        assert!((1919..=1921).contains(&d), "audio step {d}");
    }
    // The same encoder with the same settings wrote the ADTS fixture: the payloads copied
    // out of the (not byte-aligned) LATM elements are its raw frames, bit for bit (but for
    // the last two, where the 1 s input ended and the 2 s one went on).
    let adts = whole(PLAIN);
    let adts = audio(&adts);
    for (i, (l, p)) in a.iter().zip(adts.iter()).take(a.len() - 2).enumerate() {
        assert_eq!(l.data, p.data, "frame {i}");
    }
    let got = run(&mut LATM.chunks(5));
    assert_eq!(got.frames, r.frames);
}

#[test]
fn a_new_pmt_with_another_audio_codec_gives_a_new_configuration() {
    // Two encoders' output back to back, both with PMT version 0, on the same PIDs: AAC in
    // ADTS then Opus. Continuity counters and timestamps jump where they meet.
    let mut data = PLAIN.to_vec();
    data.extend_from_slice(OPUS);
    let r = whole(&data);
    assert!(
        r.warnings.iter().all(|w| !w.contains("not supported")),
        "{:?}",
        r.warnings
    );
    let kinds: Vec<&str> = r
        .configs
        .iter()
        .map(|c| match c {
            CodecConfig::H264(_) => "h264",
            CodecConfig::Aac(_) => "aac",
            CodecConfig::Opus(_) => "opus",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "aac").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"opus"), "{kinds:?}");
    // The first clip's last video frame is dropped: its PES ends where the continuity
    // counter jumps, which is what a lost packet looks like.
    assert_eq!(video(&r).len(), 60 + 30 - 1);
    let a = audio(&r);
    let aac = whole(PLAIN);
    let aac = audio(&aac).len();
    let opus = a.len() - 51;
    assert!(
        (aac - 16..=aac).contains(&opus),
        "{opus} AAC frames of {aac} (at most one PES lost)"
    );
    assert!(a[opus..]
        .iter()
        .all(|f| llhls_packager::codec::opus_packet_samples(&f.data) == Some(960)));

    // Through the SRT publish machine: the change is a reconfiguration with an Opus track.
    use llhls_ingest::srt::publish::{Output, TsPublish};
    let mut p = TsPublish::new();
    let mut outs = Vec::new();
    for chunk in data.chunks(1316) {
        p.handle_input(chunk);
        while let Some(o) = p.poll_output() {
            outs.push(o);
        }
    }
    p.finish();
    while let Some(o) = p.poll_output() {
        outs.push(o);
    }
    let re: Vec<&Vec<llhls_packager::TrackConfig>> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Reconfigure(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(re.len(), 1);
    assert!(re[0]
        .iter()
        .any(|t| matches!(t.codec, CodecConfig::Opus(_))));
    let frames = outs
        .iter()
        .filter(|o| matches!(o, Output::Frame(_)))
        .count();
    assert!(frames >= 89 + 93 - 16 + 51, "{frames} frames");
}
