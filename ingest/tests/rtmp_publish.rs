//! The RTMP publish machine driven with the bytes of a real publisher: a captured ffmpeg
//! session (`fixtures/ffmpeg-rtmp-publish.bin`, client-to-server bytes only), whole, in
//! small pieces, truncated and corrupted. The machine answers the publisher itself when
//! recording, so replaying the capture reproduces the session exactly.

use std::io::{Read, Write};

use llhls_ingest::rtmp::publish::{Output, Publish, RtmpError};
use llhls_ingest::tracks::{AUDIO, VIDEO};
use llhls_packager::{CodecConfig, Frame, TrackConfig};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ffmpeg-rtmp-publish.bin"
);

/// What a run of the machine produced.
#[derive(Default)]
struct Run {
    requested: Vec<(String, String, Option<String>)>,
    refused: Vec<String>,
    tracks: Option<Vec<TrackConfig>>,
    encoder: Option<String>,
    frames: Vec<Frame>,
    warnings: Vec<String>,
    unpublished: bool,
    transmitted: usize,
    error: Option<RtmpError>,
}

impl Run {
    fn drain(&mut self, m: &mut Publish, accept: bool) -> Vec<bytes::Bytes> {
        let mut tx = Vec::new();
        while let Some(out) = m.poll_output() {
            match out {
                Output::Transmit(b) => {
                    self.transmitted += b.len();
                    tx.push(b);
                }
                Output::PublishRequested { app, name, key } => {
                    self.requested.push((app, name, key));
                    let answered = if accept {
                        m.accept_publish()
                    } else {
                        m.refuse_publish("taken")
                    };
                    if let Err(e) = answered {
                        // Held input acted on after the answer can fail the connection.
                        self.error.get_or_insert(e);
                    }
                }
                Output::Refused(r) => self.refused.push(r),
                Output::Start { tracks, encoder } => {
                    assert!(self.tracks.is_none(), "one start");
                    self.tracks = Some(tracks);
                    self.encoder = encoder;
                }
                Output::Reconfigure(_) => panic!("no codec change in the capture"),
                Output::Frame(f) => {
                    assert!(self.tracks.is_some(), "frames come after the start");
                    self.frames.push(f);
                }
                Output::KeyframeInterval { .. } => {}
                Output::Warning(w) => self.warnings.push(w),
                Output::Unpublished => self.unpublished = true,
            }
        }
        tx
    }

    fn count(&self, track: llhls_packager::TrackId) -> usize {
        self.frames.iter().filter(|f| f.track == track).count()
    }
}

fn feed(data: &[u8], chunk: usize, keys: &[&str], accept: bool) -> Run {
    let mut m = Publish::new(keys.iter().map(|k| k.to_string()).collect());
    let mut run = Run::default();
    for piece in data.chunks(chunk.max(1)) {
        let r = m.handle_input(piece);
        run.drain(&mut m, accept);
        if let Err(e) = r {
            run.error.get_or_insert(e);
        }
        if run.error.is_some() {
            break;
        }
    }
    run
}

fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).expect("the capture (record it with the ignored test below)")
}

fn assert_full_session(run: &Run) {
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(
        run.requested,
        vec![(
            "live".to_string(),
            "test".to_string(),
            Some("k1".to_string())
        )]
    );
    let tracks = run.tracks.as_ref().expect("the stream started");
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0].id, VIDEO);
    match &tracks[0].codec {
        CodecConfig::H264(c) => assert_eq!((c.width, c.height), (320, 180)),
        other => panic!("video is {other:?}"),
    }
    assert_eq!(tracks[1].id, AUDIO);
    assert!(matches!(tracks[1].codec, CodecConfig::Aac(_)));
    assert!(run.encoder.as_deref().unwrap_or("").contains("Lavf"));
    // 3 s at 30 fps; 3 s of 44.1 kHz AAC is 129 frames of 1024 samples (plus priming).
    assert_eq!(run.count(VIDEO), 90);
    assert!(
        (129..=131).contains(&run.count(AUDIO)),
        "{}",
        run.count(AUDIO)
    );
    let keyframes = run
        .frames
        .iter()
        .filter(|f| f.track == VIDEO && f.keyframe)
        .count();
    assert_eq!(keyframes, 3, "-g 30");
    assert!(
        run.frames
            .iter()
            .find(|f| f.track == VIDEO)
            .unwrap()
            .keyframe
    );
    assert!(run.unpublished, "ffmpeg unpublishes at the end");
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);
}

#[test]
fn ffmpeg_session_whole() {
    let run = feed(&fixture(), usize::MAX, &["k1"], true);
    assert_full_session(&run);
    assert!(run.transmitted > 3000, "handshake and command answers");
}

#[test]
fn ffmpeg_session_in_small_pieces() {
    let data = fixture();
    for chunk in [1, 7, 1000, 4096] {
        let run = feed(&data, chunk, &["k1"], true);
        assert_full_session(&run);
    }
}

#[test]
fn frame_timestamps_advance() {
    let run = feed(&fixture(), 4096, &["k1"], true);
    for track in [VIDEO, AUDIO] {
        let dts: Vec<i64> = run
            .frames
            .iter()
            .filter(|f| f.track == track)
            .map(|f| f.dts.ticks)
            .collect();
        assert!(dts.windows(2).all(|w| w[0] <= w[1]), "{track:?}");
    }
}

#[test]
fn wrong_or_missing_key_is_refused_before_any_claim() {
    for keys in [&["other"][..], &["k1x"][..]] {
        let run = feed(&fixture(), 4096, keys, true);
        assert!(run.requested.is_empty());
        assert_eq!(run.refused.len(), 1, "{:?}", run.refused);
        assert!(run.refused[0].contains("key"), "{:?}", run.refused);
        assert!(run.frames.is_empty() && run.tracks.is_none());
    }
}

#[test]
fn no_keys_configured_accepts_any_key() {
    let run = feed(&fixture(), 4096, &[], true);
    assert_full_session(&run);
}

#[test]
fn a_refused_claim_ignores_the_media() {
    let run = feed(&fixture(), 4096, &["k1"], false);
    assert_eq!(run.requested.len(), 1);
    assert!(run.frames.is_empty() && run.tracks.is_none());
}

#[test]
fn truncated_sessions_never_panic() {
    let data = fixture();
    let mut cut = 0;
    while cut < data.len() {
        let run = feed(&data[..cut], 997, &["k1"], true);
        assert!(
            run.error.is_none(),
            "a prefix is only incomplete: {cut} {:?}",
            run.error
        );
        cut += 1 + cut / 3;
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let run = feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 4096, &[], true);
    assert!(
        matches!(run.error, Some(RtmpError::Handshake(_))),
        "{:?}",
        run.error.map(|e| e.to_string())
    );
    // A valid handshake, then noise where the chunk stream should be.
    let data = fixture();
    let mut noisy = data[..1537 + 1536].to_vec();
    let mut x: u32 = 12345;
    for _ in 0..20_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noisy.push((x >> 16) as u8);
    }
    let _ = feed(&noisy, 512, &[], true);
    // Corrupted bytes anywhere in the session: errors or dropped messages, never a panic.
    for (i, at) in (3100..data.len()).step_by(data.len() / 40).enumerate() {
        let mut bad = data.clone();
        for b in &mut bad[at..(at + 1 + i % 16).min(data.len())] {
            *b ^= 0x5a;
        }
        let _ = feed(&bad, 4096, &[], true);
    }
    // Input after an error is refused.
    let mut m = Publish::new(Vec::new());
    assert!(m.handle_input(b"GET / HTTP/1.1\r\n").is_err());
    assert!(matches!(m.handle_input(b"x"), Err(RtmpError::Closed)));
}

/// The capture with `from` (which must occur once) replaced by `to` (as long).
fn edited(from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut data = fixture();
    let at: Vec<usize> = data
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| *w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "{from:?} in the capture");
    data[at[0]..at[0] + to.len()].copy_from_slice(to);
    data
}

#[test]
fn unsupported_audio_closes_with_the_encoder_fix() {
    // The AAC sequence header's first byte (sound format 10) turned into MP3 (2).
    let data = edited(&[0xaf, 0x00, 0x12, 0x08], &[0x2f, 0x00, 0x12, 0x08]);
    let run = feed(&data, 4096, &["k1"], true);
    let Some(RtmpError::Unsupported(e)) = &run.error else {
        panic!("{:?}", run.error)
    };
    let e = e.to_string();
    assert!(
        e.contains("MP3") && e.contains("AAC") && e.contains("OBS"),
        "{e}"
    );
    assert!(run.tracks.is_none());
}

#[test]
fn another_application_is_refused() {
    let data = edited(
        b"\x00\x03app\x02\x00\x04live",
        b"\x00\x03app\x02\x00\x04xive",
    );
    let run = feed(&data, 4096, &["k1"], true);
    assert!(run.requested.is_empty(), "{:?}", run.requested);
    assert!(
        run.refused
            .iter()
            .any(|r| r.contains("xive") && r.contains("/live")),
        "{:?}",
        run.refused
    );
    assert!(run.frames.is_empty());
}

/// Records the fixture: a TCP listener answered by the machine itself, with ffmpeg
/// publishing 3 s of 320x180 H.264 and AAC to it. Run with
/// `cargo test -p llhls-ingest --test rtmp_publish -- --ignored record`.
#[test]
#[ignore = "records the fixture; needs ffmpeg with libx264"]
fn record_ffmpeg_fixture() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ffmpeg = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "250k",
        ])
        .args(["-g", "30", "-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/test?key=k1"))
        .spawn()
        .expect("ffmpeg runs");
    let (mut sock, _) = listener.accept().unwrap();
    let mut m = Publish::new(vec!["k1".into()]);
    let mut run = Run::default();
    let mut captured = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = sock.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        captured.extend_from_slice(&buf[..n]);
        m.handle_input(&buf[..n]).unwrap();
        for b in run.drain(&mut m, true) {
            sock.write_all(&b).unwrap();
        }
        assert!(run.error.is_none(), "{:?}", run.error);
    }
    assert!(ffmpeg.wait().unwrap().success());
    std::fs::write(FIXTURE, &captured).unwrap();
    eprintln!("{} bytes, {} frames", captured.len(), run.frames.len());
}

/// A type-0 chunk on chunk stream 2 carrying one protocol control message.
fn control_message(type_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

#[test]
fn hostile_chunk_sizes_are_errors() {
    let hs = &fixture()[..1537 + 1536];
    for size in [0u32, 0x8000_0000, 0x7fff_ffff] {
        let mut data = hs.to_vec();
        data.extend(control_message(1, &size.to_be_bytes()));
        data.extend(control_message(20, &[0x02, 0xff, 0xff, 0x41, 0x05, 0x11]));
        data.extend([0x43; 3000]);
        for chunk in [1, 4096] {
            let r = feed(&data, chunk, &[], true);
            assert!(
                matches!(r.error, Some(RtmpError::ChunkStream(_))),
                "size {size:#x}, {chunk}-byte reads: {:?}",
                r.error
            );
        }
    }
}
