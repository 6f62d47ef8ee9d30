//! Hostile clients against the real `llhls` binary over real sockets, each run next to a real
//! viewer (blocking playlist reloads on the demo stream, as hls.js makes them). Every test
//! asserts that the server stays up, that its memory stays bounded, and that the viewer keeps
//! getting fresh parts during the attack (counts, never times: CI machines are slow). The
//! viewer's lag (response received minus the part's publish time) with and without the attack
//! (one viewer in CI; ten at full scale, their lags pooled so that the p99 is a percentile) is
//! printed as one `HOSTILE {json}` line per attack; `benches/hostile.sh` runs these tests at
//! full scale, one at a time, and keeps those lines as the figures.
//!
//! Scale: small by default (CI); `LLHLS_HOSTILE_SCALE=full` for the sizes in issue 15.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::viewer::*;
use common::*;

fn full() -> bool {
    std::env::var("LLHLS_HOSTILE_SCALE").as_deref() == Ok("full")
}

/// `ci` in the default run, `full` with `LLHLS_HOSTILE_SCALE=full`.
fn scaled(ci: usize, full_size: usize) -> usize {
    if full() {
        full_size
    } else {
        ci
    }
}

/// Length of the baseline and of the attack phase.
fn phase() -> Duration {
    Duration::from_secs(if full() { 15 } else { 6 })
}

/// The demo stream, muxed (`live/demo/media.m3u8`), 200 ms parts.
fn demo_server(extra: &[&str]) -> Server {
    let demo_file = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/media/demo.mp4");
    let mut args = vec![
        "--demo",
        "true",
        "--demo-file",
        demo_file,
        "--demo-ladder",
        "off",
    ];
    args.extend_from_slice(extra);
    // Extra server flags for every test of a run, to compare settings (benches/hostile.sh).
    let more = std::env::var("LLHLS_HOSTILE_SERVER_ARGS").unwrap_or_default();
    args.extend(more.split_whitespace());
    let s = Server::start(&args);
    s.wait_for("/live/demo/media.m3u8", Duration::from_secs(30));
    s
}

fn assert_alive(s: &mut Server) {
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "the server exited; log:\n{}",
        s.log_text()
    );
    assert_eq!(s.get("/healthz").status, 200);
}

/// What an attack reports about itself (printed with the viewer's figures).
type AttackNotes = Vec<(&'static str, u64)>;

/// How many viewers measure each attack: one in CI; ten at full scale, whose lags are pooled,
/// so that the p99 is a percentile (about 750 responses a phase), not one viewer's slowest of
/// 75 (benches/README.md, the slow readers).
fn viewers() -> usize {
    scaled(1, 10)
}

/// Runs `attack` (which returns when `until` has passed) against `s` next to real viewers:
/// a baseline phase, then the attack phase. Asserts the server stayed up and the viewers kept
/// getting fresh parts; returns the notes and the peak RSS growth (KiB) during the attack.
fn run_attack(
    name: &str,
    s: &mut Server,
    attack: impl FnOnce(SocketAddr, Instant) -> AttackNotes + Send + 'static,
) -> (AttackNotes, u64) {
    let mut viewers: Vec<Viewer> = (0..viewers())
        .map(|_| Viewer::start(s.http, "/live/demo/media.m3u8"))
        .collect();
    thread::sleep(Duration::from_secs(2));
    viewers.iter_mut().for_each(|v| v.set_phase(1));
    thread::sleep(phase());
    let rss_before = rss_kib(s);
    viewers.iter_mut().for_each(|v| v.set_phase(2));
    let until = Instant::now() + phase();
    let addr = s.http;
    let t = thread::spawn(move || attack(addr, until));
    let mut rss_peak = rss_before;
    while !t.is_finished() {
        rss_peak = rss_peak.max(rss_kib(s));
        thread::sleep(Duration::from_millis(100));
    }
    let notes = t.join().expect("the attack thread ran");
    let logs: Vec<[PhaseLog; 3]> = viewers.into_iter().map(Viewer::finish).collect();
    assert_alive(s);
    let pool = |phase: usize| PhaseLog::pooled(logs.iter().map(|l| &l[phase]));
    let (base, att) = (&pool(1), &pool(2));
    // Each viewer's time in a phase, as measured: a slow reader's attack lasts 35 s, not the
    // 15 s phase it is given.
    let secs = |p: &PhaseLog| p.secs / logs.len().max(1) as f64;
    let (p_base, p_att) = (p99_ms(&base.lags_us), p99_ms(&att.lags_us));
    let mut json = format!(
        "{{\"attack\":\"{name}\",\"scale\":\"{}\",\"baseline_s\":{:.1},\"attack_s\":{:.1},\"baseline_fresh\":{},\"attack_fresh\":{},\"baseline_lag_p99_ms\":{p_base:.1},\"attack_lag_p99_ms\":{p_att:.1},\"lag_ratio\":{:.2},\"viewers\":{},\"baseline_lags\":{},\"attack_lags\":{},\"viewer_errors\":{},\"rss_before_mib\":{:.1},\"rss_peak_mib\":{:.1}",
        if full() { "full" } else { "ci" },
        secs(base),
        secs(att),
        base.fresh,
        att.fresh,
        p_att / p_base,
        logs.len(),
        base.lags_us.len(),
        att.lags_us.len(),
        base.errors + att.errors,
        rss_before as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
    );
    for (k, v) in &notes {
        json.push_str(&format!(",\"{k}\":{v}"));
    }
    json.push('}');
    println!("HOSTILE {json}");
    assert!(base.fresh > 0, "the viewer got nothing before the attack");
    // Parts are published in real time (5 a second): a viewer the attack does not starve gets
    // about as many during the attack as before it.
    assert!(
        att.rate() * 2.0 >= base.rate(),
        "{name}: the viewer got {:.1} fresh parts a second during the attack, {:.1} before it",
        att.rate(),
        base.rate()
    );
    assert_eq!(att.errors, 0, "{name}: the viewer's requests failed");
    (notes, rss_peak.saturating_sub(rss_before))
}

/// Connects, retrying briefly (a listen backlog full of attack connections refuses a few).
fn connect(addr: SocketAddr) -> Option<TcpStream> {
    for _ in 0..5 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            return Some(c);
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

/// True when the server has closed `c` (EOF or reset), without blocking.
fn closed_by_server(c: &mut TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 4096];
    let r = loop {
        match c.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    c.set_nonblocking(false).unwrap();
    r
}

#[test]
fn slowloris_connections_are_closed_at_the_header_timeout() {
    // Each connection sends a request line, then one header byte a second: the header read
    // timeout (3 s here) must close it however steadily it trickles.
    let mut s = demo_server(&["--header-timeout-secs", "3"]);
    let n = scaled(200, 1000);
    let (notes, grew) = run_attack("slowloris", &mut s, move |addr, until| {
        let until = until.max(Instant::now() + Duration::from_secs(8));
        let mut conns: Vec<(TcpStream, Instant)> = Vec::new();
        for _ in 0..n {
            let Some(mut c) = connect(addr) else { continue };
            let _ = c.write_all(b"GET /live/demo/media.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: ");
            conns.push((c, Instant::now()));
        }
        let opened = conns.len() as u64;
        let (mut closed, mut reopened, mut longest) = (0u64, 0u64, Duration::ZERO);
        while Instant::now() < until {
            for (c, since) in conns.iter_mut() {
                if c.write_all(b"a").is_err() || closed_by_server(c) {
                    closed += 1;
                    longest = longest.max(since.elapsed());
                    // A real attacker opens another.
                    if let Some(mut fresh) = connect(addr) {
                        let _ = fresh.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                        *c = fresh;
                        *since = Instant::now();
                        reopened += 1;
                    }
                }
            }
            thread::sleep(Duration::from_millis(1000));
        }
        vec![
            ("connections", opened),
            ("closed_by_server", closed),
            ("reopened", reopened),
            ("longest_held_s", longest.as_secs()),
        ]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert_eq!(get("connections"), n as u64);
    assert!(
        get("closed_by_server") >= n as u64,
        "trickling connections outlived the header timeout: {notes:?}"
    );
    // Memory follows the connections open at once, not the bytes trickled (64 KiB each is far
    // more than a connection costs).
    assert!(grew < 64 * n as u64 + 32 * 1024, "RSS grew {grew} KiB");
}

#[test]
fn idle_connections_are_closed_and_do_not_starve_viewers() {
    // Connections that send nothing at all (no request yet), or only HTTP/2's preface: closed
    // at the header timeout too, so they cannot pile up to max_connections.
    let mut s = demo_server(&["--header-timeout-secs", "3"]);
    let n = scaled(2000, 10_000);
    let (notes, grew) = run_attack("idle-connections", &mut s, move |addr, until| {
        let mut conns = Vec::new();
        for i in 0..n {
            if let Some(mut c) = connect(addr) {
                // Every fourth speaks HTTP/2: the preface and SETTINGS, then no stream.
                if i % 4 == 3 {
                    let mut hello = PREFACE.to_vec();
                    h2_frame(&mut hello, 4, 0, 0, &[]);
                    let _ = c.write_all(&hello);
                }
                conns.push(c);
            }
        }
        let opened = conns.len() as u64;
        // The last one opened gets the header timeout (3 s) and some slack too.
        let until = until.max(Instant::now() + Duration::from_secs(5));
        thread::sleep(until.saturating_duration_since(Instant::now()));
        let closed = conns
            .iter_mut()
            .map(closed_by_server)
            .filter(|c| *c)
            .count() as u64;
        vec![("connections", opened), ("closed_by_server", closed)]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert_eq!(get("connections"), n as u64);
    assert_eq!(
        get("closed_by_server"),
        n as u64,
        "idle connections outlived the header timeout"
    );
    assert!(grew < 64 * n as u64 + 32 * 1024, "RSS grew {grew} KiB");
}

/// One request on a new connection with a short read timeout; the status, or 0 when the
/// server closed the connection without answering.
fn status_of(addr: SocketAddr, raw_request: &[u8]) -> u16 {
    let Some(mut c) = connect(addr) else { return 0 };
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if c.write_all(raw_request).is_err() {
        // Answered (431) and closed before the whole request was written: read the answer.
    }
    let mut head = Vec::new();
    let mut b = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(k) => head.extend_from_slice(&b[..k]),
        }
    }
    std::str::from_utf8(&head)
        .ok()
        .and_then(|h| h.split(' ').nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

#[test]
fn a_flood_of_requests_for_unknown_streams_and_objects() {
    let mut s = demo_server(&[]);
    let (notes, grew) = run_attack("unknown-flood", &mut s, |addr, until| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                thread::spawn(move || {
                    let (mut sent, mut not_found, mut other) = (0u64, 0u64, 0u64);
                    let mut i = 0u64;
                    while Instant::now() < until {
                        i += 1;
                        let path = match i % 5 {
                            0 => format!("/live/nope{t}x{i}/index.m3u8"),
                            1 => format!("/live/nope{t}x{i}/media.m3u8?_HLS_msn=5&_HLS_part=0"),
                            2 => format!("/live/demo/{i}.0.m4s"),
                            3 => format!("/live/demo/init-{i}.mp4"),
                            _ => format!("/live/demo/x{i}/y/z.m4s"),
                        };
                        let st = status_of(addr, &get_request(&path));
                        sent += 1;
                        match st {
                            404 => not_found += 1,
                            _ => {
                                if other == 0 {
                                    eprintln!("{path}: {st}");
                                }
                                other += 1
                            }
                        }
                    }
                    (sent, not_found, other)
                })
            })
            .collect();
        let (mut sent, mut nf, mut other) = (0, 0, 0);
        for t in threads {
            let (a, b, c) = t.join().unwrap();
            sent += a;
            nf += b;
            other += c;
        }
        vec![
            ("requests", sent),
            ("not_found", nf),
            ("other_status", other),
        ]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert!(get("requests") > 100, "{notes:?}");
    // Unknown names answer 404 at once: nothing waits for a stream that does not exist, and
    // nothing is kept per unknown name (memory does not follow the request count).
    assert_eq!(get("other_status"), 0, "{notes:?}");
    assert!(grew < 32 * 1024, "RSS grew {grew} KiB over {notes:?}");
    let streams = s.get("/streams.json").text();
    assert!(!streams.contains("nope"), "{streams}");
}

#[test]
fn oversized_and_repeated_query_parameters() {
    let mut s = demo_server(&[]);
    let (notes, grew) = run_attack("query-params", &mut s, |addr, until| {
        let repeated = get_request("/live/demo/media.m3u8?_HLS_msn=1&_HLS_msn=2&_HLS_part=0");
        let huge_msn = get_request(&format!(
            "/live/demo/media.m3u8?_HLS_msn={}&_HLS_part=0",
            "9".repeat(4000)
        ));
        let foreign = get_request(&format!("/live/demo/media.m3u8?{}", "a=1&".repeat(2000)));
        let oversized = get_request(&format!("/live/demo/media.m3u8?{}", "b".repeat(1 << 20)));
        let (mut n, mut unexpected) = (0u64, 0u64);
        let mut counts = [0u64; 4];
        while Instant::now() < until {
            for (i, (req, want)) in [
                (&repeated, &[400u16][..]),
                (&huge_msn, &[400][..]),
                (&foreign, &[200][..]),
                // Larger than the header limit: 431 (or 414), or closed unanswered.
                (&oversized, &[431, 414, 0][..]),
            ]
            .into_iter()
            .enumerate()
            {
                let st = status_of(addr, req);
                n += 1;
                counts[i] += 1;
                if !want.contains(&st) {
                    if unexpected == 0 {
                        eprintln!("request {i}: {st}");
                    }
                    unexpected += 1;
                }
            }
        }
        vec![("requests", n), ("unexpected_status", unexpected)]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert!(get("requests") > 20, "{notes:?}");
    assert_eq!(get("unexpected_status"), 0, "{notes:?}");
    assert!(grew < 32 * 1024, "RSS grew {grew} KiB");
}

// ---- HTTP/2 (h2c with prior knowledge on the same port) ----

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn h2_frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK block for `GET path` (static-table names, literals never indexed; `path` shorter
/// than 127 bytes).
fn hpack_get(path: &str) -> Vec<u8> {
    assert!(path.len() < 127);
    let mut h = vec![0x82, 0x86]; // :method GET, :scheme http
    h.push(0x01); // :authority, literal without indexing
    h.push(1);
    h.push(b'x');
    h.push(0x04); // :path, literal without indexing
    h.push(path.len() as u8);
    h.extend_from_slice(path.as_bytes());
    h
}

/// Reads the server's frames on another thread: counts response HEADERS, notes GOAWAY's code
/// and the end of the connection.
struct H2Reader {
    responses: Arc<AtomicU64>,
    goaway: Arc<AtomicU64>,
    ended: Arc<AtomicBool>,
}

impl H2Reader {
    const NO_GOAWAY: u64 = u64::MAX;
    fn start(mut c: TcpStream) -> H2Reader {
        let responses = Arc::new(AtomicU64::new(0));
        let goaway = Arc::new(AtomicU64::new(Self::NO_GOAWAY));
        let ended = Arc::new(AtomicBool::new(false));
        let (r, g, e) = (responses.clone(), goaway.clone(), ended.clone());
        thread::spawn(move || {
            let mut buf = Vec::new();
            let mut b = vec![0u8; 64 * 1024];
            loop {
                match c.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => buf.extend_from_slice(&b[..k]),
                }
                while buf.len() >= 9 {
                    let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
                    if buf.len() < 9 + len {
                        break;
                    }
                    match buf[3] {
                        1 => {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                        7 if len >= 8 => {
                            let code = u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]);
                            g.store(u64::from(code), Ordering::Relaxed);
                        }
                        _ => {}
                    }
                    buf.drain(..9 + len);
                }
            }
            e.store(true, Ordering::Relaxed);
        });
        H2Reader {
            responses,
            goaway,
            ended,
        }
    }
}

fn h2_connect(addr: SocketAddr) -> Option<(TcpStream, H2Reader)> {
    let mut c = connect(addr)?;
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = PREFACE.to_vec();
    h2_frame(&mut hello, 4, 0, 0, &[]);
    c.write_all(&hello).ok()?;
    let reader = H2Reader::start(c.try_clone().ok()?);
    Some((c, reader))
}

#[test]
fn http2_rapid_reset_is_cut_off() {
    // HEADERS then RST_STREAM(CANCEL) at once, over and over (CVE-2023-44487): the server must
    // stop the connection rather than do the work of every cancelled request.
    let mut s = demo_server(&[]);
    let per_conn: u32 = 20_000;
    let (notes, grew) = run_attack("h2-rapid-reset", &mut s, move |addr, until| {
        let block = hpack_get("/live/demo/media.m3u8");
        let (mut conns, mut sent, mut answered, mut goaways, mut cut_off) = (0, 0, 0, 0, 0);
        while Instant::now() < until {
            let Some((mut c, reader)) = h2_connect(addr) else {
                continue;
            };
            conns += 1;
            let mut id = 1u32;
            while id < per_conn * 2 && !reader.ended.load(Ordering::Relaxed) {
                let mut batch = Vec::new();
                for _ in 0..100 {
                    h2_frame(&mut batch, 1, 0x5, id, &block);
                    h2_frame(&mut batch, 3, 0, id, &8u32.to_be_bytes());
                    id += 2;
                }
                if c.write_all(&batch).is_err() {
                    break;
                }
                sent += 100;
            }
            // Give the reader a moment to see the server's last frames.
            let t = Instant::now();
            while !reader.ended.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(2) {
                thread::sleep(Duration::from_millis(20));
            }
            if id < per_conn * 2 {
                cut_off += 1;
            }
            answered += reader.responses.load(Ordering::Relaxed);
            if reader.goaway.load(Ordering::Relaxed) != H2Reader::NO_GOAWAY {
                goaways += 1;
            }
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        vec![
            ("connections", conns),
            ("streams_sent", sent),
            ("responses", answered),
            ("goaways", goaways),
            ("cut_off", cut_off),
        ]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert!(get("connections") > 0, "{notes:?}");
    // Every connection ends with a GOAWAY (ENHANCE_YOUR_CALM); what a connection manages to
    // write before it sees that lands in socket buffers, not in work done.
    assert_eq!(get("goaways"), get("connections"), "{notes:?}");
    assert!(grew < 64 * 1024, "RSS grew {grew} KiB");
}

#[test]
fn http2_continuation_flood_is_cut_off() {
    // HEADERS without END_HEADERS, then CONTINUATION frames forever: the server must end the
    // connection once the header block passes its limit (16 KiB), not buffer it all.
    let mut s = demo_server(&[]);
    let cap: u64 = 64 << 20;
    let (notes, grew) = run_attack("h2-continuation-flood", &mut s, move |addr, until| {
        // One literal header, new name, never indexed: "x-f: aaaa…" (~16 KB per frame).
        let mut junk = vec![0x10, 3];
        junk.extend_from_slice(b"x-f");
        let value = vec![b'a'; 16_000];
        junk.push(0x7f); // length 16000 as a 7-bit-prefix integer: 127 + 15873
        let mut rest = 16_000 - 127;
        while rest >= 128 {
            junk.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        junk.push(rest as u8);
        junk.extend_from_slice(&value);
        let (mut conns, mut max_sent, mut cut_off) = (0u64, 0u64, 0u64);
        while Instant::now() < until {
            let Some((mut c, reader)) = h2_connect(addr) else {
                continue;
            };
            conns += 1;
            let mut first = Vec::new();
            h2_frame(&mut first, 1, 0x1, 1, &hpack_get("/live/demo/media.m3u8"));
            let mut sent = 0u64;
            if c.write_all(&first).is_ok() {
                let mut frame = Vec::new();
                h2_frame(&mut frame, 9, 0, 1, &junk);
                while sent < cap && !reader.ended.load(Ordering::Relaxed) {
                    if c.write_all(&frame).is_err() {
                        break;
                    }
                    sent += frame.len() as u64;
                }
            }
            if sent < cap {
                cut_off += 1;
            }
            max_sent = max_sent.max(sent);
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        vec![
            ("connections", conns),
            ("cut_off", cut_off),
            ("max_bytes_sent_per_connection", max_sent),
        ]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert!(get("connections") > 0, "{notes:?}");
    assert_eq!(get("cut_off"), get("connections"), "{notes:?}");
    assert!(grew < 64 * 1024, "RSS grew {grew} KiB");
}

#[test]
fn slow_readers_are_reset_at_the_send_timeout_and_hold_little_memory() {
    // Connections that pipeline requests for whole segments and never read: the server stops
    // at what the socket buffers take (one response at a time per connection), and resets
    // each once its writes have made no progress for the send timeout (3 s in CI; at full
    // scale the default, 30 s, as a server in production has it). The attacker opens another
    // for each one reset, as a real one would, until one timeout has passed.
    let timeout = if full() { 30 } else { 3 };
    let mut s = demo_server(&["--send-timeout-secs", &timeout.to_string()]);
    let n = scaled(50, 200);
    let playlist = s.get("/live/demo/media.m3u8").text();
    let segment = playlist
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .expect("a complete segment")
        .to_string();
    let seg_len = s.get(&format!("/live/demo/{segment}")).body.len() as u64;
    let (notes, grew) = run_attack("slow-reader", &mut s, move |addr, until| {
        let until = until.max(Instant::now() + Duration::from_secs(timeout + 5));
        let one = format!("GET /live/demo/{segment} HTTP/1.1\r\nHost: x\r\n\r\n");
        let requests = one.repeat(200).into_bytes();
        let open = || {
            let mut c = connect(addr)?;
            c.set_write_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let _ = c.write_all(&requests);
            Some((c, Instant::now()))
        };
        let mut conns: Vec<(TcpStream, Instant)> = (0..n).filter_map(|_| open()).collect();
        let opened = conns.len() as u64;
        let (mut closed, mut reopened, mut longest) = (0u64, 0u64, Duration::ZERO);
        while Instant::now() < until {
            thread::sleep(Duration::from_millis(500));
            for (c, since) in conns.iter_mut() {
                // The reset shows as the socket's pending error; nothing is read, so the
                // server's writes never make progress.
                if matches!(c.take_error(), Ok(Some(_)) | Err(_)) {
                    closed += 1;
                    longest = longest.max(since.elapsed());
                    if let Some(fresh) = open() {
                        (*c, *since) = fresh;
                        reopened += 1;
                    }
                }
            }
        }
        vec![
            ("connections", opened),
            ("closed_by_server", closed),
            ("reopened", reopened),
            ("longest_held_s", longest.as_secs()),
            ("segment_bytes", seg_len),
        ]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert_eq!(get("connections"), n as u64);
    assert!(
        get("closed_by_server") >= n as u64,
        "connections that read nothing outlived the send timeout: {notes:?}"
    );
    // Far less than what was asked for (200 segments per connection): at most a few segments
    // per connection in buffers.
    assert!(
        grew < 4 * seg_len / 1024 * n as u64 + 32 * 1024,
        "RSS grew {grew} KiB over {notes:?}"
    );
}

/// Completes an RTMP handshake as a client and returns the socket (None when refused).
fn rtmp_handshake(addr: SocketAddr) -> Option<TcpStream> {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let mut sock = connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(&hs.generate_outbound_p0_and_p1().ok()?)
        .ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        match hs.process_bytes(&buf[..n]).ok()? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).ok()?
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                sock.write_all(&response_bytes).ok()?;
                return Some(sock);
            }
        }
    }
}

#[test]
fn rtmp_connections_that_handshake_and_go_quiet_are_closed() {
    // Handshake, then nothing: no connect, no publish. Closed once the publish deadline has
    // passed, with a log line, and cheap while they last.
    let mut s = demo_server(&[]);
    let rtmp = s.rtmp;
    let n = scaled(100, 1000);
    let (notes, grew) = run_attack("rtmp-silent", &mut s, move |_, until| {
        let mut conns = Vec::new();
        for _ in 0..n {
            if let Some(c) = rtmp_handshake(rtmp) {
                conns.push(c);
            }
        }
        let opened = conns.len() as u64;
        thread::sleep(until.saturating_duration_since(Instant::now()));
        // Wait for the server to close them (blocking reads: EOF or reset).
        let start = Instant::now();
        let mut closed = 0u64;
        for c in conns.iter_mut() {
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut b = [0u8; 1024];
            loop {
                match c.read(&mut b) {
                    Ok(0) => {
                        closed += 1;
                        break;
                    }
                    Ok(_) => continue,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        break
                    }
                    Err(_) => {
                        closed += 1;
                        break;
                    }
                }
            }
        }
        vec![
            ("connections", opened),
            ("closed_by_server", closed),
            ("waited_after_attack_s", start.elapsed().as_secs()),
        ]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert_eq!(get("connections"), n as u64);
    assert_eq!(get("closed_by_server"), n as u64, "{notes:?}");
    assert!(
        s.log_text().contains("no publish request within"),
        "{}",
        s.log_text()
    );
    // Each silent connection costs a small read buffer, not a publisher's.
    assert!(grew < 16 * n as u64 + 32 * 1024, "RSS grew {grew} KiB");
}

#[test]
fn whip_offers_in_a_loop_stay_within_the_session_limit() {
    // Valid offers that never connect, as fast as the server answers: sessions up to the
    // limit, then 503; each unconnected session ends on its own (connect timeout).
    let mut s = demo_server(&["--whip-max-sessions", "20"]);
    let (notes, grew) = run_attack("whip-offer-loop", &mut s, |addr, until| {
        let offer = whip_offer();
        let (mut n, mut created, mut busy, mut other) = (0u64, 0u64, 0u64, 0u64);
        while Instant::now() < until {
            n += 1;
            let r = http_request(
                addr,
                "POST",
                &format!("/whip/live/w{}", n % 50),
                &[("Content-Type", "application/sdp")],
                offer.as_bytes(),
            );
            match r.map(|r| r.status) {
                Ok(201) => created += 1,
                Ok(503) | Ok(409) => busy += 1,
                st => {
                    if other == 0 {
                        eprintln!("WHIP POST: {st:?}");
                    }
                    other += 1
                }
            }
        }
        vec![
            ("offers", n),
            ("created", created),
            ("refused_busy", busy),
            ("other", other),
        ]
    });
    let get = |k: &str| notes.iter().find(|(n, _)| *n == k).unwrap().1;
    assert!(get("created") >= 1 && get("created") <= 20 * 2, "{notes:?}");
    assert_eq!(get("other"), 0, "{notes:?}");
    assert!(grew < 64 * 1024, "RSS grew {grew} KiB");
}

/// A real WebRTC offer (str0m, one send-only H.264 video track, a loopback host candidate).
fn whip_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    use str0m::{Candidate, Rtc};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(sock.local_addr().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _) = api.apply().unwrap();
    offer.to_sdp_string()
}
