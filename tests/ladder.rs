//! The ABR ladder end to end: the real binary with `--ladder`, a real ffmpeg publishing over
//! RTMP, every rendition checked by the independent playlist parser and by ffprobe, and every
//! part listed by more than one rendition compared.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::*;

/// One EXT-X-PART or segment as a playlist lists it.
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    duration: String,
    independent: bool,
}

/// (segments by MSN: (EXTINF, PDT)), (parts by (MSN, index)), rendition reports by URI.
type Parsed = (
    HashMap<u64, (String, String)>,
    HashMap<(u64, u32), Listed>,
    HashMap<String, (u64, u32)>,
);

fn parse(text: &str) -> Parsed {
    let mut msn: u64 = 0;
    let mut part = 0u32;
    let mut pdt = String::new();
    let mut segments = HashMap::new();
    let mut parts = HashMap::new();
    let mut reports = HashMap::new();
    let attr = |line: &str, k: &str| {
        line.split(',')
            .find_map(|a| {
                a.split(':')
                    .next_back()
                    .and_then(|a| a.strip_prefix(&format!("{k}=")))
                    .or_else(|| a.strip_prefix(&format!("{k}=")))
            })
            .map(|v| v.trim_matches('"').to_string())
    };
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = v.to_string();
        } else if line.starts_with("#EXT-X-PART:") {
            parts.insert(
                (msn, part),
                Listed {
                    duration: attr(line, "DURATION").unwrap(),
                    independent: line.contains("INDEPENDENT=YES"),
                },
            );
            part += 1;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            segments.insert(msn, (v.to_string(), pdt.clone()));
            msn += 1;
            part = 0;
        } else if line.starts_with("#EXT-X-RENDITION-REPORT:") {
            reports.insert(
                attr(line, "URI").unwrap(),
                (
                    attr(line, "LAST-MSN").unwrap().parse().unwrap(),
                    attr(line, "LAST-PART").unwrap().parse().unwrap(),
                ),
            );
        }
    }
    (segments, parts, reports)
}

/// Width and height of the first video stream ffprobe finds in `bytes`.
fn probe_size(bytes: &[u8]) -> String {
    let p = std::env::temp_dir().join(format!("llhls-ladder-probe-{}.mp4", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height", "-of", "csv=p=0:s=x"])
        .arg(&p)
        .output()
        .expect("ffprobe runs");
    let _ = std::fs::remove_file(&p);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn an_rtmp_publish_gets_aligned_rungs_that_ffprobe_reads() {
    let s = Server::start(&["--ladder", "540p,360p,240p"]);
    // 640x480 with B-frames: 540p is not below the source, 360p and 240p are.
    let mut ff = publish_sized(&s.rtmp_url("abr"), 20, true, "640x480");
    s.wait_for("/live/abr/index.m3u8", Duration::from_secs(20));
    // Six segments in every rendition: what Apple requires of a live playlist (the checker
    // holds the playlists to it).
    let start = std::time::Instant::now();
    while ["video", "360p", "240p", "audio"].iter().any(|n| {
        s.get(&format!("/live/abr/{n}.m3u8"))
            .text()
            .matches("#EXTINF")
            .count()
            < 6
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = s.log_text();
    assert!(log.contains("ABR rung skipped: 540p"), "{log}");

    let mv = s.get("/live/abr/index.m3u8").text();
    let variants: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants, ["video.m3u8", "360p.m3u8", "240p.m3u8"], "{mv}");
    assert_eq!(mv.matches("#EXT-X-MEDIA:TYPE=AUDIO").count(), 1, "{mv}");
    for (res, name) in [
        ("RESOLUTION=640x480", "video.m3u8"),
        ("RESOLUTION=480x360", "360p.m3u8"),
        ("RESOLUTION=320x240", "240p.m3u8"),
    ] {
        let inf = mv
            .lines()
            .zip(mv.lines().skip(1))
            .find(|(_, uri)| *uri == name)
            .map(|(inf, _)| inf)
            .unwrap();
        assert!(inf.contains(res), "{inf}");
        assert!(
            inf.contains("CODECS=\"avc1.") && inf.contains(",mp4a.40.2\""),
            "{inf}"
        );
        assert!(
            inf.contains("FRAME-RATE=30.000") && inf.contains("AUDIO=\"audio\""),
            "{inf}"
        );
    }

    // The playlists, fetched one after the other: a rung lags its source by a frame or two,
    // so the last part may differ, never what both list.
    let names = ["video", "360p", "240p", "audio"];
    let texts: Vec<String> = names
        .iter()
        .map(|n| s.get(&format!("/live/abr/{n}.m3u8")).text())
        .collect();
    let mut files = vec![("index.m3u8", mv.clone())];
    for (n, t) in names.iter().zip(&texts) {
        files.push((n, t.clone()));
    }
    validate_playlists(&files);
    let parsed: Vec<Parsed> = texts.iter().map(|t| parse(t)).collect();
    let (video_segments, video_parts, _) = &parsed[0];
    for (i, name) in names.iter().enumerate().skip(1).take(2) {
        let (segments, parts, _) = &parsed[i];
        let mut common_parts = 0;
        for (k, p) in parts {
            if let Some(v) = video_parts.get(k) {
                assert_eq!(p, v, "{name} part {k:?}");
                common_parts += 1;
            }
        }
        assert!(common_parts >= 10, "{name}: {common_parts} parts in common");
        let mut common_segments = 0;
        for (msn, seg) in segments {
            if let Some(v) = video_segments.get(msn) {
                assert_eq!(seg, v, "{name} segment {msn} (EXTINF, PDT)");
                common_segments += 1;
            }
        }
        assert!(common_segments >= 3, "{name}: {common_segments} segments");
    }
    // Every playlist reports every other rendition.
    for (i, name) in names.iter().enumerate() {
        let reports = &parsed[i].2;
        let mut want: Vec<String> = names
            .iter()
            .filter(|n| *n != name)
            .map(|n| format!("{n}.m3u8"))
            .collect();
        want.sort();
        let mut got: Vec<String> = reports.keys().cloned().collect();
        got.sort();
        assert_eq!(got, want, "{name}");
    }
    // A switch to a rung from the source's report answers.
    let (msn, part) = parsed[0].2["240p.m3u8"];
    let r = s.get(&format!(
        "/live/abr/240p.m3u8?_HLS_msn={msn}&_HLS_part={part}"
    ));
    assert_eq!(r.status, 200);

    // ffprobe decodes every video rendition at its size: init + every listed segment.
    for (i, (name, size)) in [
        ("video", "640x480"),
        ("360p", "480x360"),
        ("240p", "320x240"),
    ]
    .iter()
    .enumerate()
    {
        let all = uris(&texts[i]);
        let init = all.iter().find(|u| u.contains("/init-")).unwrap();
        let mut bytes = s.get(&format!("/live/abr/{init}")).body;
        let segments: Vec<&String> = all
            .iter()
            .filter(|u| u.ends_with(".m4s") && u.matches('.').count() == 1)
            .collect();
        assert!(segments.len() >= 3, "{name}: {:?}", segments);
        for seg in &segments {
            let r = s.get(&format!("/live/abr/{seg}"));
            assert_eq!(r.status, 200, "{seg}");
            bytes.extend_from_slice(&r.body);
        }
        let (errors, frames) = ffmpeg_decode(&bytes);
        assert!(
            errors.trim().is_empty(),
            "{name}: ffmpeg decode errors: {errors}"
        );
        assert!(
            frames >= 30 * segments.len() as u64,
            "{name}: {frames} frames"
        );
        assert_eq!(probe_size(&bytes), *size, "{name}");
    }
    let _ = ff.kill();
    let _ = ff.wait();
}

#[test]
fn the_demo_has_a_ladder_by_default_and_other_streams_stay_as_they_were() {
    // No ladder configured: the demo shows a newcomer ABR with its built-in 360p and 240p rungs.
    let s = Server::start(&["--demo", "true"]);
    s.wait_for("/live/demo/index.m3u8", Duration::from_secs(30));
    let mv = s.get("/live/demo/index.m3u8").text();
    let variants: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants, ["video.m3u8", "360p.m3u8", "240p.m3u8"], "{mv}");
    assert!(
        mv.contains("RESOLUTION=640x360") && mv.contains("RESOLUTION=426x240"),
        "{mv}"
    );
    // A publisher's stream has no ladder (none configured for every stream): muxed as before.
    let mut ff = publish(&s.rtmp_url("cam"), 6, false);
    s.wait_for("/live/cam/index.m3u8", Duration::from_secs(20));
    let mv = s.get("/live/cam/index.m3u8").text();
    let variants: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants, ["media.m3u8"], "{mv}");
    let _ = ff.wait();
}

#[test]
fn a_hardware_encoder_that_is_missing_stops_startup_with_the_reason() {
    // No GPU here: h264_nvenc is either not in this FFmpeg or cannot be opened. Either way
    // the server must not start and must say which encoder and why.
    let out = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["serve", "--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--rtmp", &format!("127.0.0.1:{}", free_port())])
        .args(["--whip-udp", "off", "--demo", "false"])
        .args(["--ladder", "360p", "--ladder-encoder", "h264_nvenc"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("llhls runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("h264_nvenc")
            && (err.contains("does not work here") || err.contains("has no h264_nvenc")),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["serve", "--ladder", "360p", "--ladder-encoder", "x265"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("llhls runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("libx264, h264_nvenc, h264_qsv, h264_vaapi"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn package_writes_the_same_ladder_for_vod() {
    let dir = std::env::temp_dir().join(format!("llhls-ladder-pkg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.mp4");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30:duration=4")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=4",
        ])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outdir = dir.join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["package", "-q", "--ladder", "480p,240p"])
        .arg(&input)
        .arg(&outdir)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(log.contains("ABR rung skipped: 480p"), "{log}");
    let read = |name: &str| std::fs::read_to_string(outdir.join(name)).unwrap();
    let mv = read("index.m3u8");
    let variants: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants, ["video.m3u8", "240p.m3u8"], "{mv}");
    let (video, rung) = (read("video.m3u8"), read("240p.m3u8"));
    validate_playlists(&[
        ("index.m3u8", mv.clone()),
        ("video.m3u8", video.clone()),
        ("240p.m3u8", rung.clone()),
        ("audio.m3u8", read("audio.m3u8")),
    ]);
    let extinf = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("#EXTINF"))
            .map(String::from)
            .collect()
    };
    assert_eq!(extinf(&video), extinf(&rung), "same segments");
    for (text, size) in [(&video, "640x360"), (&rung, "426x240")] {
        let mut bytes = Vec::new();
        for u in uris(text) {
            bytes.extend(std::fs::read(outdir.join(&u)).unwrap());
        }
        let (errors, frames) = ffmpeg_decode(&bytes);
        assert!(errors.trim().is_empty(), "{errors}");
        assert_eq!(frames, 120, "every frame of 4 s at 30 fps");
        assert_eq!(probe_size(&bytes), size);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
