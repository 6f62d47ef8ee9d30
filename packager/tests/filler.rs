//! The filler pictures and silent audio frames decode, with FFmpeg's decoders, as a copy of
//! the picture shown last and as silence; and the real stream decodes on after them from its
//! next IDR picture. Needs `ffmpeg` on the PATH (scripts/setup.sh installs it).

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use llhls_packager::codec::{silent_audio_frame, AacConfig, AvcConfig, CodecConfig, H264Filler};

/// NAL units of an Annex-B stream.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        out.push(&data[s..end]);
    }
    out
}

/// Access units as 4-byte length-prefixed NAL units (a new one at every first slice), with
/// the stream's first SPS and PPS.
fn access_units(data: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let (mut sps, mut pps) = (None, None);
    let mut units: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    let mut has_slice = false;
    for nal in nal_units(data) {
        let kind = nal[0] & 0x1f;
        match kind {
            7 => {
                sps.get_or_insert_with(|| nal.to_vec());
            }
            8 => {
                pps.get_or_insert_with(|| nal.to_vec());
            }
            _ => {}
        }
        // first_mb_in_slice == 0 starts with a 1 bit (ue(v) of 0).
        let first_slice = matches!(kind, 1 | 5) && nal[1] & 0x80 != 0;
        if (first_slice || kind == 9) && has_slice {
            units.push(std::mem::take(&mut current));
            has_slice = false;
        }
        has_slice |= matches!(kind, 1 | 5);
        current.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        current.extend_from_slice(nal);
    }
    if has_slice {
        units.push(current);
    }
    (units, sps.expect("an SPS"), pps.expect("a PPS"))
}

fn is_idr(unit: &[u8]) -> bool {
    let mut rest = unit;
    while rest.len() > 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest[4] & 0x1f == 5 {
            return true;
        }
        rest = &rest[4 + len..];
    }
    false
}

fn annex_b(units: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for unit in units {
        let mut rest = &unit[..];
        while rest.len() > 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(&rest[4..4 + len]);
            rest = &rest[4 + len..];
        }
    }
    out
}

/// A scratch folder of this test process.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llhls-filler-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ffmpeg(args: &[&str]) -> (String, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg on the PATH (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Encodes a test picture sequence with these x264 options, cuts it after `cut` access
/// units, adds `fillers` filler pictures and then the stream from its next IDR picture, and
/// decodes the result: no decoder error, every picture out, and the fillers show the picture
/// shown last before them.
fn fills(dir: &Path, name: &str, x264: &[&str], cut: usize, fillers: usize) {
    let source = dir.join(format!("{name}.h264"));
    let mut args = vec![
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-frames:v",
        "100",
        "-c:v",
        "libx264",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
    ];
    args.extend_from_slice(x264);
    let source_str = source.to_str().unwrap();
    args.push(source_str);
    ffmpeg(&args);
    let (units, sps, pps) = access_units(&std::fs::read(&source).unwrap());
    assert_eq!(units.len(), 100, "{name}: access units");
    let config = AvcConfig::from_parameter_sets(vec![sps], vec![pps]).unwrap();
    let mut filler = H264Filler::new(&config).unwrap();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for unit in &units[..cut] {
        filler.observe(unit);
        out.push(unit.clone());
    }
    for _ in 0..fillers {
        out.push(filler.next_frame().to_vec());
    }
    let resume = (cut..units.len()).find(|&i| is_idr(&units[i])).unwrap();
    out.extend(units[resume..].iter().cloned());
    let joined = dir.join(format!("{name}-filled.h264"));
    std::fs::write(&joined, annex_b(&out)).unwrap();
    let (md5s, errors) = ffmpeg(&[
        "-f",
        "h264",
        "-i",
        joined.to_str().unwrap(),
        "-f",
        "framemd5",
        "-",
    ]);
    assert_eq!(errors, "", "{name}: the decoder complained");
    let frames: Vec<&str> = md5s
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim())
        .collect();
    assert_eq!(frames.len(), out.len(), "{name}: pictures decoded");
    // In output order: the cut's pictures, then the fillers (copies of the last one shown).
    let shown_last = frames[cut - 1];
    for (i, f) in frames[cut..cut + fillers].iter().enumerate() {
        assert_eq!(
            *f, shown_last,
            "{name}: filler {i} is not the picture shown last"
        );
    }
    assert_ne!(
        frames[cut - 2],
        shown_last,
        "{name}: the test picture moves"
    );
    assert_ne!(
        frames[cut + fillers],
        shown_last,
        "{name}: the stream resumed"
    );
}

#[test]
fn filler_pictures_repeat_the_last_picture_in_every_coding_mode() {
    let dir = scratch("video");
    // CABAC with B-pyramids and weighted prediction (pic_order_cnt_type 0).
    fills(
        &dir,
        "high-bframes",
        &[
            "-profile:v",
            "high",
            "-bf",
            "3",
            "-x264-params",
            "b-pyramid=normal:weightp=2",
        ],
        37,
        12,
    );
    // CAVLC without B-frames (pic_order_cnt_type 2), as WebRTC publishers send.
    fills(&dir, "baseline", &["-profile:v", "baseline"], 40, 30);
    // x264 zerolatency (what OBS and ffmpeg publishers use for low latency), a long stall:
    // frame_num and the picture order count wrap.
    fills(
        &dir,
        "zerolatency",
        &[
            "-tune",
            "zerolatency",
            "-x264-params",
            "log2-max-frame-num=4",
        ],
        33,
        75,
    );
    // Deblocking control and several reference frames, cut right after a keyframe.
    fills(
        &dir,
        "refs",
        &["-refs", "4", "-bf", "2", "-x264-params", "deblock=1,1"],
        26,
        20,
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn silent_aac_decodes_to_silence() {
    let dir = scratch("audio");
    for channels in [1u8, 2] {
        let config = CodecConfig::Aac(AacConfig::lc(48_000, channels).unwrap());
        let (frame, duration): (Bytes, u32) = silent_audio_frame(&config).unwrap();
        assert_eq!(duration, 1024);
        // ADTS: MPEG-4 AAC LC, 48 kHz (index 3), no CRC.
        let len = frame.len() + 7;
        let header = [
            0xff,
            0xf1,
            (1 << 6) | (3 << 2) | (channels >> 2),
            ((channels & 3) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1f,
            0xfc,
        ];
        let mut adts = Vec::new();
        for _ in 0..50 {
            adts.extend_from_slice(&header);
            adts.extend_from_slice(&frame);
        }
        let path = dir.join(format!("silence-{channels}.aac"));
        std::fs::write(&path, adts).unwrap();
        let raw = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-f", "aac", "-i"])
            .arg(&path)
            .args(["-f", "s16le", "-"])
            .output()
            .unwrap();
        assert!(raw.status.success());
        assert_eq!(
            String::from_utf8_lossy(&raw.stderr),
            "",
            "{channels} channels"
        );
        assert!(
            raw.stdout.len() >= 40 * 1024 * 2 * usize::from(channels),
            "{channels} channels: {} bytes",
            raw.stdout.len()
        );
        assert!(
            raw.stdout.iter().all(|b| *b == 0),
            "{channels} channels: not silent"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
