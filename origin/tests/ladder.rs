//! The ABR ladder in the origin's stream task, with a stand-in transcoder (a thread that hands
//! each source frame back per rung after a varying delay, as encoders do): every rung is
//! published on the source's grid, every playlist's rendition reports match what the other
//! renditions have published in the same snapshot, and a player switching rungs can make its
//! first blocking request from a report.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use llhls_origin::ladder::{LadderFactory, LadderStart, RungEvent, RungInfo, Transcoder};
use llhls_origin::live::Published;
use llhls_origin::{Body, Command, Origin, OriginConfig};
use llhls_packager::ladder::check_aligned;
use llhls_packager::synth::{self, Publisher};
use llhls_packager::{Addressing, Frame, Layout, PackagerConfig, SkipMode, TrackConfig};
use tower::ServiceExt;

const RUNGS: [&str; 2] = ["360p", "240p"];

/// The stand-in transcoder: one thread that, per source frame, sleeps a little (a different
/// amount per frame) and sends each rung's "encoding" (the source payload) back.
struct Echo {
    tx: Option<std_mpsc::Sender<(u64, Frame)>>,
}

impl Transcoder for Echo {
    fn frame(&mut self, seq: u64, frame: &Frame) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((seq, frame.clone()));
        }
    }
    fn discontinuity(&mut self, _video: Option<&TrackConfig>) {}
    fn finish(&mut self) {
        self.tx = None;
    }
}

/// `stall`: rung `.0` stops answering after source frame `.1` (an encoder starved of CPU).
struct EchoFactory {
    stall: Option<(usize, u64)>,
}

impl LadderFactory for EchoFactory {
    fn start(&self, _name: &str, tracks: &[TrackConfig]) -> Option<LadderStart> {
        let video = tracks.iter().find(|t| t.id == synth::VIDEO)?.clone();
        let (tx, rx) = std_mpsc::channel::<(u64, Frame)>();
        let (etx, erx) = tokio::sync::mpsc::unbounded_channel();
        let stall = self.stall;
        std::thread::spawn(move || {
            let mut lcg = 7u64;
            while let Ok((seq, f)) = rx.recv() {
                lcg = lcg
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                std::thread::sleep(Duration::from_micros((lcg >> 33) % 1000));
                for rung in 0..RUNGS.len() {
                    if stall.is_some_and(|(r, after)| r == rung && seq > after) {
                        continue;
                    }
                    let _ = etx.send(RungEvent::Frame {
                        rung,
                        seq,
                        pts: f.pts,
                        keyframe: f.keyframe,
                        data: f.data.clone(),
                    });
                }
            }
        });
        Some(LadderStart {
            rungs: RUNGS
                .iter()
                .map(|n| RungInfo {
                    name: n.to_string(),
                    track: video.clone(),
                })
                .collect(),
            transcoder: Box::new(Echo { tx: Some(tx) }),
            events: erx,
        })
    }
}

async fn call(origin: &Arc<Origin>, uri: &str) -> Response<Body> {
    let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
    origin
        .service()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {})
}

async fn text(resp: Response<Body>) -> String {
    use http_body_util::BodyExt;
    let b: Bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| match e {})
        .to_bytes();
    String::from_utf8(b.to_vec()).unwrap()
}

/// The URI of an EXT-X-PART line.
fn part_uri(line: &str) -> &str {
    line.split("URI=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no URI in {line}"))
}

/// (URI, LAST-MSN, LAST-PART) of each EXT-X-RENDITION-REPORT.
fn reports(text: &str) -> Vec<(String, u64, u32)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-RENDITION-REPORT:"))
        .map(|attrs| {
            let get = |k: &str| {
                attrs
                    .split(',')
                    .find_map(|a| a.strip_prefix(&format!("{k}=")))
                    .map(|v| v.trim_matches('"').to_string())
                    .unwrap_or_else(|| panic!("{k} in {attrs}"))
            };
            (
                get("URI"),
                get("LAST-MSN").parse().unwrap(),
                get("LAST-PART").parse().unwrap(),
            )
        })
        .collect()
}

/// Every rendition's full view reports every other rendition as the same snapshot has it,
/// and every rung is on the source's grid.
fn check_published(p: &Published) {
    let snap = &p.snapshot;
    assert_eq!(
        snap.renditions
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["video", "360p", "240p", "audio"]
    );
    for r in &snap.renditions {
        let text =
            String::from_utf8(p.view(&r.name, SkipMode::Full).unwrap().plain.to_vec()).unwrap();
        let got = reports(&text);
        assert_eq!(got.len(), 3, "{text}");
        for (uri, msn, part) in got {
            let other = snap
                .renditions
                .iter()
                .find(|o| format!("{}.m3u8", o.name) == uri)
                .unwrap();
            assert_ne!(other.name, r.name);
            assert_eq!(Some((msn, part)), other.last_part(), "{uri} in {}", r.name);
        }
    }
    let video = &snap.renditions[0];
    for rung in &snap.renditions[1..3] {
        check_aligned(video, rung).unwrap_or_else(|e| panic!("{}: {e}", rung.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rungs_are_published_on_the_source_grid_with_consistent_reports() {
    rungs_on_the_source_grid(Addressing::Files).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_range_rungs_are_published_on_the_source_grid_with_consistent_reports() {
    rungs_on_the_source_grid(Addressing::ByteRange).await;
}

async fn rungs_on_the_source_grid(addressing: Addressing) {
    let origin = Origin::new(OriginConfig::default());
    origin.set_ladder(Arc::new(EchoFactory { stall: None }));
    let mut publisher = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        layout: Layout::Separate,
        addressing,
        first_msn: 40,
        ..PackagerConfig::default()
    };
    let input = origin
        .create_stream_with("test", config, publisher.tracks())
        .unwrap();
    let mut seen = 0;
    let mut last_version: Option<Arc<Published>> = None;
    // 18 s of media: the server publishes a state per part of the source (and one more when
    // a rung lags behind it), fewer when it is fast enough to take a rung's part together
    // with the source's.
    for _ in 0..(18.0 * 77.0) as usize {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
        // Let the stream task and the stand-in encoder run (frames arrive faster than real
        // time, and the rungs lag by up to a few frames).
        tokio::time::sleep(Duration::from_millis(1)).await;
        if let Some(p) = input.stream.current() {
            // The previous state is kept alive, so a new one can never be allocated at its
            // address and be taken for it.
            if last_version.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &p)) {
                last_version = Some(p.clone());
                check_published(&p);
                seen += 1;
            }
        }
    }
    assert!(seen > 50, "checked {seen} published states");

    // Wait (bounded) until the rungs have caught up with the source.
    let caught_up = |p: &Published| {
        let last = p.snapshot.renditions[0].last_part();
        p.snapshot.renditions[1..3]
            .iter()
            .all(|r| r.last_part() == last)
    };
    for _ in 0..500 {
        if input.stream.current().is_some_and(|p| caught_up(&p)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let p = input.stream.current().unwrap();
    assert!(caught_up(&p));
    check_published(&p);

    // The multivariant lists the source and both rungs, sharing one audio group.
    let mv = text(call(&origin, "/live/test/index.m3u8").await).await;
    let variants: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(variants, ["video.m3u8", "360p.m3u8", "240p.m3u8"], "{mv}");
    assert_eq!(mv.matches("TYPE=AUDIO").count(), 1, "{mv}");

    // Every part the rung lists is served, and a switch to a rung from the video playlist's
    // report answers at once.
    let video = text(call(&origin, "/live/test/video.m3u8").await).await;
    let (uri, msn, part) = reports(&video)
        .into_iter()
        .find(|r| r.0 == "360p.m3u8")
        .unwrap();
    let r = call(
        &origin,
        &format!("/live/test/{uri}?_HLS_msn={msn}&_HLS_part={part}"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rung = text(r).await;
    for line in rung.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        let uri = part_uri(line);
        assert!(uri.starts_with("360p/"), "{uri}");
        if addressing == Addressing::ByteRange && !rung.lines().any(|l| l == uri) {
            // A range of the open segment: a whole GET of it waits for the segment's end.
            continue;
        }
        let r = call(&origin, &format!("/live/test/{uri}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "video/mp4",
            "{uri}"
        );
    }
    let map = rung
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .unwrap()
        .trim_end_matches('"');
    assert_eq!(
        call(&origin, &format!("/live/test/{map}")).await.status(),
        StatusCode::OK
    );

    // The end: every rendition ends on the same segment, with ENDLIST.
    input
        .send(Command::End(llhls_origin::wall_now()))
        .await
        .unwrap();
    for _ in 0..500 {
        if input.stream.current().is_some_and(|p| p.snapshot.ended) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let p = input.stream.current().unwrap();
    assert!(p.snapshot.ended);
    let video = &p.snapshot.renditions[0];
    for r in &p.snapshot.renditions[1..3] {
        assert_eq!(r.last_msn(), video.last_msn(), "{}", r.name);
        assert!(r.open.is_none());
        check_aligned(video, r).unwrap();
        let text =
            String::from_utf8(p.view(&r.name, SkipMode::Full).unwrap().plain.to_vec()).unwrap();
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_rung_is_withdrawn_goes_on_as_gaps_and_never_holds_back_the_source() {
    let origin = Origin::new(OriginConfig::default());
    // 240p's encoder stops after 6 s of video.
    origin.set_ladder(Arc::new(EchoFactory {
        stall: Some((1, 180)),
    }));
    let mut publisher = Publisher::new(30.0, 30);
    // The shortest window (6 segments), so it slides past the rung's own segments.
    let config = PackagerConfig {
        layout: Layout::Separate,
        window_segments: 6,
        ..PackagerConfig::default()
    };
    let input = origin
        .create_stream_with("test", config, publisher.tracks())
        .unwrap();
    let mut source_parts = Vec::new();
    // 240p's playlist just before and just after it was withdrawn.
    let mut before: Option<String> = None;
    let mut after: Option<(String, Arc<Published>)> = None;
    for _ in 0..(20.0 * 77.0) as usize {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let Some(p) = input.stream.current() else {
            continue;
        };
        if after.is_none() {
            if let Some(r) = p.snapshot.rendition("240p") {
                let text =
                    String::from_utf8(p.view("240p", SkipMode::Full).unwrap().plain.to_vec())
                        .unwrap();
                if r.withdrawn {
                    // The parts it had published are still served once it is withdrawn.
                    let listed: Vec<&str> = text
                        .lines()
                        .filter(|l| l.starts_with("#EXT-X-PART:") && !l.contains("GAP=YES"))
                        .collect();
                    assert!(!listed.is_empty(), "{text}");
                    for line in listed {
                        let uri = part_uri(line);
                        let r = call(&origin, &format!("/live/test/{uri}")).await;
                        assert_eq!(r.status(), StatusCode::OK, "{uri}");
                    }
                    after = Some((text, p.clone()));
                } else {
                    before = Some(text);
                }
            }
        }
        if let Some(last) = p.snapshot.renditions[0].last_part() {
            if source_parts.last() != Some(&last) {
                source_parts.push(last);
            }
        }
    }
    let p = input.stream.current().unwrap();
    let names: Vec<(&str, bool)> = p
        .snapshot
        .renditions
        .iter()
        .map(|r| (r.name.as_str(), r.withdrawn))
        .collect();
    assert_eq!(
        names,
        [
            ("video", false),
            ("360p", false),
            ("240p", true),
            ("audio", false)
        ],
        "240p withdrawn, 360p stays"
    );
    // The source kept publishing every part while the rung was stalled and after: ~5 parts
    // a second for 20 s (minus the first playlist's wait for three segments).
    assert!(
        source_parts.len() >= 70,
        "{} source parts",
        source_parts.len()
    );
    // New players do not see it: not in the multivariant playlist, not reported.
    let mv = text(call(&origin, "/live/test/index.m3u8").await).await;
    assert!(!mv.contains("240p"), "{mv}");
    let video = text(call(&origin, "/live/test/video.m3u8").await).await;
    assert!(
        !video.contains("240p"),
        "no report for a withdrawn rung: {video}"
    );

    // A player on it: the playlist goes on, on the source's timeline, every new part and
    // segment a GAP, with no preload hint (RFC 8216bis 6.2.1), and what it listed before
    // stays listed as it was.
    let before = before.expect("240p was published before it was withdrawn");
    let (first_after, at) = after.expect("240p stays, withdrawn");
    let parts = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("#EXT-X-PART:"))
            .map(str::to_string)
            .collect()
    };
    let real_before: Vec<String> = parts(&before);
    assert!(!real_before.is_empty());
    for line in &real_before {
        assert!(!line.contains("GAP=YES"), "{line}");
        if let Some(same) = parts(&first_after)
            .iter()
            .find(|l| l.split(',').nth(1) == line.split(',').nth(1))
        {
            assert_eq!(same, line, "a listed part never changes");
        }
    }
    let ghost = at.snapshot.rendition("240p").unwrap();
    assert!(ghost.preload_hint.is_none());
    let now = text(call(&origin, "/live/test/240p.m3u8").await).await;
    assert!(!now.contains("#EXT-X-PRELOAD-HINT"), "{now}");
    assert!(now.contains("#EXT-X-GAP"), "{now}");
    let last_parts = parts(&now);
    assert!(
        last_parts
            .iter()
            .rev()
            .take(3)
            .all(|l| l.contains("GAP=YES") && l.contains("240p/")),
        "{now}"
    );
    // Same MSN, part index, durations and discontinuities as the source, GAP aside.
    let source = &p.snapshot.renditions[0];
    let ghost = p.snapshot.rendition("240p").unwrap();
    assert_eq!(ghost.last_part(), source.last_part());
    assert_eq!(ghost.media_sequence, source.media_sequence);
    assert_eq!(ghost.discontinuity_sequence, source.discontinuity_sequence);
    for s in source.segments.iter() {
        let g = ghost.segments.by_msn(s.msn).unwrap();
        assert_eq!(
            (g.duration, g.program_date_time),
            (s.duration, s.program_date_time)
        );
        assert_eq!(g.parts_listed, s.parts_listed);
    }
    // The rung's own segments that left the window are gone from the store.
    let gone: Vec<&str> = before
        .lines()
        .filter(|l| l.starts_with("240p/") && !now.contains(*l))
        .collect();
    assert!(
        !gone.is_empty(),
        "the window slid past 240p's own segments: {now}"
    );
    for uri in gone {
        let r = call(&origin, &format!("/live/test/{uri}")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
    }
    // Its blocking reloads are answered as the source's: the next part, on time.
    let (msn, part) = source.last_part().unwrap();
    let next = tokio::spawn({
        let origin = origin.clone();
        async move {
            call(
                &origin,
                &format!("/live/test/240p.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1),
            )
            .await
        }
    });
    for _ in 0..40 {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let r = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // 360p is still on the source's grid.
    check_aligned(&p.snapshot.renditions[0], &p.snapshot.renditions[1]).unwrap();
    let metrics = text(call(&origin, "/metrics").await).await;
    assert!(
        metrics.contains("llhls_ladder_rungs_withdrawn_total 1"),
        "{metrics}"
    );
}

/// A DVR window with a ladder: every rung keeps the source's window, its segments past the
/// live window go to disk like the source's and are served from there, and no rung is
/// withdrawn for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rungs_keep_the_dvr_window_and_spill_like_the_source() {
    let dir = std::env::temp_dir().join(format!("llhls-ladder-dvr-{}", std::process::id()));
    llhls_origin::dvr::prepare(&dir).unwrap();
    let origin = Origin::new(OriginConfig {
        dvr_dir: Some(dir.clone()),
        ..OriginConfig::default()
    });
    origin.set_ladder(Arc::new(EchoFactory { stall: None }));
    let mut publisher = Publisher::new(30.0, 30);
    let config = PackagerConfig {
        layout: Layout::Separate,
        window_segments: 6,
        dvr_window: Duration::from_secs(30),
        first_msn: 40,
        ..PackagerConfig::default()
    };
    let input = origin
        .create_stream_with("test", config, publisher.tracks())
        .unwrap();
    let mut last_version: Option<Arc<Published>> = None;
    for _ in 0..(50.0 * 77.0) as usize {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
        tokio::time::sleep(Duration::from_micros(500)).await;
        if let Some(p) = input.stream.current() {
            // The previous state is kept alive, so a new one can never be allocated at its
            // address and be taken for it.
            if last_version.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &p)) {
                last_version = Some(p.clone());
                check_published(&p);
            }
        }
    }
    let p = input.stream.current().unwrap();
    let video = &p.snapshot.renditions[0];
    assert!(
        video.window_duration() >= 30.0 - 1e-3,
        "{}",
        video.window_duration()
    );
    assert!(video.segments.len() > 6);
    for r in &p.snapshot.renditions[1..] {
        assert_eq!(r.media_sequence, video.media_sequence, "{}", r.name);
    }
    assert_eq!(
        origin
            .metrics
            .rungs_withdrawn
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // The oldest listed segment of every rendition is on disk (bounded wait for the writer)
    // and served from there.
    let oldest = video.segments[0].msn;
    for name in ["video", "360p", "240p", "audio"] {
        let file = dir.join("test.0").join(format!("{name}/{oldest}.m4s"));
        for _ in 0..500 {
            if file.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let on_disk = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let r = call(&origin, &format!("/live/test/{name}/{oldest}.m4s")).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        use http_body_util::BodyExt;
        let served = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(served, on_disk, "{name}");
    }
    drop(input);
    let _ = std::fs::remove_dir_all(&dir);
}
