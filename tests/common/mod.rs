//! Loopback test support: the real `llhls` binary on free ports, a real ffmpeg publisher, and
//! a tiny HTTP/1.1 client.
#![allow(dead_code)]

pub mod viewer;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// The WHIP UDP port (bound on every interface, so WebRTC peers see a real address).
    pub whip_port: u16,
    pub log: PathBuf,
    /// The data directory made for this server (removed with it), when the test gave none.
    own_data_dir: Option<PathBuf>,
}

impl Server {
    /// A server on free ports. A port found free can be taken by a test running beside this
    /// one before the server binds it: the server then exits saying so, and it is started
    /// again on other ports (up to three times).
    pub fn start(extra: &[&str]) -> Server {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let rtmp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            match Server::launch(http, rtmp, free_udp_port(), extra) {
                Ok(s) => return s,
                Err(log) if attempt < 3 && log.contains("already in use") => continue,
                Err(log) => panic!("/healthz not available; server log:\n{log}"),
            }
        }
    }

    /// [`Server::start`] on given ports (a restart on the ports of a server that died).
    pub fn start_at(http: SocketAddr, rtmp: SocketAddr, whip_port: u16, extra: &[&str]) -> Server {
        Server::launch(http, rtmp, whip_port, extra)
            .unwrap_or_else(|log| panic!("/healthz not available; server log:\n{log}"))
    }

    /// Starts the server and waits until it answers `/healthz` (20 s at most); the server's
    /// log if it exited or never answered.
    fn launch(
        http: SocketAddr,
        rtmp: SocketAddr,
        whip_port: u16,
        extra: &[&str],
    ) -> Result<Server, String> {
        let log = std::env::temp_dir().join(format!(
            "llhls-test-{}-{}-{}.log",
            std::process::id(),
            http.port(),
            rand_suffix()
        ));
        // No demo stream unless the test asks for one.
        let demo: &[&str] = if extra.contains(&"--demo") {
            &[]
        } else {
            &["--demo", "false"]
        };
        // Each server its own data directory unless the test gives one: servers of tests
        // running beside each other (often with the same stream names) must not continue each
        // other's streams from the positions a server keeps there for a restart.
        let own_data_dir = (!extra.contains(&"--data-dir")).then(|| {
            std::env::temp_dir().join(format!(
                "llhls-test-data-{}-{}-{}",
                std::process::id(),
                http.port(),
                rand_suffix()
            ))
        });
        let data: Vec<String> = match &own_data_dir {
            Some(dir) => vec!["--data-dir".into(), dir.display().to_string()],
            None => Vec::new(),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_llhls"))
            .args([
                "serve",
                "--http",
                &http.to_string(),
                "--rtmp",
                &rtmp.to_string(),
                "--whip-udp",
                &format!("0.0.0.0:{whip_port}"),
            ])
            .args(demo)
            .args(&data)
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("LLHLS_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("llhls binary starts");
        let mut s = Server {
            child,
            http,
            rtmp,
            whip_port,
            log,
            own_data_dir,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if try_http_get(s.http, "/healthz", &[]).is_ok_and(|r| r.status == 200) {
                return Ok(s);
            }
            if let Ok(Some(_)) = s.child.try_wait() {
                return Err(s.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(s.log_text())
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.http, path, &[])
    }

    /// Polls until `path` answers 200; returns how long it took.
    pub fn wait_for(&self, path: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(r) = try_http_get(self.http, path, &[]) {
                if r.status == 200 {
                    return start.elapsed();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{path} not available after {timeout:?}; server log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn rtmp_url(&self, name: &str) -> String {
        format!("rtmp://{}/live/{name}", self.rtmp)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.own_data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    try_http_get(addr, path, headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

pub fn try_http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    http_request(addr, "GET", path, headers, b"")
}

/// One HTTP/1.1 request on a new connection (`Content-Length` added when `body` is not empty).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // A server may answer (413) before reading a large body: ignore a reset while sending.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| std::io::Error::other("malformed response"))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n")?;
            let n =
                usize::from_str_radix(std::str::from_utf8(&rest[..nl]).ok()?.trim(), 16).ok()?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A real-time ffmpeg publisher (test pattern + tone, keyframe every second).
pub fn publish(url: &str, secs: u32, bframes: bool) -> Child {
    publish_sized(url, secs, bframes, "320x180")
}

/// [`publish`] with another picture size (`WxH`).
pub fn publish_sized(url: &str, secs: u32, bframes: bool, size: &str) -> Child {
    let mut args: Vec<String> = [
        "-hide_banner",
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30"),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(secs.to_string());
    args.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ]
        .map(String::from),
    );
    if bframes {
        args.extend(["-bf", "2"].map(String::from));
    } else {
        args.extend(["-tune", "zerolatency"].map(String::from));
    }
    args.extend(["-c:a", "aac", "-f", "flv"].map(String::from));
    args.push(url.to_string());
    Command::new("ffmpeg")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs")
}

/// Runs the independent playlist parser (Python `m3u8`) over `texts`.
pub fn validate_playlists(texts: &[(&str, String)]) {
    let dir = scratch_dir("pl");
    let mut files = Vec::new();
    for (name, text) in texts {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    validate_playlist_files(&files);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs scripts/validate_playlists.py (the independent `m3u8` parser and the Apple authoring
/// spec / RFC 8216bis rules) over playlist files; the multivariant's URIs resolve to the files
/// next to it, so the cross-rendition and media rules run too.
pub fn validate_playlist_files(files: &[std::path::PathBuf]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/validate_playlists.py");
    let out = Command::new("python3")
        .arg(script)
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "independent parser: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fetches live stream `stream` as a player would (the multivariant, every media playlist in
/// full and as a `_HLS_skip=YES` delta, init sections, every listed part and segment), writes
/// it with the served layout and runs the playlist checker over it.
pub fn validate_served(s: &Server, stream: &str) {
    // The loopback tests look at streams a few seconds old (see OPEN_FINDINGS in the script).
    let dir = scratch_dir(&format!("served-young-stream-{stream}"));
    let base = format!("/live/{stream}");
    let mv = s.get(&format!("{base}/index.m3u8"));
    assert_eq!(mv.status, 200);
    let mv = mv.text();
    std::fs::write(dir.join("index.m3u8"), &mv).unwrap();
    let mut files = vec![dir.join("index.m3u8")];
    let media: Vec<String> = mv
        .lines()
        .filter_map(|l| {
            if l.starts_with("#EXT-X-MEDIA:") {
                attr_uri(l)
            } else if !l.starts_with('#') && !l.is_empty() {
                Some(l.to_string())
            } else {
                None
            }
        })
        .collect();
    for name in media {
        let full = s.get(&format!("{base}/{name}"));
        assert_eq!(full.status, 200, "{name}");
        let full = full.text();
        let delta = s.get(&format!("{base}/{name}?_HLS_skip=YES")).text();
        let delta_name = name.replace(".m3u8", "-yes.m3u8");
        for (file, text) in [(&name, &full), (&delta_name, &delta)] {
            let p = dir.join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            files.push(p);
        }
        // Objects the playlist lists (never the preload hint: that request would block; nor
        // GAP segments and parts, whose URIs answer 404, rule 34).
        let mut gap = false;
        for l in full.lines() {
            if l == "#EXT-X-GAP" {
                gap = true;
            }
            if !l.starts_with('#') && std::mem::take(&mut gap) {
                continue;
            }
            let uri = if l.starts_with("#EXT-X-MAP:") || l.starts_with("#EXT-X-PART:") {
                attr_uri(l)
            } else if !l.starts_with('#') && !l.is_empty() {
                Some(l.to_string())
            } else {
                None
            };
            let Some(uri) = uri else { continue };
            if l.contains("BYTERANGE") || l.contains("GAP=YES") || dir.join(&uri).exists() {
                continue;
            }
            let r = s.get(&format!("{base}/{uri}"));
            assert_eq!(r.status, 200, "{uri}");
            let p = dir.join(&uri);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, &r.body).unwrap();
        }
    }
    validate_playlist_files(&files);
    let _ = std::fs::remove_dir_all(&dir);
}

fn attr_uri(line: &str) -> Option<String> {
    let rest = &line[line.find("URI=\"")? + 5..];
    Some(rest[..rest.find('"')?].to_string())
}

fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llhls-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The ffmpeg arguments of a real-time test pattern + tone as MPEG-TS (keyframe a second).
pub fn ts_source_args(secs: u32) -> Vec<String> {
    [
        "-hide_banner",
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &secs.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-f",
        "mpegts",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// ffmpeg publishing over SRT (caller mode) with this stream id.
pub fn publish_srt(srt: SocketAddr, stream_id: &str, secs: u32) -> Child {
    let mut args = ts_source_args(secs);
    args.push(format!("srt://{srt}?streamid={stream_id}"));
    Command::new("ffmpeg")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg runs")
}

/// Fetches media playlist `media_pl` of `stream`, its init and every listed segment (GAP
/// segments have no media), and asserts that they decode with ffmpeg: no error, and every
/// frame of a 30 fps source (the listed seconds times 30, one frame of rounding per segment).
/// Returns the playlist's URIs.
pub fn assert_segments_decode(s: &Server, stream: &str, media_pl: &str) -> Vec<String> {
    let media = s.get(&format!("/live/{stream}/{media_pl}"));
    assert_eq!(media.status, 200);
    let text = media.text();
    let all = uris(&text);
    let key = |u: &str| u.parse::<llhls_packager::ObjectKey>().ok();
    let init = all
        .iter()
        .find(|u| key(u).is_some_and(|k| k.is_init()))
        .expect("EXT-X-MAP");
    let mut bytes = s.get(&format!("/live/{stream}/{init}")).body;
    // (URI, EXTINF) of the segments with media.
    let mut segments: Vec<(String, f64)> = Vec::new();
    let (mut extinf, mut gap) = (0.0, false);
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            extinf = d.trim_end_matches(',').parse().unwrap_or(0.0);
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if !line.starts_with('#') && key(line).is_some_and(|k| k.is_segment()) {
            if !gap {
                segments.push((line.to_string(), extinf));
            }
            gap = false;
        }
    }
    assert!(!segments.is_empty(), "{text}");
    for (seg, _) in &segments {
        let r = s.get(&format!("/live/{stream}/{seg}"));
        assert_eq!(r.status, 200, "{seg}");
        bytes.extend_from_slice(&r.body);
    }
    let (errors, frames) = ffmpeg_decode(&bytes);
    assert!(errors.trim().is_empty(), "ffmpeg decode errors: {errors}");
    let secs: f64 = segments.iter().map(|(_, d)| d).sum();
    let expected = (secs * 30.0).round() as u64;
    assert!(
        frames + segments.len() as u64 >= expected,
        "decoded {frames} frames from {} segments listing {secs:.2} s (30 fps: {expected})\n{text}",
        segments.len()
    );
    all
}

/// The init segment and every media segment of `playlist`, concatenated.
pub fn published_media(s: &Server, stream: &str, playlist: &str) -> Vec<u8> {
    let key = |u: &str| u.parse::<llhls_packager::ObjectKey>().ok();
    let all = uris(playlist);
    let init = all
        .iter()
        .find(|u| key(u).is_some_and(|k| k.is_init()))
        .expect("EXT-X-MAP");
    let mut bytes = s.get(&format!("/live/{stream}/{init}")).body;
    for seg in all
        .iter()
        .filter(|u| key(u).is_some_and(|k| k.is_segment()))
    {
        let r = s.get(&format!("/live/{stream}/{seg}"));
        assert_eq!(r.status, 200, "{seg}");
        bytes.extend_from_slice(&r.body);
    }
    bytes
}

/// What `ffprobe -v error ARGS FILE` prints on stdout for an MP4 file holding `bytes`.
pub fn ffprobe_bytes(bytes: &[u8], args: &[&str]) -> String {
    let p = std::env::temp_dir().join(format!(
        "llhls-probe-{}-{}.mp4",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(&p)
        .output()
        .expect("ffprobe runs");
    let _ = std::fs::remove_file(&p);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Audio packets in an MP4 file (ffprobe).
pub fn audio_packets(bytes: &[u8]) -> u64 {
    ffprobe_bytes(
        bytes,
        &[
            "-count_packets",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ],
    )
    .trim()
    .parse()
    .unwrap_or(0)
}

/// Decodes `bytes` (init + media) with ffmpeg; returns its error output (empty when clean)
/// and the number of decoded video frames.
pub fn ffmpeg_decode(bytes: &[u8]) -> (String, u64) {
    let p = std::env::temp_dir().join(format!(
        "llhls-dec-{}-{}.mp4",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&p, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&p)
        .output()
        .expect("ffprobe runs");
    let dec = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&p)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let _ = std::fs::remove_file(&p);
    let frames = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        String::from_utf8_lossy(&dec.stderr).into_owned() + &String::from_utf8_lossy(&out.stderr),
        frames,
    )
}

/// URIs in a playlist (lines not starting with '#', and URI="..." attributes), each once, in
/// order of first appearance (byte-range parts share their segment's URI).
pub fn uris(playlist: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for l in playlist.lines() {
        if !l.starts_with('#') && !l.is_empty() {
            v.push(l.to_string());
        } else if let Some(i) = l.find("URI=\"") {
            let rest = &l[i + 5..];
            if let Some(j) = rest.find('"') {
                v.push(rest[..j].to_string());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    v.retain(|u| seen.insert(u.clone()));
    v
}
