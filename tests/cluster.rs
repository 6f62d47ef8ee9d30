//! Three `llhls` nodes sharing streams through a real Redis (`redis-server`, Debian's
//! redis-server, installed by scripts/setup.sh), with a real ffmpeg publishing over RTMP:
//! a node that does not have a stream proxies viewers to the one that has it (blocking
//! requests included, headers passed through), a second publish of the name elsewhere is
//! refused, and when the owner dies the publisher's reconnect to another node takes the stream
//! over with media sequence numbers above the old ones (no URI served with other bytes).

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use llhls_packager::ObjectKey;

struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian's redis-server, installed by scripts/setup.sh)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(redis: u16) -> Server {
    let url = format!("redis://127.0.0.1:{redis}");
    Server::start(&["--cluster-redis", &url])
}

fn advertise(s: &Server) -> String {
    format!("http://{}", s.http)
}

/// The media playlist's name, from the multivariant playlist.
fn media_name(s: &Server, stream: &str) -> String {
    let mv = s.get(&format!("/live/{stream}/index.m3u8"));
    assert_eq!(mv.status, 200, "{}", mv.text());
    mv.text()
        .lines()
        .find(|l| l.ends_with(".m3u8") && !l.starts_with('#'))
        .expect("a variant")
        .to_string()
}

/// Published objects of a media playlist (init, segments, parts; not the preload hint, which
/// is not published yet).
fn published(playlist: &str) -> Vec<String> {
    let kept: String = playlist
        .lines()
        .filter(|l| !l.starts_with("#EXT-X-PRELOAD-HINT") && !l.starts_with("#EXT-X-RENDITION"))
        .map(|l| format!("{l}\n"))
        .collect();
    uris(&kept)
        .into_iter()
        .filter(|u| u.parse::<ObjectKey>().is_ok())
        .collect()
}

/// The playlist's object URIs listed as GAP (EXT-X-GAP before a segment, GAP=YES on a part).
fn gap_uris(playlist: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut gap = false;
    for l in playlist.lines() {
        if l == "#EXT-X-GAP" {
            gap = true;
        } else if l.starts_with("#EXT-X-PART:") && l.contains("GAP=YES") {
            out.extend(uris(&format!("{l}\n")));
        } else if !l.starts_with('#') && !l.is_empty() && std::mem::take(&mut gap) {
            out.push(l.to_string());
        }
    }
    out
}

/// The discontinuity number of the first segment or part with media: the playlist's
/// EXT-X-DISCONTINUITY-SEQUENCE plus the EXT-X-DISCONTINUITY tags before it.
fn first_media_discontinuity(playlist: &str) -> u64 {
    let gaps = gap_uris(playlist);
    let mut n = discontinuity_sequence(playlist);
    for l in playlist.lines() {
        if l == "#EXT-X-DISCONTINUITY" {
            n += 1;
        } else if let Some(u) = uris(&format!("{l}\n")).first() {
            if !l.starts_with("#EXT-X-MAP")
                && !l.starts_with("#EXT-X-PRELOAD-HINT")
                && !gaps.contains(u)
            {
                return n;
            }
        }
    }
    n
}

fn msn(uri: &str) -> u64 {
    uri.parse::<ObjectKey>().expect("an object URI").msn()
}

/// EXT-X-DISCONTINUITY-SEQUENCE (0 when absent).
fn discontinuity_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:"))
        .map_or(0, |v| v.trim().parse().expect("a number"))
}

fn metric(s: &Server, name: &str) -> u64 {
    s.get("/metrics")
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits for a child to exit; None if it is still running after `limit`.
fn wait_exit(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn nodes_share_streams_through_redis() {
    let redis_port = free_port();
    let _redis = Redis::start(redis_port);
    let a = node(redis_port);
    let b = node(redis_port);
    let c = node(redis_port);

    // The publisher reaches node A.
    let mut first = publish(&a.rtmp_url("cam"), 120, false);
    a.wait_for("/live/cam/index.m3u8", Duration::from_secs(30));
    let media = media_name(&a, "cam");

    // B does not have the stream: it proxies to A. Same multivariant playlist, same objects.
    let via_b = b.get("/live/cam/index.m3u8");
    assert_eq!(via_b.status, 200, "{}", via_b.text());
    assert_eq!(via_b.text(), a.get("/live/cam/index.m3u8").text());
    let pl = a.get(&format!("/live/cam/{media}")).text();
    let objects = published(&pl);
    assert!(objects.iter().any(|u| u.ends_with(".mp4")), "{pl}");
    for u in objects.iter().filter(|u| !u.ends_with(".mp4")).take(3) {
        let direct = a.get(&format!("/live/cam/{u}"));
        let proxied = b.get(&format!("/live/cam/{u}"));
        assert_eq!(proxied.status, 200, "{u}");
        assert_eq!(proxied.body, direct.body, "{u} through B");
        assert_eq!(
            proxied.header("cache-control"),
            direct.header("cache-control"),
            "the owner's headers pass through"
        );
    }
    // A blocking request through B for the part after the preload hint: held by A, answered
    // through B with A's blocking Cache-Control.
    let hint = pl
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .expect("a preload hint")
        .to_string();
    let hinted = hint
        .split("URI=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let file = hinted.rsplit('/').next().unwrap();
    let mut it = file.split('.');
    let (h_msn, h_part) = (it.next().unwrap(), it.next().unwrap());
    let blocking = b.get(&format!(
        "/live/cam/{media}?_HLS_msn={h_msn}&_HLS_part={h_part}"
    ));
    assert_eq!(blocking.status, 200);
    assert!(
        blocking.text().contains(hinted),
        "the blocking answer lists the hinted part {hinted}:\n{}",
        blocking.text()
    );
    assert!(
        blocking
            .header("cache-control")
            .is_some_and(|cc| cc.contains("max-age")),
        "{:?}",
        blocking.headers
    );
    // The hinted part itself, through B.
    let part = b.get(&format!("/live/cam/{hinted}"));
    assert_eq!(part.status, 200);
    assert_eq!(part.body, a.get(&format!("/live/cam/{hinted}")).body);
    // A stream nobody has is still a 404 on every node.
    assert_eq!(b.get("/live/nobody/index.m3u8").status, 404);
    assert!(metric(&b, "llhls_cluster_proxied_requests_total") >= 6);
    assert_eq!(metric(&a, "llhls_cluster_proxied_requests_total"), 0);

    // Every node lists the stream with its owner.
    for n in [&a, &b, &c] {
        let list = n.get("/streams.json").text();
        assert!(
            list.contains("\"name\":\"cam\"")
                && list.contains(&format!("\"owner\":\"{}\"", advertise(&a))),
            "{list}"
        );
    }

    // A second publish of the name on another node is refused like a duplicate.
    let mut second = publish(&b.rtmp_url("cam"), 30, false);
    let st = wait_exit(&mut second, Duration::from_secs(30));
    if st.is_none() {
        let _ = second.kill();
    }
    assert!(
        st.is_some_and(|s| !s.success()),
        "ffmpeg publishing a taken name to another node was not refused ({st:?}); B's log:\n{}",
        b.log_text()
    );
    assert!(
        b.log_text().contains("another node has this stream"),
        "{}",
        b.log_text()
    );
    assert_eq!(
        a.get(&format!("/live/cam/{media}")).status,
        200,
        "A's stream goes on"
    );

    // A stores where it is in Redis once a second: wait until its playlist has two complete
    // segments, so it has stored a position with segments (a node that dies in its stream's
    // first second leaves nothing to continue from: the takeover then starts at the wall
    // clock's MSN, also above A's, but without the discontinuity sequence checked below).
    let start = Instant::now();
    while a
        .get(&format!("/live/cam/{media}"))
        .text()
        .matches("#EXTINF")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "A's playlist never had two segments"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1100));
    // Everything A served of the stream so far, through B: URI -> bytes.
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let last = b.get(&format!("/live/cam/{media}")).text();
    for u in published(&last) {
        let r = b.get(&format!("/live/cam/{u}"));
        if r.status == 200 {
            seen.insert(u, r.body);
        }
    }
    let old_max = seen.keys().map(|u| msn(u)).max().expect("objects");
    let old_ds = discontinuity_sequence(&last);

    // The owner dies; its publisher goes too and reconnects to C, retried until A's claim
    // has expired. A's MSNs at the kill: what players may have seen last (A went on after
    // `seen` was taken, and stores its position every second).
    let at_kill = a.get(&format!("/live/cam/{media}")).text();
    let last_at_kill = published(&at_kill)
        .iter()
        .map(|u| msn(u))
        .max()
        .expect("objects");
    let mut a = a;
    let _ = a.child.kill();
    let _ = a.child.wait();
    let _ = first.kill();
    let _ = first.wait();
    let start = Instant::now();
    let mut third = loop {
        let mut p = publish(&c.rtmp_url("cam"), 120, false);
        if wait_exit(&mut p, Duration::from_secs(2)).is_none() {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "C never took the stream over; C's log:\n{}",
            c.log_text()
        );
    };
    c.wait_for("/live/cam/index.m3u8", Duration::from_secs(30));
    let media_c = media_name(&c, "cam");
    let pl_c = c.get(&format!("/live/cam/{media_c}")).text();
    // The new owner's playlist starts with a segment players of A saw, listed again as GAP (a
    // bridge: Shaka places a playlist by an MSN it knows, and never plays again without one),
    // then GAP segments up to its own media, all above A's MSNs.
    let gaps = gap_uris(&pl_c);
    let new_objects: Vec<String> = published(&pl_c)
        .into_iter()
        .filter(|u| !gaps.contains(u))
        .collect();
    assert!(!new_objects.is_empty(), "{pl_c}");
    let first_listed = pl_c
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("EXT-X-MEDIA-SEQUENCE");
    assert!(
        first_listed >= old_max.saturating_sub(2)
            && first_listed <= last_at_kill
            && gaps.iter().any(|u| msn(u) == first_listed),
        "the new owner's playlist does not start with one of A's last segments ({old_max}-{last_at_kill}), as GAP:\n{pl_c}"
    );
    for u in &new_objects {
        assert!(
            msn(u) > last_at_kill,
            "{u} on the new owner is not above A's last MSN {last_at_kill}:\n{pl_c}"
        );
    }
    // No URI served again with other bytes: a URI A served gives the same bytes, or answers
    // 404 where the bridge lists it as GAP.
    for u in published(&pl_c) {
        if let Some(old) = seen.get(&u) {
            let r = c.get(&format!("/live/cam/{u}"));
            assert!(
                (r.status == 200 && &r.body == old) || (gaps.contains(&u) && r.status == 404),
                "{u} reused with other bytes (status {})",
                r.status
            );
        }
    }
    // Players must see a discontinuity (new timestamps), not a continuation of A's media.
    assert!(
        first_media_discontinuity(&pl_c) > old_ds,
        "the new owner's media is not after a discontinuity above A's {old_ds}:\n{pl_c}"
    );
    // B now proxies to C.
    let via_b = b.get(&format!("/live/cam/{media_c}"));
    assert_eq!(via_b.status, 200, "{}", via_b.text());
    let via_b = via_b.text();
    let gaps_b = gap_uris(&via_b);
    assert!(published(&via_b)
        .iter()
        .filter(|u| !gaps_b.contains(u))
        .all(|u| msn(u) > old_max));
    let list = b.get("/streams.json").text();
    assert!(
        list.contains(&format!("\"owner\":\"{}\"", advertise(&c))),
        "{list}"
    );
    let _ = third.kill();
    let _ = third.wait();
}
