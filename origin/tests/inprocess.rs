//! The origin in-process on tokio's paused clock: every delivery-directive rule, hinted parts,
//! byte ranges and the header policy, without sockets.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use llhls_origin::{Body, Command, Origin, OriginConfig, StreamInput};
use llhls_packager::synth::Publisher;
use llhls_packager::{Addressing, Layout, ObjectKey, Packager, PackagerConfig, WallClock};
use tower::ServiceExt;

struct Live {
    origin: Arc<Origin>,
    input: StreamInput,
    publisher: Publisher,
    /// Frames fed so far.
    fed: u64,
    /// Added to each frame's capture time to give its arrival (ms).
    arrival_offset_ms: i64,
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

impl Live {
    async fn new(addressing: Addressing) -> Live {
        Live::with_publisher(addressing, Publisher::new(30.0, 30)).await
    }

    /// A stream whose publisher goes quiet after its first 3.2 s: its frames arrive 7 s before
    /// the real wall clock says it is, so the first time the runtime idles (the stream task's
    /// 100 ms input timeout, `Packager::handle_timeout` with the real clock) the packager sees
    /// a stall longer than its 6 s hold: it closes the open segment with the samples left and
    /// publishes it, then, at the next timeout, GAP parts (GAP segments, and an open one of GAP
    /// parts) up to the wall clock.
    async fn stalling(addressing: Addressing) -> Live {
        let mut publisher = Publisher::new(30.0, 30);
        publisher.wall0 = real_ms() - 3_200 - 7_000;
        Live::with_publisher(addressing, publisher).await
    }

    async fn with_publisher(addressing: Addressing, publisher: Publisher) -> Live {
        let config = PackagerConfig {
            addressing,
            first_msn: 500,
            ..PackagerConfig::default()
        };
        Live::with_config(config, publisher).await
    }

    async fn with_config(config: PackagerConfig, publisher: Publisher) -> Live {
        let origin = Origin::new(OriginConfig::default());
        let p = Packager::new(config, publisher.tracks()).unwrap();
        let input = origin.create_stream("test", p).unwrap();
        let mut live = Live {
            origin,
            input,
            publisher,
            fed: 0,
            arrival_offset_ms: 0,
        };
        // Three seconds of media: the first three segments close, and the playlist is
        // published once the fourth has a part (until then the third is listed open).
        live.feed_secs(3.2).await;
        for _ in 0..200 {
            if live.input.stream.current().is_some() {
                break;
            }
            live.feed_frames(1).await;
        }
        live
    }

    async fn feed_frames(&mut self, n: usize) {
        for _ in 0..n {
            let (f, w) = self.publisher.next_frame();
            let arrival = WallClock(w.0 + self.arrival_offset_ms);
            self.input.send(Command::Frame(f, arrival)).await.unwrap();
            self.fed += 1;
        }
        settle().await;
    }

    async fn feed_secs(&mut self, secs: f64) {
        self.feed_frames((secs * 77.0) as usize).await;
    }

    /// Feeds frames until one more part is published.
    async fn feed_part(&mut self) {
        let before = self.last_part();
        for _ in 0..200 {
            self.feed_frames(1).await;
            if self.last_part() != before {
                return;
            }
        }
        panic!("no new part");
    }

    fn last_part(&self) -> (u64, u32) {
        let p = self.input.stream.current().expect("published");
        p.snapshot.renditions[0].last_part().expect("parts")
    }

    async fn get(&self, uri: &str) -> Response<Body> {
        self.get_with(uri, &[]).await
    }

    async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> Response<Body> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        call(&self.origin, b.body(Body::empty()).unwrap()).await
    }

    fn spawn_get(&self, uri: &str) -> tokio::task::JoinHandle<Response<Body>> {
        let origin = self.origin.clone();
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        tokio::spawn(async move { call(&origin, req).await })
    }
}

/// Calls the origin's service in-process, as the server does for each request.
async fn call(origin: &Arc<Origin>, req: Request<Body>) -> Response<Body> {
    origin
        .service()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {})
}

async fn body(resp: Response<Body>) -> Bytes {
    use http_body_util::BodyExt;
    resp.into_body()
        .collect()
        .await
        .unwrap_or_else(|e| match e {})
        .to_bytes()
}

async fn text(resp: Response<Body>) -> String {
    String::from_utf8(body(resp).await.to_vec()).unwrap()
}

fn header<'a>(r: &'a Response<Body>, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

const MEDIA: &str = "/live/test/media.m3u8";

#[tokio::test(start_paused = true)]
async fn plain_playlist_answers_at_once_with_short_cache() {
    let live = Live::new(Addressing::Files).await;
    let r = live.get(MEDIA).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(header(&r, "cache-control"), "public, max-age=1");
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert_eq!(header(&r, "vary"), "Accept-Encoding");
    assert!(r.headers().get("age").is_none());
    let t = text(r).await;
    assert!(t.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n"), "{t}");
    let mv = live.get("/live/test/index.m3u8").await;
    assert_eq!(mv.status(), StatusCode::OK);
    assert!(text(mv).await.contains("media.m3u8"));
}

#[tokio::test(start_paused = true)]
async fn blocking_request_is_released_by_the_next_part() {
    let mut live = Live::new(Addressing::Files).await;
    let (msn, part) = live.last_part();
    let pending = live.spawn_get(&format!("{MEDIA}?_HLS_msn={msn}&_HLS_part={}", part + 1));
    settle().await;
    assert!(!pending.is_finished(), "must block until the part exists");
    live.feed_part().await;
    let r = pending.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=12",
        "6 x TD (rule 53)"
    );
    let (m2, p2) = live.last_part();
    let t = text(r).await;
    let uri = if m2 == msn {
        format!("{msn}.{}.m4s", part + 1)
    } else {
        format!("{m2}.{p2}.m4s")
    };
    assert!(t.contains(&uri), "released playlist lacks {uri}:\n{t}");
}

/// The (MSN, part index) in a part or hint URI of files addressing (`media/MSN.PART.m4s`).
fn part_of(uri: &str) -> (u64, u32) {
    let name = uri.rsplit('/').next().unwrap().trim_end_matches(".m4s");
    let (m, p) = name.split_once('.').unwrap();
    (m.parse().unwrap(), p.parse().unwrap())
}

/// The last EXT-X-PART a playlist lists, and whether its segment is listed complete (an
/// EXTINF after it).
fn last_listed_part(playlist: &str) -> ((u64, u32), bool) {
    let mut last = None;
    let mut complete = false;
    for line in playlist.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attrs
                .split("URI=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            last = Some(part_of(uri));
            complete = false;
        } else if line.starts_with("#EXTINF") {
            complete = true;
        }
    }
    (last.expect("parts listed"), complete)
}

/// A held request whose task runs only after later parts were published too (a busy machine,
/// or a publisher's burst of frames: the stream task publishes part after part before the
/// waiters run) is answered with the playlist as it stood when its part was published: its
/// part last, the segment a last part closes still listed open. hls.js 1.7.4 handed the update
/// that completes a segment while it still loads the part before the last skips the last part
/// (a 0.2 s hole and a stall, seen in the 60-minute soak). Checked over several segments, so
/// that requests wait for segments' last parts. The next part, published in the same burst,
/// is answered at once as of its own publication (a request read late); a part published more
/// than a part ago, with the latest state (a player behind live).
#[tokio::test(start_paused = true)]
async fn a_held_request_woken_after_a_burst_gets_the_playlist_of_its_part() {
    let mut live = Live::new(Addressing::Files).await;
    let mut closed_open = 0;
    for i in 0..15 {
        // Parts published one at a time in between, so the requests fall on every part of a
        // segment, its last one included.
        for _ in 0..i % 3 {
            live.feed_part().await;
        }
        let hint = live.input.stream.current().unwrap().snapshot.renditions[0]
            .preload_hint
            .clone()
            .unwrap();
        let (msn, part) = part_of(&hint.uri);
        let pending = live.spawn_get(&format!("{MEDIA}?_HLS_msn={msn}&_HLS_part={part}"));
        settle().await;
        assert!(
            !pending.is_finished(),
            "must block until {msn}.{part} exists"
        );
        // 0.75 s of frames (three 200 ms parts or more) in one burst.
        live.feed_frames(58).await;
        let now = live.last_part();
        assert!(
            now > (msn, part),
            "the burst published {msn}.{part} and more"
        );
        let r = pending.await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let t = text(r).await;
        let (last, complete) = last_listed_part(&t);
        assert_eq!(
            last,
            (msn, part),
            "answered with a later state than its part's (now at {now:?}):\n{t}"
        );
        // Its hint is the part after it, in the same segment or the next.
        let hint = t
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
            .map(|u| part_of(u.trim_end_matches('"')))
            .expect("a preload hint");
        assert!(
            hint == (msn, part + 1) || hint == (msn + 1, 0),
            "hint {hint:?} after {msn}.{part}:\n{t}"
        );
        // Its part closed its segment: the segment is listed open (no EXTINF yet), as it was
        // when that part was published and the next segment had no part.
        let after = live.input.stream.current().unwrap();
        let closed_it = after.snapshot.renditions[0]
            .segments
            .iter()
            .any(|s| s.msn == msn && s.parts.len() as u32 == part + 1);
        if closed_it {
            assert!(!complete, "segment {msn} listed complete:\n{t}");
            closed_open += 1;
        }
        // The part after it exists (published in the same burst, moments ago): answered at
        // once, with the state it was published in too (a request read late).
        let next = live
            .get(&format!("{MEDIA}?_HLS_msn={msn}&_HLS_part={}", part + 1))
            .await;
        assert_eq!(next.status(), StatusCode::OK);
        let (listed, _) = last_listed_part(&text(next).await);
        let expected = if closed_it {
            (msn + 1, 0)
        } else {
            (msn, part + 1)
        };
        assert_eq!(listed, expected, "the next request, read at once");
    }
    // A request for a part published more than a part ago (a player behind live) gets the
    // latest state. (The states' ages are on the real clock.)
    let (msn, part) = live.last_part();
    std::thread::sleep(std::time::Duration::from_millis(250));
    let old = live
        .get(&format!("{MEDIA}?_HLS_msn={msn}&_HLS_part=0"))
        .await;
    let (listed, _) = last_listed_part(&text(old).await);
    assert_eq!(
        listed,
        (msn, part),
        "a request for an older part gets the latest state"
    );
    assert!(
        closed_open >= 1,
        "one of the requests waited for a segment's last part and found its segment open"
    );
}

#[tokio::test(start_paused = true)]
async fn old_or_present_requests_answer_at_once() {
    let live = Live::new(Addressing::Files).await;
    let (msn, part) = live.last_part();
    for q in [
        format!("_HLS_msn={msn}&_HLS_part={part}"),
        "_HLS_msn=1&_HLS_part=0".to_string(),
        "_HLS_msn=1".to_string(),
    ] {
        let r = live.get(&format!("{MEDIA}?{q}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{q}");
    }
}

#[tokio::test(start_paused = true)]
async fn part_index_beyond_a_complete_parent_rolls_over() {
    let mut live = Live::new(Addressing::Files).await;
    // Feed until a new segment has just begun, then ask for a part past the end of the
    // previous (complete) one: rule 39 makes it (M+1, 0), already present.
    live.feed_secs(1.0).await;
    let p = live.input.stream.current().unwrap();
    let last_complete = p.snapshot.renditions[0].last_msn().unwrap();
    let r = live
        .get(&format!("{MEDIA}?_HLS_msn={last_complete}&_HLS_part=12"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // While the parent is open, a part index past its end waits for (M+1, 0).
    let (open, _) = live.last_part();
    let pending = live.spawn_get(&format!("{MEDIA}?_HLS_msn={open}&_HLS_part=12"));
    settle().await;
    assert!(!pending.is_finished());
    live.feed_secs(2.5).await;
    let r = pending.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(text(r).await.contains(&format!("{}.0.m4s", open + 1)));
}

#[tokio::test(start_paused = true)]
async fn msn_only_request_blocks_until_part_zero() {
    let mut live = Live::new(Addressing::Files).await;
    let (open, _) = live.last_part();
    let pending = live.spawn_get(&format!("{MEDIA}?_HLS_msn={}", open + 1));
    settle().await;
    assert!(
        !pending.is_finished(),
        "Safari's msn-only request must block, not spin"
    );
    live.feed_secs(2.5).await;
    assert_eq!(pending.await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn bad_directives_are_400_no_store() {
    let live = Live::new(Addressing::Files).await;
    let (msn, part) = live.last_part();
    for q in [
        format!("_HLS_msn={}", msn + 3),
        format!("_HLS_msn={msn}&_HLS_part={}", part + 40),
        "_HLS_part=1".to_string(),
        "_HLS_msn=abc".to_string(),
        "_HLS_msn=-1".to_string(),
        "_HLS_msn=123456789012345678901234567890".to_string(),
        "_HLS_msn=1&_HLS_msn=2".to_string(),
    ] {
        let r = live.get(&format!("{MEDIA}?{q}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(header(&r, "access-control-allow-origin"), "*");
    }
    // Unknown _HLS_ params and foreign params are ignored.
    let r = live.get(&format!("{MEDIA}?token=x&_HLS_foo=1")).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn held_request_gets_503_after_three_target_durations() {
    let live = Live::new(Addressing::Files).await;
    let (msn, _) = live.last_part();
    let start = tokio::time::Instant::now();
    let r = live
        .get(&format!("{MEDIA}?_HLS_msn={}&_HLS_part=0", msn + 1))
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(start.elapsed(), Duration::from_secs(6), "3 x TD");
}

#[tokio::test(start_paused = true)]
async fn end_of_stream_releases_held_requests_and_ignores_directives() {
    let live = Live::new(Addressing::Files).await;
    let (msn, part) = live.last_part();
    let pending = live.spawn_get(&format!("{MEDIA}?_HLS_msn={msn}&_HLS_part={}", part + 1));
    let hint = live.input.stream.current().unwrap().snapshot.renditions[0]
        .preload_hint
        .clone()
        .unwrap();
    settle().await;
    live.input
        .send(Command::End(llhls_origin::wall_now()))
        .await
        .unwrap();
    settle().await;
    let r = pending.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t = text(r).await;
    assert!(t.ends_with("#EXT-X-ENDLIST\n"), "{t}");
    let r = live
        .get(&format!(
            "{MEDIA}?_HLS_msn={}&_HLS_part=0&_HLS_skip=YES",
            msn + 100
        ))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "directives ignored after ENDLIST (rule 44)"
    );
    assert!(!text(r).await.contains("EXT-X-SKIP"));
    let r = live.get(&format!("/live/test/{}", hint.uri)).await;
    // The hinted part was either produced by the final flush or will never exist.
    assert!(r.status() == StatusCode::OK || r.status() == StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn delta_updates_skip_old_segments() {
    let mut live = Live::new(Addressing::Files).await;
    live.feed_secs(26.0).await;
    let r = live.get(&format!("{MEDIA}?_HLS_skip=YES")).await;
    let t = text(r).await;
    assert!(t.contains("#EXT-X-VERSION:9\n"), "{t}");
    let skip_at = t.find("#EXT-X-SKIP:SKIPPED-SEGMENTS=").expect("skip tag");
    assert!(
        t.find("#EXT-X-MEDIA-SEQUENCE").unwrap() < skip_at,
        "rule 24 order"
    );
    assert!(t.find("#EXT-X-DISCONTINUITY-SEQUENCE").unwrap() < skip_at);
    let n: usize = t[skip_at + 29..]
        .split('\n')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 1, "{t}");
    let v2 = text(live.get(&format!("{MEDIA}?_HLS_skip=v2")).await).await;
    assert!(v2.contains("#EXT-X-VERSION:10\n") && v2.contains("RECENTLY-REMOVED-DATERANGES=\"\""));
    let full = text(live.get(MEDIA).await).await;
    assert!(
        full.lines().filter(|l| l.starts_with("#EXTINF")).count()
            > t.lines().filter(|l| l.starts_with("#EXTINF")).count()
    );
}

#[tokio::test(start_paused = true)]
async fn hinted_part_is_held_then_served_complete() {
    let mut live = Live::new(Addressing::Files).await;
    let hint = live.input.stream.current().unwrap().snapshot.renditions[0]
        .preload_hint
        .clone()
        .unwrap();
    let pending = live.spawn_get(&format!("/live/test/{}", hint.uri));
    settle().await;
    assert!(!pending.is_finished(), "no byte before the part exists");
    live.feed_part().await;
    let r = pending.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&r, "content-type"), "video/mp4");
    let b = body(r).await;
    assert_eq!(&b[4..8], b"moof");
    // A part far in the future is not held: 404 at once.
    let (msn, _) = live.last_part();
    let r = live
        .get(&format!("/live/test/media/{}.0.m4s", msn + 5))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(start_paused = true)]
async fn closed_ranges_on_parts_are_exact() {
    let live = Live::new(Addressing::Files).await;
    let (msn, part) = live.last_part();
    let uri = format!("/live/test/media/{msn}.{part}.m4s");
    let whole = body(live.get(&uri).await).await;
    let r = live.get_with(&uri, &[("range", "bytes=8-15")]).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 8-15/{}", whole.len())
    );
    assert_eq!(body(r).await, whole.slice(8..16));
    let r = live
        .get_with(&uri, &[("range", &format!("bytes={}-", whole.len() + 10))])
        .await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = live.get_with(&uri, &[("range", "bytes=junk")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(start_paused = true)]
async fn byterange_hint_streams_parts_as_they_complete() {
    let mut live = Live::new(Addressing::ByteRange).await;
    let hint = live.input.stream.current().unwrap().snapshot.renditions[0]
        .preload_hint
        .clone()
        .unwrap();
    let start = hint.byterange_start.unwrap();
    let origin = live.origin.clone();
    let req = Request::builder()
        .uri(format!("/live/test/{}", hint.uri))
        .header("range", format!("bytes={start}-9007199254740991"))
        .body(Body::empty())
        .unwrap();
    let pending = tokio::spawn(async move { call(&origin, req).await });
    settle().await;
    live.feed_secs(2.5).await;
    let r = pending.await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {start}-9007199254740991/*")
    );
    let got = body(r).await;
    let seg = match live
        .input
        .stream
        .object(&hint.uri.parse().unwrap())
        .unwrap()
    {
        llhls_origin::live::Object::Complete(b) => b,
        _ => panic!("segment complete"),
    };
    assert_eq!(
        got,
        seg.slice(start as usize..),
        "rest of the segment, every part"
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_count_parts_and_requests() {
    let mut live = Live::new(Addressing::Files).await;
    live.feed_part().await;
    let _ = live.get(MEDIA).await;
    let m = text(live.get("/metrics").await).await;
    let parts: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("llhls_parts_published_total "))
        .expect("parts counter exposed")
        .parse()
        .unwrap();
    assert!(parts >= 11, "{m}");
    assert!(
        m.contains("llhls_requests_total{class=\"playlist\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(m.contains("llhls_live_streams 1"));
}

/// The value of the series `name{stream="test"}` in `/metrics`.
fn stream_series(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}{{stream=\"test\"}} ")))
        .unwrap_or_else(|| panic!("{name} not exposed:\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn per_stream_metrics_and_the_stream_list_show_input_gaps_and_players() {
    let live = Live::stalling(Addressing::Files).await;
    // The publisher went quiet: the stall publishes GAP parts.
    live.idle(150).await;
    let (_, gap_part) = live.gap_segment().await;
    assert!(!gap_part.is_empty());
    // One player waits on a blocking reload.
    let (msn, _) = live.last_part();
    let held = live.spawn_get(&format!("{MEDIA}?_HLS_msn={}&_HLS_part=0", msn + 1));
    settle().await;
    assert!(!held.is_finished());
    // And the publisher comes back: a discontinuity.
    live.input
        .send(Command::Discontinuity(None, llhls_origin::wall_now()))
        .await
        .unwrap();
    settle().await;
    let m = text(live.get("/metrics").await).await;
    let frames = stream_series(&m, "llhls_stream_frames_in_total");
    assert_eq!(frames, live.fed, "every frame fed is counted");
    assert!(stream_series(&m, "llhls_stream_bytes_in_total") > frames);
    assert!(
        stream_series(&m, "llhls_stream_gap_parts_total") >= 1,
        "{m}"
    );
    assert_eq!(stream_series(&m, "llhls_stream_discontinuities_total"), 1);
    assert_eq!(stream_series(&m, "llhls_stream_held_playlists"), 1);
    let list = text(live.get("/streams.json").await).await;
    assert!(
        list.starts_with(
            "[{\"name\":\"test\",\"playlist\":\"/live/test/index.m3u8\",\"codecs\":[\"avc1."
        ),
        "{list}"
    );
    assert!(list.contains(",\"viewers\":1}]"), "{list}");
    assert!(list.contains("\"width\":"), "{list}");
    let bitrate: u64 = list
        .split("\"bitrate\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("a bitrate");
    assert!(bitrate > 0, "{list}");
    held.abort();
}

#[tokio::test(start_paused = true)]
async fn gzip_when_accepted() {
    let live = Live::new(Addressing::Files).await;
    let r = live.get_with(MEDIA, &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&r, "content-encoding"), "gzip");
    let gz = body(r).await;
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
}

#[tokio::test(start_paused = true)]
async fn unknown_paths_are_cheap_404s_with_cors() {
    let live = Live::new(Addressing::Files).await;
    for p in [
        "/live/nope/index.m3u8",
        "/live/test/nope.m3u8",
        "/live/../../etc/passwd",
        "/x",
        "/live/test/media/abc.m4s",
    ] {
        let r = live.get(p).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{p}");
        assert_eq!(header(&r, "cache-control"), "no-store");
        assert_eq!(header(&r, "access-control-allow-origin"), "*");
    }
    let r = call(
        &live.origin,
        Request::builder()
            .method("OPTIONS")
            .uri(MEDIA)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "access-control-allow-headers"), "Range");
    assert!(header(&r, "access-control-expose-headers").contains("Age"));
    let r = call(
        &live.origin,
        Request::builder()
            .method("POST")
            .uri(MEDIA)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(start_paused = true)]
async fn a_thousand_held_requests_wake_on_one_publish() {
    let mut live = Live::new(Addressing::Files).await;
    let (msn, part) = live.last_part();
    let uri = format!("{MEDIA}?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let handles: Vec<_> = (0..1000).map(|_| live.spawn_get(&uri)).collect();
    settle().await;
    assert_eq!(
        live.input
            .stream
            .held
            .load(std::sync::atomic::Ordering::Relaxed),
        1000
    );
    live.feed_part().await;
    for h in handles {
        assert_eq!(h.await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(
        live.input
            .stream
            .held
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn nested_service_gets_its_prefix_with_cors() {
    use http_body_util::BodyExt;
    let origin = Origin::new(OriginConfig::default());
    origin.nest(
        "/whip",
        tower::service_fn(|req: Request<llhls_origin::RequestBody>| async move {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let sent = req.into_body().collect().await.unwrap().to_bytes();
            let text = format!("{method} {path} {}", String::from_utf8_lossy(&sent));
            Ok::<_, std::convert::Infallible>(Response::new(Body::full(text)))
        }),
    );
    let req = |method: &str, path: &str, body: &'static str| {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::full(body))
            .unwrap()
    };
    let r = call(&origin, req("POST", "/whip/live/cam", "offer")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert_eq!(text(r).await, "POST /whip/live/cam offer");
    // Preflights under the prefix are the nested service's; elsewhere the origin's.
    let r = call(&origin, req("OPTIONS", "/whip/session/1", "")).await;
    assert_eq!(text(r).await, "OPTIONS /whip/session/1 ");
    let r = call(&origin, req("OPTIONS", "/whipped", "")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = call(&origin, req("GET", "/whipped", "")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// The path of object `key` of the test stream.
fn object_path(key: &ObjectKey) -> String {
    format!("/live/test/{key}")
}

/// The real wall clock in Unix milliseconds (what the stream task hands `handle_timeout`).
fn real_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Live {
    fn snapshot(&self) -> llhls_packager::RenditionSnapshot {
        self.input
            .stream
            .current()
            .expect("published")
            .snapshot
            .renditions[0]
            .clone()
    }

    fn target_duration(&self) -> u64 {
        let p = self.input.stream.current().expect("published");
        u64::from(p.snapshot.timing.target_duration)
    }

    /// Lets the runtime idle for `ms` of (paused) time: the stream task runs its input
    /// timeouts.
    /// After a stall measured on the real clock (`Live::stalling`): the frames from now on
    /// arrive on it, captured when they were (late by the stall), as a publisher that resumes.
    fn resume_now(&mut self) {
        self.arrival_offset_ms = real_ms() - self.publisher.next_frame_wall();
    }

    async fn idle(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        settle().await;
    }

    fn spawn_range(&self, uri: &str, range: &str) -> tokio::task::JoinHandle<Response<Body>> {
        let origin = self.origin.clone();
        let req = Request::builder()
            .uri(uri)
            .header("range", range)
            .body(Body::empty())
            .unwrap();
        tokio::spawn(async move { call(&origin, req).await })
    }

    /// The first GAP segment listed, and its first part, once the stall has published them
    /// (the timeout after the one that closed the held media).
    async fn gap_segment(&self) -> (String, String) {
        for _ in 0..50 {
            if self.snapshot().segments.iter().any(|s| s.gap) {
                break;
            }
            self.idle(100).await;
        }
        let r = self.snapshot();
        let g = r
            .segments
            .iter()
            .find(|s| s.gap)
            .expect("the stall published a GAP segment");
        assert!(g.parts.iter().all(|p| p.gap));
        (g.uri.clone(), g.parts[0].uri.clone())
    }
}

/// A 404 that nothing may cache: the name may still be produced later (rule 53's short
/// failure lifetimes, no-store for the origin's errors).
#[track_caller]
fn assert_404_no_store(r: &Response<Body>, what: &str) {
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "{what}");
    assert_eq!(header(r, "cache-control"), "no-store", "{what}");
    assert_eq!(header(r, "access-control-allow-origin"), "*", "{what}");
}

/// Asks for `uri` and expects a 404 without any hold.
async fn not_found_at_once(live: &Live, uri: &str, range: Option<&str>) {
    let start = tokio::time::Instant::now();
    let r = match range {
        Some(range) => live.get_with(uri, &[("range", range)]).await,
        None => live.get(uri).await,
    };
    assert_404_no_store(&r, uri);
    assert_eq!(start.elapsed(), Duration::ZERO, "{uri} must not be held");
}

/// Rule 49 in files mode: a part neither listed nor hinted, a GAP part or segment, a hint the
/// stall abandoned, a hint that became a GAP part, and a hint the end of the stream abandoned
/// are all 404 `no-store`, at once or on the snapshot that decides it, never after a 3 x TD
/// hold; the hint the stall flushed is served.
#[tokio::test(start_paused = true)]
async fn files_mode_gap_unlisted_and_abandoned_parts_are_404() {
    let live = Live::stalling(Addressing::Files).await;
    let hold = Duration::from_secs(3 * live.target_duration());
    let r = live.snapshot();
    let open = r.open.clone().unwrap();
    let next = open.parts.len() as u32;
    assert_eq!(
        r.preload_hint.unwrap().uri,
        ObjectKey::part("media", open.msn, next).to_string()
    );
    // Parts of the segment after the open one: neither listed nor hinted.
    not_found_at_once(
        &live,
        &object_path(&ObjectKey::part("media", open.msn + 1, 0)),
        None,
    )
    .await;
    // The hint and the part after it are held (the open segment may still produce both).
    let start = tokio::time::Instant::now();
    let hint = live.spawn_get(&object_path(&ObjectKey::part("media", open.msn, next)));
    let after = live.spawn_get(&object_path(&ObjectKey::part("media", open.msn, next + 1)));
    settle().await;
    assert!(!hint.is_finished() && !after.is_finished());
    // The publisher went away: the stall closes the segment with what was left.
    live.idle(150).await;
    let r = hint.await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the flush produced the hint");
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let r = after.await.unwrap();
    assert_404_no_store(&r, "part after the hint of a segment the stall closed");
    assert!(
        start.elapsed() < hold,
        "released by the stall, not the hold timeout"
    );
    // GAP segments and GAP parts: 404 at once.
    let (gap_segment, gap_part) = live.gap_segment().await;
    not_found_at_once(&live, &format!("/live/test/{gap_segment}"), None).await;
    not_found_at_once(&live, &format!("/live/test/{gap_part}"), None).await;
    let r = live.snapshot();
    let open = r.open.clone().expect("an open GAP segment");
    assert!(!open.parts.is_empty() && open.parts.iter().all(|p| p.gap));
    not_found_at_once(&live, &format!("/live/test/{}", open.parts[0].uri), None).await;
    // The hint during the stall is held, then becomes a GAP part: 404 on that snapshot.
    let hint = r.preload_hint.unwrap().uri;
    let start = tokio::time::Instant::now();
    let pending = live.spawn_get(&format!("/live/test/{hint}"));
    settle().await;
    assert!(!pending.is_finished(), "{hint} is the preload hint: held");
    // Let two part targets of real time pass, so the next input timeout publishes more GAP
    // parts (the packager keeps one part of slack behind the wall clock).
    std::thread::sleep(Duration::from_secs_f64(2.0 * r.part_target + 0.1));
    live.idle(250).await;
    let r = pending.await.unwrap();
    assert_404_no_store(&r, "hint that became a GAP part");
    assert!(
        start.elapsed() < hold,
        "released by the GAP, not the hold timeout"
    );
    let gap: ObjectKey = hint.parse().unwrap();
    let now = live.snapshot();
    let listed = now
        .segments
        .iter()
        .find(|s| s.msn == gap.msn())
        .map(|s| s.parts.clone())
        .or(now.open.clone().map(|o| o.parts))
        .unwrap();
    assert!(
        listed.iter().any(|p| p.uri == hint && p.gap),
        "{hint} is GAP=YES"
    );
    // The stream ends during the stall: the held hint is released with 404 at once.
    let hint = now.preload_hint.unwrap().uri;
    let pending = live.spawn_get(&format!("/live/test/{hint}"));
    settle().await;
    assert!(!pending.is_finished());
    let start = tokio::time::Instant::now();
    live.input
        .send(Command::End(llhls_origin::wall_now()))
        .await
        .unwrap();
    settle().await;
    let r = pending.await.unwrap();
    assert_404_no_store(&r, "hint abandoned by the end of the stream");
    assert_eq!(start.elapsed(), Duration::ZERO);
    not_found_at_once(&live, &format!("/live/test/{hint}"), None).await;
}

/// The same in byte-range mode: part files are never objects, a GAP segment is 404 with or
/// without a range, the RFC 8673 stream of a growing segment the stall closes ends cleanly at
/// the segment's end, and a hinted segment not stored yet is held, then 404 once it is
/// closed as a GAP segment (the publisher came back).
#[tokio::test(start_paused = true)]
async fn byte_range_mode_gap_unlisted_and_abandoned_segments_are_404() {
    let mut live = Live::stalling(Addressing::ByteRange).await;
    let hold = Duration::from_secs(3 * live.target_duration());
    for _ in 0..100 {
        if !live.snapshot().open.unwrap().parts.is_empty() {
            break;
        }
        live.feed_frames(1).await;
    }
    let r = live.snapshot();
    let open = r.open.clone().unwrap();
    assert!(!open.parts.is_empty(), "a growing segment");
    // Part files of any segment, the next part of the open one included: 404 at once (they
    // are ranges of the segment, never files).
    let next = open.parts.len();
    for part in [0, next, next + 1] {
        let uri = object_path(&ObjectKey::part("media", open.msn, part as u32));
        not_found_at_once(&live, &uri, None).await;
    }
    let last = r.segments.last().unwrap().msn;
    not_found_at_once(
        &live,
        &object_path(&ObjectKey::part("media", last, 0)),
        None,
    )
    .await;
    // The segment after the open one: 404 at once, whole or ranged.
    let next = object_path(&ObjectKey::segment("media", open.msn + 1));
    not_found_at_once(&live, &next, None).await;
    not_found_at_once(&live, &next, Some("bytes=0-9007199254740991")).await;
    // The open-ended hint: 206 at once; the stall closes the segment and the body ends there.
    let hint = r.preload_hint.unwrap();
    let start = hint.byterange_start.unwrap();
    let streaming = live.spawn_range(
        &format!("/live/test/{}", hint.uri),
        &format!("bytes={start}-9007199254740991"),
    );
    settle().await;
    live.idle(150).await;
    let resp = streaming.await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&resp, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let got = body(resp).await;
    let key: ObjectKey = hint.uri.parse().unwrap();
    let seg = match live.input.stream.object(&key).unwrap() {
        llhls_origin::live::Object::Complete(b) => b,
        _ => panic!("the stall completed the segment"),
    };
    assert_eq!(got, seg.slice(start as usize..), "up to the segment's end");
    // GAP segments, whole or ranged, and GAP part URIs: 404 at once.
    let (gap_segment, gap_part) = live.gap_segment().await;
    let gap_segment = format!("/live/test/{gap_segment}");
    not_found_at_once(&live, &gap_segment, None).await;
    not_found_at_once(&live, &gap_segment, Some("bytes=0-99")).await;
    not_found_at_once(&live, &gap_segment, Some("bytes=0-9007199254740991")).await;
    not_found_at_once(&live, &format!("/live/test/{gap_part}"), None).await;
    // The hint now names the open GAP segment, not stored: held, then 404 when the
    // publisher's next keyframe closes it as a GAP segment.
    let r = live.snapshot();
    let hint = r.preload_hint.unwrap();
    assert_eq!(hint.byterange_start, Some(0));
    let begun = tokio::time::Instant::now();
    let pending = live.spawn_range(
        &format!("/live/test/{}", hint.uri),
        "bytes=0-9007199254740991",
    );
    settle().await;
    assert!(!pending.is_finished(), "the hinted segment is held");
    for _ in 0..200 {
        if pending.is_finished() {
            break;
        }
        live.feed_frames(1).await;
    }
    let resp = pending.await.unwrap();
    assert_404_no_store(&resp, "hinted segment closed as a GAP segment");
    assert!(begun.elapsed() < hold);
    let closed = live.snapshot();
    assert!(
        closed.segments.iter().any(|s| s.uri == hint.uri && s.gap),
        "{} is a GAP segment",
        hint.uri
    );
}

/// Writes what the origin serves for the test stream with its served layout (the multivariant,
/// each media playlist in full, as `_HLS_skip=YES` and `v2` deltas and as the answer to a
/// blocking reload, the init sections, every listed part and segment) under `dir` and runs
/// scripts/validate_playlists.py (the Apple authoring spec / RFC 8216bis checker) over it.
async fn check_served(live: &mut Live, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mv = text(live.get("/live/test/index.m3u8").await).await;
    std::fs::write(dir.join("index.m3u8"), &mv).unwrap();
    let mut files = vec![dir.join("index.m3u8")];
    let names: Vec<String> = mv
        .lines()
        .filter_map(|l| match l.split_once("URI=\"") {
            Some((_, rest)) if l.starts_with("#EXT-X-MEDIA:") => {
                rest.split('"').next().map(String::from)
            }
            _ if !l.starts_with('#') && !l.is_empty() => Some(l.to_string()),
            _ => None,
        })
        .collect();
    // A blocking reload for the next part, released by the next part.
    let (msn, part) = live.last_part();
    let held: Vec<_> = names
        .iter()
        .map(|n| {
            live.spawn_get(&format!(
                "/live/test/{n}?_HLS_msn={msn}&_HLS_part={}",
                part + 1
            ))
        })
        .collect();
    live.feed_part().await;
    let mut blocked = Vec::new();
    for h in held {
        let r = h.await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        blocked.push(text(r).await);
    }
    for (name, blocked) in names.iter().zip(blocked) {
        let full = text(live.get(&format!("/live/test/{name}")).await).await;
        let yes = text(live.get(&format!("/live/test/{name}?_HLS_skip=YES")).await).await;
        let v2 = text(live.get(&format!("/live/test/{name}?_HLS_skip=v2")).await).await;
        let stem = name.trim_end_matches(".m3u8");
        for (file, body) in [
            (name.clone(), &full),
            (format!("{stem}-yes.m3u8"), &yes),
            (format!("{stem}-v2.m3u8"), &v2),
            (format!("{stem}-blocked.m3u8"), &blocked),
        ] {
            std::fs::write(dir.join(&file), body).unwrap();
            files.push(dir.join(file));
        }
        // GAP segments and parts are never fetched (rule 34: their URIs answer 404).
        let mut gap = false;
        for l in full.lines() {
            if l == "#EXT-X-GAP" {
                gap = true;
            }
            let uri = match l.split_once("URI=\"") {
                Some((_, rest)) if l.starts_with("#EXT-X-MAP") || l.starts_with("#EXT-X-PART:") => {
                    rest.split('"').next().unwrap_or("")
                }
                _ if !l.starts_with('#') => l,
                _ => "",
            };
            if uri.is_empty() || l.contains("BYTERANGE") || l.contains("GAP=YES") {
                continue;
            }
            if !l.starts_with('#') && std::mem::take(&mut gap) {
                continue;
            }
            let r = live.get(&format!("/live/test/{uri}")).await;
            assert_eq!(r.status(), StatusCode::OK, "{uri}");
            let f = dir.join(uri);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, body(r).await).unwrap();
        }
    }
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/validate_playlists.py");
    // Nothing is fed between the fetches: every view comes from one snapshot.
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg("--same-snapshot")
        .args(&files)
        .output()
        .expect("python3 runs (scripts/setup.sh installs it and the m3u8 package)");
    assert!(
        out.status.success(),
        "the checker rejected what the origin serves:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn served_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("llhls-inprocess-{tag}-{}", std::process::id()))
}

/// Every view the origin serves of an established stream, in files and byte-range modes and
/// with separate audio, passes the Apple authoring spec / RFC 8216bis checker.
#[tokio::test(start_paused = true)]
async fn every_served_view_passes_the_playlist_checker() {
    for (tag, addressing, layout) in [
        ("files", Addressing::Files, Layout::Muxed),
        ("byterange", Addressing::ByteRange, Layout::Muxed),
        ("separate", Addressing::Files, Layout::Separate),
    ] {
        let config = PackagerConfig {
            addressing,
            layout,
            first_msn: 500,
            ..PackagerConfig::default()
        };
        let mut live = Live::with_config(config, Publisher::new(30.0, 30)).await;
        live.feed_secs(14.0).await;
        check_served(&mut live, &served_dir(tag)).await;
    }
}

/// The same for a stream a few seconds old (its first playlists) and after a stall (GAP
/// segments and parts).
#[tokio::test(start_paused = true)]
async fn young_and_stalled_streams_pass_the_playlist_checker() {
    let mut live = Live::new(Addressing::Files).await;
    check_served(&mut live, &served_dir("young-stream")).await;
    let mut live = Live::stalling(Addressing::Files).await;
    live.idle(150).await;
    live.gap_segment().await;
    // The publisher resumes now, on the clock the stall was measured with (the server's),
    // its frames as late as the stall was long.
    live.resume_now();
    check_served(&mut live, &served_dir("young-stream-stalled")).await;
}
