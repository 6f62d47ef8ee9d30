//! The real binary on loopback with a real ffmpeg publishing over RTMP.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use llhls_packager::ObjectKey;

/// The playlist URI `u` as an object key, if it names one.
fn key(u: &str) -> Option<ObjectKey> {
    u.parse().ok()
}

fn media_name(s: &Server, stream: &str) -> String {
    let mv = s.get(&format!("/live/{stream}/index.m3u8")).text();
    mv.lines()
        .find(|l| l.ends_with(".m3u8"))
        .expect("a variant")
        .to_string()
}

/// Playlists pass the independent parser and init + segments decode with ffmpeg.
fn check_stream(s: &Server, stream: &str) {
    let mv = s.get(&format!("/live/{stream}/index.m3u8"));
    assert_eq!(mv.status, 200);
    let media_pl = media_name(s, stream);
    validate_served(s, stream);
    let all = assert_segments_decode(s, stream, &media_pl);
    // Parts decode too: init + the parts of the last listed parent.
    let parts: Vec<ObjectKey> = all
        .iter()
        .filter_map(|u| key(u))
        .filter(|k| k.is_part())
        .collect();
    let last = parts.iter().map(|k| k.msn()).max().expect("parts listed");
    let init = all
        .iter()
        .find(|u| key(u).is_some_and(|k| k.is_init()))
        .expect("EXT-X-MAP");
    let mut bytes = s.get(&format!("/live/{stream}/{init}")).body;
    for part in parts.iter().filter(|k| k.msn() == last) {
        let r = s.get(&format!("/live/{stream}/{part}"));
        assert_eq!(r.status, 200, "{part}");
        bytes.extend_from_slice(&r.body);
    }
    let (errors, frames) = ffmpeg_decode(&bytes);
    assert!(
        errors.trim().is_empty(),
        "ffmpeg decode errors in parts: {errors}"
    );
    assert!(
        frames > 0,
        "no frame decoded from the parts of segment {last}"
    );
}

#[test]
fn ffmpeg_publish_without_b_frames_appears_and_decodes() {
    let s = Server::start(&[]);
    let mut ff = publish(&s.rtmp_url("cam"), 8, false);
    let t = s.wait_for("/live/cam/index.m3u8", Duration::from_secs(15));
    eprintln!("first playlist {t:?} after the publisher started");
    std::thread::sleep(Duration::from_secs(3));
    check_stream(&s, "cam");
    let log = s.log_text();
    assert!(
        log.contains("publishing") && log.contains("avc1.") && log.contains("mp4a.40.2"),
        "{log}"
    );
    // The log gives the playlist URL as players reach it, not a placeholder.
    let line = log.lines().find(|l| l.contains("publishing:")).unwrap();
    assert!(
        line.contains("/live/cam/index.m3u8") && line.contains("http://"),
        "{line}"
    );
    assert!(!line.contains("HOST"), "{line}");
    let _ = ff.wait();
}

#[test]
fn ffmpeg_publish_with_b_frames_appears_and_decodes() {
    let s = Server::start(&[]);
    let mut ff = publish(&s.rtmp_url("bf"), 8, true);
    s.wait_for("/live/bf/index.m3u8", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(3));
    check_stream(&s, "bf");
    let _ = ff.wait();
}

#[test]
fn wrong_key_is_refused_and_right_key_publishes() {
    let s = Server::start(&["--publish-keys", "s3cret,other"]);
    let mut bad = publish(&s.rtmp_url("locked?key=nope"), 4, false);
    let status = bad.wait().unwrap();
    assert!(!status.success(), "ffmpeg should fail on a refused publish");
    assert_eq!(s.get("/live/locked/index.m3u8").status, 404);
    assert!(s.log_text().contains("publish refused"), "{}", s.log_text());
    let mut good = publish(&s.rtmp_url("locked?key=s3cret"), 6, false);
    s.wait_for("/live/locked/index.m3u8", Duration::from_secs(15));
    let _ = good.wait();
}

#[test]
fn duplicate_publisher_is_refused() {
    let s = Server::start(&[]);
    let mut first = publish(&s.rtmp_url("dup"), 10, false);
    s.wait_for("/live/dup/index.m3u8", Duration::from_secs(15));
    let mut second = publish(&s.rtmp_url("dup"), 4, false);
    assert!(
        !second.wait().unwrap().success(),
        "second publisher must be refused"
    );
    assert!(s.log_text().contains("already has a publisher"));
    // The first one is unaffected.
    let a = s.get("/live/dup/media.m3u8").text();
    std::thread::sleep(Duration::from_secs(1));
    let b = s.get("/live/dup/media.m3u8").text();
    assert_ne!(a, b, "the live stream keeps advancing");
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn garbage_and_half_handshakes_do_not_affect_publishers() {
    let s = Server::start(&[]);
    // Half a handshake, left open.
    let mut half = TcpStream::connect(s.rtmp).unwrap();
    half.write_all(&[3, 0, 0]).unwrap();
    // Garbage.
    let mut junk = TcpStream::connect(s.rtmp).unwrap();
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = junk.write_all(&bytes);
    let mut buf = [0u8; 64];
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = junk.read(&mut buf);
    // HTTP garbage on the HTTP port.
    let mut h = TcpStream::connect(s.http).unwrap();
    h.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    let _ = h.read(&mut buf);
    // A real publisher still works.
    let mut ff = publish(&s.rtmp_url("ok"), 6, false);
    s.wait_for("/live/ok/index.m3u8", Duration::from_secs(15));
    assert_eq!(s.get("/healthz").status, 200);
    let _ = ff.wait();
    drop(half);
}

#[test]
fn two_simultaneous_publishers() {
    let s = Server::start(&[]);
    let mut a = publish(&s.rtmp_url("one"), 7, false);
    let mut b = publish(&s.rtmp_url("two"), 7, true);
    s.wait_for("/live/one/index.m3u8", Duration::from_secs(15));
    s.wait_for("/live/two/index.m3u8", Duration::from_secs(15));
    let list = s.get("/streams.json").text();
    assert!(
        list.contains("\"one\"") && list.contains("\"two\""),
        "{list}"
    );
    let _ = a.wait();
    let _ = b.wait();
}

#[test]
fn reconnect_within_grace_continues_with_a_discontinuity() {
    let s = Server::start(&["--reconnect-grace-secs", "8"]);
    // A publisher that vanishes without unpublishing (a crash, a dropped network): killed.
    let mut ff = publish(&s.rtmp_url("re"), 30, false);
    s.wait_for("/live/re/index.m3u8", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    let _ = ff.kill();
    let _ = ff.wait();
    let before = s.get("/live/re/media.m3u8").text();
    let first_msn: u64 = before
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let mut again = publish(&s.rtmp_url("re"), 30, false);
    std::thread::sleep(Duration::from_secs(6));
    let _ = again.kill();
    let _ = again.wait();
    let after = s.get("/live/re/media.m3u8").text();
    assert!(after.contains("#EXT-X-DISCONTINUITY\n"), "{after}");
    let msn: u64 = after
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        msn, first_msn,
        "same playlist continues (window not yet full)"
    );
    assert!(!after.contains("#EXT-X-ENDLIST"));
    validate_served(&s, "re");
    // After the grace period the playlist ends.
    std::thread::sleep(Duration::from_secs(10));
    let ended = s.get("/live/re/media.m3u8").text();
    assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
    validate_served(&s, "re");
}

#[test]
fn a_publisher_that_stops_ends_the_stream_at_once() {
    // ffmpeg at the end of its input unpublishes (FCUnpublish, deleteStream), as OBS's "Stop
    // Streaming" does: viewers get EXT-X-ENDLIST now, not after the (here 10-minute) grace
    // period.
    let s = Server::start(&["--reconnect-grace-secs", "600"]);
    let mut ff = publish(&s.rtmp_url("stop"), 5, false);
    s.wait_for("/live/stop/index.m3u8", Duration::from_secs(15));
    assert!(ff.wait().unwrap().success());
    let stopped = std::time::Instant::now();
    let ended = loop {
        let text = s.get("/live/stop/media.m3u8").text();
        if text.ends_with("#EXT-X-ENDLIST\n") {
            break text;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "no ENDLIST after the publisher stopped:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        !ended.contains("GAP"),
        "no GAP parts after a clean stop:\n{ended}"
    );
    // Every frame it sent is published: 5 s at 30 fps, and 5 s of 48 kHz AAC (234.4 frames).
    let bytes = published_media(&s, "stop", &ended);
    let (errors, frames) = ffmpeg_decode(&bytes);
    assert!(errors.trim().is_empty(), "ffmpeg decode errors: {errors}");
    assert_eq!(frames, 150, "video frames published\n{ended}");
    let audio = audio_packets(&bytes);
    assert!(audio >= 234, "{audio} audio frames published\n{ended}");
    assert!(
        s.log_text()
            .contains("the publisher stopped the stream: stream ended"),
        "{}",
        s.log_text()
    );
}

/// Completes an RTMP handshake as a client and returns the socket.
fn rtmp_client(s: &Server) -> TcpStream {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let mut sock = TcpStream::connect(s.rtmp).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(&hs.generate_outbound_p0_and_p1().unwrap())
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "server closed during the handshake");
        match hs.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).unwrap()
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                sock.write_all(&response_bytes).unwrap();
                return sock;
            }
        }
    }
}

/// A type-0 chunk on chunk stream 2 carrying one protocol control message.
fn control_message(type_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

#[test]
fn hostile_chunk_sizes_and_amf_only_close_that_connection() {
    let s = Server::start(&[]);
    for size in [0u32, 0x8000_0000, 0x7fff_ffff] {
        let mut c = rtmp_client(&s);
        c.write_all(&control_message(1, &size.to_be_bytes()))
            .unwrap();
        // Then some chunks that would need the new size, and AMF0 garbage in a command.
        let _ = c.write_all(&control_message(20, &[0x02, 0xff, 0xff, 0x41, 0x05, 0x11]));
        let _ = c.write_all(&[0x43; 3000]);
    }
    let mut amf = rtmp_client(&s);
    let _ = amf.write_all(&control_message(
        20,
        &[0x02, 0x00, 0x07, b'c', b'o', b'n', 0x99, 0x12],
    ));
    // Everything else keeps working: a real publisher, the HTTP side.
    let mut ff = publish(&s.rtmp_url("after"), 6, false);
    s.wait_for("/live/after/index.m3u8", Duration::from_secs(20));
    assert_eq!(s.get("/healthz").status, 200);
    let _ = ff.wait();
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}

#[test]
fn a_restarted_stream_never_reuses_an_msn_even_after_a_faster_than_real_time_publisher() {
    let s = Server::start(&["--reconnect-grace-secs", "1"]);
    // No -re: 300 s of media arrive in a few seconds, so MSNs run far ahead of the clock and
    // only the lingering stream's last MSN keeps the next stream from reusing them.
    let st = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=30",
            "-t",
            "300",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-f",
            "flv",
        ])
        .arg(s.rtmp_url("again"))
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_secs(3));
    let first = s.get("/live/again/video.m3u8").text();
    assert!(first.ends_with("#EXT-X-ENDLIST\n"), "{first}");
    validate_served(&s, "again");
    let msns = |t: &str| -> Vec<u64> {
        uris(t)
            .iter()
            .filter_map(|u| key(u).filter(|k| !k.is_init()))
            .map(|k| k.msn())
            .collect()
    };
    let old_max = *msns(&first).iter().max().unwrap();
    let mut ff = publish(&s.rtmp_url("again"), 8, false);
    // Live once its first playlist lists three segments (about 3 s of media, later on a busy
    // machine): wait for that rather than a fixed time.
    s.wait_for("/live/again/media.m3u8", Duration::from_secs(20));
    let second = s.get("/live/again/media.m3u8").text();
    assert!(!second.contains("ENDLIST"), "{second}");
    validate_served(&s, "again");
    let new_min = *msns(&second).iter().min().unwrap();
    assert!(
        new_min > old_max,
        "new stream starts at MSN {new_min}, the old one reached {old_max}"
    );
    let _ = ff.wait();
}

/// The width of the picture in the init segment at `uri` of stream `stream` (ffprobe).
fn init_width(s: &Server, stream: &str, uri: &str) -> String {
    let bytes = s.get(&format!("/live/{stream}/{uri}")).body;
    let path = std::env::temp_dir().join(format!(
        "llhls-init-{}-{}.mp4",
        std::process::id(),
        s.http.port()
    ));
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn map_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .map(|l| l.split('"').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_publisher_on_live_demo_takes_it_over_and_the_demo_resumes_after_it_leaves() {
    let demo_file = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/media/demo.mp4");
    let s = Server::start(&[
        "--demo",
        "true",
        "--demo-file",
        demo_file,
        // The muxed layout's media.m3u8 (a ladder would make the demo separate).
        "--demo-ladder",
        "off",
        "--reconnect-grace-secs",
        "2",
    ]);
    s.wait_for("/live/demo/index.m3u8", Duration::from_secs(30));
    let before = s.get("/live/demo/media.m3u8").text();
    let msns = |t: &str| -> Vec<u64> {
        uris(t)
            .iter()
            .filter_map(|u| key(u).filter(|k| !k.is_init()))
            .map(|k| k.msn())
            .collect()
    };
    let demo_msn = *msns(&before).iter().min().unwrap();
    assert_eq!(
        init_width(&s, "demo", &map_uris(&before)[0]),
        "1280",
        "the demo's picture"
    );

    // The publish is accepted (ffmpeg fails on a refused publish) and continues the stream.
    let mut ff = publish(&s.rtmp_url("demo"), 8, false);
    let mut during = String::new();
    for _ in 0..150 {
        during = s.get("/live/demo/media.m3u8").text();
        if during.contains("#EXT-X-DISCONTINUITY\n") && during.contains("#EXT-X-PART") {
            let after_discontinuity = during.rsplit("#EXT-X-DISCONTINUITY\n").next().unwrap();
            if after_discontinuity.contains("#EXT-X-PART") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(during.contains("#EXT-X-DISCONTINUITY\n"), "{during}");
    assert!(!during.contains("#EXT-X-ENDLIST"), "{during}");
    let taken = msns(&during);
    assert!(taken.iter().all(|m| *m >= demo_msn), "{during}");
    let last_map = map_uris(&during).pop().unwrap();
    assert_eq!(
        init_width(&s, "demo", &last_map),
        "320",
        "the publisher's picture"
    );
    let log = s.log_text();
    assert!(log.contains("a publisher took live/demo over"), "{log}");
    assert!(!log.contains("already has a publisher"), "{log}");
    assert!(
        ff.wait().unwrap().success(),
        "the publish to live/demo must be accepted; log:\n{}",
        s.log_text()
    );

    // The publisher has stopped (the stream ends at once): the demo comes back as a new stream
    // whose MSNs follow the taken-over stream's.
    let mut resumed = String::new();
    for _ in 0..300 {
        let t = s.get("/live/demo/media.m3u8");
        if t.status == 200
            && !t.text().contains("#EXT-X-ENDLIST")
            && !t.text().contains("#EXT-X-DISCONTINUITY\n")
            && s.log_text().contains("the demo stream resumes")
        {
            resumed = t.text();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !resumed.is_empty(),
        "the demo did not resume; log:\n{}",
        s.log_text()
    );
    let old_max = *taken.iter().max().unwrap();
    assert!(
        msns(&resumed).iter().all(|m| *m > old_max),
        "resumed demo reuses MSNs up to {old_max}:\n{resumed}"
    );
    assert_eq!(init_width(&s, "demo", &map_uris(&resumed)[0]), "1280");
}
