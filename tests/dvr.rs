//! The DVR window with the real binary and an ffmpeg publisher: a 20 s window of 1 s
//! segments, segments past the live window served from disk byte for byte as they were from
//! memory, deleted when they leave the window, the window as VOD once the stream ended (read
//! by the checker and ffprobe), clips of it by time, a new publish replacing it, and a clear
//! error for an unusable data directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn data_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("llhls-dvr-{tag}-{}", std::process::id()))
}

/// Polls `what` every 100 ms until it holds; panics with `why` after `limit` (a generous
/// bound for a stream running in real time, not a performance assertion).
fn until(limit: Duration, why: &str, mut what: impl FnMut() -> bool) {
    let start = Instant::now();
    while !what() {
        assert!(start.elapsed() < limit, "{why}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (MSN of the first segment, EXTINF durations, skipped segments) of a media playlist.
fn listing(text: &str) -> (u64, Vec<f64>, usize) {
    let field = |tag: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .map(|v| v.split(',').next().unwrap().parse::<u64>().unwrap())
    };
    let durations = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| v.trim_end_matches(',').parse().unwrap())
        .collect();
    let skipped = field("#EXT-X-SKIP:SKIPPED-SEGMENTS=").unwrap_or(0) as usize;
    (field("#EXT-X-MEDIA-SEQUENCE:").unwrap(), durations, skipped)
}

fn segment_uris(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(String::from)
        .collect()
}

/// A server with a DVR window of `secs` seconds on `dir`: 1 s segments, a live window of 6.
fn dvr_server(dir: &std::path::Path, secs: &str) -> Server {
    dvr_server_with(dir, secs, &[])
}

/// [`dvr_server`] with more arguments.
fn dvr_server_with(dir: &std::path::Path, secs: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "--dvr-window-secs",
        secs,
        "--window-segments",
        "6",
        "--segment-target-ms",
        "1000",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

const TOKEN: &str = "dvr-admin-token-0123456789";

/// `GET path` of the admin API, as JSON.
fn admin_get(s: &Server, path: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let r = http_request(s.http, "GET", path, &[("Authorization", &auth)], b"").unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    (r.status, v)
}

#[test]
fn a_dvr_window_lists_its_seconds_and_serves_old_segments_from_disk() {
    let dir = data_dir("serve");
    let _ = std::fs::remove_dir_all(&dir);
    let s = dvr_server(&dir, "20");
    let mut ff = publish(&s.rtmp_url("dvr"), 45, false);
    s.wait_for("/live/dvr/media.m3u8", Duration::from_secs(20));
    let playlist = || s.get("/live/dvr/media.m3u8").text();

    // The oldest segment, served from memory while it is in the live window.
    let first = segment_uris(&playlist())[0].clone();
    let live = s.get(&format!("/live/dvr/{first}"));
    assert_eq!(live.status, 200);
    let file = dir.join("dvr/dvr.0").join(&first);
    assert!(!file.exists(), "{first} on disk while in the live window");

    // Once it left the live window it is written to disk, and served from there the same.
    until(Duration::from_secs(30), "segment never spilled", || {
        file.exists()
    });
    // The store switches to the file right after the rename; give the writer a moment.
    std::thread::sleep(Duration::from_millis(500));
    let disk = s.get(&format!("/live/dvr/{first}"));
    assert_eq!(disk.status, 200);
    assert_eq!(disk.body, live.body, "{first} differs from disk");
    assert_eq!(std::fs::read(&file).unwrap(), live.body);
    for h in [
        "content-type",
        "cache-control",
        "accept-ranges",
        "content-length",
    ] {
        assert_eq!(disk.header(h), live.header(h), "{h}");
    }
    let ranged = http_get(
        s.http,
        &format!("/live/dvr/{first}"),
        &[("range", "bytes=10-99")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, live.body[10..100]);
    let len = live.body.len();
    assert_eq!(
        ranged.header("content-range"),
        Some(format!("bytes 10-99/{len}").as_str())
    );
    let tail = http_get(
        s.http,
        &format!("/live/dvr/{first}"),
        &[("range", "bytes=-7")],
    );
    assert_eq!(tail.body, live.body[len - 7..]);
    let beyond = format!("bytes={len}-");
    let past = http_get(s.http, &format!("/live/dvr/{first}"), &[("range", &beyond)]);
    assert_eq!(past.status, 416);

    // The window fills up to 20 s of 1 s segments, then slides.
    let first_msn = listing(&playlist()).0;
    until(Duration::from_secs(40), "the window never slid", || {
        listing(&playlist()).0 > first_msn
    });
    let full = playlist();
    let (_, durations, _) = listing(&full);
    let total: f64 = durations.iter().sum();
    assert!(total >= 20.0 - 1e-3, "{total} s listed");
    assert!(
        total - durations[0] < 20.0,
        "{total} s listed, more than needed"
    );
    assert!((19..=22).contains(&durations.len()), "{}", durations.len());
    // Parts only near the live edge.
    let parents_with_parts = full
        .split("#EXTINF:")
        .filter(|chunk| chunk.contains("#EXT-X-PART:"))
        .count();
    assert!(
        parents_with_parts <= 6,
        "{parents_with_parts} parents list parts"
    );

    // The delta update stays small: it lists about CAN-SKIP-UNTIL (6 s) of segments.
    let delta = s.get("/live/dvr/media.m3u8?_HLS_skip=YES").text();
    let (msn, listed, skipped) = listing(&delta);
    assert!(skipped >= durations.len() - 9, "skipped {skipped}");
    assert!(
        listed.len() <= 8,
        "{} segments after the skip",
        listed.len()
    );
    let uris = segment_uris(&delta);
    // The first segment after the skip is MEDIA-SEQUENCE + SKIPPED-SEGMENTS.
    assert_eq!(uris[0], format!("media/{}.m4s", msn + skipped as u64));
    // Its size does not grow with the window: only the EXT-X-SKIP line stands for the rest.
    assert!(
        delta.len() < full.len(),
        "delta {} bytes, full {}",
        delta.len(),
        full.len()
    );

    // Every view parses, and every listed object (old segments from disk) is served.
    validate_served(&s, "dvr");

    // The oldest segment leaves the window: 404, and its file is deleted.
    until(
        Duration::from_secs(30),
        "the first segment's file stays",
        || !file.exists(),
    );
    assert_eq!(s.get(&format!("/live/dvr/{first}")).status, 404);
    // Disk use is bounded by the window (plus the 3 target durations of retention).
    let on_disk = std::fs::read_dir(file.parent().unwrap()).unwrap().count();
    assert!(on_disk <= 20 + 4, "{on_disk} files on disk");

    let metrics = s.get("/metrics").text();
    assert!(
        metrics.contains("llhls_dvr_write_errors_total 0"),
        "{metrics}"
    );
    let _ = ff.kill();
    let _ = ff.wait();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_disk_shrinks_the_window_and_the_stream_goes_on() {
    let dir = data_dir("fail");
    let _ = std::fs::remove_dir_all(&dir);
    let s = dvr_server(&dir, "60");
    // A file where the stream's directory would go: every write fails, as on a full disk.
    std::fs::write(dir.join("dvr/fail.0"), b"in the way").unwrap();
    let mut ff = publish(&s.rtmp_url("fail"), 25, false);
    s.wait_for("/live/fail/media.m3u8", Duration::from_secs(20));
    let errors = || {
        s.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("llhls_dvr_write_errors_total "))
            .map(|v| v.parse::<u64>().unwrap())
            .unwrap_or(0)
    };
    until(Duration::from_secs(30), "no write error counted", || {
        errors() >= 3
    });
    // The window holds the live window only, and the stream keeps advancing.
    let (msn, durations, _) = listing(&s.get("/live/fail/media.m3u8").text());
    assert!(durations.len() <= 7, "{} segments listed", durations.len());
    until(Duration::from_secs(10), "the stream stopped", || {
        listing(&s.get("/live/fail/media.m3u8").text()).0 > msn + 1
    });
    validate_served(&s, "fail");
    let log = s.log_text();
    assert!(log.contains("writing a DVR segment failed"), "{log}");
    let lines = log.matches("writing a DVR segment failed").count();
    assert!(
        lines <= 5 + errors() as usize / 100,
        "{lines} log lines: rate-limited"
    );
    let _ = ff.kill();
    let _ = ff.wait();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unusable_data_directory_stops_startup_with_its_path() {
    let blocker = data_dir("blocker");
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let bad = blocker.join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["serve", "--demo", "false", "--whip-udp", "off"])
        .args(["--http", &format!("127.0.0.1:{}", free_port())])
        .args(["--rtmp", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--dvr-window-secs",
            "60",
            "--data-dir",
            bad.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&Path::new(&bad).join("dvr").display().to_string()),
        "{err}"
    );
    assert!(
        err.contains("data_dir"),
        "says which setting to change: {err}"
    );
    std::fs::remove_file(&blocker).unwrap();
}

/// (seconds, video packets) ffprobe reads from the playlist at `url`, following every segment.
fn probe_url(url: &str) -> (f64, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_packets:format=duration"])
        .args(["-of", "default=nw=1"])
        .arg(url)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ffprobe {url}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut secs, mut packets) = (0.0, 0);
    for l in text.lines() {
        if let Some(d) = l.strip_prefix("duration=") {
            secs = d.parse().unwrap_or(0.0);
        } else if let Some(n) = l.strip_prefix("nb_read_packets=") {
            packets = packets.max(n.parse().unwrap_or(0));
        }
    }
    (secs, packets)
}

#[test]
fn an_ended_stream_is_vod_of_its_window_with_clips_until_a_new_publish() {
    let dir = data_dir("vod");
    let _ = std::fs::remove_dir_all(&dir);
    let s = dvr_server_with(&dir, "12", &["--admin-token", TOKEN]);
    // 16 s of a 30 fps picture: the window slides before the end.
    let mut ff = publish(&s.rtmp_url("vod"), 16, false);
    s.wait_for("/live/vod/media.m3u8", Duration::from_secs(20));
    let (status, live) = admin_get(&s, "/api/v1/streams/vod");
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["state"], "live", "{live}");
    assert!(live["kept_until"].is_null(), "{live}");
    assert!(ff.wait().unwrap().success());
    // ffmpeg ends its publish: the stream ends at once.
    let playlist = || s.get("/live/vod/media.m3u8").text();
    until(Duration::from_secs(10), "no EXT-X-ENDLIST", || {
        playlist().ends_with("#EXT-X-ENDLIST\n")
    });
    let vod = playlist();
    assert!(!vod.contains("#EXT-X-PRELOAD-HINT"), "{vod}");
    // Listed as ended, with until when it is kept (at least 60 s after its end), in
    // /streams.json and in the admin API.
    let last_date = vod
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .next_back()
        .unwrap()
        .to_string();
    until(Duration::from_secs(10), "not listed as ended", || {
        s.get("/streams.json")
            .text()
            .contains("\"state\":\"ended\"")
    });
    let (status, list) = admin_get(&s, "/api/v1/streams");
    assert_eq!(status, 200, "{list}");
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["name"], "vod", "{list}");
    assert_eq!(listed[0]["state"], "ended", "{list}");
    let kept = listed[0]["kept_until"].as_str().unwrap().to_string();
    // The same format (UTC, milliseconds): later dates sort later.
    assert_eq!(kept.len(), last_date.len(), "{kept} {last_date}");
    assert!(
        kept.as_str() > last_date.as_str(),
        "kept until {kept}, last segment {last_date}"
    );
    assert!(
        s.get("/streams.json")
            .text()
            .contains(&format!("\"kept_until\":\"{kept}\"")),
        "{kept}"
    );
    let (status, one) = admin_get(&s, "/api/v1/streams/vod");
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["state"], "ended", "{one}");
    assert_eq!(one["kept_until"], kept.as_str(), "{one}");
    let (_, durations, _) = listing(&vod);
    let total: f64 = durations.iter().sum();
    assert!(
        (12.0 - 1e-3..14.0).contains(&total),
        "{total} s listed:\n{vod}"
    );
    // Every segment goes to disk, those of the live window too.
    let stream_dir = dir.join("dvr/vod.0");
    let uris = segment_uris(&vod);
    until(Duration::from_secs(10), "segments not on disk", || {
        uris.iter().all(|u| stream_dir.join(u).exists())
    });
    validate_served(&s, "vod");
    let url = |q: &str| format!("http://{}/live/vod/{q}", s.http);
    let (secs, packets) = probe_url(&url("index.m3u8"));
    assert!(
        (secs - total).abs() < 0.5,
        "ffprobe reads {secs} s of {total}"
    );
    assert!(
        packets as f64 >= 30.0 * (total - 0.5),
        "{packets} video packets in {total} s"
    );

    // A clip: the segments overlapping [3rd segment's date, 6th segment's date).
    let dates: Vec<&str> = vod
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .collect();
    let q = format!("start={}&end={}", dates[2], dates[5]);
    let clip = s.get(&format!("/live/vod/media.m3u8?{q}"));
    assert_eq!(clip.status, 200);
    let clip = clip.text();
    assert_eq!(segment_uris(&clip), uris[2..5], "{clip}");
    assert!(clip.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{clip}");
    validate_playlists(&[("clip.m3u8", clip.clone())]);
    let clip_secs: f64 = listing(&clip).1.iter().sum();
    let (secs, _) = probe_url(&url(&format!("index.m3u8?{q}")));
    assert!(
        (secs - clip_secs).abs() < 0.5,
        "ffprobe reads {secs} s of the {clip_secs} s clip"
    );
    for bad in [
        format!("media.m3u8?{q}&_HLS_msn=3"),
        format!("index.m3u8?start={}&end={}", dates[5], dates[2]),
        "media.m3u8?end=2020-01-01T00:00:00Z".to_string(),
        "media.m3u8?start=soon".to_string(),
    ] {
        let r = s.get(&format!("/live/vod/{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }

    // A new publish of the name is a new live stream; the old one's files go.
    let mut again = publish(&s.rtmp_url("vod"), 30, false);
    until(
        Duration::from_secs(20),
        "the new stream never went live",
        || {
            let r = s.get("/live/vod/media.m3u8");
            r.status == 200 && !r.text().contains("#EXT-X-ENDLIST")
        },
    );
    until(
        Duration::from_secs(10),
        "the ended stream's files stay",
        || !stream_dir.exists(),
    );
    assert!(s.log_text().contains("replaces the ended one"));
    let (_, list) = admin_get(&s, "/api/v1/streams");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["state"], "live", "{list}");
    let _ = again.kill();
    let _ = again.wait();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
