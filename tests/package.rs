//! `llhls package` on real and synthetic clips: the output passes the independent playlist
//! parser and decodes with ffmpeg, frame for frame.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use llhls_packager::ObjectKey;

/// `llhls package -q SRC OUT EXTRA...`, which must succeed.
fn run_package(src: &Path, out: &Path, extra: &[&str]) {
    let st = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["package", "-q"])
        .arg(src)
        .arg(out)
        .args(extra)
        .status()
        .unwrap();
    assert!(st.success());
}

fn package(input: &str, extra: &[&str]) -> (std::path::PathBuf, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("samples/media").join(input);
    assert!(
        src.exists(),
        "{} missing: run samples/fetch.sh (scripts/setup.sh does)",
        src.display()
    );
    let out = std::env::temp_dir().join(format!("llhls-pkg-{}-{input}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    run_package(&src, &out, extra);
    let media = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
    let variant = media
        .lines()
        .find(|l| l.ends_with(".m3u8"))
        .unwrap()
        .to_string();
    (out, variant)
}

fn source_frames(input: &str) -> u64 {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples/media")
        .join(input);
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(src)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn check(input: &str, extra: &[&str]) {
    let (out, variant) = package(input, extra);
    let pl = std::fs::read_to_string(out.join(&variant)).unwrap();
    assert!(pl.ends_with("#EXT-X-ENDLIST\n"), "{pl}");
    validate_playlist_files(&[out.join("index.m3u8"), out.join(&variant)]);
    let all = uris(&pl);
    let key = |u: &str| u.parse::<ObjectKey>().ok();
    let init = all
        .iter()
        .find(|u| key(u).is_some_and(|k| k.is_init()))
        .unwrap();
    let mut bytes = std::fs::read(out.join(init)).unwrap();
    let mut segs = 0;
    for u in all
        .iter()
        .filter(|u| key(u).is_some_and(|k| k.is_segment()))
    {
        bytes.extend(std::fs::read(out.join(u)).unwrap());
        segs += 1;
    }
    let (errors, frames) = ffmpeg_decode(&bytes);
    assert!(
        errors.trim().is_empty(),
        "{input}: ffmpeg decode errors: {errors}"
    );
    assert_eq!(
        frames,
        source_frames(input),
        "{input}: every source frame decodes from {segs} segments"
    );
}

#[test]
fn real_footage_with_irregular_keyframes() {
    check("bikes.mp4", &[]);
}

#[test]
fn synthetic_clip_with_b_frames() {
    check("bframes.mp4", &[]);
}

#[test]
fn separate_audio_layout() {
    check("demo.mp4", &["--layout", "separate"]);
}

/// Part addressing is a live-serving choice: `package` refuses it, saying why, and its help
/// does not offer it.
#[test]
fn part_addressing_is_refused_with_the_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("llhls-pkg-{}-addressing", std::process::id()));
    for value in ["files", "byterange"] {
        let r = Command::new(env!("CARGO_BIN_EXE_llhls"))
            .args(["package", "-q"])
            .arg(root.join("samples/media/demo.mp4"))
            .arg(&out)
            .args(["--addressing", value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "--addressing {value} accepted");
        assert!(
            err.contains("does not take --addressing") && err.contains("whole segment files"),
            "{err}"
        );
        assert!(!out.exists(), "a refused run wrote {}", out.display());
    }
    let help = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["package", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("--addressing"), "{help}");
    assert!(help.contains("whole segments"), "{help}");
}

#[test]
fn vod_playlists_and_reruns_into_the_same_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("samples/media/demo.mp4");
    let out = std::env::temp_dir().join(format!("llhls-pkg-{}-rerun", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = |extra: &[&str]| run_package(&src, &out, extra);
    run(&["--layout", "separate"]);
    assert!(out.join("audio.m3u8").is_file() && out.join("audio").is_dir());
    std::fs::write(out.join("notes.txt"), "the operator's own file").unwrap();
    // A muxed run into the same folder: nothing of the separate run survives.
    run(&[]);
    assert!(!out.join("audio.m3u8").exists(), "audio.m3u8 left behind");
    assert!(!out.join("audio").exists(), "audio/ left behind");
    assert!(!out.join("video.m3u8").exists(), "video.m3u8 left behind");
    assert!(
        out.join("notes.txt").is_file(),
        "a file that is not ours was removed"
    );
    let pl = std::fs::read_to_string(out.join("media.m3u8")).unwrap();
    assert!(pl.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{pl}");
    assert!(pl.ends_with("#EXT-X-ENDLIST\n"), "{pl}");
    for live_only in [
        "CAN-BLOCK-RELOAD",
        "HOLD-BACK",
        "#EXT-X-PART",
        "#EXT-X-PRELOAD-HINT",
        "#EXT-X-RENDITION-REPORT",
    ] {
        assert!(!pl.contains(live_only), "VOD playlist carries {live_only}");
    }
    validate_playlist_files(&[out.join("index.m3u8"), out.join("media.m3u8")]);
    let _ = std::fs::remove_dir_all(&out);
}
