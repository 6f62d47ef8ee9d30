//! Golden playlists (byte for byte) and every view checked by an independent parser, the
//! Python `m3u8` package (scripts/validate_playlists.py; `scripts/setup.sh` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use llhls_packager::{
    render_media, render_multivariant, Addressing, Layout, PackagerConfig, SkipMode, WallClock,
};

fn cfg() -> PackagerConfig {
    PackagerConfig {
        first_msn: 1000,
        window_segments: 6,
        ..PackagerConfig::default()
    }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llhls-views-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn independent_parser_accepts_every_view_of_every_scenario() {
    let dir = tmp("all");
    let mut files = Vec::new();
    type Tweak = Box<dyn Fn(&mut Publisher)>;
    let scenarios: Vec<(&str, PackagerConfig, Tweak)> = vec![
        ("muxed", cfg(), Box::new(|_| {})),
        (
            "separate",
            PackagerConfig {
                layout: Layout::Separate,
                ..cfg()
            },
            Box::new(|_| {}),
        ),
        (
            "byterange",
            PackagerConfig {
                addressing: Addressing::ByteRange,
                ..cfg()
            },
            Box::new(|_| {}),
        ),
        ("bframes", cfg(), Box::new(|p| p.bframes = true)),
        ("audio-only", cfg(), Box::new(|p| p.video = false)),
        ("video-only", cfg(), Box::new(|p| p.audio = false)),
        ("long-gop", cfg(), Box::new(|p| p.gop = 120)),
    ];
    for (tag, config, tweak) in scenarios {
        let mut pub_ = Publisher::new(30.0, 30);
        tweak(&mut pub_);
        let mut h = Harness::new(config, pub_.tracks());
        h.feed(&mut pub_, 77 * 30);
        files.extend(h.dump_views(&dir, tag));
        // After a stall, and after the end of the stream.
        pub_.frame_no = (pub_.frame_no + 90).div_ceil(30) * 30;
        pub_.audio_no = (pub_.video_ms_public(pub_.frame_no) as f64 * 48.0 / 1024.0).ceil() as u64;
        h.feed(&mut pub_, 77 * 8);
        files.extend(h.dump_views(&dir, &format!("{tag}-gap")));
        h.p.handle_end_of_stream(WallClock(pub_.wall0 + 60_000));
        h.drain();
        files.extend(h.dump_views(&dir, &format!("{tag}-ended")));
    }
    validate(&files);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fixed scenario rendered in every view; compared byte for byte with the files in
/// tests/golden/ (run with `UPDATE_GOLDEN=1` to rewrite them, then review the diff).
#[test]
fn golden_playlists() {
    let mut pub_ = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        layout: Layout::Separate,
        window_segments: 8,
        first_msn: 1000,
        ..PackagerConfig::default()
    };
    let mut h = Harness::new(config, pub_.tracks());
    h.feed(&mut pub_, 77 * 19);
    let snap = h.last();
    // Every segment's PROGRAM-DATE-TIME dates its first sample: plus its EXTINF, it is the
    // next segment's, to the millisecond, in every rendition (audio segments start on an AAC
    // frame, up to 21 ms after the video's boundary).
    for r in &snap.renditions {
        for w in r.segments.to_vec().windows(2) {
            let step = w[1].program_date_time.0 - w[0].program_date_time.0;
            let extinf_ms = w[0].duration * 1000.0;
            assert!(
                (step as f64 - extinf_ms).abs() <= 1.0,
                "{} segment {}: PDT step {step} ms, EXTINF {extinf_ms:.3} ms",
                r.name,
                w[0].msn
            );
        }
    }
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut views = vec![("multivariant.m3u8".to_string(), render_multivariant(snap))];
    for r in &snap.renditions {
        views.push((
            format!("{}-full.m3u8", r.name),
            render_media(snap, r, SkipMode::Full),
        ));
        views.push((
            format!("{}-delta-yes.m3u8", r.name),
            render_media(snap, r, SkipMode::Yes),
        ));
        views.push((
            format!("{}-delta-v2.m3u8", r.name),
            render_media(snap, r, SkipMode::V2),
        ));
    }
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    std::fs::create_dir_all(&golden).unwrap();
    let mut files = Vec::new();
    for (name, text) in views {
        let path = golden.join(&name);
        if update {
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
        assert_eq!(text, want, "{name} differs from the golden file");
        files.push(path);
    }
    validate(&files);
    // The delta views really skip, and keep the tag order hls.js needs (rule 24).
    let yes = std::fs::read_to_string(golden.join("video-delta-yes.m3u8")).unwrap();
    let skip = yes
        .find("#EXT-X-SKIP:SKIPPED-SEGMENTS=")
        .expect("EXT-X-SKIP present");
    assert!(yes.find("#EXT-X-DISCONTINUITY-SEQUENCE").unwrap() < skip);
    assert!(
        !yes.contains("SKIPPED-SEGMENTS=0"),
        "window long enough to skip something"
    );
}

#[test]
fn yes_delta_with_nothing_to_skip_is_the_full_playlist() {
    let mut pub_ = Publisher::new(30.0, 30);
    let mut h = Harness::new(cfg(), pub_.tracks());
    // Six 2 s segments = 12 s = CAN-SKIP-UNTIL: nothing may be skipped yet.
    h.feed(&mut pub_, 77 * 13);
    let snap = h.last();
    let r = &snap.renditions[0];
    assert_eq!(
        render_media(snap, r, SkipMode::Yes),
        render_media(snap, r, SkipMode::Full)
    );
    let v2 = render_media(snap, r, SkipMode::V2);
    assert!(
        v2.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=0,RECENTLY-REMOVED-DATERANGES=\"\""),
        "{v2}"
    );
}

/// The checker itself: each rule of scripts/validate_playlists.py fails on a stream broken the
/// way the rule forbids (scripts/test_validate_playlists.py, Python's unittest, under a second).
#[test]
fn playlist_checker_rejects_each_broken_rule() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test_validate_playlists.py");
    let out = Command::new("python3")
        .arg(script)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it and the m3u8 package)");
    assert!(
        out.status.success(),
        "the checker's own tests failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
