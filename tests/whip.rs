//! WHIP ingest against the real `llhls` binary: HTTP errors a publisher can cause, and hostile
//! WebRTC publishers (bad RTP sequence numbers and timestamps, loss, reordering, a DTLS
//! failure, a duplicate publisher) built on str0m in RTP mode, so every packet is ours to
//! break. The real publishers (GStreamer's simple-whip-client, Chromium) play in
//! player-test/run.mjs.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use llhls_packager::codec::split_annex_b;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");

/// The host's outbound address: what a WebRTC peer on this machine would offer.
fn host_ip() -> std::net::IpAddr {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("192.0.2.1:9").unwrap();
    s.local_addr().unwrap().ip()
}

/// H.264 access units (Annex-B, with AUD) from ffmpeg: 320x240, 30 fps, keyframe each second.
fn h264_access_units(secs: u32) -> Vec<Vec<u8>> {
    h264_access_units_gop(secs, 30)
}

/// As [`h264_access_units`], with a keyframe every `gop` frames.
fn h264_access_units_gop(secs: u32, gop: u32) -> Vec<Vec<u8>> {
    h264_access_units_sized(secs, gop, "320x240")
}

/// As [`h264_access_units_gop`], `size` pixels (`WxH`).
fn h264_access_units_sized(secs: u32, gop: u32, size: &str) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30:duration={secs}"))
        .args([
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &gop.to_string(),
            // str0m paces what it sends from its initial bandwidth estimate: stay under it.
            "-b:v",
            "150k",
            "-maxrate",
            "150k",
            "-bufsize",
            "150k",
            "-x264-params",
            "aud=1",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = out.stdout;
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 5 <= d.len() {
        if d[i..i + 4] == [0, 0, 0, 1] && d[i + 4] & 0x1f == 9 {
            starts.push(i);
            i += 5;
        } else {
            i += 1;
        }
    }
    starts.push(d.len());
    starts.windows(2).map(|w| d[w[0]..w[1]].to_vec()).collect()
}

/// RFC 6184 packetization: single NAL units, FU-A for large ones.
fn packetize(au: &[u8]) -> Vec<Vec<u8>> {
    const MAX: usize = 1100;
    let mut out = Vec::new();
    for nal in split_annex_b(au) {
        if nal.is_empty() || nal[0] & 0x1f == 9 {
            continue;
        }
        if nal.len() <= MAX {
            out.push(nal.to_vec());
            continue;
        }
        let (h, body) = (nal[0], &nal[1..]);
        let chunks: Vec<&[u8]> = body.chunks(MAX).collect();
        for (k, c) in chunks.iter().enumerate() {
            let mut p = vec![(h & 0xe0) | 28, h & 0x1f];
            if k == 0 {
                p[1] |= 0x80;
            }
            if k == chunks.len() - 1 {
                p[1] |= 0x40;
            }
            p.extend_from_slice(c);
            out.push(p);
        }
    }
    out
}

/// What a hostile publisher does to its RTP.
#[derive(Clone, Copy, Default)]
struct Abuse {
    /// Drop one packet in this many (0: none).
    drop_every: u64,
    /// Swap each packet with the next one in this many (0: none).
    swap_every: u64,
    /// Jump the sequence number by 20,000 at this frame.
    seq_jump_at: Option<usize>,
    /// Give this frame a timestamp 500 ms before the previous one.
    ts_back_at: Option<usize>,
    /// Jump timestamps an hour forward from this frame on.
    ts_jump_at: Option<usize>,
    /// Every this many frames, send garbage datagrams (RTP-, DTLS- and STUN-looking) to the
    /// server from this session's address and from a stranger's.
    garbage_every: usize,
}

/// Opus packets (20 ms, 48 kHz stereo) of a sine tone, from ffmpeg's libopus through Ogg.
fn opus_packets(secs: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={secs}"
        ))
        .args([
            "-ac",
            "2",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-frame_duration",
            "20",
        ])
        .args(["-f", "ogg", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ogg pages: "OggS", 22 bytes of header, a segment table; a packet ends at a segment
    // shorter than 255 bytes.
    let d = out.stdout;
    let (mut i, mut packets, mut cur) = (0, Vec::new(), Vec::new());
    while i + 27 <= d.len() && &d[i..i + 4] == b"OggS" {
        let n = d[i + 26] as usize;
        let table = &d[i + 27..i + 27 + n];
        let mut at = i + 27 + n;
        for &len in table {
            cur.extend_from_slice(&d[at..at + len as usize]);
            at += len as usize;
            if len < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        i = at;
    }
    // The first two are the OpusHead and OpusTags headers.
    packets.split_off(2)
}

/// A WHIP publisher built on str0m in RTP mode.
struct Publisher {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    mid: Mid,
    /// The audio section (Opus), when the offer has one.
    audio_mid: Option<Mid>,
    pending: Option<SdpPendingOffer>,
    offer: String,
    resource: Option<String>,
    server_udp: Option<SocketAddr>,
}

impl Publisher {
    fn new() -> Publisher {
        Publisher::offering(false)
    }

    /// A publisher offering H.264 video and, with `audio`, Opus audio.
    fn offering(audio: bool) -> Publisher {
        let sock = UdpSocket::bind((host_ip(), 0)).unwrap();
        let local = sock.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(audio, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let audio_mid =
            audio.then(|| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        Publisher {
            rtc,
            sock,
            local,
            mid,
            audio_mid,
            pending: Some(pending),
            offer: offer.to_sdp_string(),
            resource: None,
            server_udp: None,
        }
    }

    /// POSTs the offer; on 201 applies the answer.
    fn post(&mut self, server: &Server, name: &str, headers: &[(&str, &str)]) -> Response {
        let mut h = vec![SDP];
        h.extend_from_slice(headers);
        let r = http_request(
            server.http,
            "POST",
            &format!("/whip/live/{name}"),
            &h,
            self.offer.as_bytes(),
        )
        .unwrap();
        if r.status == 201 {
            let answer = SdpAnswer::from_sdp_string(&r.text()).unwrap();
            self.rtc
                .sdp_api()
                .accept_answer(self.pending.take().unwrap(), answer)
                .unwrap();
            self.resource = r.header("location").map(str::to_string);
            self.server_udp = r.text().lines().find_map(|l| {
                let f: Vec<&str> = l.strip_prefix("a=candidate:")?.split(' ').collect();
                format!("{}:{}", f.get(4)?, f.get(5)?).parse().ok()
            });
        }
        r
    }

    fn drain(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => return t,
                Output::Transmit(t) => {
                    let _ = self.sock.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => {}
                Output::Event(_) => {}
            }
        }
    }

    /// Drives the connection until `deadline`, reading datagrams.
    fn pump(&mut self, deadline: Instant) {
        let mut buf = vec![0u8; 2000];
        loop {
            let t = self.drain();
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let wait = t
                .min(deadline)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            self.sock.set_read_timeout(Some(wait)).unwrap();
            let input = match self.sock.recv_from(&mut buf) {
                Ok((n, source)) => Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents: buf[..n].try_into().unwrap(),
                    },
                ),
                Err(_) => Input::Timeout(Instant::now()),
            };
            self.rtc.handle_input(input).unwrap();
        }
    }

    fn connected(&mut self, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.rtc.is_connected() {
                return true;
            }
            self.pump(Instant::now() + Duration::from_millis(50));
        }
        self.rtc.is_connected()
    }

    fn h264_pt(&self) -> Pt {
        let remote = self.rtc.media(self.mid).unwrap().remote_pts().to_vec();
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::H264 && remote.contains(&p.pt()))
            .expect("an H.264 payload type in the answer")
            .pt()
    }

    fn opus_pt(&self) -> Pt {
        let mid = self.audio_mid.expect("an audio section");
        let remote = self.rtc.media(mid).unwrap().remote_pts().to_vec();
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus && remote.contains(&p.pt()))
            .expect("an Opus payload type in the answer")
            .pt()
    }

    /// Sends video access units (30 fps) and Opus packets (20 ms) together in real time, in
    /// the order of their times; `skip_audio` is never sent (lost on the way). Returns as soon
    /// as the last packet is written.
    fn stream_av(&mut self, aus: &[Vec<u8>], opus: &[Vec<u8>], skip_audio: Option<usize>) {
        let (vpt, apt) = (self.h264_pt(), self.opus_pt());
        let amid = self.audio_mid.expect("an audio section");
        let mut due: Vec<(u64, bool, usize)> = (0..aus.len())
            .map(|i| (i as u64 * 100 / 3, true, i))
            .chain((0..opus.len()).map(|i| (i as u64 * 20, false, i)))
            .collect();
        due.sort();
        let start = Instant::now();
        let (mut vseq, mut aseq) = (1000u64, 5000u64);
        for (ms, video, i) in due {
            // The sample's wall-clock time as scheduled, not when a busy machine got to it:
            // the sender reports then put both tracks on one timeline exactly.
            let at = start + Duration::from_millis(ms);
            self.pump(at);
            if video {
                let packets = packetize(&aus[i]);
                let last = packets.len().saturating_sub(1);
                for (k, p) in packets.into_iter().enumerate() {
                    let ts = 12345u32.wrapping_add(i as u32 * 3000);
                    let w = RtpWrite::new(vpt, SeqNo::from(vseq), ts, at, p).marker(k == last);
                    vseq += 1;
                    self.write(w);
                }
            } else {
                aseq += 1;
                if skip_audio == Some(i) {
                    continue;
                }
                let ts = 777u32.wrapping_add(i as u32 * 960);
                let w =
                    RtpWrite::new(apt, SeqNo::from(aseq), ts, at, opus[i].clone()).marker(i == 0);
                let mut api = self.rtc.direct_api();
                api.stream_tx_by_mid(amid, None)
                    .expect("the publisher's audio stream")
                    .write_rtp(w);
                self.drain();
            }
        }
    }

    /// Sends the access units in real time, abused as told; stops early when `stop` is set.
    fn stream(&mut self, aus: &[Vec<u8>], abuse: Abuse, stop: &AtomicBool) {
        let pt = self.h264_pt();
        let start = Instant::now();
        let mut seq: u64 = 1000;
        let mut ts: u32 = 12345;
        let mut n: u64 = 0;
        let mut held: Option<RtpWrite> = None;
        for (i, au) in aus.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let due = start + Duration::from_millis(i as u64 * 1000 / 30);
            self.pump(due);
            if abuse.seq_jump_at == Some(i) {
                seq += 20_000;
            }
            let frame_ts = if abuse.ts_back_at == Some(i) {
                ts.wrapping_sub(45_000)
            } else {
                ts
            };
            if abuse.ts_jump_at == Some(i) {
                ts = ts.wrapping_add(90_000 * 3600);
            }
            if abuse.garbage_every > 0 && i % abuse.garbage_every == 7 {
                let server = self.server_udp.expect("the answer's candidate");
                let stranger = UdpSocket::bind((host_ip(), 0)).unwrap();
                let mut stun = vec![0u8, 1, 0, 12, 0x21, 0x12, 0xa4, 0x42];
                stun.extend_from_slice(&[9; 12]);
                stun.extend_from_slice(&[0, 6, 0, 8]);
                stun.extend_from_slice(b"nobody:x");
                for junk in [
                    &[0x80u8, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xde, 0xad][..],
                    &[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 1, 0, 3, 1, 2, 3][..],
                    &stun[..],
                    &[0xff; 1500][..],
                    &[][..],
                ] {
                    let _ = self.sock.send_to(junk, server);
                    let _ = stranger.send_to(junk, server);
                }
            }
            let packets = packetize(au);
            let last = packets.len().saturating_sub(1);
            for (k, p) in packets.into_iter().enumerate() {
                n += 1;
                let w = RtpWrite::new(pt, SeqNo::from(seq), frame_ts, Instant::now(), p)
                    .marker(k == last);
                seq += 1;
                if abuse.drop_every > 0 && n.is_multiple_of(abuse.drop_every) {
                    continue;
                }
                if abuse.swap_every > 0 && n.is_multiple_of(abuse.swap_every) && held.is_none() {
                    held = Some(w);
                    continue;
                }
                self.write(w);
                if let Some(h) = held.take() {
                    self.write(h);
                }
            }
            ts = ts.wrapping_add(3000);
        }
        self.pump(Instant::now() + Duration::from_millis(200));
    }

    fn write(&mut self, w: RtpWrite) {
        let mid = self.mid;
        let mut api = self.rtc.direct_api();
        api.stream_tx_by_mid(mid, None)
            .expect("the publisher's send stream")
            .write_rtp(w);
        self.drain();
    }
}

/// The stream's (first) media playlist, found through its multivariant playlist.
fn media_playlist(server: &Server, name: &str) -> Option<String> {
    let mv = try_http_get(server.http, &format!("/live/{name}/index.m3u8"), &[]).ok()?;
    if mv.status != 200 {
        return None;
    }
    let text = mv.text();
    let uri = text
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let r = try_http_get(server.http, &format!("/live/{name}/{uri}"), &[]).ok()?;
    (r.status == 200).then(|| r.text())
}

fn wait_playlist(server: &Server, name: &str, within: Duration) -> String {
    let end = Instant::now() + within;
    loop {
        if let Some(p) = media_playlist(server, name) {
            if p.contains("#EXTINF") {
                return p;
            }
        }
        assert!(
            Instant::now() < end,
            "no playlist for {name}; server log:\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// The number of the last complete segment.
fn last_msn(p: &str) -> u64 {
    let first: u64 = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    first + p.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64 - 1
}

/// Init section plus every complete segment of a playlist, concatenated.
fn fetch_media(server: &Server, name: &str, playlist: &str) -> Vec<u8> {
    let map = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .map(|r| r.trim_end_matches('"').to_string())
        .expect("EXT-X-MAP");
    let mut out = http_get(server.http, &format!("/live/{name}/{map}"), &[]).body;
    let mut gap = false;
    for line in playlist.lines() {
        if line == "#EXT-X-GAP" {
            gap = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            if !gap {
                let r = http_get(server.http, &format!("/live/{name}/{line}"), &[]);
                assert_eq!(r.status, 200, "{line}");
                out.extend(r.body);
            }
            gap = false;
        }
    }
    out
}

#[test]
fn http_errors_a_publisher_can_cause() {
    let server = Server::start(&["--publish-keys", "k1"]);
    let post = |name: &str, headers: &[(&str, &str)], body: &[u8]| {
        http_request(
            server.http,
            "POST",
            &format!("/whip/live/{name}"),
            headers,
            body,
        )
        .unwrap()
    };
    let auth = ("Authorization", "Bearer k1");
    let offer = Publisher::new().offer;

    // CORS preflight from a page on another origin.
    let r = http_request(
        server.http,
        "OPTIONS",
        "/whip/live/cam",
        &[
            ("Origin", "http://elsewhere.example"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(r
        .header("access-control-expose-headers")
        .unwrap()
        .contains("Location"));

    // Not SDP, too large, malformed, no usable codec, bad name, no key, wrong key.
    assert_eq!(
        post(
            "cam",
            &[auth, ("Content-Type", "text/plain")],
            offer.as_bytes()
        )
        .status,
        415
    );
    let huge = "v=0\r\n".repeat(20_000);
    assert_eq!(post("cam", &[auth, SDP], huge.as_bytes()).status, 413);
    let r = post(
        "cam",
        &[auth, SDP],
        b"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\nthis is not sdp\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("SDP"), "{}", r.text());
    let vp8 = offer
        .lines()
        .filter(|l| !l.contains("H264") && !l.contains("fmtp") && !l.contains("rtcp-fb"))
        .map(|l| {
            format!(
                "{}\r\n",
                l.replace(" UDP/TLS/RTP/SAVPF ", " UDP/TLS/RTP/SAVPF 96 ")
            )
        })
        .collect::<String>()
        + "a=rtpmap:96 VP8/90000\r\n";
    let r = post("cam", &[auth, SDP], vp8.as_bytes());
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("VP8") && r.text().contains("H.264"),
        "{}",
        r.text()
    );
    assert_eq!(post("../etc", &[auth, SDP], offer.as_bytes()).status, 404);
    assert_eq!(post("bad.name", &[auth, SDP], offer.as_bytes()).status, 400);
    let r = post("cam", &[SDP], offer.as_bytes());
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(
        post(
            "cam",
            &[SDP, ("Authorization", "Bearer k2")],
            offer.as_bytes()
        )
        .status,
        401
    );

    // Sessions: unknown DELETE, PATCH (no trickle), GET on the endpoint.
    let r = http_request(server.http, "DELETE", "/whip/session/00112233", &[], b"").unwrap();
    assert_eq!(r.status, 404);
    let r = http_request(
        server.http,
        "PATCH",
        "/whip/session/00112233",
        &[("Content-Type", "application/trickle-ice-sdpfrag")],
        b"a=end-of-candidates\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("DELETE"));
    assert_eq!(http_get(server.http, "/whip/live/cam", &[]).status, 405);

    // The right key: 201, an SDP answer, a Location; DELETE ends it.
    let mut p = Publisher::new();
    let r = p.post(&server, "cam", &[auth]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    assert!(r.text().contains("a=ice-lite"), "an ICE-lite answer");
    let loc = r.header("location").unwrap().to_string();
    assert!(loc.starts_with("/whip/session/"));
    assert_eq!(
        http_request(server.http, "DELETE", &loc, &[], b"")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http_request(server.http, "DELETE", &loc, &[], b"")
            .unwrap()
            .status,
        404
    );
    assert_eq!(http_get(server.http, "/healthz", &[]).status, 200);
    // 415, 413, 400, 422, bad name, no key, wrong key; then the one that worked.
    let m = http_get(server.http, "/metrics", &[]).text();
    assert!(m.contains("llhls_whip_sessions_started_total 1\n"), "{m}");
    assert!(m.contains("llhls_whip_sessions_refused_total 7\n"), "{m}");
}

#[test]
fn hostile_rtp_is_survived_and_other_streams_do_not_notice() {
    let server = Server::start(&[]);
    // A good RTMP stream alongside, for the whole test.
    let mut good = publish(&server.rtmp_url("good"), 30, false);
    wait_playlist(&server, "good", Duration::from_secs(20));
    let good_msn0 = last_msn(&media_playlist(&server, "good").unwrap());
    let good_parts0 = http_get(server.http, "/metrics", &[]).text();

    let aus = h264_access_units(4);
    let mut p = Publisher::new();
    let r = p.post(&server, "bad", &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(
        p.connected(Duration::from_secs(10)),
        "ICE + DTLS with llhls"
    );
    let stop = Arc::new(AtomicBool::new(false));
    // 12 s of 30 fps: loss, reordering, a sequence-number jump, a timestamp going back, and an
    // hour's jump forward.
    let frames: Vec<Vec<u8>> = aus.iter().cycle().take(360).cloned().collect();
    p.stream(
        &frames,
        Abuse {
            drop_every: 97,
            swap_every: 13,
            seq_jump_at: Some(100),
            ts_back_at: Some(150),
            ts_jump_at: Some(200),
            garbage_every: 30,
        },
        &stop,
    );
    let playlist = wait_playlist(&server, "bad", Duration::from_secs(5));
    let log = server.log_text();
    assert!(
        log.contains("timestamp did not advance"),
        "the backwards timestamp is logged:\n{log}"
    );
    assert!(log.contains("jumped forward"), "the jump is logged:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("bad datagram"),
        "garbage from the publisher's address is logged:\n{log}"
    );
    assert!(
        log.contains("no WHIP session"),
        "datagrams from strangers are logged:\n{log}"
    );
    let m = http_get(server.http, "/metrics", &[]).text();
    let metric = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(metric("llhls_whip_packets_lost_total") > 0, "{m}");
    assert!(metric("llhls_whip_keyframe_requests_total") > 0, "{m}");
    // Strangers sent dozens of datagrams within the minute: all counted, one log line.
    let strangers = metric("llhls_whip_datagrams_unknown_total");
    assert!(strangers > 10, "{m}");
    let lines = log.matches("no WHIP session").count();
    assert_eq!(
        lines, 1,
        "{strangers} stray datagrams in {lines} log lines (at most one a minute):\n{log}"
    );

    // What is served still follows the playlist rules (scripts/validate_playlists.py).
    validate_served(&server, "bad");
    // What was published decodes, and most of the video made it through.
    let media = fetch_media(&server, "bad", &playlist);
    let (errors, frames_out) = ffmpeg_decode(&media);
    let segs = playlist
        .lines()
        .filter(|l| l.starts_with("#EXTINF"))
        .count();
    assert!(segs >= 3, "{playlist}");
    // Two thirds of the 30 fps sent, per second of media listed (segments are 1 to 2.4 s,
    // depending on when the publisher answers keyframe requests).
    let secs: f64 = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.trim_end_matches(',').parse::<f64>().ok())
        .sum();
    assert!(
        frames_out as f64 >= secs * 20.0,
        "{frames_out} frames in {segs} segments ({secs:.1} s); {errors}\n{playlist}\n{}",
        server.log_text()
    );

    // The RTMP stream kept going the whole time.
    let good_now = media_playlist(&server, "good").unwrap();
    assert!(
        !good_now.contains("GAP"),
        "the RTMP stream never stalled:\n{good_now}"
    );
    let good_msn1 = last_msn(&good_now);
    assert!(
        good_msn1 >= good_msn0 + 5,
        "good stream advanced {good_msn0} -> {good_msn1}"
    );
    assert_ne!(good_parts0, http_get(server.http, "/metrics", &[]).text());
    let _ = good.kill();
    let _ = good.wait();
}

#[test]
fn sessions_beyond_the_per_ip_limit_get_429_until_one_ends() {
    let server = Server::start(&["--whip-max-sessions-per-ip", "1"]);
    let mut a = Publisher::new();
    assert_eq!(a.post(&server, "first", &[]).status, 201);
    let mut b = Publisher::new();
    let r = b.post(&server, "second", &[]);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(r
        .text()
        .contains("too many WHIP sessions from this address"));
    assert!(server
        .log_text()
        .contains("too many sessions from this address"));
    let loc = a.resource.clone().unwrap();
    assert_eq!(
        http_request(server.http, "DELETE", &loc, &[], b"")
            .unwrap()
            .status,
        200
    );
    // The session ends (and frees its place) just after the DELETE is answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Publisher::new();
        let r = c.post(&server, "second", &[]);
        if r.status == 201 {
            break;
        }
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(Instant::now() < deadline, "the place was never freed");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn duplicate_publisher_refused_then_delete_ends_the_stream_and_the_name_is_free() {
    let server = Server::start(&["--reconnect-grace-secs", "10"]);
    let aus = h264_access_units(2);
    let stop = AtomicBool::new(false);
    let mut a = Publisher::new();
    assert_eq!(a.post(&server, "dup", &[]).status, 201);
    assert!(a.connected(Duration::from_secs(10)));
    let frames: Vec<Vec<u8>> = aus.iter().cycle().take(150).cloned().collect();
    a.stream(&frames, Abuse::default(), &stop);
    wait_playlist(&server, "dup", Duration::from_secs(5));

    let mut b = Publisher::new();
    let r = b.post(&server, "dup", &[]);
    assert_eq!(
        r.status,
        409,
        "a second publisher on a live stream: {}",
        r.text()
    );

    let loc = a.resource.clone().unwrap();
    assert_eq!(
        http_request(server.http, "DELETE", &loc, &[], b"")
            .unwrap()
            .status,
        200
    );
    thread::sleep(Duration::from_millis(300));
    let mut c = Publisher::new();
    assert_eq!(
        c.post(&server, "dup", &[]).status,
        201,
        "the name is free after DELETE"
    );
    assert!(c.connected(Duration::from_secs(10)));
    c.stream(&frames, Abuse::default(), &stop);
    // DELETE is the publisher saying it is done: the old stream ended (no GAP parts through
    // the grace period) and the new publisher started a new stream, not a continuation.
    let p = media_playlist(&server, "dup").unwrap();
    assert!(
        !p.contains("#EXT-X-DISCONTINUITY\n"),
        "a new stream after DELETE, not a resumed one:\n{p}"
    );
    assert!(!p.contains("GAP"), "{p}");
    assert!(!p.contains("#EXT-X-ENDLIST"));
    assert!(
        server
            .log_text()
            .contains("the publisher stopped the stream: stream ended"),
        "{}",
        server.log_text()
    );
    validate_served(&server, "dup");
}

#[test]
fn delete_publishes_what_was_sent_before_it() {
    // Video and Opus audio for 6 s, the audio packet 60 ms before the end lost on the way, and
    // the DELETE right behind the last packet: the server's jitter buffer still holds the
    // audio after the hole, and its AAC encoder the last 40-60 ms it took. What the publisher
    // sent before it said it was done belongs in the stream: the audio track ends with the
    // video track, not 100 ms before it.
    let server = Server::start(&[]);
    let aus = h264_access_units_gop(7, 30);
    let frames = &aus[..180];
    let opus = opus_packets(7);
    let opus = &opus[..300];
    let mut a = Publisher::offering(true);
    assert_eq!(a.post(&server, "flush", &[]).status, 201);
    assert!(a.connected(Duration::from_secs(10)));
    a.stream_av(frames, opus, Some(296));
    let loc = a.resource.clone().unwrap();
    assert_eq!(
        http_request(server.http, "DELETE", &loc, &[], b"")
            .unwrap()
            .status,
        200
    );
    let end = Instant::now() + Duration::from_secs(10);
    let playlist = loop {
        let p = media_playlist(&server, "flush").unwrap_or_default();
        if p.contains("#EXT-X-ENDLIST") {
            break p;
        }
        assert!(
            Instant::now() < end,
            "no EXT-X-ENDLIST after DELETE:\n{p}\n{}",
            server.log_text()
        );
        thread::sleep(Duration::from_millis(100));
    };
    let media = fetch_media(&server, "flush", &playlist);
    let packets = ffprobe_bytes(
        &media,
        &[
            "-show_entries",
            "packet=codec_type,pts_time,duration_time",
            "-of",
            "csv=p=0",
        ],
    );
    // The end of each track: the latest pts + duration.
    let end_of = |kind: &str| {
        packets
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f.first() == Some(&kind)).then(|| {
                    f.get(1).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
                        + f.get(2).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
                })
            })
            .fold(0.0f64, f64::max)
    };
    let (video, audio) = (end_of("video"), end_of("audio"));
    // The stream starts at a keyframe once both tracks' sender reports are in (about 1-2 s).
    assert!(video > 1.0 && audio > 1.0, "a stream under 1 s: {packets}");
    eprintln!("the video ends at {video:.3} s, the audio at {audio:.3} s");
    // One AAC frame (21 ms) of rounding either way: the packager cuts the audio at the last
    // part's end.
    assert!(
        audio >= video - 0.03,
        "the audio ends {:.0} ms before the video: the last audio sent before the DELETE is missing\n{playlist}",
        (video - audio) * 1000.0
    );
    validate_served(&server, "flush");
}

#[test]
fn dtls_failure_ends_that_session_only_and_frees_the_name() {
    let server = Server::start(&[]);
    let mut p = Publisher::new();
    // Offer a fingerprint that is not our certificate's: the DTLS handshake must fail.
    let fp = p
        .offer
        .lines()
        .find(|l| l.starts_with("a=fingerprint:"))
        .unwrap()
        .to_string();
    let last = fp.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &fp[..fp.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    p.offer = p.offer.replace(&fp, &flipped);
    assert_eq!(p.post(&server, "cam", &[]).status, 201);
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && !server.log_text().contains("WHIP session ended") {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.pump(Instant::now() + Duration::from_millis(100))
        }));
    }
    let log = server.log_text();
    assert!(
        log.contains("WHIP session ended"),
        "the failed session is logged:\n{log}"
    );
    assert!(
        media_playlist(&server, "cam").is_none(),
        "nothing was published"
    );

    let aus = h264_access_units(2);
    let mut q = Publisher::new();
    assert_eq!(
        q.post(&server, "cam", &[]).status,
        201,
        "the name is free again"
    );
    assert!(q.connected(Duration::from_secs(10)));
    let frames: Vec<Vec<u8>> = aus.iter().cycle().take(150).cloned().collect();
    q.stream(&frames, Abuse::default(), &AtomicBool::new(false));
    wait_playlist(&server, "cam", Duration::from_secs(5));
}

#[test]
fn a_publisher_that_goes_silent_loses_consent_and_the_stream_ends_after_the_grace() {
    let server = Server::start(&["--reconnect-grace-secs", "1"]);
    let aus = h264_access_units(2);
    let mut p = Publisher::new();
    assert_eq!(p.post(&server, "quiet", &[]).status, 201);
    assert!(p.connected(Duration::from_secs(10)));
    let frames: Vec<Vec<u8>> = aus.iter().cycle().take(120).cloned().collect();
    p.stream(&frames, Abuse::default(), &AtomicBool::new(false));
    wait_playlist(&server, "quiet", Duration::from_secs(5));
    // Vanish without DELETE: no media, no connectivity checks.
    drop(p);
    let end = Instant::now() + Duration::from_secs(20);
    let mut ended = false;
    while Instant::now() < end && !ended {
        thread::sleep(Duration::from_millis(250));
        ended = media_playlist(&server, "quiet").is_some_and(|p| p.contains("#EXT-X-ENDLIST"));
    }
    let log = server.log_text();
    assert!(log.contains("consent expired"), "{log}");
    assert!(
        ended,
        "ENDLIST after consent expiry and the 1 s grace:\n{log}"
    );
}

#[test]
fn a_long_keyframe_interval_gets_whip_advice_not_rtmp_advice() {
    // A 1 s segment target against a publisher that sends a keyframe every 3 s and, like
    // this test's publisher, never answers the server's keyframe requests (RTCP PLI).
    let server = Server::start(&["--segment-target-ms", "1000"]);
    let aus = h264_access_units_gop(6, 90);
    let stop = AtomicBool::new(false);
    let mut p = Publisher::new();
    assert_eq!(p.post(&server, "gop", &[]).status, 201);
    assert!(p.connected(Duration::from_secs(10)));
    p.stream(&aus, Abuse::default(), &stop);
    let log = server.log_text();
    let advice: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("stream=gop") && l.contains("keyframe"))
        .collect();
    assert!(
        advice.iter().any(|l| l
            .contains("did not answer the server's keyframe requests (RTCP PLI)")
            && l.contains("1 s or less")),
        "no WHIP keyframe advice:\n{log}"
    );
    assert!(
        !advice.iter().any(|l| l.contains("ffmpeg: -g")),
        "RTMP encoder advice given to a WHIP publisher:\n{log}"
    );
}

#[test]
fn a_whip_publish_gets_the_ladder_on_the_source_grid() {
    // A video-only WHIP publisher at 640x360: the 240p rung is transcoded below it, and both
    // renditions list the same segments and parts.
    let server = Server::start(&["--ladder", "240p"]);
    let aus = h264_access_units_sized(8, 30, "640x360");
    let stop = AtomicBool::new(false);
    let mut p = Publisher::new();
    assert_eq!(p.post(&server, "abr", &[]).status, 201);
    assert!(p.connected(Duration::from_secs(10)));
    p.stream(&aus, Abuse::default(), &stop);
    let mv = http_get(server.http, "/live/abr/index.m3u8", &[]).text();
    let variants: Vec<&str> = mv.lines().filter(|l| l.ends_with(".m3u8")).collect();
    assert_eq!(
        variants,
        ["video.m3u8", "240p.m3u8"],
        "{mv}\n{}",
        server.log_text()
    );
    assert!(mv.contains("RESOLUTION=426x240"), "{mv}");
    // Same MSNs, the same parts in each segment, INDEPENDENT on the same parts.
    let grid = |name: &str| -> Vec<String> {
        let text = http_get(server.http, &format!("/live/abr/{name}.m3u8"), &[]).text();
        let msn = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .unwrap()
            .to_string();
        let mut out = vec![msn];
        for l in text.lines() {
            if let Some(part) = l.strip_prefix("#EXT-X-PART:") {
                let uri = part.split("URI=\"").nth(1).unwrap();
                let file = uri.rsplit('/').next().unwrap().trim_end_matches('"');
                out.push(format!(
                    "{file}{}",
                    if part.contains("INDEPENDENT=YES") {
                        " I"
                    } else {
                        ""
                    }
                ));
            } else if l.starts_with("#EXTINF") {
                out.push("segment".into());
            }
        }
        out
    };
    let (source, rung) = (grid("video"), grid("240p"));
    assert!(
        source.iter().filter(|l| *l == "segment").count() >= 3,
        "{source:?}"
    );
    assert_eq!(source, rung, "the rung is off the source's grid");
    // The rung's media is 240 lines, as ffprobe reads it.
    let text = http_get(server.http, "/live/abr/240p.m3u8", &[]).text();
    let media = fetch_media(&server, "abr", &text);
    let dir = std::env::temp_dir().join(format!("llhls-whip-ladder-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("240p.mp4");
    std::fs::write(&f, &media).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0"])
        .arg(&f)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "426,240");
}
