//! Faults against the real `llhls` binary: publishers killed (`kill -9`), frozen
//! (SIGSTOP / SIGCONT, also past the point where GAP parts start) and cut off by a TCP reset
//! in the middle of an RTMP message, the server stopped with SIGTERM while viewers are held, and the server
//! killed with `kill -9` and restarted while its publisher retries. Each checks the documented
//! behaviour (GAP parts, a discontinuity on reconnect, EXT-X-ENDLIST after the grace period;
//! every held request answered; no URI served twice with different bytes) and that a viewer of
//! another stream keeps getting fresh parts. The viewer's figures print as `FAULT {json}`.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::viewer::*;
use common::*;

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig}");
}

/// The media playlist the multivariant of `stream` lists first.
fn media_path(s: &Server, stream: &str) -> String {
    let mv = s.get(&format!("/live/{stream}/index.m3u8")).text();
    let name = mv
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a variant")
        .to_string();
    format!("/live/{stream}/{name}")
}

/// Polls `path` until `pred` holds on its text; panics with the last text after `within`.
fn wait_until(s: &Server, path: &str, within: Duration, pred: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = s.get(path).text();
        if pred(&text) {
            return text;
        }
        assert!(
            start.elapsed() < within,
            "{path} never matched:\n{text}\nserver log:\n{}",
            s.log_text()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn report(name: &str, logs: &[PhaseLog; 3], extra: &str) {
    let (b, f) = (&logs[1], &logs[2]);
    println!(
        "FAULT {{\"fault\":\"{name}\",\"baseline_parts_per_s\":{:.2},\"fault_parts_per_s\":{:.2},\"baseline_lag_p99_ms\":{:.1},\"fault_lag_p99_ms\":{:.1},\"viewer_errors\":{}{extra}}}",
        b.rate(),
        f.rate(),
        p99_ms(&b.lags_us),
        p99_ms(&f.lags_us),
        b.errors + f.errors
    );
    assert!(b.fresh > 0, "{name}: the other stream's viewer got nothing");
    assert!(
        f.rate() * 2.0 >= b.rate(),
        "{name}: the other stream's viewer got {:.1} parts/s during the fault, {:.1} before",
        f.rate(),
        b.rate()
    );
    assert_eq!(f.errors, 0, "{name}: the other stream's viewer saw errors");
}

/// Two publishers (the one a fault will hit, at `a_url`, and one straight to the server),
/// both streams listed, and a viewer of the second stream: `settle` seconds to start, then
/// `baseline` seconds measured (phase 1) before the fault (phase 2).
struct TwoStreams {
    a: Child,
    b: Child,
    pa: String,
    viewer: Viewer,
}

fn two_streams(
    s: &Server,
    a_url: &str,
    a: &str,
    b: &str,
    settle: u64,
    baseline: u64,
) -> TwoStreams {
    let pub_a = publish(a_url, 120, false);
    let pub_b = publish(&s.rtmp_url(b), 120, false);
    s.wait_for(&format!("/live/{a}/index.m3u8"), Duration::from_secs(20));
    s.wait_for(&format!("/live/{b}/index.m3u8"), Duration::from_secs(20));
    let (pa, pb) = (media_path(s, a), media_path(s, b));
    let mut viewer = Viewer::start(s.http, &pb);
    thread::sleep(Duration::from_secs(settle));
    viewer.set_phase(1);
    thread::sleep(Duration::from_secs(baseline));
    viewer.set_phase(2);
    TwoStreams {
        a: pub_a,
        b: pub_b,
        pa,
        viewer,
    }
}

#[test]
fn a_killed_publisher_gets_gap_parts_a_discontinuity_on_return_then_endlist() {
    // GAP parts start after 3 target durations (6 s) of silence; the grace period is longer.
    let s = Server::start(&["--reconnect-grace-secs", "15"]);
    let TwoStreams {
        mut a,
        mut b,
        pa,
        viewer,
    } = two_streams(&s, &s.rtmp_url("a"), "a", "b", 2, 5);
    // kill -9: no unpublish, the connection just drops.
    let _ = a.kill();
    let _ = a.wait();
    let gaps = wait_until(&s, &pa, Duration::from_secs(15), |t| t.contains("GAP"));
    assert!(!gaps.contains("#EXT-X-ENDLIST"), "{gaps}");
    // Back within the grace period: the same playlist continues after a discontinuity.
    let mut again = publish(&s.rtmp_url("a"), 120, false);
    let back = wait_until(&s, &pa, Duration::from_secs(20), |t| {
        t.contains("#EXT-X-DISCONTINUITY\n")
    });
    assert!(!back.contains("#EXT-X-ENDLIST"), "{back}");
    thread::sleep(Duration::from_secs(2));
    let _ = again.kill();
    let _ = again.wait();
    // Gone for good: EXT-X-ENDLIST once the grace period has passed.
    let ended = wait_until(&s, &pa, Duration::from_secs(40), |t| {
        t.ends_with("#EXT-X-ENDLIST\n")
    });
    let logs = viewer.finish();
    validate_served(&s, "a");
    report("publisher-kill-9", &logs, "");
    assert!(ended.contains("GAP"), "{ended}");
    let _ = b.kill();
    let _ = b.wait();
}

#[test]
fn a_frozen_publisher_resumes_without_ending_the_stream() {
    frozen_publisher(false);
}

/// The same freezes, with the served stream run through the checker after each. After a stall
/// of two part targets or more and the publisher's burst of backlog, the audio track's next
/// fragment started 20-45 ms after the previous one ended (R68) until the packager covered
/// short audio holes (fails without it).
#[test]
fn a_frozen_publishers_stream_stays_valid() {
    frozen_publisher(true);
}

fn frozen_publisher(validate: bool) {
    let s = Server::start(&["--reconnect-grace-secs", "10"]);
    let TwoStreams {
        mut a,
        mut b,
        pa,
        viewer,
    } = two_streams(&s, &s.rtmp_url("fa"), "fa", "fb", 2, 5);
    let mut notes = String::new();
    for secs in [1u64, 5] {
        let before = next_directive(&s.get(&pa).text()).expect("parts");
        signal(&a, "-STOP");
        thread::sleep(Duration::from_secs(secs));
        signal(&a, "-CONT");
        // New parts after the freeze, and the stream did not end.
        let after = wait_until(&s, &pa, Duration::from_secs(20), |t| {
            next_directive(t).is_some_and(|n| n > (before.0 + 2, 0))
        });
        assert!(!after.contains("#EXT-X-ENDLIST"), "{after}");
        let gaps = s
            .get("/metrics")
            .text()
            .lines()
            .find(|l| l.starts_with("llhls_stream_gap_parts_total{stream=\"fa\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        notes.push_str(&format!(",\"gap_parts_after_{secs}s_freeze\":{gaps}"));
        if validate {
            validate_served(&s, "fa");
        }
    }
    let logs = viewer.finish();
    report("publisher-sigstop-1s-5s", &logs, &notes);
    assert!(a.try_wait().unwrap().is_none(), "the publisher survived");
    let _ = a.kill();
    let _ = b.kill();
    let _ = a.wait();
    let _ = b.wait();
}

/// `ci` in the default run, `full` with `LLHLS_HOSTILE_SCALE=full` (benches/hostile.sh).
fn scaled(ci: u64, full: u64) -> u64 {
    if std::env::var("LLHLS_HOSTILE_SCALE").as_deref() == Ok("full") {
        full
    } else {
        ci
    }
}

/// The GAP parts counted for `stream` in /metrics.
fn gap_parts(s: &Server, stream: &str) -> f64 {
    let prefix = format!("llhls_stream_gap_parts_total{{stream=\"{stream}\"");
    s.get("/metrics")
        .text()
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_publisher_frozen_past_three_target_durations_gets_gap_parts_then_continues() {
    // SIGSTOP for longer than 3 target durations (6 s): the connection stays open, so the
    // stream waits as for a publisher that vanished: GAP parts, no EXT-X-ENDLIST (the grace
    // period counts from a disconnect, and there is none). On SIGCONT the publisher's backlog
    // arrives and the stream goes on; the served stream passes the checker. 15 s at full scale
    // (benches/hostile.sh), 8 s in CI.
    let freeze = scaled(8, 15);
    let s = Server::start(&["--reconnect-grace-secs", "10"]);
    let TwoStreams {
        mut a,
        b,
        pa,
        viewer,
    } = two_streams(&s, &s.rtmp_url("za"), "za", "zb", 1, 3);
    let before = next_directive(&s.get(&pa).text()).expect("parts");
    signal(&a, "-STOP");
    let frozen_at = Instant::now();
    let during = wait_until(&s, &pa, Duration::from_secs(freeze), |t| {
        t.contains("GAP=YES")
    });
    assert!(!during.contains("#EXT-X-ENDLIST"), "{during}");
    thread::sleep(Duration::from_secs(freeze).saturating_sub(frozen_at.elapsed()));
    let frozen = s.get(&pa).text();
    signal(&a, "-CONT");
    assert!(!frozen.contains("#EXT-X-ENDLIST"), "{frozen}");
    let gaps = gap_parts(&s, "za");
    // Media again after the freeze: a part that is not a GAP past the ones written during it.
    let at_resume = next_directive(&frozen).expect("parts");
    let after = wait_until(&s, &pa, Duration::from_secs(20), |t| {
        next_directive(t).is_some_and(|n| n > (at_resume.0 + 1, 0))
            && t.lines()
                .rev()
                .find(|l| l.starts_with("#EXT-X-PART:"))
                .is_some_and(|l| !l.contains("GAP=YES"))
    });
    assert!(!after.contains("#EXT-X-ENDLIST"), "{after}");
    validate_served(&s, "za");
    let logs = viewer.finish();
    report(
        "publisher-sigstop-long",
        &logs,
        &format!(
            ",\"freeze_s\":{freeze},\"gap_parts\":{gaps},\"msn_before\":{},\"msn_after\":{}",
            before.0,
            next_directive(&after).unwrap().0
        ),
    );
    assert!(
        gaps > 0.0,
        "no GAP parts counted during a {freeze} s freeze"
    );
    assert!(a.try_wait().unwrap().is_none(), "the publisher survived");
    for mut p in [a, b] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// A TCP proxy for one connection that, once `cut` is set, forwards half of the next read
/// from the client and then resets both sides (SO_LINGER 0): the server gets the first half of
/// whatever RTMP message was under way, then a reset. Returns its address, the switch, and the
/// (bytes forwarded in all, bytes of the read that was cut) once it has cut.
fn resetting_proxy(
    upstream: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    Arc<AtomicBool>,
    thread::JoinHandle<(u64, u64)>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let switch = cut.clone();
    let t = thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(upstream).unwrap();
        let (mut from_server, mut to_client) =
            (server.try_clone().unwrap(), client.try_clone().unwrap());
        let back = thread::spawn(move || {
            let _ = std::io::copy(&mut from_server, &mut to_client);
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match client.read(&mut buf) {
                Ok(0) | Err(_) => return (total, 0),
                Ok(n) => n,
            };
            // Cut only inside a read of some size: a media message, not a control one.
            if cut.load(Ordering::Relaxed) && n >= 64 {
                let _ = server.write_all(&buf[..n / 2]);
                total += (n / 2) as u64;
                for sock in [&server, &client] {
                    let _ = socket2::SockRef::from(sock).set_linger(Some(Duration::ZERO));
                }
                // Ends the other direction's copy without a FIN (SHUT_RD sends nothing), so
                // that the last close of each socket is the reset.
                let _ = server.shutdown(std::net::Shutdown::Read);
                let _ = back.join();
                drop(server);
                drop(client);
                return (total, n as u64);
            }
            if server.write_all(&buf[..n]).is_err() {
                return (total, 0);
            }
            total += n as u64;
        }
    });
    (addr, switch, t)
}

#[test]
fn a_tcp_reset_mid_message_is_a_disconnect() {
    // The publisher's connection is reset in the middle of an RTMP message: the server treats
    // it as a publisher that vanished (the stream waits, no EXT-X-ENDLIST), a publisher back
    // within the grace period continues it after a discontinuity, and the other stream's
    // viewer is not disturbed.
    let s = Server::start(&["--reconnect-grace-secs", "15"]);
    let (proxy, cut, proxy_thread) = resetting_proxy(s.rtmp);
    let TwoStreams {
        mut a,
        b,
        pa,
        viewer,
    } = two_streams(&s, &format!("rtmp://{proxy}/live/ra"), "ra", "rb", 1, 3);
    cut.store(true, Ordering::Relaxed);
    let (forwarded, cut_read) = proxy_thread.join().unwrap();
    assert!(cut_read > 0, "the proxy's connection ended before the cut");
    // ffmpeg sees its connection reset and gives up.
    let _ = a.wait();
    thread::sleep(Duration::from_secs(1));
    let waiting = s.get(&pa).text();
    assert!(!waiting.contains("#EXT-X-ENDLIST"), "{waiting}");
    assert_eq!(s.get("/healthz").status, 200);
    // Back within the grace period: the same playlist continues after a discontinuity.
    let again = publish(&s.rtmp_url("ra"), 120, false);
    let back = wait_until(&s, &pa, Duration::from_secs(20), |t| {
        t.contains("#EXT-X-DISCONTINUITY\n")
    });
    assert!(!back.contains("#EXT-X-ENDLIST"), "{back}");
    validate_served(&s, "ra");
    let logs = viewer.finish();
    report(
        "publisher-tcp-reset-mid-message",
        &logs,
        &format!(",\"bytes_before_reset\":{forwarded},\"cut_read_bytes\":{cut_read}"),
    );
    for mut p in [again, b] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

/// A TCP proxy for one connection that, once `impair` is set, delays everything the client
/// sends by `delay` and passes nothing on for `stall` out of every `period` (TCP loses
/// nothing, so this is what loss and congestion look like to the server: late bytes, then a
/// burst). At most 8 reads are queued, so the client's own socket fills and it blocks too.
fn impaired_proxy(
    upstream: std::net::SocketAddr,
    delay: Duration,
    period: Duration,
    stall: Duration,
) -> (std::net::SocketAddr, Arc<AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let impair = Arc::new(AtomicBool::new(false));
    let on = impair.clone();
    thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(upstream).unwrap();
        let (mut from_server, mut to_client) =
            (server.try_clone().unwrap(), client.try_clone().unwrap());
        thread::spawn(move || {
            let _ = std::io::copy(&mut from_server, &mut to_client);
        });
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Vec<u8>)>(8);
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = client.read(&mut buf) {
                if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        let mut since: Option<Instant> = None;
        for (at, bytes) in rx {
            if on.load(Ordering::Relaxed) {
                let start = *since.get_or_insert_with(Instant::now);
                thread::sleep((at + delay).saturating_duration_since(Instant::now()));
                // Inside a stall window (the last `stall` of each period): wait it out.
                let into =
                    Duration::from_nanos((start.elapsed().as_nanos() % period.as_nanos()) as u64);
                if into + stall >= period {
                    thread::sleep(period - into);
                }
            }
            if server.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = server.shutdown(std::net::Shutdown::Both);
    });
    (addr, impair)
}

#[test]
fn a_delayed_and_stalling_publisher_path_keeps_the_stream_going() {
    // 150 ms of delay and a 1.5 s stall every 4 s on the publisher's path: each stall is
    // under the 3 target durations after which GAP parts start, so the stream goes on with
    // late parts and no GAP, passes the checker, and the other stream is not disturbed.
    // 8 s in CI, 30 s at full scale (benches/hostile.sh).
    let secs = scaled(8, 30);
    let s = Server::start(&["--reconnect-grace-secs", "10"]);
    let (proxy, impair) = impaired_proxy(
        s.rtmp,
        Duration::from_millis(150),
        Duration::from_secs(4),
        Duration::from_millis(1500),
    );
    let TwoStreams {
        mut a,
        b,
        pa,
        viewer,
    } = two_streams(&s, &format!("rtmp://{proxy}/live/da"), "da", "db", 1, 3);
    let before = next_directive(&s.get(&pa).text()).expect("parts");
    impair.store(true, Ordering::Relaxed);
    thread::sleep(Duration::from_secs(secs));
    impair.store(false, Ordering::Relaxed);
    // Parts kept coming: at least half of the 5 a second the publisher sends.
    let after = wait_until(&s, &pa, Duration::from_secs(10), |t| {
        next_directive(t).is_some_and(|(msn, _)| msn >= before.0 + secs / 4)
    });
    assert!(!after.contains("#EXT-X-ENDLIST"), "{after}");
    let gaps = gap_parts(&s, "da");
    validate_served(&s, "da");
    let logs = viewer.finish();
    report(
        "publisher-path-delay-and-stalls",
        &logs,
        &format!(
            ",\"impaired_s\":{secs},\"delay_ms\":150,\"stall_ms_every_4s\":1500,\"gap_parts\":{gaps},\"msn_before\":{},\"msn_after\":{}",
            before.0,
            next_directive(&after).unwrap().0
        ),
    );
    assert_eq!(
        gaps, 0.0,
        "GAP parts for stalls shorter than 3 target durations"
    );
    assert!(a.try_wait().unwrap().is_none(), "the publisher survived");
    for mut p in [a, b] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

#[test]
fn sigterm_answers_every_held_request_and_exits() {
    let demo_file = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/media/demo.mp4");
    let mut s = Server::start(&[
        "--demo",
        "true",
        "--demo-file",
        demo_file,
        "--demo-ladder",
        "off",
        // Long parts: the next one is up to 2 s away, so requests are held when SIGTERM comes.
        "--part-target-ms",
        "2000",
        "--segment-target-ms",
        "4000",
    ]);
    s.wait_for("/live/demo/media.m3u8", Duration::from_secs(30));
    let n = 500;
    let held_now = || {
        s.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("llhls_held_requests "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    // Every viewer asks for the part after the next one (2 s parts): held for seconds. On a
    // busy machine the part may come out before all 500 are connected (they are then answered
    // at once): start over with the next one, up to three times.
    let mut attempts = 0;
    let (mut held, held_at_term) = loop {
        attempts += 1;
        let (msn, part) = next_directive(&s.get("/live/demo/media.m3u8").text()).unwrap();
        let (msn, part) = if part == 0 { (msn, 1) } else { (msn + 1, 0) };
        let req = format!(
            "GET /live/demo/media.m3u8?_HLS_msn={msn}&_HLS_part={part} HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let held: Vec<TcpStream> = (0..n)
            .map(|_| {
                let mut c = TcpStream::connect(s.http).unwrap();
                c.write_all(req.as_bytes()).unwrap();
                c
            })
            .collect();
        // Once the server holds them all, stop it.
        let start = Instant::now();
        let mut held_at_term = held_now();
        while held_at_term < n && start.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(20));
            held_at_term = held_now();
        }
        if held_at_term == n || attempts == 3 {
            break (held, held_at_term);
        }
        drop(held);
        // Let the answered and dropped ones go before counting again.
        thread::sleep(Duration::from_millis(500));
    };
    signal(&s.child, "-TERM");
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for c in held.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut raw = Vec::new();
        let _ = c.read_to_end(&mut raw);
        let status = std::str::from_utf8(&raw)
            .ok()
            .and_then(|t| t.split(' ').nth(1)?.parse().ok())
            .unwrap_or(0);
        if status != 200 && status != 503 && !statuses.contains_key(&status) {
            eprintln!("{}", String::from_utf8_lossy(&raw));
        }
        *statuses.entry(status).or_default() += 1;
    }
    let start = Instant::now();
    let code = loop {
        if let Some(c) = s.child.try_wait().unwrap() {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "still running after SIGTERM"
        );
        thread::sleep(Duration::from_millis(50));
    };
    println!(
        "FAULT {{\"fault\":\"sigterm-held\",\"requests\":{n},\"held_at_sigterm\":{held_at_term},\"statuses\":\"{statuses:?}\"}}"
    );
    assert_eq!(
        held_at_term, n,
        "not all held when SIGTERM came: {statuses:?}"
    );
    let log = s.log_text();
    assert!(code.success(), "exit {code:?}:\n{log}");
    assert_eq!(
        statuses.get(&0),
        None,
        "held requests closed unanswered: {statuses:?}"
    );
    assert!(
        statuses.keys().all(|k| *k == 200 || *k == 503),
        "{statuses:?}"
    );
    // Every connection finished inside the drain time.
    assert!(log.contains("all connections closed"), "{log}");
    assert!(!log.contains("drain timeout"), "{log}");
    // Released by the shutdown, not timed out: no per-request timeout lines.
    assert!(!log.contains("not available within"), "{log}");
}

/// Fetches `playlist` and every object it lists (not the preload hint, not GAPs): URI -> bytes.
fn fetch_all(s: &Server, stream: &str, playlist: &str) -> HashMap<String, Vec<u8>> {
    let text = s.get(playlist).text();
    let mut out = HashMap::new();
    let mut gap = false;
    for l in text.lines() {
        if l == "#EXT-X-GAP" {
            gap = true;
            continue;
        }
        let uri = if l.starts_with("#EXT-X-MAP:")
            || (l.starts_with("#EXT-X-PART:") && !l.contains("GAP=YES"))
        {
            l.split("URI=\"").nth(1).and_then(|r| r.split('"').next())
        } else if !l.starts_with('#') && !l.is_empty() && !std::mem::take(&mut gap) {
            Some(l)
        } else {
            None
        };
        if let Some(u) = uri {
            let r = s.get(&format!("/live/{stream}/{u}"));
            if r.status == 200 {
                out.insert(u.to_string(), r.body);
            }
        }
    }
    out
}

#[test]
fn server_kill_9_and_restart_while_the_publisher_retries_reuses_no_uri() {
    // The same data directory for both runs: the server keeps its streams' positions there.
    let data = std::env::temp_dir().join(format!(
        "llhls-faults-restart-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let data_arg = data.display().to_string();
    let args = ["--data-dir", data_arg.as_str()];
    let mut s = Server::start(&args);
    let (http, rtmp, whip) = (s.http, s.rtmp, s.whip_port);
    let url = s.rtmp_url("loop");
    // A publisher that reconnects whenever it is dropped, as an encoder set to retry does.
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let publisher = thread::spawn(move || {
        let mut runs = 0;
        while !st.load(Ordering::Relaxed) {
            let mut ff = publish(&url, 120, false);
            runs += 1;
            while !st.load(Ordering::Relaxed) && ff.try_wait().unwrap().is_none() {
                thread::sleep(Duration::from_millis(100));
            }
            let _ = ff.kill();
            let _ = ff.wait();
            thread::sleep(Duration::from_millis(500));
        }
        runs
    });
    s.wait_for("/live/loop/index.m3u8", Duration::from_secs(20));
    thread::sleep(Duration::from_secs(4));
    let path = media_path(&s, "loop");
    let before = fetch_all(&s, "loop", &path);
    let before_text = s.get(&path).text();
    let msn_before = next_directive(&before_text).unwrap().0;
    let shortest = before_text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.trim_end_matches(',').parse::<f64>().ok())
        .fold(f64::INFINITY, f64::min);
    assert!(before.len() > 5, "{:?}", before.keys());
    // kill -9 and start again on the same ports.
    let _ = s.child.kill();
    let _ = s.child.wait();
    let killed = Instant::now();
    drop(s);
    let s = Server::start_at(http, rtmp, whip, &args);
    // A viewer polling through the restart is held until the stream is back (or told to
    // retry), never told the stream does not exist: players give up on a 404.
    let during = s.get(&path);
    assert!(
        during.status == 200 || during.status == 503,
        "{} during the restart: {}",
        during.status,
        during.text()
    );
    s.wait_for("/live/loop/index.m3u8", Duration::from_secs(30));
    let path2 = media_path(&s, "loop");
    wait_until(&s, &path2, Duration::from_secs(20), |t| {
        t.matches("#EXTINF").count() >= 2
    });
    let after = fetch_all(&s, "loop", &path2);
    let after_text = s.get(&path2).text();
    let msn_after = next_directive(&after_text).unwrap().0;
    let first_after: u64 = after_text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    let down = killed.elapsed().as_secs_f64();
    validate_served(&s, "loop");
    stop.store(true, Ordering::Relaxed);
    let runs = publisher.join().unwrap();
    let mut same_uri = 0;
    for (u, bytes) in &after {
        if let Some(old) = before.get(u) {
            same_uri += 1;
            assert!(
                old == bytes,
                "{u} was served before and after the restart with different bytes"
            );
        }
    }
    println!(
        "FAULT {{\"fault\":\"server-kill-9-restart\",\"uris_before\":{},\"uris_after\":{},\"uris_in_both\":{same_uri},\"msn_before\":{msn_before},\"first_msn_after\":{first_after},\"msn_after\":{msn_after},\"down_secs\":{down:.1},\"status_during\":{},\"publisher_runs\":{runs}}}",
        before.len(),
        after.len(),
        during.status
    );
    assert!(msn_after > msn_before, "{msn_before} -> {msn_after}");
    // The stream goes on from where it was at its own pace: no more MSNs skipped than
    // segments of the shortest duration seen fit in the time since the kill (plus the two
    // seconds of segments the old server may have opened after it last stored its position),
    // not the wall clock's tenths of a second (hundreds ahead), which players place far
    // ahead of their playhead.
    let allowed = msn_before + (down / shortest).ceil() as u64 + (2.0 / shortest).ceil() as u64 + 2;
    assert!(
        first_after <= allowed,
        "after the restart the stream starts at MSN {first_after}, more than {allowed} ({msn_before} before, {down:.1} s down, segments of {shortest} s)"
    );
    assert!(runs >= 2, "the publisher reconnected");
    let _ = std::fs::remove_dir_all(&data);
}
