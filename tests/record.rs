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

    // Clips across the discontinuity and after it (counted in EXT-X-DISCONTINUITY-SEQUENCE).
    let all = segments(&text);
    let (before_disc, _) = text.split_once("#EXT-X-DISCONTINUITY\n").unwrap();
    let first_after = segments(before_disc).len();
    for (from, to, disc_seq) in [
        (first_after - 1, first_after + 1, None),
        (first_after, all.len() - 1, Some(1)),
    ] {
        let query = format!("start={}&end={}", all[from].0, all[to].0);
        let clip = s.get(&format!("{base}media.m3u8?{query}")).text();
        let got: Vec<String> = segments(&clip).into_iter().map(|s| s.2).collect();
        let want: Vec<String> = all[from..to].iter().map(|s| s.2.clone()).collect();
        assert_eq!(got, want, "{clip}");
        match disc_seq {
            None => assert!(clip.contains("#EXT-X-DISCONTINUITY\n"), "{clip}"),
            Some(n) => assert!(
                clip.contains(&format!("#EXT-X-DISCONTINUITY-SEQUENCE:{n}\n"))
                    && !clip.contains("#EXT-X-DISCONTINUITY\n"),
                "{clip}"
            ),
        }
        let mv = s.get(&format!("{base}index.m3u8?{query}")).text();
        let norm = uris(&mv)[0].split_once('?').unwrap().1.to_string();
        let local = download_clip(&s, base, &norm);
        validate_playlist_files(&[local.join("index.m3u8")]);
        let _ = std::fs::remove_dir_all(&local);
    }
    // The whole recording as one file, across the reconnect (the same init section).
    let r = s.get(&format!("{base}export.mp4"));
    assert_eq!(r.status, 200, "{}", r.text());
    let (errors, frames) = ffmpeg_decode(&r.body);
    assert!(errors.trim().is_empty(), "ffmpeg: {errors}");
    assert!(frames > 0);
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

/// (PDT, seconds, URI) of every segment of a recorded media playlist.
/// The URIs of the segments a playlist marks with EXT-X-GAP.
fn gap_uris(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut gap = false;
    for l in text.lines() {
        if l == "#EXT-X-GAP" {
            gap = true;
        } else if !l.starts_with('#') && !l.is_empty() {
            if gap {
                out.insert(l.to_string());
            }
            gap = false;
        }
    }
    out
}

fn segments(text: &str) -> Vec<(String, f64, String)> {
    let mut out = Vec::new();
    let (mut pdt, mut dur) = (String::new(), 0.0);
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = v.to_string();
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            dur = v.trim_end_matches(',').parse().unwrap();
        } else if !l.starts_with('#') && !l.is_empty() {
            out.push((pdt.clone(), dur, l.to_string()));
        }
    }
    out
}

/// `2026-12-01T13:30:00.120Z` plus `ms` milliseconds (the same day: the tests shift by a
/// fraction of a second).
fn shift(pdt: &str, ms: i64) -> String {
    let (date, time) = pdt.split_once('T').unwrap();
    let time = time.trim_end_matches('Z');
    let (h, rest) = time.split_once(':').unwrap();
    let (m, s) = rest.split_once(':').unwrap();
    let total = (h.parse::<i64>().unwrap() * 3600 + m.parse::<i64>().unwrap() * 60) * 1000
        + (s.parse::<f64>().unwrap() * 1000.0).round() as i64
        + ms;
    assert!(
        (0..86_400_000).contains(&total),
        "the test does not cross midnight"
    );
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        total / 3_600_000,
        total / 60_000 % 60,
        total / 1000 % 60,
        total % 1000
    )
}

/// Fetches a clip (`index.m3u8?QUERY`) into a fresh directory as files a checker can read:
/// every URI of the multivariant playlist must carry exactly `query`; the local copy names the
/// files without it. Returns the directory.
fn download_clip(s: &Server, base: &str, query: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llhls-rec-clip-{}-{}",
        std::process::id(),
        s.http.port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mv = s.get(&format!("{base}index.m3u8?{query}"));
    assert_eq!(mv.status, 200, "{}", mv.text());
    let text = mv.text();
    let suffix = format!("?{query}");
    let mut playlists = Vec::new();
    for u in uris(&text) {
        let plain = u
            .strip_suffix(&suffix)
            .unwrap_or_else(|| panic!("{u} does not carry the clip's query: {text}"));
        playlists.push(plain.to_string());
    }
    assert!(!playlists.is_empty(), "{text}");
    std::fs::write(dir.join("index.m3u8"), text.replace(&suffix, "")).unwrap();
    for p in playlists {
        let r = s.get(&format!("{base}{p}{suffix}"));
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        std::fs::write(dir.join(&p), &r.body).unwrap();
        for u in uris(&r.text()) {
            let f = s.get(&format!("{base}{u}"));
            assert_eq!(f.status, 200, "{u}");
            let path = dir.join(&u);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &f.body).unwrap();
        }
    }
    dir
}

#[test]
fn a_clip_of_a_recording_is_a_playlist_of_the_whole_segments_in_its_range() {
    let (s, dir) = recording_server("clip", &["--layout", "separate"]);
    let mut ff = publish(&s.rtmp_url("clip"), 12, false);
    s.wait_for("/live/clip/index.m3u8", Duration::from_secs(20));
    until(Duration::from_secs(30), "no recorded segments", || {
        recordings(&s).first().is_some_and(|r| r.duration >= 4.0)
    });
    let live = recordings(&s)[0].clone();
    let base = live.playlist.trim_end_matches("index.m3u8").to_string();
    // While the stream is live: a clip whose end the recording has passed is VOD, one whose
    // end is still ahead is EVENT (it grows).
    let passed = s.get(&format!("{base}video.m3u8?start=0&end=1.5"));
    assert_eq!(passed.status, 200, "{}", passed.text());
    let text = passed.text();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let ahead = s.get(&format!("{base}video.m3u8?start=1&end=3600"));
    assert_eq!(ahead.status, 200, "{}", ahead.text());
    let text = ahead.text();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    assert_eq!(ahead.header("cache-control"), Some("public, max-age=1"));

    assert!(ff.wait().unwrap().success());
    let rec = ended_recording(&s);
    let full = s.get(&format!("{base}video.m3u8")).text();
    let all = segments(&full);
    assert!(all.len() >= 5, "{full}");
    // From half a second into segment 1 to a tenth of a second into segment 3, as
    // EXT-X-PROGRAM-DATE-TIME values (the colons percent-encoded, as a form would send them):
    // whole segments 1, 2 and 3.
    let t0 = shift(&all[1].0, 500);
    let t1 = shift(&all[3].0, 100);
    let query = format!("start={}&end={}", t0.replace(':', "%3A"), t1);
    let clip = s.get(&format!("{base}video.m3u8?{query}"));
    assert_eq!(clip.status, 200, "{}", clip.text());
    assert_eq!(clip.header("cache-control"), Some("public, max-age=3600"));
    let text = clip.text();
    let got: Vec<String> = segments(&text).into_iter().map(|s| s.2).collect();
    let want: Vec<String> = all[1..4].iter().map(|s| s.2.clone()).collect();
    assert_eq!(got, want, "{text}");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    assert!(text.contains("#EXT-X-MAP:URI=\"video/init-"), "{text}");
    let msn: u64 = all[1]
        .2
        .trim_start_matches("video/")
        .trim_end_matches(".m4s")
        .parse()
        .unwrap();
    assert!(
        text.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{msn}\n")),
        "{text}"
    );
    // The same range in seconds from the recording's start, and as the multivariant
    // playlist's variants and renditions (the URIs carry the normalised range).
    let mv = s.get(&format!("{base}index.m3u8?{query}")).text();
    let norm = uris(&mv)[0].split_once('?').unwrap().1.to_string();
    let local = download_clip(&s, &base, &norm);
    validate_playlist_files(&[local.join("index.m3u8")]);
    let clip_secs: f64 = all[1..4].iter().map(|s| s.1).sum();
    let (v, a, secs) = probe(&local.join("index.m3u8"));
    assert!(
        (v as f64 - clip_secs * 30.0).abs() <= 2.0,
        "{v} video packets for {clip_secs} s"
    );
    assert!(a as f64 > clip_secs * 46.0, "{a} audio packets");
    assert!(
        (secs - clip_secs).abs() < 0.5,
        "ffprobe: {secs} s, clip {clip_secs} s"
    );
    // ffprobe over HTTP, following the URIs with their query as served.
    let url = format!("http://{}{base}index.m3u8?{query}", s.http);
    let (hv, ha, hsecs) = probe(Path::new(&url));
    assert_eq!((hv, ha), (v, a), "the same clip over HTTP");
    assert!(
        (hsecs - clip_secs).abs() < 0.5,
        "ffprobe over HTTP: {hsecs} s"
    );
    let audio = std::fs::read_to_string(local.join("audio.m3u8")).unwrap();
    let audio_secs: f64 = segments(&audio).iter().map(|s| s.1).sum();
    assert!((audio_secs - clip_secs).abs() < 0.2, "{audio}");
    // Open ends: from a time to the end, and from the start to a time.
    let tail = s
        .get(&format!("{base}video.m3u8?start={}", all[all.len() - 1].0))
        .text();
    assert_eq!(segments(&tail).len(), 1, "{tail}");
    let head = s.get(&format!("{base}video.m3u8?end={}", all[1].0)).text();
    assert_eq!(segments(&head).len(), 1, "{head}");

    // Bad ranges: 400 with the reason, never a playlist.
    for (q, why) in [
        ("start=yesterday", "is not a time"),
        ("end=2026-13-01T00:00:00Z", "is not a time"),
        ("start=4&end=2", "is not after start"),
        ("start=3&end=3", "is not after start"),
        ("start=3&start=4", "twice"),
        ("start=100000", "outside the recording"),
        ("end=1999-01-01T00:00:00Z", "outside the recording"),
    ] {
        for f in ["index.m3u8", "video.m3u8", "export.mp4"] {
            let r = s.get(&format!("{base}{f}?{q}"));
            assert_eq!(r.status, 400, "{f}?{q}: {}", r.text());
            assert!(r.text().contains(why), "{f}?{q}: {}", r.text());
        }
    }
    assert!(rec.duration > 10.0, "{rec:?}");
    let _ = std::fs::remove_dir_all(&local);
    let _ = std::fs::remove_dir_all(&dir);
}

/// What ffprobe says of the file at `path`: its duration and the kinds of its streams.
fn probe_file(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type",
        ])
        .args(["-of", "default=nw=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_recording_exports_as_one_mp4_file_per_rendition() {
    let (s, dir) = recording_server("export", &["--layout", "separate"]);
    let mut ff = publish(&s.rtmp_url("exp"), 8, false);
    s.wait_for("/live/exp/index.m3u8", Duration::from_secs(20));
    assert!(ff.wait().unwrap().success());
    let rec = ended_recording(&s);
    let base = rec.playlist.trim_end_matches("index.m3u8").to_string();
    let video_text = s.get(&format!("{base}video.m3u8")).text();
    let all = segments(&video_text);

    // The whole recording, the first variant's rendition (video) by default.
    let r = s.get(&format!("{base}export.mp4"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    let cd = r.header("content-disposition").unwrap().to_string();
    assert!(
        cd.starts_with("attachment; filename=\"exp-video-20") && cd.ends_with(".mp4\""),
        "{cd}"
    );
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    let init = uris(&video_text)[0].clone();
    let mut expected = std::fs::read(dir.join(base.trim_start_matches('/')).join(&init)).unwrap();
    for (_, _, u) in &all {
        expected.extend(std::fs::read(dir.join(base.trim_start_matches('/')).join(u)).unwrap());
    }
    assert!(
        r.body == expected,
        "the init section and every segment, in order"
    );
    check_export_ranges(&s, &format!("{base}export.mp4"), &r.body);
    let (errors, frames) = ffmpeg_decode(&r.body);
    assert!(errors.trim().is_empty(), "ffmpeg: {errors}");
    assert!(
        (frames as f64 - rec.duration * 30.0).abs() <= 2.0,
        "{frames} frames for {rec:?}"
    );
    let file = std::env::temp_dir().join(format!("llhls-export-{}.mp4", std::process::id()));
    std::fs::write(&file, &r.body).unwrap();
    let info = probe_file(&file);
    assert!(info.contains("codec_type=video"), "{info}");
    let secs: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (secs - rec.duration).abs() < 0.5,
        "ffprobe: {secs} s for {rec:?}"
    );

    // The audio rendition of a range: whole segments 1 and 2 of it.
    let audio_text = s.get(&format!("{base}audio.m3u8")).text();
    let audio = segments(&audio_text);
    let q = format!(
        "rendition=audio&start={}&end={}",
        audio[1].0,
        shift(&audio[2].0, 10)
    );
    let r = s.get(&format!("{base}export.mp4?{q}"));
    assert_eq!(r.status, 200, "{}", r.text());
    std::fs::write(&file, &r.body).unwrap();
    check_export_ranges(&s, &format!("{base}export.mp4?{q}"), &r.body);
    let dec = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        dec.status.success() && dec.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    let info = probe_file(&file);
    assert!(
        info.contains("codec_type=audio") && !info.contains("codec_type=video"),
        "{info}"
    );
    let secs: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .unwrap()
        .parse()
        .unwrap();
    let want = audio[1].1 + audio[2].1;
    assert!(
        (secs - want).abs() < 0.2,
        "ffprobe: {secs} s, segments {want} s"
    );
    let _ = std::fs::remove_file(&file);

    for q in ["rendition=nope", "rendition=..%2Fx", "rendition=index"] {
        let r = s.get(&format!("{base}export.mp4?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.text().contains("rendition"), "{q}: {}", r.text());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Byte ranges of an export (a download resumed, a player probing the end) are the same
/// bytes as the whole file's, with 206 and Content-Range; a range past the end is 416.
fn check_export_ranges(s: &Server, path: &str, whole: &[u8]) {
    let n = whole.len();
    for (range, from, to) in [
        (format!("bytes={}-", n / 2), n / 2, n),
        (format!("bytes=100-{}", n / 3), 100, n / 3 + 1),
        ("bytes=-1000".to_string(), n - 1000, n),
        (format!("bytes={}-{}", n - 10, n + 50), n - 10, n),
    ] {
        let r = http_get(s.http, path, &[("range", &range)]);
        assert_eq!(r.status, 206, "{path} {range}: {}", r.text());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {from}-{}/{n}", to - 1).as_str()),
            "{path} {range}"
        );
        assert!(r.body == whole[from..to], "{path} {range}: other bytes");
    }
    let r = http_get(s.http, path, &[("range", &format!("bytes={n}-"))]);
    assert_eq!(r.status, 416, "{path}");
}

#[test]
fn after_sigterm_the_recording_is_a_closed_vod_with_every_segment() {
    let dir = data_dir("sigterm");
    let mut s = Server::start(&[
        "--record",
        "true",
        "--layout",
        "separate",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let mut ff = publish(&s.rtmp_url("term"), 60, false);
    s.wait_for("/live/term/index.m3u8", Duration::from_secs(20));
    until(Duration::from_secs(30), "no recorded segments", || {
        recordings(&s).first().is_some_and(|r| r.duration >= 4.0)
    });
    let live = recordings(&s)[0].clone();
    assert!(!live.ended);
    let term = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = s.child.wait().unwrap();
    let _ = ff.kill();
    let _ = ff.wait();
    assert!(
        status.success(),
        "a clean exit: {status:?}\n{}",
        s.log_text()
    );
    let log = s.log_text();
    assert!(log.contains("recording finished"), "{log}");
    // On disk, as the stop left it (no restart): closed, every written segment listed.
    let rec_dir = dir.join(
        live.playlist
            .trim_start_matches('/')
            .trim_end_matches("/index.m3u8"),
    );
    for name in ["video", "audio"] {
        let text = std::fs::read_to_string(rec_dir.join(format!("{name}.m3u8"))).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        // A GAP segment (the input stalled for a whole segment, as on a loaded machine) is
        // listed with EXT-X-GAP and has no file.
        let gaps = gap_uris(&text);
        let listed: std::collections::BTreeSet<String> = segments(&text)
            .into_iter()
            .map(|s| s.2)
            .filter(|u| !gaps.contains(u))
            .collect();
        let on_disk: std::collections::BTreeSet<String> = walk(&rec_dir.join(name))
            .iter()
            .map(|p| format!("{name}/{}", p.file_name().unwrap().to_str().unwrap()))
            .filter(|n| n.ends_with(".m4s"))
            .collect();
        assert_eq!(listed, on_disk, "{name}: every segment written is listed");
        assert!(
            gaps.iter().all(|g| !on_disk.contains(g)),
            "{name}: a GAP segment has a file: {gaps:?}"
        );
        assert!(listed.len() as f64 >= live.duration / 2.5, "{text}");
    }
    validate_playlist_files(&[rec_dir.join("index.m3u8")]);
    let (v, a, secs) = probe(&rec_dir.join("index.m3u8"));
    assert!(v > 0 && a > 0, "{v} video and {a} audio packets");
    assert!(secs >= live.duration - 0.5, "{secs} s, {live:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
