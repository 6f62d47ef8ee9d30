//! Recording with the real binary and an ffmpeg publisher over RTMP: the recording's playlists
//! (EVENT while live, VOD once ended) read by the independent checker and by ffprobe end to
//! end, a reconnect continuing the same recording with a discontinuity, a `kill -9` mid-stream
//! with a torn segment on disk, retention by size and by age, and paths that try to leave the
//! recordings directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn data_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("llhls-rec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Polls `what` every 100 ms until it holds; panics with `why` after `limit` (a generous
/// bound for a stream running in real time, not a performance assertion).
/// A server recording every stream into a fresh data directory, with `extra` options.
fn recording_server(tag: &str, extra: &[&str]) -> (Server, PathBuf) {
    let dir = data_dir(tag);
    let dir_arg = dir.to_str().unwrap().to_string();
    let mut args = vec!["--record", "true", "--data-dir", &dir_arg];
    args.extend_from_slice(extra);
    (Server::start(&args), dir)
}

/// The first recording, once it has ended.
fn ended_recording(s: &Server) -> Rec {
    until(Duration::from_secs(20), "the recording never ended", || {
        recordings(s).first().is_some_and(|r| r.ended)
    });
    recordings(s)[0].clone()
}

fn until(limit: Duration, why: &str, mut what: impl FnMut() -> bool) {
    let start = Instant::now();
    while !what() {
        assert!(start.elapsed() < limit, "{why}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `/recordings.json` item.
#[derive(Debug, Clone)]
struct Rec {
    name: String,
    ended: bool,
    duration: f64,
    bytes: u64,
    playlist: String,
}

fn field<'a>(obj: &'a str, name: &str) -> &'a str {
    let at = obj
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("{name} in {obj}"));
    let rest = &obj[at + name.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim_matches('"')
}

fn recordings(s: &Server) -> Vec<Rec> {
    let r = s.get("/recordings.json");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = r.text();
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.is_empty() {
        return Vec::new();
    }
    inner
        .split("},{")
        .map(|o| Rec {
            name: field(o, "name").to_string(),
            ended: field(o, "end") != "null",
            duration: field(o, "duration").parse().unwrap(),
            bytes: field(o, "bytes").parse().unwrap(),
            playlist: field(o, "playlist").to_string(),
        })
        .collect()
}

fn uris(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.split("URI=\"").nth(1) {
            v.push(rest.split('"').next().unwrap().to_string());
        } else if !l.starts_with('#') && !l.is_empty() {
            v.push(l.to_string());
        }
    }
    v
}

/// Downloads a recording over HTTP (every playlist and every file they name) into a fresh
/// directory; returns the directory. Every file must answer 200.
fn download(s: &Server, playlist_url: &str) -> PathBuf {
    let base = playlist_url.trim_end_matches("index.m3u8");
    let dir = std::env::temp_dir().join(format!(
        "llhls-rec-dl-{}-{}",
        std::process::id(),
        s.http.port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut todo = vec!["index.m3u8".to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(rel) = todo.pop() {
        if !seen.insert(rel.clone()) {
            continue;
        }
        let r = s.get(&format!("{base}{rel}"));
        assert_eq!(r.status, 200, "{base}{rel}");
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &r.body).unwrap();
        if rel.ends_with(".m3u8") {
            todo.extend(uris(&r.text()));
        }
    }
    dir
}

/// (video packets, audio packets, seconds) ffprobe reads from the multivariant playlist,
/// following every segment.
fn probe(index: &Path) -> (u64, u64, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets"])
        .args([
            "-show_entries",
            "stream=codec_type,nb_read_packets:format=duration",
        ])
        .args(["-of", "default=nw=1"])
        .arg(index)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ffprobe: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut video, mut audio, mut secs, mut kind) = (0, 0, 0.0, "");
    for l in text.lines() {
        if let Some(k) = l.strip_prefix("codec_type=") {
            kind = if k == "video" { "v" } else { "a" };
        } else if let Some(n) = l.strip_prefix("nb_read_packets=") {
            // ffprobe prints each stream under its program and again on its own.
            let n: u64 = n.parse().unwrap_or(0);
            if kind == "v" {
                video = video.max(n);
            } else {
                audio = audio.max(n);
            }
        } else if let Some(d) = l.strip_prefix("duration=") {
            secs = d.parse().unwrap_or(0.0);
        }
    }
    (video, audio, secs)
}

fn media_sum(text: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse::<f64>().unwrap())
        .sum()
}

#[test]
fn a_recording_is_an_event_playlist_while_live_and_a_valid_vod_after() {
    let (s, dir) = recording_server("vod", &["--layout", "separate"]);
    let mut ff = publish(&s.rtmp_url("cam"), 8, false);
    s.wait_for("/live/cam/index.m3u8", Duration::from_secs(20));
    until(Duration::from_secs(20), "no recording listed", || {
        recordings(&s).iter().any(|r| r.duration > 0.0)
    });
    let live = recordings(&s);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].name, "cam");
    assert!(!live[0].ended);
    let base = live[0].playlist.trim_end_matches("index.m3u8").to_string();
    assert!(base.starts_with("/recordings/cam/20"), "{base}");
    let video = s.get(&format!("{base}video.m3u8"));
    assert_eq!(video.status, 200);
    assert_eq!(
        video.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    let text = video.text();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");

    // ffmpeg ends its publish: the stream ends, and the recording becomes VOD.
    assert!(ff.wait().unwrap().success());
    let rec = ended_recording(&s);
    for name in ["video", "audio"] {
        let text = s.get(&format!("{base}{name}.m3u8")).text();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(
            text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
            text.matches("#EXTINF:").count(),
            "a date per segment: {text}"
        );
        assert!(!text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    }
    let video_text = s.get(&format!("{base}video.m3u8")).text();
    assert!(
        (rec.duration - media_sum(&video_text)).abs() < 0.01,
        "{rec:?}"
    );
    // 8 s published; the recording has every complete segment of it.
    assert!(rec.duration > 6.0 && rec.duration < 9.0, "{rec:?}");

    // Byte for byte what is on disk, with the live headers and ranges.
    let seg = uris(&video_text)
        .into_iter()
        .find(|u| u.ends_with(".m4s"))
        .unwrap();
    let r = s.get(&format!("{base}{seg}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let on_disk = dir.join(base.trim_start_matches('/')).join(&seg);
    assert_eq!(std::fs::read(&on_disk).unwrap(), r.body);
    let ranged = http_get(s.http, &format!("{base}{seg}"), &[("range", "bytes=4-11")]);
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, r.body[4..12]);

    // Everything it names is served; the checker and ffprobe read it end to end.
    let local = download(&s, &rec.playlist);
    let total: u64 = walk(&local)
        .iter()
        .filter(|p| !p.to_str().unwrap().ends_with(".m3u8"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(rec.bytes >= total, "{rec:?}: {total} bytes of media");
    let rec_dir = dir.join(base.trim_start_matches('/'));
    let on_disk: u64 = walk(&rec_dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(rec.bytes, on_disk, "{rec:?}");
    validate_playlist_files(&[local.join("index.m3u8")]);
    // BANDWIDTH covers the recording's peak segment (video plus audio), measured at the end.
    let peak = |name: &str| -> f64 {
        let text = std::fs::read_to_string(local.join(format!("{name}.m3u8"))).unwrap();
        let mut peak = 0f64;
        let mut dur = 0f64;
        for l in text.lines() {
            if let Some(d) = l.strip_prefix("#EXTINF:") {
                dur = d.trim_end_matches(',').parse().unwrap();
            } else if l.ends_with(".m4s") {
                let len = std::fs::metadata(local.join(l)).unwrap().len() as f64;
                peak = peak.max(len * 8.0 / dur);
            }
        }
        peak
    };
    let mv = std::fs::read_to_string(local.join("index.m3u8")).unwrap();
    let bw: f64 = mv
        .split("BANDWIDTH=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let measured = peak("video") + peak("audio");
    assert!(
        bw >= measured && bw < measured * 1.01,
        "BANDWIDTH {bw}, peak {measured}: {mv}"
    );
    let (v, a, secs) = probe(&local.join("index.m3u8"));
    // 30 frames per second, 48 kHz AAC (1024 samples a frame), over the recorded seconds.
    let expect_v = rec.duration * 30.0;
    assert!(
        (v as f64 - expect_v).abs() <= 2.0,
        "{v} video packets for {rec:?}"
    );
    assert!(
        a as f64 > rec.duration * 46.0,
        "{a} audio packets for {rec:?}"
    );
    assert!(
        (secs - rec.duration).abs() < 0.5,
        "ffprobe says {secs} s for {rec:?}"
    );
    let _ = std::fs::remove_dir_all(&local);
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_reconnect_within_the_grace_period_continues_the_recording_after_a_discontinuity() {
    let (s, dir) = recording_server("reconnect", &["--reconnect-grace-secs", "8"]);
    // A publisher that vanishes without unpublishing (a crash, a dropped network): killed.
    let mut ff = publish(&s.rtmp_url("re"), 30, false);
    s.wait_for("/live/re/index.m3u8", Duration::from_secs(20));
    until(Duration::from_secs(20), "no recorded segment", || {
        recordings(&s).first().is_some_and(|r| r.duration >= 2.0)
    });
    let _ = ff.kill();
    let _ = ff.wait();
    let mut again = publish(&s.rtmp_url("re"), 5, false);
    until(Duration::from_secs(20), "no discontinuity", || {
        s.get("/live/re/media.m3u8")
            .text()
            .contains("#EXT-X-DISCONTINUITY\n")
    });
    let live_text = s.get("/live/re/media.m3u8").text();
    assert!(again.wait().unwrap().success());
    ended_recording(&s);
    let recs = recordings(&s);
    assert_eq!(
        recs.len(),
        1,
        "one recording across the reconnect: {recs:?}"
    );
    let base = recs[0].playlist.trim_end_matches("index.m3u8");
    let text = s.get(&format!("{base}media.m3u8")).text();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    // The init sections are the live stream's: a new EXT-X-MAP only where the live playlist
    // had one (the same publisher settings give the same codec configuration, so none here).
    let maps = |t: &str| t.matches("#EXT-X-MAP:").count();
    let (before, after) = text.split_once("#EXT-X-DISCONTINUITY\n").unwrap();
    assert_eq!(maps(before), 1, "{text}");
    let (_, after_live) = live_text.split_once("#EXT-X-DISCONTINUITY\n").unwrap();
    assert_eq!(maps(after), maps(after_live), "{text}\n{live_text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let local = download(&s, &recs[0].playlist);
    validate_playlist_files(&[local.join("index.m3u8")]);
    let (v, _, secs) = probe(&local.join("index.m3u8"));
    assert!(v > 0 && secs > 5.0, "{v} packets, {secs} s");
    let _ = std::fs::remove_dir_all(&local);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn after_kill_9_mid_stream_the_recording_is_closed_and_a_torn_segment_discarded() {
    let dir = data_dir("restart");
    let args = [
        "--record",
        "true",
        "--layout",
        "separate",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    let mut s = Server::start(&args);
    let mut ff = publish(&s.rtmp_url("crash"), 60, false);
    s.wait_for("/live/crash/index.m3u8", Duration::from_secs(20));
    until(Duration::from_secs(30), "no recorded segments", || {
        recordings(&s).first().is_some_and(|r| r.duration >= 4.0)
    });
    let live = recordings(&s)[0].clone();
    assert!(!live.ended);
    // kill -9 while the stream is live.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let _ = ff.kill();
    let _ = ff.wait();
    let rec_dir = dir.join(
        live.playlist
            .trim_start_matches('/')
            .trim_end_matches("/index.m3u8"),
    );
    let before = std::fs::read_to_string(rec_dir.join("video.m3u8")).unwrap();
    assert!(!before.contains("#EXT-X-ENDLIST"), "{before}");
    // A segment the writer was in the middle of, as a crash leaves it.
    let torn = rec_dir.join("video/99999999999.m4s.tmp");
    std::fs::write(&torn, b"half a segm").unwrap();

    let s = Server::start(&args);
    let recs = recordings(&s);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(recs[0].ended, "closed at startup: {recs:?}");
    assert_eq!(recs[0].playlist, live.playlist);
    assert!(recs[0].duration >= live.duration, "{recs:?} {live:?}");
    assert!(!torn.exists(), "the torn segment is deleted");
    let on_disk: u64 = walk(&rec_dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(recs[0].bytes, on_disk, "{recs:?}");
    let base = live.playlist.trim_end_matches("index.m3u8");
    for name in ["video", "audio"] {
        let text = s.get(&format!("{base}{name}.m3u8")).text();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert!(!text.contains(".tmp"), "{text}");
    }
    assert!(s.log_text().contains("closed a recording left open"));
    let local = download(&s, &live.playlist);
    validate_playlist_files(&[local.join("index.m3u8")]);
    let (v, a, secs) = probe(&local.join("index.m3u8"));
    assert!(v > 0 && a > 0, "{v} video and {a} audio packets");
    assert!(
        (secs - recs[0].duration).abs() < 1.0,
        "{secs} s for {recs:?}"
    );
    // A new publish of the same name starts a new recording beside it.
    let mut ff = publish(&s.rtmp_url("crash"), 3, false);
    assert!(ff.wait().unwrap().success());
    until(Duration::from_secs(20), "no second recording", || {
        recordings(&s).iter().filter(|r| r.ended).count() == 2
    });
    let _ = std::fs::remove_dir_all(&local);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_deletes_whole_finished_recordings_oldest_first_by_size() {
    let (s, dir) = recording_server("bytes", &["--record-max-bytes", "1"]);
    // A live recording is never deleted, however far over the limit.
    let mut live = publish(&s.rtmp_url("live"), 30, false);
    s.wait_for("/live/live/index.m3u8", Duration::from_secs(20));
    let mut short = publish(&s.rtmp_url("short"), 3, false);
    assert!(short.wait().unwrap().success());
    until(
        Duration::from_secs(30),
        "the finished recording stays",
        || {
            let recs = recordings(&s);
            // Unlisted first, then its files deleted.
            recs.len() == 1
                && recs[0].name == "live"
                && recs[0].bytes > 1
                && !dir.join("recordings/short").exists()
        },
    );
    let log = s.log_text();
    assert!(
        log.contains("recording deleted")
            && log.contains("short/")
            && log.contains("record_max_bytes"),
        "{log}"
    );
    let _ = live.kill();
    let _ = live.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_deletes_finished_recordings_past_their_age() {
    let (s, dir) = recording_server("age", &["--record-max-age-secs", "2"]);
    let mut ff = publish(&s.rtmp_url("old"), 3, false);
    assert!(ff.wait().unwrap().success());
    ended_recording(&s);
    until(Duration::from_secs(20), "the recording was kept", || {
        recordings(&s).is_empty() && !dir.join("recordings/old").exists()
    });
    let log = s.log_text();
    assert!(log.contains("record_max_age_secs"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_recording_url_reaches_outside_the_recordings_directory() {
    let (s, dir) = recording_server("traversal", &[]);
    let mut ff = publish(&s.rtmp_url("t"), 3, false);
    assert!(ff.wait().unwrap().success());
    let rec = ended_recording(&s);
    let id = rec.playlist.split('/').nth(3).unwrap().to_string();
    // Files beside and above the recordings, which no URL may serve.
    std::fs::write(dir.join("secret.m3u8"), "#EXTM3U secret").unwrap();
    std::fs::write(dir.join("recordings/secret.m3u8"), "#EXTM3U secret").unwrap();
    std::fs::write(dir.join("recordings/t/secret.m3u8"), "#EXTM3U secret").unwrap();
    assert_eq!(s.get(&rec.playlist).status, 200);
    for path in [
        "/recordings/t/../secret.m3u8".to_string(),
        format!("/recordings/t/{id}/../secret.m3u8"),
        format!("/recordings/t/{id}/../../secret.m3u8"),
        format!("/recordings/t/{id}/..%2Fsecret.m3u8"),
        format!("/recordings/t/{id}/%2E%2E%2Fsecret.m3u8"),
        "/recordings/t/%2E%2E/secret.m3u8".to_string(),
        "/recordings/..%2F..%2F/x/secret.m3u8".to_string(),
        "/recordings/t//secret.m3u8".to_string(),
        format!("/recordings//{}/secret.m3u8", dir.display()),
        format!("/recordings/t/{id}/media/..%2F..%2F..%2Fsecret.m3u8"),
        format!("/recordings/t/{id}/media/%2e%2e/1.m4s"),
        format!("/recordings/t/{id}/..\\..\\secret.m3u8"),
        "/recordings/t/nonexistent/index.m3u8".to_string(),
        "/recordings/nobody/20261201T133000Z/index.m3u8".to_string(),
        format!("/recordings/t/{id}/media/1.0.m4s"),
    ] {
        let r = s.get(&path);
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("secret"), "{path}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_rendition_of_a_ladder_is_recorded_on_the_same_segments() {
    let dir = data_dir("ladder");
    let s = Server::start(&[
        "--record",
        "la*",
        "--ladder",
        "240p",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let mut ff = publish_sized(&s.rtmp_url("ladder"), 6, false, "640x480");
    // Not matched by the pattern: not recorded.
    let mut other = publish(&s.rtmp_url("other"), 3, false);
    assert!(ff.wait().unwrap().success());
    assert!(other.wait().unwrap().success());
    until(Duration::from_secs(30), "the recording never ended", || {
        recordings(&s).first().is_some_and(|r| r.ended)
    });
    let recs = recordings(&s);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].name, "ladder");
    let base = recs[0].playlist.trim_end_matches("index.m3u8");
    let mv = s.get(&recs[0].playlist).text();
    let variants: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants, ["video.m3u8", "240p.m3u8"], "{mv}");
    assert!(mv.contains("URI=\"audio.m3u8\""), "{mv}");
    // The rung has the source's segments: the same MSNs, durations and dates.
    let listing = |name: &str| -> Vec<String> {
        s.get(&format!("{base}{name}.m3u8"))
            .text()
            .lines()
            .filter(|l| l.starts_with("#EXTINF") || l.starts_with("#EXT-X-PROGRAM"))
            .map(String::from)
            .collect()
    };
    assert_eq!(listing("video"), listing("240p"));
    assert!(!listing("240p").is_empty());
    let local = download(&s, &recs[0].playlist);
    validate_playlist_files(&[local.join("index.m3u8")]);
    let _ = std::fs::remove_dir_all(&local);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recording_that_cannot_be_written_is_logged_and_counted_and_the_live_stream_goes_on() {
    let (s, dir) = recording_server("full", &[]);
    let mut ff = publish(&s.rtmp_url("full"), 30, false);
    s.wait_for("/live/full/index.m3u8", Duration::from_secs(20));
    until(Duration::from_secs(20), "no recorded segment", || {
        recordings(&s).first().is_some_and(|r| r.duration > 0.0)
    });
    // The recording's directory turns into a file: every later write fails, as on a full or
    // broken disk.
    let rec = recordings(&s)[0].clone();
    let rec_dir = dir.join(
        rec.playlist
            .trim_start_matches('/')
            .trim_end_matches("/index.m3u8"),
    );
    // The writer may be adding a file at this very moment (removing the directory then fails
    // with "not empty"): move it away in one step, then put a file in its place, again if the
    // writer recreated the directory in between.
    let moved = std::env::temp_dir().join(format!("llhls-rec-moved-{}", std::process::id()));
    for attempt in 0.. {
        let away = moved.join(attempt.to_string());
        std::fs::create_dir_all(&moved).unwrap();
        let _ = std::fs::rename(&rec_dir, &away);
        if std::fs::write(&rec_dir, b"not a directory").is_ok() {
            break;
        }
        assert!(attempt < 50, "the recording's directory keeps coming back");
    }
    let errors = || -> u64 {
        s.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("llhls_record_write_errors_total "))
            .map_or(0, |v| v.parse().unwrap())
    };
    until(Duration::from_secs(20), "no write error counted", || {
        errors() > 0
    });
    let before = s.get("/live/full/media.m3u8").text();
    std::thread::sleep(Duration::from_secs(3));
    let after = s.get("/live/full/media.m3u8").text();
    assert_ne!(before, after, "the live stream stopped");
    assert!(!after.contains("#EXT-X-ENDLIST"));
    let log = s.log_text();
    assert!(log.contains("recording: writing"), "{log}");
    assert!(
        log.matches("recording: writing").count() <= 5,
        "the log is not flooded"
    );
    let _ = ff.kill();
    let _ = ff.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&moved);
}

#[test]
fn a_byterange_stream_is_recorded_as_whole_segments() {
    let (s, dir) = recording_server("byterange", &["--addressing", "byterange"]);
    let mut ff = publish(&s.rtmp_url("br"), 5, false);
    assert!(ff.wait().unwrap().success());
    let rec = ended_recording(&s);
    let base = rec.playlist.trim_end_matches("index.m3u8");
    let text = s.get(&format!("{base}media.m3u8")).text();
    assert!(!text.contains("BYTERANGE"), "{text}");
    let local = download(&s, &rec.playlist);
    validate_playlist_files(&[local.join("index.m3u8")]);
    let (v, _, secs) = probe(&local.join("index.m3u8"));
    assert!(
        (v as f64 - rec.duration * 30.0).abs() <= 2.0,
        "{v} for {rec:?}"
    );
    assert!((secs - rec.duration).abs() < 0.5, "{secs} s for {rec:?}");
    let _ = std::fs::remove_dir_all(&local);
    let _ = std::fs::remove_dir_all(&dir);
}
