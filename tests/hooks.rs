//! Platform integration against the real `llhls` binary: the publish (auth) webhook, answered
//! by a real HTTP server run by the test on a loopback port, with real ffmpeg RTMP publishers
//! and a str0m WHIP offer: admit, refuse, rename, per-stream options, timeout, 5xx, a garbled
//! answer, failing open, caching, and a slow webhook that must not hold other publishers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// One request the webhook received.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the webhook answers: status and body, after an optional wait.
struct Reply {
    status: u16,
    body: String,
    wait: Option<Arc<Gate>>,
}

impl Reply {
    fn new(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            wait: None,
        }
    }
}

/// Holds an answer until opened (a webhook that hangs until the test says otherwise).
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Gate {
    fn wait(&self, limit: Duration) {
        let g = self.open.lock().unwrap();
        let _ = self.cv.wait_timeout_while(g, limit, |open| !*open).unwrap();
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

type Answer = dyn Fn(&Call) -> Reply + Send + Sync;

/// A real HTTP/1.1 webhook server on loopback: every request is recorded (when it arrived,
/// and whether it was answered) and answered by `answer`.
struct Hook {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<(Call, bool)>>>,
}

impl Hook {
    fn start(answer: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let c2 = calls.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming().flatten() {
                let calls = c2.clone();
                let answer = answer.clone();
                std::thread::spawn(move || serve_one(sock, &calls, &*answer));
            }
        });
        Hook { addr, calls }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// Calls about stream `name`: (received, answered).
    fn about(&self, name: &str) -> Vec<bool> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c.body["stream"] == name)
            .map(|(_, answered)| *answered)
            .collect()
    }
}

fn serve_one(mut sock: TcpStream, calls: &Mutex<Vec<(Call, bool)>>, answer: &Answer) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < len {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let call = Call {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let index = {
        let mut c = calls.lock().unwrap();
        c.push((call.clone(), false));
        c.len() - 1
    };
    let reply = answer(&call);
    if let Some(g) = &reply.wait {
        g.wait(Duration::from_secs(60));
    }
    let _ = sock.write_all(
        format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            reply.status,
            reply.body.len(),
            reply.body
        )
        .as_bytes(),
    );
    calls.lock().unwrap()[index].1 = true;
}

/// Polls `what` every 100 ms until it holds; panics with `why` after `limit` (a generous
/// bound for real-time streams, not a performance assertion).
fn until(limit: Duration, why: impl Fn() -> String, mut what: impl FnMut() -> bool) {
    let start = Instant::now();
    while !what() {
        assert!(start.elapsed() < limit, "{}", why());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric(s: &Server, line: &str) -> u64 {
    let text = s.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line} in {text}"))
}

fn data_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("llhls-hooks-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn the_webhook_admits_renames_and_sets_per_stream_options() {
    let hook = Hook::start(|c| match c.body["stream"].as_str() {
        // A platform maps a secret name to a public one, records it and skips the ladder.
        Some("secret-cam") => Reply::new(
            200,
            r#"{"name":"public-1","record":true,"ladder":false,"note":"ignored"}"#,
        ),
        // No answer body: admitted as asked, with the server's settings (ladder on, and
        // `record` matches nothing).
        _ => Reply::new(204, ""),
    });
    let dir = data_dir("admit");
    // The same server takes the lifecycle events (they carry a `type`), answered 204.
    let s = Server::start(&[
        "--auth-webhook",
        &hook.url(),
        "--events-webhook",
        &format!("{}?events", hook.url()),
        "--ladder",
        "240p",
        "--record",
        "nothing-matches",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    let mut renamed = publish_sized(&s.rtmp_url("secret-cam?key=k-123"), 12, false, "640x360");
    let mut control = publish_sized(&s.rtmp_url("control"), 12, false, "640x360");
    s.wait_for("/live/public-1/index.m3u8", Duration::from_secs(20));
    s.wait_for("/live/control/index.m3u8", Duration::from_secs(20));
    // The secret name is never served.
    assert_eq!(s.get("/live/secret-cam/index.m3u8").status, 404);

    // What the webhook was told.
    let calls: Vec<Call> = hook
        .calls()
        .into_iter()
        .filter(|c| c.path == "/hook")
        .collect();
    let call = calls
        .iter()
        .find(|c| c.body["stream"] == "secret-cam")
        .expect("the webhook was asked about secret-cam");
    assert_eq!(call.path, "/hook");
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.body["protocol"], "rtmp");
    assert_eq!(call.body["action"], "publish");
    assert_eq!(call.body["key"], "k-123");
    let remote = call.body["remote_addr"].as_str().unwrap();
    assert!(remote.starts_with("127.0.0.1:"), "{remote}");
    let control_call = calls
        .iter()
        .find(|c| c.body["stream"] == "control")
        .unwrap();
    assert!(
        control_call.body["key"].is_null(),
        "{:?}",
        control_call.body
    );

    // The ladder: on for the control stream (the server's setting), off for public-1.
    until(
        Duration::from_secs(30),
        || s.get("/live/control/index.m3u8").text(),
        || {
            s.get("/live/control/index.m3u8")
                .text()
                .contains("240p.m3u8")
        },
    );
    let mv = s.get("/live/public-1/index.m3u8").text();
    assert!(
        !mv.contains("240p"),
        "the webhook turned the ladder off: {mv}"
    );

    // Recording: on for public-1 (the webhook), off for control (the server's patterns).
    until(
        Duration::from_secs(20),
        || s.get("/recordings.json").text(),
        || s.get("/recordings.json").text().contains("\"public-1\""),
    );
    assert!(!s.get("/recordings.json").text().contains("\"control\""));
    // The listing can come before the recording's first file is on disk.
    until(
        Duration::from_secs(20),
        || format!("{} has no recordings/public-1", dir.display()),
        || dir.join("recordings/public-1").is_dir(),
    );
    assert!(!dir.join("recordings/control").exists());
    let log = s.log_text();
    assert!(log.contains("renamed=public-1"), "{log}");
    assert_eq!(
        metric(&s, "llhls_publish_admissions_total{result=\"admitted\"}"),
        2
    );
    // The publishers stop: the end events give the recording's playlist for public-1 only.
    assert!(renamed.wait().unwrap().success());
    assert!(control.wait().unwrap().success());
    let events = || -> Vec<Value> {
        hook.calls()
            .into_iter()
            .filter(|c| c.path == "/hook?events")
            .map(|c| c.body)
            .collect()
    };
    until(
        Duration::from_secs(30),
        || format!("{:?}", events()),
        || {
            events()
                .iter()
                .filter(|e| e["type"] == "stream_ended")
                .count()
                == 2
        },
    );
    let events = events();
    let of = |kind: &str, stream: &str| -> Value {
        events
            .iter()
            .find(|e| e["type"] == kind && e["stream"] == stream)
            .unwrap_or_else(|| panic!("{kind} {stream} in {events:?}"))
            .clone()
    };
    let recording = of("stream_ended", "public-1")["recording"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        recording.starts_with("/recordings/public-1/") && recording.ends_with("/index.m3u8"),
        "{recording}"
    );
    assert_eq!(s.get(&recording).status, 200);
    assert!(of("stream_ended", "control")["recording"].is_null());
    let renditions = of("stream_started", "control")["renditions"].to_string();
    assert!(renditions.contains("240p"), "{renditions}");
    let renditions = of("stream_started", "public-1")["renditions"].to_string();
    assert!(!renditions.contains("240p"), "{renditions}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_4xx_answer_refuses_the_publish_with_the_reason() {
    let hook = Hook::start(|c| match c.body["key"].as_str() {
        Some("good") => Reply::new(200, "{}"),
        _ => Reply::new(403, "stream key revoked"),
    });
    let s = Server::start(&["--auth-webhook", &hook.url()]);
    let mut bad = publish(&s.rtmp_url("cam?key=bad"), 4, false);
    assert!(
        !bad.wait().unwrap().success(),
        "ffmpeg fails on a refused publish"
    );
    assert_eq!(s.get("/live/cam/index.m3u8").status, 404);
    let log = s.log_text();
    assert!(
        log.contains("refused by the auth webhook (status 403: stream key revoked)"),
        "{log}"
    );
    // The same name with a key the platform accepts publishes.
    let mut good = publish(&s.rtmp_url("cam?key=good"), 6, false);
    s.wait_for("/live/cam/index.m3u8", Duration::from_secs(15));
    let _ = good.wait();
    assert_eq!(
        metric(&s, "llhls_publish_admissions_total{result=\"refused\"}"),
        1
    );
    assert_eq!(
        metric(&s, "llhls_publish_admissions_total{result=\"admitted\"}"),
        1
    );
}

/// The webhook's failures: hanging past the timeout, 5xx, a redirect, an answer that is not
/// JSON, a rename to an invalid name.
fn failing(c: &Call) -> Reply {
    match c.body["stream"].as_str().unwrap_or("") {
        "hangs" => Reply {
            wait: Some(Arc::new(Gate::default())),
            ..Reply::new(200, "{}")
        },
        "errors" => Reply::new(503, "down for maintenance"),
        "redirects" => Reply::new(302, ""),
        "garbage" => Reply::new(200, "<html>oops</html>"),
        "bad-rename" => Reply::new(200, r#"{"name":"../../etc"}"#),
        _ => Reply::new(200, "{}"),
    }
}

const FAILING: [(&str, &str); 5] = [
    ("hangs", "no answer within 700 ms"),
    ("errors", "status 503"),
    ("redirects", "status 302"),
    ("garbage", "not the expected JSON"),
    ("bad-rename", "not a valid stream name"),
];

#[test]
fn webhook_failures_refuse_by_default() {
    let hook = Hook::start(failing);
    let s = Server::start(&[
        "--auth-webhook",
        &hook.url(),
        "--auth-webhook-timeout-ms",
        "700",
    ]);
    for (name, why) in FAILING {
        let mut ff = publish(&s.rtmp_url(name), 4, false);
        assert!(!ff.wait().unwrap().success(), "{name} must be refused");
        assert_eq!(s.get(&format!("/live/{name}/index.m3u8")).status, 404);
        let log = s.log_text();
        assert!(
            log.lines()
                .any(|l| l.contains("publish refused") && l.contains(name) && l.contains(why)),
            "{name}: {why}\n{log}"
        );
    }
    assert_eq!(
        metric(&s, "llhls_publish_admissions_total{result=\"failed\"}"),
        FAILING.len() as u64
    );
    // Still working: a publisher the webhook admits.
    let mut ok = publish(&s.rtmp_url("fine"), 5, false);
    s.wait_for("/live/fine/index.m3u8", Duration::from_secs(15));
    let _ = ok.wait();
}

#[test]
fn webhook_failures_admit_under_the_asked_name_when_failing_open() {
    let hook = Hook::start(failing);
    let s = Server::start(&[
        "--auth-webhook",
        &hook.url(),
        "--auth-webhook-timeout-ms",
        "700",
        "--auth-webhook-fail",
        "open",
    ]);
    let mut pubs: Vec<_> = ["hangs", "errors", "garbage"]
        .iter()
        .map(|n| publish(&s.rtmp_url(n), 8, false))
        .collect();
    for n in ["hangs", "errors", "garbage"] {
        s.wait_for(&format!("/live/{n}/index.m3u8"), Duration::from_secs(20));
    }
    assert!(s
        .log_text()
        .contains("admitting, as auth_webhook_fail is open"));
    for p in &mut pubs {
        let _ = p.wait();
    }
}

#[test]
fn a_hanging_webhook_holds_only_its_own_publisher() {
    let gate = Arc::new(Gate::default());
    let g2 = gate.clone();
    let hook = Hook::start(move |c| match c.body["stream"].as_str() {
        Some("slow") => Reply {
            wait: Some(g2.clone()),
            ..Reply::new(200, "{}")
        },
        _ => Reply::new(200, "{}"),
    });
    let s = Server::start(&[
        "--auth-webhook",
        &hook.url(),
        "--auth-webhook-timeout-ms",
        "60000",
    ]);
    let mut slow = publish(&s.rtmp_url("slow"), 20, false);
    until(
        Duration::from_secs(15),
        || "the webhook was never asked about slow".into(),
        || !hook.about("slow").is_empty(),
    );
    let mut fast = publish(&s.rtmp_url("fast"), 20, false);
    s.wait_for("/live/fast/index.m3u8", Duration::from_secs(20));
    // The fast publisher was admitted and is live while the slow one's webhook call is still
    // unanswered.
    assert_eq!(hook.about("slow"), [false]);
    assert_eq!(s.get("/live/slow/index.m3u8").status, 404);
    gate.open();
    s.wait_for("/live/slow/index.m3u8", Duration::from_secs(20));
    let _ = slow.kill();
    let _ = fast.kill();
    let _ = slow.wait();
    let _ = fast.wait();
}

#[test]
fn answers_are_cached_for_the_configured_time() {
    let hook = Hook::start(|_| Reply::new(200, r#"{"name":"mapped"}"#));
    let s = Server::start(&[
        "--auth-webhook",
        &hook.url(),
        "--auth-webhook-cache-secs",
        "600",
    ]);
    for _ in 0..2 {
        let mut ff = publish(&s.rtmp_url("cam?key=k"), 3, false);
        s.wait_for("/live/mapped/index.m3u8", Duration::from_secs(15));
        assert!(ff.wait().unwrap().success());
        // The stream ends when the publisher stops (ENDLIST): the name is free again.
        until(
            Duration::from_secs(20),
            || s.log_text(),
            || {
                s.get("/live/mapped/media.m3u8")
                    .text()
                    .contains("#EXT-X-ENDLIST")
            },
        );
    }
    assert_eq!(hook.calls().len(), 1, "the second publish used the cache");
    assert_eq!(
        metric(&s, "llhls_publish_admissions_total{result=\"cached\"}"),
        1
    );
}

/// A WHIP offer (video only) from a str0m peer.
fn whip_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rtc.add_local_candidate(str0m::Candidate::host(sock.local_addr().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _pending) = api.apply().unwrap();
    offer.to_sdp_string()
}

#[test]
fn whip_publishes_ask_the_webhook_with_the_bearer_token_and_user_agent() {
    let hook = Hook::start(|c| match c.body["key"].as_str() {
        Some("tok-good") => Reply::new(200, r#"{"name":"whip-public"}"#),
        _ => Reply::new(401, "unknown token"),
    });
    let s = Server::start(&["--auth-webhook", &hook.url()]);
    let offer = whip_offer();
    let post = |token: &str| {
        http_request(
            s.http,
            "POST",
            "/whip/live/studio",
            &[
                ("Content-Type", "application/sdp"),
                ("Authorization", &format!("Bearer {token}")),
                ("User-Agent", "TestEncoder/1.0"),
            ],
            offer.as_bytes(),
        )
        .unwrap()
    };
    let refused = post("tok-bad");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        refused.text().contains("unknown token"),
        "{}",
        refused.text()
    );
    let admitted = post("tok-good");
    assert_eq!(admitted.status, 201, "{}", admitted.text());
    let calls = hook.calls();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert_eq!(c.body["protocol"], "whip");
        assert_eq!(c.body["stream"], "studio");
        assert_eq!(c.body["user_agent"], "TestEncoder/1.0");
        assert!(c.body["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
    }
    assert!(
        s.log_text().contains("renamed=whip-public"),
        "{}",
        s.log_text()
    );
}

/// Every delivery attempt: the event, its `Idempotency-Key` header, the status answered.
type Attempts = Arc<Mutex<Vec<(Value, Option<String>, u16)>>>;

#[test]
fn lifecycle_events_arrive_in_order_with_retries_after_an_outage() {
    // The webhook is down (503) until the test brings it up; every attempt is noted.
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attempts: Attempts = Arc::default();
    let (d2, a2) = (down.clone(), attempts.clone());
    let hook = Hook::start(move |c| {
        let status = if d2.load(std::sync::atomic::Ordering::SeqCst) {
            503
        } else {
            200
        };
        a2.lock().unwrap().push((
            c.body.clone(),
            c.header("idempotency-key").map(str::to_string),
            status,
        ));
        Reply::new(status, "")
    });
    let s = Server::start(&["--events-webhook", &hook.url()]);
    let mut first = publish(&s.rtmp_url("ev"), 60, false);
    s.wait_for("/live/ev/index.m3u8", Duration::from_secs(20));
    // A second publisher on the same name is refused.
    let mut dup = publish(&s.rtmp_url("ev"), 4, false);
    assert!(!dup.wait().unwrap().success());
    // The outage: the started event has been tried and refused at least twice.
    until(
        Duration::from_secs(20),
        || format!("{:?}", attempts.lock().unwrap()),
        || attempts.lock().unwrap().len() >= 2,
    );
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    // The publisher vanishes (no unpublish) and comes back within the grace period, then
    // stops, which ends the stream.
    let _ = first.kill();
    let _ = first.wait();
    until(
        Duration::from_secs(20),
        || s.log_text(),
        || {
            s.log_text()
                .contains("publisher gone; waiting for a reconnect")
        },
    );
    let mut again = publish(&s.rtmp_url("ev"), 4, false);
    assert!(again.wait().unwrap().success());
    let delivered = || -> Vec<Value> {
        attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, st)| *st == 200)
            .map(|(b, _, _)| b.clone())
            .collect()
    };
    until(
        Duration::from_secs(30),
        || format!("{:?}", attempts.lock().unwrap()),
        || delivered().iter().any(|e| e["type"] == "stream_ended"),
    );
    let events = delivered();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "stream_started",
            "publish_refused",
            "publisher_disconnected",
            "publisher_reconnected",
            "stream_ended"
        ],
        "{events:?}"
    );
    for e in &events {
        assert_eq!(e["stream"], "ev", "{e}");
    }
    // In order, each with its own id; the ids repeat only on retries.
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let all = attempts.lock().unwrap().clone();
    for (body, key, _) in &all {
        assert_eq!(
            key.as_deref(),
            body["id"].as_str(),
            "header and field agree"
        );
    }
    let first_id = events[0]["id"].as_str().unwrap();
    let tries = all.iter().filter(|(b, _, _)| b["id"] == first_id).count();
    assert!(tries >= 3, "retried through the outage: {tries} attempts");
    // What the events say.
    let started = &events[0];
    assert_eq!(started["width"], 320);
    assert_eq!(started["height"], 180);
    assert_eq!(started["publisher"], "encoder");
    let codecs = started["codecs"].to_string();
    assert!(
        codecs.contains("avc1.") && codecs.contains("mp4a.40.2"),
        "{codecs}"
    );
    assert!(!started["renditions"].as_array().unwrap().is_empty());
    assert_eq!(events[1]["protocol"], "rtmp");
    assert!(events[1]["reason"]
        .as_str()
        .unwrap()
        .contains("already has a publisher"));
    let ended = &events[4];
    assert!(ended["bytes_in"].as_u64().unwrap() > 0, "{ended}");
    assert!(ended["duration_secs"].as_f64().unwrap() > 0.0, "{ended}");
    assert_eq!(ended["discontinuities"], 1, "{ended}");
    assert!(ended["recording"].is_null());
    assert!(metric(&s, "llhls_events_retries_total") >= 2);
    assert_eq!(metric(&s, "llhls_events_delivered_total"), 5);
    assert_eq!(metric(&s, "llhls_events_dropped_total"), 0);
}

#[test]
fn a_full_event_queue_drops_and_counts_new_events() {
    let hook = Hook::start(|_| Reply::new(500, ""));
    let s = Server::start(&["--events-webhook", &hook.url(), "--events-queue", "1"]);
    let mut first = publish(&s.rtmp_url("q"), 30, false);
    s.wait_for("/live/q/index.m3u8", Duration::from_secs(20));
    // Refused duplicates: events that find the queue full (the started event is stuck in it).
    for _ in 0..2 {
        let mut dup = publish(&s.rtmp_url("q"), 2, false);
        assert!(!dup.wait().unwrap().success());
    }
    assert_eq!(metric(&s, "llhls_events_dropped_total"), 2);
    assert_eq!(metric(&s, "llhls_events_queued"), 1);
    assert_eq!(metric(&s, "llhls_events_delivered_total"), 0);
    // The stream is unaffected.
    assert_eq!(s.get("/live/q/index.m3u8").status, 200);
    let _ = first.kill();
    let _ = first.wait();
}

const TOKEN: &str = "test-admin-token-0123456789abcdef";

fn admin(s: &Server, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    http_request(s.http, method, path, &headers, body).unwrap()
}

fn json_of(r: &Response) -> Value {
    assert_eq!(r.header("content-type"), Some("application/json"));
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn the_demo_stream_is_listed_but_cannot_be_kicked() {
    let s = Server::start(&[
        "--demo",
        "true",
        "--demo-ladder",
        "off",
        "--admin-token",
        TOKEN,
    ]);
    s.wait_for("/live/demo/index.m3u8", Duration::from_secs(30));
    let list = json_of(&admin(&s, "GET", "/api/v1/streams", Some(TOKEN), b""));
    assert_eq!(list[0]["name"], "demo", "{list}");
    assert!(list[0]["publisher"].is_null(), "{list}");
    let r = admin(&s, "DELETE", "/api/v1/streams/demo", Some(TOKEN), b"");
    assert_eq!(r.status, 409, "{}", r.text());
    // Still live.
    let a = s.get("/live/demo/media.m3u8").text();
    until(
        Duration::from_secs(20),
        || a.clone(),
        || s.get("/live/demo/media.m3u8").text() != a,
    );
}

#[test]
fn the_admin_api_is_off_without_a_token() {
    let s = Server::start(&[]);
    for p in ["/api/v1/streams", "/api/v1/info", "/api/v1/openapi.json"] {
        assert_eq!(admin(&s, "GET", p, Some(TOKEN), b"").status, 404, "{p}");
    }
}

#[test]
fn the_admin_api_lists_kicks_and_revokes_over_real_sockets() {
    let s = Server::start(&["--admin-token", TOKEN, "--publish-keys", "k-one,k-two"]);

    // The served description is the checked-in file, without a token.
    let spec = admin(&s, "GET", "/api/v1/openapi.json", None, b"");
    assert_eq!(spec.status, 200);
    let file = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/api/openapi.json"),
    )
    .unwrap();
    assert_eq!(spec.body, file);

    // Everything else needs the token.
    for (token, what) in [
        (None, "no token"),
        (Some("wrong"), "a wrong token"),
        (Some(&TOKEN[..TOKEN.len() - 1]), "a prefix of the token"),
    ] {
        let r = admin(&s, "GET", "/api/v1/streams", token, b"");
        assert_eq!(r.status, 401, "{what}");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        assert_eq!(
            admin(&s, "DELETE", "/api/v1/streams/x", token, b"").status,
            401
        );
    }
    let basic = http_request(
        s.http,
        "GET",
        "/api/v1/info",
        &[("Authorization", &format!("Basic {TOKEN}"))],
        b"",
    )
    .unwrap();
    assert_eq!(basic.status, 401, "only the Bearer scheme");

    let mut one = publish(&s.rtmp_url("one?key=k-one"), 60, false);
    let mut two = publish(&s.rtmp_url("two?key=k-two"), 60, false);
    s.wait_for("/live/one/index.m3u8", Duration::from_secs(20));
    s.wait_for("/live/two/index.m3u8", Duration::from_secs(20));

    let list = json_of(&admin(&s, "GET", "/api/v1/streams", Some(TOKEN), b""));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    // Every field served is described, and every required one is served.
    let spec: Value = serde_json::from_slice(&spec.body).unwrap();
    let schema = &spec["components"]["schemas"]["Stream"];
    for st in list {
        for key in st.as_object().unwrap().keys() {
            assert!(
                schema["properties"][key].is_object(),
                "{key} is not in openapi.json"
            );
        }
        for key in schema["required"].as_array().unwrap() {
            assert!(
                st.get(key.as_str().unwrap()).is_some(),
                "{key} missing in {st}"
            );
        }
        // What the operator view shows as the live edge: how long ago the playlists changed.
        assert!(st["edge_age_ms"].is_u64(), "{st}");
        assert!(st["part_target"].as_f64().unwrap() > 0.0, "{st}");
        assert!(
            st["part_hold_back"].as_f64().unwrap()
                >= 3.0 * st["part_target"].as_f64().unwrap() - 1e-9,
            "{st}"
        );
        assert_eq!(st["publisher"]["protocol"], "rtmp", "{st}");
        let remote = st["publisher"]["remote_addr"].as_str().unwrap();
        assert!(remote.starts_with("127.0.0.1:"), "{st}");
        assert!(st["frames_in"].as_u64().unwrap() > 0, "{st}");
        assert!(st["bytes_in"].as_u64().unwrap() > 0, "{st}");
        assert_eq!(st["width"], 320);
        assert!(!st["renditions"].as_array().unwrap().is_empty(), "{st}");
        assert!(st["codecs"].to_string().contains("avc1."), "{st}");
    }
    let one_json = json_of(&admin(&s, "GET", "/api/v1/streams/one", Some(TOKEN), b""));
    assert_eq!(one_json["name"], "one");
    assert_eq!(one_json["playlist"], "/live/one/index.m3u8");
    assert_eq!(
        admin(&s, "GET", "/api/v1/streams/nope", Some(TOKEN), b"").status,
        404
    );

    // Kick: unknown names are 404; a live one ends at once (no reconnect grace).
    assert_eq!(
        admin(&s, "DELETE", "/api/v1/streams/nope", Some(TOKEN), b"").status,
        404
    );
    assert_eq!(
        admin(&s, "DELETE", "/api/v1/streams/..", Some(TOKEN), b"").status,
        404
    );
    assert_eq!(
        admin(&s, "DELETE", "/api/v1/streams/one", Some(TOKEN), b"").status,
        204
    );
    assert!(
        !one.wait().unwrap().success(),
        "the kicked publisher's connection closed"
    );
    until(
        Duration::from_secs(20),
        || s.get("/live/one/media.m3u8").text(),
        || {
            s.get("/live/one/media.m3u8")
                .text()
                .contains("#EXT-X-ENDLIST")
        },
    );
    assert!(s.log_text().contains("publisher stopped by the admin API"));

    // Revoking a key stops its publisher and refuses it from then on; other keys still work.
    let r = admin(
        &s,
        "POST",
        "/api/v1/keys/revoke",
        Some(TOKEN),
        br#"{"key":"k-two"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json_of(&r);
    assert_eq!(v["kicked"], serde_json::json!(["two"]));
    assert!(!two.wait().unwrap().success());
    let mut again = publish(&s.rtmp_url("two?key=k-two"), 3, false);
    assert!(!again.wait().unwrap().success(), "a revoked key is refused");
    assert!(s.log_text().contains("the publish key was revoked"));
    let mut other = publish(&s.rtmp_url("three?key=k-one"), 4, false);
    s.wait_for("/live/three/index.m3u8", Duration::from_secs(20));
    let _ = other.wait();

    // Bad bodies are 400, wrong methods 405.
    for body in [
        &b"{"[..],
        b"",
        b"[]",
        br#"{"key":""}"#,
        br#"{"key":7}"#,
        &vec![b' '; 20_000][..],
    ] {
        let r = admin(&s, "POST", "/api/v1/keys/revoke", Some(TOKEN), body);
        assert_eq!(
            r.status,
            400,
            "{:?}",
            String::from_utf8_lossy(&body[..body.len().min(20)])
        );
        assert!(json_of(&r)["error"].is_string());
    }
    assert_eq!(
        admin(&s, "PUT", "/api/v1/streams", Some(TOKEN), b"").status,
        405
    );
    assert_eq!(
        admin(&s, "GET", "/api/v1/nothing", Some(TOKEN), b"").status,
        404
    );

    // Info: no secret in it.
    let r = admin(&s, "GET", "/api/v1/info", Some(TOKEN), b"");
    let text = r.text();
    let info = json_of(&r);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["uptime_secs"].is_u64());
    assert_eq!(info["config"]["publish_keys"], "redacted");
    assert_eq!(info["config"]["admin_token"], "redacted");
    for secret in ["k-one", "k-two", TOKEN] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

#[test]
fn srt_publishes_ask_the_webhook_too_and_can_be_kicked() {
    let hook = Hook::start(|c| match c.body["key"].as_str() {
        Some("good") => Reply::new(200, r#"{"name":"srt-public"}"#),
        _ => Reply::new(403, "no"),
    });
    let srt: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let s = Server::start(&[
        "--srt",
        &srt.to_string(),
        "--auth-webhook",
        &hook.url(),
        "--admin-token",
        TOKEN,
    ]);
    let ts = |id: &str, secs: u32| publish_srt(srt, id, secs);
    let mut bad = ts("publish:live/cam?key=bad", 4);
    assert!(!bad.wait().unwrap().success(), "refused by the webhook");
    let mut good = ts("publish:live/cam?key=good", 60);
    s.wait_for("/live/srt-public/index.m3u8", Duration::from_secs(20));
    assert_eq!(s.get("/live/cam/index.m3u8").status, 404);
    let calls = hook.calls();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert_eq!(c.body["protocol"], "srt");
        assert_eq!(c.body["stream"], "cam");
    }
    let st = json_of(&admin(
        &s,
        "GET",
        "/api/v1/streams/srt-public",
        Some(TOKEN),
        b"",
    ));
    assert_eq!(st["publisher"]["protocol"], "srt", "{st}");
    // Kicked: the stream ends at once.
    assert_eq!(
        admin(&s, "DELETE", "/api/v1/streams/srt-public", Some(TOKEN), b"").status,
        204
    );
    until(
        Duration::from_secs(20),
        || s.get("/live/srt-public/media.m3u8").text(),
        || {
            s.get("/live/srt-public/media.m3u8")
                .text()
                .contains("#EXT-X-ENDLIST")
        },
    );
    let _ = good.kill();
    let _ = good.wait();
}

#[test]
fn sighup_reloads_the_publish_keys_from_the_config_file() {
    let dir = data_dir("sighup");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("llhls.toml");
    std::fs::write(&file, "publish_keys = [\"old-key\"]\n").unwrap();
    let s = Server::start(&["--config", file.to_str().unwrap()]);
    let mut old = publish(&s.rtmp_url("cam?key=old-key"), 60, false);
    s.wait_for("/live/cam/index.m3u8", Duration::from_secs(20));

    std::fs::write(&file, "publish_keys = [\"new-key\"]\n").unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    until(
        Duration::from_secs(20),
        || s.log_text(),
        || s.log_text().contains("SIGHUP: publish keys reloaded"),
    );
    // The publisher whose key was taken out is stopped; the key is refused from now on.
    assert!(!old.wait().unwrap().success());
    until(
        Duration::from_secs(20),
        || s.get("/live/cam/media.m3u8").text(),
        || {
            s.get("/live/cam/media.m3u8")
                .text()
                .contains("#EXT-X-ENDLIST")
        },
    );
    let mut again = publish(&s.rtmp_url("other?key=old-key"), 3, false);
    assert!(!again.wait().unwrap().success(), "the old key is refused");
    let mut new = publish(&s.rtmp_url("other?key=new-key"), 4, false);
    s.wait_for("/live/other/index.m3u8", Duration::from_secs(20));
    let _ = new.wait();

    // A file that no longer loads keeps the keys as they were.
    std::fs::write(&file, "publish_keys = 7\n").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    until(
        Duration::from_secs(20),
        || s.log_text(),
        || s.log_text().contains("the publish keys stay as they were"),
    );
    let mut still = publish(&s.rtmp_url("third?key=new-key"), 4, false);
    s.wait_for("/live/third/index.m3u8", Duration::from_secs(20));
    let _ = still.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_event_the_webhook_rejects_does_not_hold_back_later_ones() {
    let hook = Hook::start(|c| match c.body["type"].as_str() {
        Some("publish_refused") => Reply::new(422, "unknown event"),
        _ => Reply::new(200, ""),
    });
    let s = Server::start(&["--events-webhook", &hook.url()]);
    let mut first = publish(&s.rtmp_url("rej"), 6, false);
    s.wait_for("/live/rej/index.m3u8", Duration::from_secs(20));
    let mut dup = publish(&s.rtmp_url("rej"), 2, false);
    assert!(!dup.wait().unwrap().success());
    assert!(first.wait().unwrap().success());
    let types = || -> Vec<String> {
        hook.calls()
            .iter()
            .map(|c| c.body["type"].as_str().unwrap_or("").to_string())
            .collect()
    };
    until(
        Duration::from_secs(30),
        || format!("{:?}", types()),
        || types().iter().any(|t| t == "stream_ended"),
    );
    // Each sent once: the rejected one was not retried.
    assert_eq!(
        types(),
        ["stream_started", "publish_refused", "stream_ended"]
    );
    assert_eq!(metric(&s, "llhls_events_rejected_total"), 1);
    assert_eq!(metric(&s, "llhls_events_delivered_total"), 2);
}

#[test]
fn the_playback_webhook_admits_viewers_to_a_shared_token_path_and_refuses_others() {
    let hook = Hook::start(|c: &Call| {
        if c.body["query"]
            .as_str()
            .is_some_and(|q| q.contains("session=good"))
        {
            Reply::new(204, "")
        } else {
            Reply::new(403, "not subscribed")
        }
    });
    let s = Server::start(&[
        "--playback-secret",
        "0123456789abcdef0123456789abcdef",
        "--playback-webhook",
        &hook.url(),
    ]);
    let mut p = publish(&s.rtmp_url("priv"), 12, false);
    // Admitted: redirected to the stream's token path, never cached (it is per viewer).
    let admit = |session: &str| {
        http_get(
            s.http,
            &format!("/live/priv/index.m3u8?session={session}"),
            &[
                ("user-agent", "test-player/1"),
                ("referer", "https://site.example/watch"),
            ],
        )
    };
    // The platform is only asked about a stream that exists: until it does, 403.
    let started = Instant::now();
    let r = loop {
        let r = admit("good");
        if r.status == 302 || started.elapsed() > Duration::from_secs(15) {
            break r;
        }
        assert_eq!(r.status, 403, "{}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let location = r.header("location").expect("Location").to_string();
    assert!(
        location.starts_with("/live/t/") && location.ends_with("/priv/index.m3u8"),
        "{location}"
    );
    let prefix = location.trim_end_matches("/index.m3u8").to_string();
    s.wait_for(&location, Duration::from_secs(15));
    let mv = s.get(&location).text();
    let media = mv
        .lines()
        .find(|l| l.ends_with(".m3u8"))
        .expect("a variant");
    let text = s.get(&format!("{prefix}/{media}")).text();
    assert!(text.contains("#EXT-X-PART:"), "{text}");
    // A second viewer in the same period gets the same URLs (the edge collapses them).
    assert_eq!(admit("good").header("location"), Some(location.as_str()));
    // Refused, with the platform's reason (and logged: refusals are logged at most once a
    // second, so a second after the 403s above).
    std::thread::sleep(Duration::from_millis(1100));
    let r = admit("bad");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("not subscribed"), "{}", r.text());
    // The platform is asked once per multivariant request without a token, never for the
    // playlists and media under the token path, nor for a tokenless media playlist (403).
    let before = hook.calls().len();
    assert!(before >= 3, "{:?}", hook.calls());
    assert!(hook.calls().iter().all(|c| c.body["stream"] == "priv"));
    assert_eq!(s.get(&format!("/live/priv/{media}")).status, 403);
    for _ in 0..3 {
        assert_eq!(s.get(&format!("{prefix}/{media}")).status, 200);
    }
    assert_eq!(hook.calls().len(), before);
    let c = &hook.calls()[0];
    assert_eq!(c.body["action"], "play");
    assert_eq!(c.body["stream"], "priv");
    assert_eq!(c.body["remote_addr"], "127.0.0.1");
    assert_eq!(c.body["user_agent"], "test-player/1");
    assert_eq!(c.body["referer"], "https://site.example/watch");
    let _ = p.kill();
    let _ = p.wait();
    let log = s.log_text();
    assert!(log.contains("403: playback webhook"), "{log}");
    assert!(!log.contains(&location[8..60]), "a token in the log: {log}");
}

#[test]
fn a_playback_webhook_that_cannot_be_asked_refuses_the_viewer() {
    // Nothing listens there.
    let port = free_port();
    let s = Server::start(&[
        "--playback-secret",
        "0123456789abcdef0123456789abcdef",
        "--playback-webhook",
        &format!("http://127.0.0.1:{port}/hook"),
        "--playback-webhook-timeout-ms",
        "500",
    ]);
    let mut p = publish(&s.rtmp_url("cam"), 8, false);
    let token = llhls_origin::token::PlaybackTokens::new(b"0123456789abcdef0123456789abcdef")
        .mint("cam", u64::MAX / 2);
    s.wait_for(
        &format!("/live/t/{token}/cam/index.m3u8"),
        Duration::from_secs(15),
    );
    let r = s.get("/live/cam/index.m3u8");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("could not be asked"), "{}", r.text());
    assert!(r.header("location").is_none());
    // A stream that does not exist is refused without asking anyone.
    let r = s.get("/live/nosuch/index.m3u8");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("needs a playback token"), "{}", r.text());
    let _ = p.kill();
    let _ = p.wait();
}

#[test]
fn a_playback_webhook_without_a_playback_secret_is_a_startup_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["serve", "--playback-webhook", "http://127.0.0.1:9/hook"])
        .output()
        .expect("llhls runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("playback_webhook needs playback_secret"),
        "{err}"
    );
}
