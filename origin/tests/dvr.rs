//! DVR storage in the origin's stream task: segments past the live window go to disk, an
//! ended stream stays as VOD of its window until it is removed (its directory with it) or
//! replaced by a new publish, and clips of the window by time.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use llhls_origin::live::Object;
use llhls_origin::{Body, Command, Origin, OriginConfig, StreamInput};
use llhls_packager::synth::Publisher;
use llhls_packager::{Packager, PackagerConfig};
use tower::ServiceExt;

/// Polls `what` every 10 ms, at most `tries` times.
async fn until(tries: u32, mut what: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if what() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    what()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_dvr_directory_goes_when_the_stream_is_gone() {
    let root = std::env::temp_dir().join(format!("llhls-origin-dvr-{}", std::process::id()));
    llhls_origin::dvr::prepare(&root).unwrap();
    let origin: Arc<Origin> = Origin::new(OriginConfig {
        dvr_dir: Some(root.clone()),
        ended_linger: Duration::from_millis(200),
        ..OriginConfig::default()
    });
    let mut publisher = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        window_segments: 6,
        dvr_window: Duration::from_secs(60),
        ..PackagerConfig::default()
    };
    let packager = Packager::new(config, publisher.tracks()).unwrap();
    let input = origin.create_stream("cam", packager).unwrap();
    // 30 s of media: 15 segments of 2 s, 9 of them past the live window.
    for _ in 0..77 * 30 {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
    }
    let dir = root.join("cam.0/media");
    let files = || {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".m4s"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(until(500, || files() >= 8).await, "{} files", files());
    // Every spilled segment is served from its file, the same bytes as written.
    let p = input.stream.current().unwrap();
    let oldest = &p.snapshot.renditions[0].segments[0];
    let key = oldest.uri.parse().unwrap();
    assert!(
        until(500, || matches!(
            input.stream.object(&key),
            Some(llhls_origin::live::Object::OnDisk(_))
        ))
        .await
    );
    input
        .send(Command::End(llhls_origin::wall_now()))
        .await
        .unwrap();
    drop(input);
    assert!(
        until(500, || !root.join("cam.0").exists()).await,
        "the stream's DVR directory stays after the stream is gone"
    );
    assert!(root.exists(), "the DVR root stays");
    let _ = std::fs::remove_dir_all(&root);
}

fn root(tag: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("llhls-origin-dvr-{tag}-{}", std::process::id()));
    llhls_origin::dvr::prepare(&root).unwrap();
    root
}

/// Starts stream `name` with a 60 s DVR window over a live window of 6 segments, feeds it
/// 40 s of media (segments of 1 s, then 2 s) and waits until it lists 18 segments: 12 of them
/// past the live window.
async fn dvr_stream(origin: &Arc<Origin>, name: &str) -> StreamInput {
    let mut publisher = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        window_segments: 6,
        dvr_window: Duration::from_secs(60),
        ..PackagerConfig::default()
    };
    let packager = Packager::new(config, publisher.tracks()).unwrap();
    let input = origin.create_stream(name, packager).unwrap();
    // About 77 frames a second: 30 of video, 47 of audio.
    for _ in 0..77 * 40 {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
    }
    // What the playlist lists: the newest complete segment is listed as still open (its
    // parts without its URI) until the next one has a part, so it does not count yet.
    let listed = || {
        input.stream.current().map_or(0, |p| {
            let r = &p.snapshot.renditions[0];
            let open = llhls_packager::playlist::newest_listed_open(
                p.snapshot.ended,
                r.open.as_ref().map(|o| o.parts.len()),
                r.segments.last(),
            );
            r.segments.len() - usize::from(open)
        })
    };
    assert!(
        until(1000, || listed() >= 18).await,
        "{} segments",
        listed()
    );
    input
}

async fn get(origin: &Arc<Origin>, uri: &str) -> (StatusCode, String) {
    use http_body_util::BodyExt;
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    let resp = origin
        .service()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn segment_uris(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(String::from)
        .collect()
}

async fn end(input: StreamInput) {
    input
        .send(Command::End(llhls_origin::wall_now()))
        .await
        .unwrap();
    let stream = input.stream.clone();
    drop(input);
    assert!(
        until(500, || stream
            .ended
            .load(std::sync::atomic::Ordering::Relaxed))
        .await,
        "the stream never ended"
    );
}

/// Runs scripts/validate_playlists.py over `files`.
fn check(files: &[std::path::PathBuf]) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/validate_playlists.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(files)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it and the m3u8 package)");
    assert!(
        out.status.success(),
        "the checker rejected it:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_stream_stays_as_vod_of_its_whole_window_on_disk() {
    let root = root("vod");
    let origin: Arc<Origin> = Origin::new(OriginConfig {
        dvr_dir: Some(root.clone()),
        // Without the DVR keep, the stream would go at once.
        ended_linger: Duration::ZERO,
        dvr_keep_ended: Some(Duration::from_secs(3600)),
        ..OriginConfig::default()
    });
    let input = dvr_stream(&origin, "cam").await;
    let live = get(&origin, "/live/cam/media.m3u8").await.1;
    let live_uris = segment_uris(&live);
    assert!(live_uris.len() >= 18, "{live}");
    let stream = input.stream.clone();
    end(input).await;

    // The same URL, the whole window, EXT-X-ENDLIST, nothing of a live edge.
    let (status, vod) = get(&origin, "/live/cam/media.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    assert!(!vod.contains("#EXT-X-PRELOAD-HINT"), "{vod}");
    assert!(!vod.contains("#EXT-X-RENDITION-REPORT"), "{vod}");
    let uris = segment_uris(&vod);
    assert_eq!(uris[..live_uris.len()], live_uris[..], "{vod}");
    // Delivery directives are ignored after the end (rule 44): the full playlist at once.
    let (status, blocked) = get(&origin, "/live/cam/media.m3u8?_HLS_msn=9999&_HLS_skip=YES").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(blocked, vod);

    // Every segment moves to disk, the live window's too: memory keeps only parts.
    let keys: Vec<llhls_packager::ObjectKey> = uris.iter().map(|u| u.parse().unwrap()).collect();
    assert!(
        until(500, || keys
            .iter()
            .all(|k| matches!(stream.object(k), Some(Object::OnDisk(_)))))
        .await,
        "segments of the ended stream stay in memory"
    );
    let dir = std::env::temp_dir().join(format!(
        "llhls-origin-dvr-vod-served-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("media")).unwrap();
    for u in &uris {
        assert!(root.join("cam.0").join(u).exists(), "{u} is not on disk");
        let (status, _) = get(&origin, &format!("/live/cam/{u}")).await;
        assert_eq!(status, StatusCode::OK, "{u}");
    }
    let mv = get(&origin, "/live/cam/index.m3u8").await.1;
    std::fs::write(dir.join("index.m3u8"), &mv).unwrap();
    std::fs::write(dir.join("media.m3u8"), &vod).unwrap();
    check(&[dir.join("index.m3u8"), dir.join("media.m3u8")]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_stream_goes_when_its_keep_time_is_over() {
    let root = root("keep");
    let origin: Arc<Origin> = Origin::new(OriginConfig {
        dvr_dir: Some(root.clone()),
        ended_linger: Duration::ZERO,
        dvr_keep_ended: Some(Duration::from_millis(300)),
        ..OriginConfig::default()
    });
    let input = dvr_stream(&origin, "cam").await;
    end(input).await;
    let mut gone = false;
    for _ in 0..500 {
        if get(&origin, "/live/cam/media.m3u8").await.0 == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the ended stream is never removed");
    assert!(
        until(500, || !root.join("cam.0").exists()).await,
        "its segments stay on disk"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_publish_replaces_the_ended_streams_vod() {
    let root = root("replace");
    let origin: Arc<Origin> = Origin::new(OriginConfig {
        dvr_dir: Some(root.clone()),
        dvr_keep_ended: Some(Duration::from_secs(3600)),
        ..OriginConfig::default()
    });
    let first = dvr_stream(&origin, "cam").await;
    end(first).await;
    assert!(root.join("cam.0").exists());
    let second = dvr_stream(&origin, "cam").await;
    assert!(
        until(500, || !root.join("cam.0").exists()).await,
        "the old stream's segments stay on disk"
    );
    assert!(root.join("cam.1").exists());
    let (status, text) = get(&origin, "/live/cam/media.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !text.contains("#EXT-X-ENDLIST"),
        "the new stream is live:\n{text}"
    );
    // The new stream is not removed when the old one's time would have come.
    assert!(Arc::ptr_eq(&origin.stream("cam").unwrap(), &second.stream));
    drop(second);
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_range_of_the_window_is_a_vod_clip() {
    let root = root("clip");
    let origin: Arc<Origin> = Origin::new(OriginConfig {
        dvr_dir: Some(root.clone()),
        ..OriginConfig::default()
    });
    let input = dvr_stream(&origin, "cam").await;
    let p = input.stream.current().unwrap();
    let segs = &p.snapshot.renditions[0].segments;
    let (from, to) = (segs[3].program_date_time, segs[6].program_date_time);
    let q = format!("start={}&end={}", from.to_rfc3339(), to.to_rfc3339());

    // The whole segments overlapping [start, end): 3, 4 and 5.
    let (status, clip) = get(&origin, &format!("/live/cam/media.m3u8?{q}")).await;
    assert_eq!(status, StatusCode::OK, "{clip}");
    let want: Vec<String> = segs.iter().skip(3).take(3).map(|s| s.uri.clone()).collect();
    assert_eq!(segment_uris(&clip), want, "{clip}");
    assert!(clip.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{clip}");
    assert!(clip.ends_with("#EXT-X-ENDLIST\n"), "{clip}");
    assert!(!clip.contains("#EXT-X-PART"), "{clip}");
    // Seconds count from the oldest segment the window lists.
    let from_secs = (from.millis() - segs[0].program_date_time.millis()) as f64 / 1000.0;
    let to_secs = (to.millis() - segs[0].program_date_time.millis()) as f64 / 1000.0;
    // An unknown `_HLS_` parameter is ignored, as on any playlist (rule 37).
    let (status, other) = get(&origin, &format!("/live/cam/media.m3u8?{q}&_HLS_x=1")).await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert_eq!(other, clip);
    let (_, by_secs) = get(
        &origin,
        &format!("/live/cam/media.m3u8?start={from_secs}&end={to_secs}"),
    )
    .await;
    assert_eq!(segment_uris(&by_secs), want);
    // The multivariant playlist hands the range to every rendition.
    let (status, mv) = get(&origin, &format!("/live/cam/index.m3u8?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    let variants = segment_uris(&mv);
    assert!(!variants.is_empty());
    for v in &variants {
        assert!(v.contains("?start="), "{mv}");
        let (status, _) = get(&origin, &format!("/live/cam/{v}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    // An open end past the live edge grows: EVENT, no ENDLIST.
    let (_, open) = get(
        &origin,
        &format!("/live/cam/media.m3u8?start={}", from.to_rfc3339()),
    )
    .await;
    assert!(open.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{open}");
    assert!(!open.contains("#EXT-X-ENDLIST"), "{open}");

    let dir = std::env::temp_dir().join(format!("llhls-origin-dvr-clip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // (The checker holds EVENT playlists to the low-latency live rules: only the VOD one.)
    std::fs::write(dir.join("clip.m3u8"), &clip).unwrap();
    check(&[dir.join("clip.m3u8")]);
    let _ = std::fs::remove_dir_all(&dir);

    // Refused with the reason: 400.
    let first = segs[0].program_date_time;
    let before = llhls_packager::WallClock(first.millis() - 60_000).to_rfc3339();
    let after = llhls_packager::WallClock(first.millis() + 3_600_000).to_rfc3339();
    for (query, says) in [
        (format!("{q}&_HLS_msn=20"), "_HLS_msn"),
        (format!("{q}&_HLS_skip=YES"), "_HLS_skip"),
        (format!("_HLS_part=1&{q}"), "_HLS_part"),
        (
            format!("start={}&end={}", to.to_rfc3339(), from.to_rfc3339()),
            "is not after start",
        ),
        ("start=yesterday".to_string(), "is not a time"),
        ("start=2026-02-29T10:00:00Z".to_string(), "is not a time"),
        (format!("{q}&start=1"), "given twice"),
        (format!("end={before}"), "no segment of the DVR window"),
        (format!("start={after}"), "no segment of the DVR window"),
    ] {
        for pl in ["media", "index"] {
            let (status, body) = get(&origin, &format!("/live/cam/{pl}.m3u8?{query}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{pl} {query}: {body}");
            assert!(body.contains(says), "{pl} {query}: {body}");
        }
    }

    // After the end, a clip reaching past the last segment is VOD too.
    end(input).await;
    let (_, ended) = get(
        &origin,
        &format!("/live/cam/media.m3u8?start={}", from.to_rfc3339()),
    )
    .await;
    assert!(ended.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{ended}");
    assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
    let _ = std::fs::remove_dir_all(&root);
}

/// An ended stream kept as VOD of its window is listed in `/streams.json` as ended, with
/// until when it is kept; a new publish of the name lists it as live again, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_stream_kept_is_listed_with_until_when() {
    let root = root("listed");
    let origin: Arc<Origin> = Origin::new(OriginConfig {
        dvr_dir: Some(root.clone()),
        dvr_keep_ended: Some(Duration::from_secs(3600)),
        ..OriginConfig::default()
    });
    let first = dvr_stream(&origin, "cam").await;
    let (status, list) = get(&origin, "/streams.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("\"name\":\"cam\""), "{list}");
    assert!(list.contains("\"state\":\"live\""), "{list}");
    assert!(!list.contains("kept_until"), "{list}");
    end(first).await;
    let ended_at = llhls_origin::wall_now();
    let summaries = origin.stream_summaries();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let kept = summaries[0]
        .kept_until
        .expect("an ended stream says until when");
    assert!(
        (kept.0 - (ended_at.0 + 3_600_000)).abs() < 60_000,
        "kept until {kept:?}, ended at {ended_at:?}"
    );
    let (_, list) = get(&origin, "/streams.json").await;
    assert!(list.starts_with("[{\"name\":\"cam\","), "{list}");
    let state = format!(
        "\"state\":\"ended\",\"kept_until\":\"{}\"",
        kept.to_rfc3339()
    );
    assert!(list.contains(&state), "{list}");
    assert_eq!(list.matches("\"name\":").count(), 1, "{list}");

    let second = dvr_stream(&origin, "cam").await;
    let (_, list) = get(&origin, "/streams.json").await;
    assert!(list.contains("\"state\":\"live\""), "{list}");
    assert!(!list.contains("ended"), "{list}");
    assert_eq!(list.matches("\"name\":").count(), 1, "{list}");
    drop(second);
    let _ = std::fs::remove_dir_all(&root);
}
