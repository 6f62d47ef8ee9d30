//! The real binary on loopback with real SRT publishers (ffmpeg, and libsrt's own
//! `srt-live-transmit`) sending MPEG-TS: the stream plays, the playlists pass the checker,
//! the media decodes; a wrong key and a second publisher are refused; a reconnect continues
//! the stream.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A server with SRT on a free loopback port.
fn start(extra: &[&str]) -> (Server, SocketAddr) {
    let srt: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let addr = srt.to_string();
    let mut args = vec!["--srt", addr.as_str()];
    args.extend_from_slice(extra);
    (Server::start(&args), srt)
}

/// Init + segments decode (ffprobe counts the frames, ffmpeg reports no error), and the
/// playlists pass the checker.
fn check_stream(s: &Server, stream: &str) {
    validate_served(s, stream);
    assert_segments_decode(s, stream, "media.m3u8");
    let mv = s.get(&format!("/live/{stream}/index.m3u8")).text();
    assert!(
        (mv.contains("avc1.") || mv.contains("hvc1.")) && mv.contains("mp4a.40.2"),
        "video and audio: {mv}"
    );
}

fn metric(s: &Server, name: &str) -> u64 {
    let m = s.get("/metrics").text();
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in {m}"))
        .parse()
        .unwrap()
}

#[test]
fn ffmpeg_over_srt_plays() {
    let (s, srt) = start(&[]);
    let mut ff = publish_srt(srt, "publish:live/cam", 8);
    let t = s.wait_for("/live/cam/index.m3u8", Duration::from_secs(15));
    eprintln!("first playlist {t:?} after the publisher started");
    std::thread::sleep(Duration::from_secs(3));
    // While the publisher is still on (checking the media below takes seconds on a busy
    // machine, and the publisher stops after 8 s).
    assert_eq!(metric(&s, "llhls_srt_sessions"), 1);
    check_stream(&s, "cam");
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("publishing over SRT"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("/live/cam/index.m3u8"), "{line}");
    assert_eq!(metric(&s, "llhls_srt_sessions_started_total"), 1);
    assert_eq!(metric(&s, "llhls_srt_ts_cc_errors_total"), 0);
    assert!(ff.wait().unwrap().success());
}

/// `stream`'s media playlist half a second after its publisher `ff` ended successfully.
fn playlist_after_publisher_ends(s: &Server, mut ff: Child, stream: &str) -> String {
    assert!(ff.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    s.get(&format!("/live/{stream}/media.m3u8")).text()
}

/// The final playlist of a stream whose publisher left: polls until the grace period has
/// ended it (EXT-X-ENDLIST).
fn final_playlist(s: &Server, stream: &str) -> String {
    for _ in 0..200 {
        let media = s.get(&format!("/live/{stream}/media.m3u8"));
        if media.status == 200 && media.text().contains("#EXT-X-ENDLIST") {
            return media.text();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{stream} never ended; server log:\n{}", s.log_text());
}

#[test]
fn every_frame_a_leaving_publisher_sent_is_published() {
    // Six seconds at 30 fps: 180 frames, all sent before ffmpeg closes (linger). The last video
    // frame is complete only when the connection closes (a PES of unbounded length ends where
    // the next one starts), most of a second later, after the packager's stall check has fired:
    // it is published all the same, and the audio up to it.
    let (s, srt) = start(&["--reconnect-grace-secs", "1"]);
    let mut args = ts_source_args(6);
    args.push(format!("srt://{srt}?streamid=publish:live/tail&linger=2"));
    let mut ff = publish_until_listed(&s, &args, "tail");
    assert!(ff.wait().unwrap().success());
    let media = final_playlist(&s, "tail");
    assert!(!media.contains("GAP"), "{media}");
    let bytes = published_media(&s, "tail", &media);
    let (errors, frames) = ffmpeg_decode(&bytes);
    assert!(errors.trim().is_empty(), "ffmpeg decode errors: {errors}");
    assert!(frames <= 180, "{frames} video frames\n{media}");
    assert_last_frame(&bytes, 180, "the publisher's last frame");
    // The audio reaches the end too: AAC frames of 1024 samples at 48 kHz (21.3 ms) up to 6 s.
    let first = video_times(&bytes)[0];
    let audio = stream_times(&bytes, "a:0");
    let last_audio = audio.iter().copied().reduce(f64::max).unwrap_or(0.0) - first;
    assert!(
        last_audio >= 6.0 - 2.0 * 1024.0 / 48_000.0,
        "the last audio frame published starts at {last_audio:.4} s\n{media}"
    );
}

/// The PTS of a TS packet that starts a video PES (PID 0x100, as ffmpeg writes).
fn video_pts(p: &[u8]) -> Option<u64> {
    if p.len() != 188
        || p[1] & 0x40 == 0
        || ((u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])) != 0x100
    {
        return None;
    }
    let start = if p[3] & 0x20 != 0 {
        5 + usize::from(p[4])
    } else {
        4
    };
    let h = p.get(start..start + 14)?;
    if h[..3] != [0, 0, 1] || h[7] & 0x80 == 0 {
        return None;
    }
    let b = &h[9..14];
    Some(
        (u64::from(b[0] >> 1 & 7) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1),
    )
}

/// Sends transport streams, one after the other, over SRT (a caller with this stream id) in
/// 7-packet messages, each at the time of its video, then closes once everything is delivered.
fn send_ts_over_srt(srt: SocketAddr, stream_id: &str, parts: &[&[u8]]) {
    use futures::SinkExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // (A generous latency: this sender and the server are debug builds on a shared
        // machine, and a packet not delivered within it would be given up.)
        let mut socket = srt_tokio::SrtSocket::builder()
            .latency(Duration::from_secs(1))
            .call(srt, Some(stream_id))
            .await
            .expect("SRT connects");
        for ts in parts {
            // Each message goes when its video is due (its last PES's PTS, from the first),
            // a little ahead, as a real-time encoder sends.
            let start = tokio::time::Instant::now();
            let mut first = None;
            for chunk in ts.chunks(7 * 188) {
                if let Some(pts) = chunk.chunks(188).rev().find_map(video_pts) {
                    let first = *first.get_or_insert(pts);
                    let due = Duration::from_millis(pts.saturating_sub(first) / 90);
                    let lead = Duration::from_millis(200);
                    tokio::time::sleep_until(start + due.saturating_sub(lead)).await;
                }
                let msg = (
                    std::time::Instant::now(),
                    bytes::Bytes::copy_from_slice(chunk),
                );
                socket.send(msg).await.expect("SRT sends");
            }
        }
        socket.close_and_finish().await.expect("SRT closes");
    });
}

/// The presentation times (s) of the video frames in an MP4 file, in decode order (ffprobe).
fn video_times(bytes: &[u8]) -> Vec<f64> {
    stream_times(bytes, "v:0")
}

/// The presentation times (s) of the packets of stream `select` (`v:0`, `a:0`) of an MP4 file.
fn stream_times(bytes: &[u8], select: &str) -> Vec<f64> {
    ffprobe_bytes(
        bytes,
        &[
            "-select_streams",
            select,
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ],
    )
    .lines()
    .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
    .collect()
}

/// Asserts that the last video frame of `bytes` is frame `n` (from 1) of a 30 fps source
/// whose first frame is the first one published. (A loaded machine can make the packager see
/// a stall mid-stream and resume on a keyframe; the end of the stream is what these tests
/// are about.)
fn assert_last_frame(bytes: &[u8], n: u32, what: &str) {
    let times = video_times(bytes);
    let (Some(first), Some(last)) = (times.first(), times.iter().copied().reduce(f64::max)) else {
        panic!("{what}: no video");
    };
    let expected = f64::from(n - 1) / 30.0;
    assert!(
        ((last - first) - expected).abs() < 0.005,
        "{what}: the last frame published is at {:.4} s, frame {n} is at {expected:.4} s",
        last - first
    );
}

#[test]
fn a_last_frame_cut_short_by_the_publisher_is_dropped_not_served() {
    // A publisher that closes without sending everything (ffmpeg with libsrt's default linger
    // of 0) cuts its last video PES at a packet boundary: the server must not package what
    // came of it as a frame. ffmpeg's TS of 3 s (90 frames), cut two packets into the last
    // video PES.
    let (s, srt) = start(&["--reconnect-grace-secs", "1"]);
    let mut args = ts_source_args(3);
    args.retain(|a| a != "-re");
    let out = Command::new("ffmpeg")
        .args(&args)
        .arg("-")
        .stderr(Stdio::null())
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    let ts = out.stdout;
    let packets: Vec<&[u8]> = ts.chunks(188).collect();
    let video =
        |p: &[u8]| p.len() == 188 && ((u16::from(p[1] & 0x1f) << 8) | u16::from(p[2])) == 0x100;
    let last_start = packets
        .iter()
        .rposition(|p| video(p) && p[1] & 0x40 != 0)
        .expect("video PES");
    let rest: Vec<usize> = (last_start..packets.len())
        .filter(|&i| video(packets[i]))
        .collect();
    assert!(
        rest.len() > 3,
        "the last video PES spans {} packets",
        rest.len()
    );
    let cut = rest[1] + 1;
    send_ts_over_srt(srt, "publish:live/cut", &[&ts[..cut * 188]]);
    let media = final_playlist(&s, "cut");
    let bytes = published_media(&s, "cut", &media);
    let (errors, frames) = ffmpeg_decode(&bytes);
    assert!(errors.trim().is_empty(), "ffmpeg decode errors: {errors}");
    assert!(frames > 0 && frames <= 89, "{frames} frames\n{media}");
    assert_last_frame(&bytes, 89, "the last whole frame, not the cut one");
    let log = s.log_text();
    assert!(
        log.contains("the input ended inside a video frame"),
        "{log}"
    );
}

#[test]
fn access_control_stream_id_and_srt_live_transmit() {
    // libsrt's own tool as the SRT caller, relaying ffmpeg's TS from UDP, with the
    // `#!::` stream id form.
    let (s, srt) = start(&[]);
    let udp = free_udp_port();
    let relay = Command::new("srt-live-transmit")
        .args([
            "-q".to_string(),
            format!("udp://127.0.0.1:{udp}"),
            format!("srt://{srt}?streamid=#!::r=live/slt,m=publish"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("srt-live-transmit runs (Debian's srt-tools, installed by scripts/setup.sh)");
    // Stopped however the test ends (it runs until killed).
    let _relay = KillOnDrop(relay);
    std::thread::sleep(Duration::from_millis(500));
    let mut args = ts_source_args(8);
    args.push(format!("udp://127.0.0.1:{udp}?pkt_size=1316"));
    let mut ff = publish_until_listed(&s, &args, "slt");
    std::thread::sleep(Duration::from_secs(3));
    check_stream(&s, "slt");
    let _ = ff.wait();
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn wrong_key_is_refused_and_right_key_publishes() {
    let (s, srt) = start(&["--publish-keys", "s3cret"]);
    let mut bad = publish_srt(srt, "publish:live/locked?key=nope", 4);
    assert!(
        !bad.wait().unwrap().success(),
        "ffmpeg fails on a refused connection"
    );
    let mut none = publish_srt(srt, "publish:live/locked", 4);
    assert!(!none.wait().unwrap().success());
    assert_eq!(s.get("/live/locked/index.m3u8").status, 404);
    let log = s.log_text();
    assert!(
        log.contains("SRT publish refused") && log.contains("key missing or wrong"),
        "{log}"
    );
    assert_eq!(metric(&s, "llhls_srt_sessions_refused_total"), 2);
    let mut good = publish_srt(srt, "publish:live/locked?key=s3cret", 6);
    s.wait_for("/live/locked/index.m3u8", Duration::from_secs(15));
    let _ = good.wait();
}

#[test]
fn a_stream_id_that_does_not_publish_is_refused() {
    let (s, srt) = start(&[]);
    for id in ["live/x", "#!::r=live/x,m=request", "publish:other/x"] {
        let mut ff = publish_srt(srt, id, 3);
        assert!(!ff.wait().unwrap().success(), "{id}");
    }
    assert_eq!(s.get("/live/x/index.m3u8").status, 404);
    assert_eq!(metric(&s, "llhls_srt_sessions_refused_total"), 3);
}

#[test]
fn duplicate_publisher_is_refused() {
    let (s, srt) = start(&[]);
    let mut first = publish_srt(srt, "publish:live/dup", 10);
    s.wait_for("/live/dup/index.m3u8", Duration::from_secs(15));
    let mut second = publish_srt(srt, "publish:live/dup", 4);
    assert!(
        !second.wait().unwrap().success(),
        "second publisher must be refused"
    );
    assert!(
        s.log_text().contains("already has a publisher"),
        "{}",
        s.log_text()
    );
    assert!(first.wait().unwrap().success(), "the first one goes on");
}

#[test]
fn reconnect_within_grace_continues_with_a_discontinuity() {
    let (s, srt) = start(&["--reconnect-grace-secs", "8"]);
    let mut ff = publish_srt(srt, "publish:live/re", 30);
    s.wait_for("/live/re/index.m3u8", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));
    let _ = ff.kill();
    let _ = ff.wait();
    let before = s.get("/live/re/media.m3u8").text();
    let msn = |t: &str| -> u64 {
        t.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .unwrap()
            .parse()
            .unwrap()
    };
    // The killed publisher sent no shutdown: its connection lingers until SRT's peer timeout
    // (5 s), and a reconnect once it has been silent for STALE_AFTER (1.5 s) replaces it.
    std::thread::sleep(Duration::from_secs(2));
    let mut again = publish_srt(srt, "publish:live/re", 30);
    std::thread::sleep(Duration::from_secs(6));
    let _ = again.kill();
    let _ = again.wait();
    let after = s.get("/live/re/media.m3u8").text();
    assert!(after.contains("#EXT-X-DISCONTINUITY\n"), "{after}");
    assert_eq!(msn(&after), msn(&before), "the same playlist continues");
    assert!(!after.contains("#EXT-X-ENDLIST"));
    validate_served(&s, "re");
    assert!(s.log_text().contains("resumed=true"), "{}", s.log_text());
}

/// A UDP relay in front of `server` that drops every `nth` datagram from the publisher
/// (after the first 20, so the handshake gets through; SRT would retry it anyway). Returns
/// the address publishers call and a counter of the datagrams dropped.
fn lossy_relay(
    server: SocketAddr,
    nth: u64,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::net::UdpSocket;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(server).unwrap();
    let addr = front.local_addr().unwrap();
    let dropped = Arc::new(AtomicU64::new(0));
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    {
        let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let (client, dropped) = (client.clone(), dropped.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut n = 0u64;
            while let Ok((len, from)) = front.recv_from(&mut buf) {
                *client.lock().unwrap() = Some(from);
                n += 1;
                if n > 20 && n.is_multiple_of(nth) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let _ = back.send(&buf[..len]);
            }
        });
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok(len) = back.recv(&mut buf) {
            if let Some(to) = *client.lock().unwrap() {
                let _ = front.send_to(&buf[..len], to);
            }
        }
    });
    (addr, dropped)
}

#[test]
fn two_percent_loss_is_repaired_by_retransmission() {
    // A lossy link wants a receive latency of several round trips plus the receiver's own
    // scheduling delay (README): 120 ms let a retransmission miss its deadline on a busy
    // two-core machine.
    let (s, srt) = start(&["--srt-latency-ms", "500"]);
    let (relay, dropped) = lossy_relay(srt, 50);
    let mut ff = publish_srt(relay, "publish:live/lossy", 10);
    s.wait_for("/live/lossy/index.m3u8", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(4));
    check_stream(&s, "lossy");
    assert!(ff.wait().unwrap().success());
    let dropped = dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped > 20, "the relay dropped {dropped} datagrams");
    // Statistics are sampled each second: the last second may not be counted yet.
    std::thread::sleep(Duration::from_millis(1500));
    let naks = metric(&s, "llhls_srt_loss_reports_total");
    let retransmitted = metric(&s, "llhls_srt_packets_retransmitted_total");
    eprintln!("relay dropped {dropped}; SRT loss reports {naks}, retransmitted {retransmitted}");
    assert!(naks > 0 && retransmitted > 0);
    // Every loss was repaired in time: the TS arrived whole.
    assert_eq!(metric(&s, "llhls_srt_ts_cc_errors_total"), 0);
    assert_eq!(metric(&s, "llhls_srt_packets_dropped_total"), 0);
}

#[test]
fn passphrase_encryption() {
    let (s, srt) = start(&["--srt-passphrase", "correct-horse-1"]);
    // Wrong passphrase, and none: refused at the handshake, with a log line.
    for params in ["&passphrase=wrong-horse-22&pbkeylen=16", ""] {
        let mut ff = publish_srt(srt, &format!("publish:live/enc{params}"), 3);
        assert!(!ff.wait().unwrap().success(), "{params:?}");
    }
    assert_eq!(s.get("/live/enc/index.m3u8").status, 404);
    let log = s.log_text();
    assert!(log.contains("wrong passphrase"), "{log}");
    assert!(log.contains("no passphrase"), "{log}");
    assert_eq!(metric(&s, "llhls_srt_sessions_refused_total"), 2);
    // The right one (AES-256 here) plays.
    let mut ff = publish_srt(
        srt,
        "publish:live/enc&passphrase=correct-horse-1&pbkeylen=32",
        8,
    );
    s.wait_for("/live/enc/index.m3u8", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(3));
    check_stream(&s, "enc");
    assert_eq!(metric(&s, "llhls_srt_ts_errors_total"), 0);
    assert!(ff.wait().unwrap().success());
}

#[test]
fn hevc_over_srt_is_packaged() {
    let (s, srt) = start(&[]);
    let mut args = ts_source_args(8);
    let codec = args.iter().position(|a| a == "libx264").unwrap();
    args[codec] = "libx265".into();
    args.splice(
        codec + 1..codec + 1,
        ["-x265-params", "log-level=none"].map(String::from),
    );
    args.push(format!("srt://{srt}?streamid=publish:live/hevc"));
    let mut ff = publish_until_listed(&s, &args, "hevc");
    std::thread::sleep(Duration::from_secs(3));
    check_stream(&s, "hevc");
    let mv = s.get("/live/hevc/index.m3u8").text();
    assert!(mv.contains("hvc1."), "{mv}");
    assert!(ff.wait().unwrap().success());
}

/// ffmpeg publishing over SRT with this audio encoding in place of ADTS AAC.
fn publish_srt_audio(srt: SocketAddr, name: &str, audio: &[&str]) -> Child {
    let mut args = ts_source_args(8);
    let codec = args.iter().position(|a| a == "aac").unwrap();
    args.splice(codec - 1..=codec, audio.iter().map(|s| s.to_string()));
    args.push(format!("srt://{srt}?streamid=publish:live/{name}"));
    quiet_ffmpeg(&args)
}

/// ffmpeg with these arguments, its output discarded.
fn quiet_ffmpeg(args: &[String]) -> Child {
    Command::new("ffmpeg")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg runs")
}

/// ffmpeg publishing with `args`, once `stream`'s multivariant playlist answers.
fn publish_until_listed(s: &Server, args: &[String], stream: &str) -> Child {
    let ff = quiet_ffmpeg(args);
    s.wait_for(
        &format!("/live/{stream}/index.m3u8"),
        Duration::from_secs(15),
    );
    ff
}

#[test]
fn opus_and_latm_aac_over_srt_are_packaged() {
    let (s, srt) = start(&[]);
    // Opus (stream type 0x06 with its registration descriptor) and AAC in LATM (0x11), as
    // ffmpeg's MPEG-TS muxer writes them.
    let mut opus = publish_srt_audio(srt, "opus", &["-c:a", "libopus", "-ac", "2"]);
    let mut latm = publish_srt_audio(srt, "latm", &["-c:a", "aac", "-mpegts_flags", "latm"]);
    s.wait_for("/live/opus/index.m3u8", Duration::from_secs(15));
    s.wait_for("/live/latm/index.m3u8", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(3));
    // (Opus is outside Apple's authoring spec, which the playlist checker applies: only the
    // AAC stream is checked there.)
    validate_served(&s, "latm");
    for (name, codec) in [("opus", "opus"), ("latm", "mp4a.40.2")] {
        let mv = s.get(&format!("/live/{name}/index.m3u8")).text();
        assert!(mv.contains("avc1.") && mv.contains(codec), "{name}: {mv}");
        assert_segments_decode(&s, name, "media.m3u8");
    }
    let log = s.log_text();
    assert!(!log.contains("not supported"), "{log}");
    assert_eq!(metric(&s, "llhls_srt_ts_errors_total"), 0);
    assert!(opus.wait().unwrap().success());
    assert!(latm.wait().unwrap().success());
}

#[test]
fn timestamps_wrapping_past_33_bits_continue_the_stream() {
    let (s, srt) = start(&[]);
    // ffmpeg's TS timestamps start 3.5 s before their 33-bit wrap (2^33 / 90 kHz = 95443.7 s)
    // and wrap while it publishes.
    let mut args = ts_source_args(9);
    let out = args.len() - 2; // before "-f mpegts"
    args.splice(out..out, ["-output_ts_offset", "95440.2"].map(String::from));
    // The media is decoded after the publisher is gone: with libsrt's default linger of 0,
    // ffmpeg drops what it has not sent when it closes, and the last frame can arrive cut
    // (a decode error in about half the runs). README: publish with `&linger=2`.
    args.push(format!("srt://{srt}?streamid=publish:live/wrap&linger=2"));
    let ff = publish_until_listed(&s, &args, "wrap");
    let media = playlist_after_publisher_ends(&s, ff, "wrap");
    // One stream across the wrap: no discontinuity, no gap, about 9 s of media (the start
    // waits for the first keyframe; the publisher may drop its last fraction of a second).
    assert!(!media.contains("#EXT-X-DISCONTINUITY\n"), "{media}");
    assert!(!media.contains("GAP"), "{media}");
    // Complete segments, and the parts of the one still open.
    let mut secs = 0.0;
    let mut open = 0.0;
    for l in media.lines() {
        if let Some(d) = l.strip_prefix("#EXTINF:") {
            secs += d.trim_end_matches(',').parse::<f64>().unwrap();
            open = 0.0;
        } else if let Some(p) = l.strip_prefix("#EXT-X-PART:DURATION=") {
            open += p.split(',').next().unwrap().parse::<f64>().unwrap();
        }
    }
    let secs = secs + open;
    assert!(secs > 7.5, "{secs} s of media in {media}");
    check_stream(&s, "wrap");
    assert_eq!(metric(&s, "llhls_srt_ts_errors_total"), 0);
}

#[test]
fn a_timestamp_jump_is_a_discontinuity_and_the_stream_goes_on() {
    let (s, srt) = start(&[]);
    // Both tracks' timestamps jump 100 s forward 4 s in (an encoder whose clock was reset, or
    // a switched source): the packager starts a new timeline with EXT-X-DISCONTINUITY.
    let mut args = ts_source_args(9);
    let t = args.iter().position(|a| a == "-t").unwrap();
    args.drain(t..t + 2);
    for input in ["testsrc2", "sine"] {
        // Before "-f lavfi -i SOURCE": the input's own duration, so that the jump does not end
        // the output early.
        let at = args.iter().position(|a| a.starts_with(input)).unwrap() - 3;
        args.splice(at..at, ["-t", "9"].map(String::from));
    }
    let out = args.len() - 2;
    args.splice(
        out..out,
        [
            "-vf",
            "setpts=PTS+gte(T\\,4)*100/TB",
            "-af",
            "asetpts=PTS+gte(T\\,4)*100/TB",
        ]
        .map(String::from),
    );
    args.push(format!("srt://{srt}?streamid=publish:live/jump"));
    let ff = publish_until_listed(&s, &args, "jump");
    let media = playlist_after_publisher_ends(&s, ff, "jump");
    let (before, after) = media
        .split_once("#EXT-X-DISCONTINUITY\n")
        .unwrap_or_else(|| panic!("a discontinuity: {media}"));
    assert!(before.contains("#EXTINF:"), "{media}");
    // After it, the stream goes on from a keyframe (more than a segment of media).
    assert!(
        after.lines().filter(|l| l.starts_with("#EXTINF:")).count() >= 2,
        "{media}"
    );
    assert!(!media.contains("GAP"), "{media}");
    validate_served(&s, "jump");
}

/// ffmpeg's TS of `secs` of the test pattern and tone with this video encoder, as fast as it
/// encodes.
fn ts_file(secs: u32, video: &[&str]) -> Vec<u8> {
    let mut args = ts_source_args(secs);
    args.retain(|a| a != "-re");
    let codec = args.iter().position(|a| a == "libx264").unwrap();
    args.splice(codec - 1..=codec, video.iter().map(|s| s.to_string()));
    let out = Command::new("ffmpeg")
        .args(&args)
        .arg("-")
        .stderr(Stdio::null())
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn a_video_codec_change_in_one_session_starts_a_new_init_section() {
    // One SRT session carries H.264, then HEVC (a PMT with new content, as when an encoder's
    // output switches; its timestamps start over): the stream goes on after
    // EXT-X-DISCONTINUITY with a new EXT-X-MAP, and each side decodes to its last frame
    // (the last H.264 frame, still open when the new PMT came, included).
    let (s, srt) = start(&["--reconnect-grace-secs", "1"]);
    let h264 = ts_file(3, &["-c:v", "libx264"]);
    let hevc = ts_file(3, &["-c:v", "libx265", "-x265-params", "log-level=none"]);
    send_ts_over_srt(srt, "publish:live/switch", &[&h264, &hevc]);
    let media = final_playlist(&s, "switch");
    let (before, after) = media
        .split_once("#EXT-X-DISCONTINUITY\n")
        .unwrap_or_else(|| panic!("a discontinuity: {media}"));
    let before = before.to_string() + "#EXT-X-ENDLIST\n";
    let map = |text: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .map(|u| u.trim_end_matches('"').to_string())
            .unwrap_or_default()
    };
    let after_map = map(after);
    assert!(
        !after_map.is_empty() && after_map != map(&before),
        "{media}"
    );
    let log = s.log_text();
    assert!(log.contains("codec configuration changed"), "{log}");
    for (side, text) in [
        ("H.264", before.clone()),
        ("HEVC", format!("#EXT-X-MAP:URI=\"{after_map}\"\n{after}")),
    ] {
        let bytes = published_media(&s, "switch", &text);
        let (errors, n) = ffmpeg_decode(&bytes);
        assert!(
            errors.trim().is_empty(),
            "{side}: ffmpeg decode errors: {errors}"
        );
        assert!(n > 0, "{side}\n{media}");
        // Each side ends on its last frame (the last H.264 one was still open when the new
        // PMT came).
        assert_last_frame(&bytes, 90, side);
    }
}
