//! Fan-out load generator: N viewers, each issuing the next blocking playlist request
//! (`_HLS_msn`/`_HLS_part` computed as hls.js does) as soon as the previous one returns.
//! Loopback only, bounded in viewers and time. Wake latency = response received minus the
//! server's publish time (`llhls-published-us` header; same machine, same clock).
//!
//!     fanout --url http://127.0.0.1:8080/live/demo/media.m3u8 --viewers 1000 --secs 20
//!            [--h2 STREAMS_PER_CONNECTION] [--server-pid PID] [--label NAME]
//!            [--report-every SECS]   (also one JSON line per interval: lag p50/p99/max, errors)
//!            [--skip]   (delta updates as hls.js 1.7 asks them: `_HLS_skip=YES` on each blocking
//!                        reload once a playlist advertised CAN-SKIP-UNTIL; hls.js's
//!                        `getSkipValue` asks it while its copy is younger than half that, which a
//!                        held viewer's always is)
//!            [--lean-client]   (HTTP/1.1 without hyper: one task per viewer writing its
//!                        request and reading the response with `httparse` into a buffer it
//!                        keeps; see `LeanConn`)
//!     (the demo's muxed playlist: `llhls serve --demo-ladder off`)
//!
//! Prints one JSON line. Exits non-zero when a request errors or a viewer never wakes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use llhls_benches::{next_directive, proc_usage};
use tokio::net::TcpStream;

#[derive(Default)]
struct Totals {
    responses: AtomicU64,
    errors: AtomicU64,
    woken_viewers: AtomicU64,
    /// With `--report-every`: the wake latencies (us) of the current interval.
    interval: Option<std::sync::Mutex<Vec<u32>>>,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    Lean(LeanConn),
}

/// An HTTP/1.1 viewer without hyper, for `--lean-client`. The load generator shares the two
/// cores with the server it measures, so what it spends per response is taken from the server:
/// hyper's client costs a connection task beside the viewer's, a request and response
/// allocated per exchange, and its dispatch channel. This writes the request from a buffer it
/// keeps and reads the response into another, so a response costs one `write` and the reads
/// it takes. Only what the servers under test answer: a status line, headers and a
/// `Content-Length` body (anything else is an error).
struct LeanConn {
    tcp: TcpStream,
    req: Vec<u8>,
    buf: Vec<u8>,
}

impl LeanConn {
    async fn get(&mut self, uri: &str, host: &str) -> anyhow::Result<(u16, Option<u64>, Bytes)> {
        use std::io::Write;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.req.clear();
        write!(self.req, "GET {uri} HTTP/1.1\r\nHost: {host}\r\n\r\n")?;
        self.tcp.write_all(&self.req).await?;
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(head) = r.parse(&self.buf)? {
                let status = r.code.unwrap_or(0);
                let header = |name: &str| {
                    r.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                };
                let published = header("llhls-published-us").and_then(|v| v.parse().ok());
                let len: usize = header("content-length")
                    .context("a response without Content-Length (the lean client reads no other framing)")?
                    .trim()
                    .parse()?;
                while self.buf.len() < head + len {
                    self.buf.reserve(head + len - self.buf.len());
                    if self.tcp.read_buf(&mut self.buf).await? == 0 {
                        bail!("connection closed inside a body");
                    }
                }
                let body = Bytes::copy_from_slice(&self.buf[head..head + len]);
                self.buf.drain(..head + len);
                return Ok((status, published, body));
            }
            if self.buf.len() > 64 * 1024 {
                bail!("a response head over 64 KiB");
            }
            self.buf.reserve(4096);
            if self.tcp.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed before a response");
            }
        }
    }
}

impl Sender {
    async fn get(&mut self, uri: &str, host: &str) -> anyhow::Result<(u16, Option<u64>, Bytes)> {
        let req = || {
            Request::builder()
                .uri(uri)
                .header("host", host)
                .body(Empty::new())
        };
        let resp = match self {
            Sender::Lean(c) => return c.get(uri, host).await,
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req()?).await?
            }
            Sender::H2(s) => s.send_request(req()?).await?,
        };
        let status = resp.status().as_u16();
        let published = resp
            .headers()
            .get("llhls-published-us")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, published, body))
    }
}

#[allow(clippy::too_many_arguments)]
async fn viewer(
    mut sender: Sender,
    path: String,
    host: String,
    measure_from: Instant,
    deadline: Instant,
    totals: Arc<Totals>,
    skip: bool,
) -> Vec<u32> {
    let mut lat = Vec::new();
    let mut next: Option<(u64, u32)> = None;
    let mut can_skip = false;
    let mut woke = false;
    while Instant::now() < deadline {
        let uri = match next {
            Some((m, p)) if skip && can_skip => {
                format!("{path}?_HLS_msn={m}&_HLS_part={p}&_HLS_skip=YES")
            }
            Some((m, p)) => format!("{path}?_HLS_msn={m}&_HLS_part={p}"),
            None => path.clone(),
        };
        match sender.get(&uri, &host).await {
            Ok((200, published, body)) => {
                let recv = now_us();
                if next.is_some() && Instant::now() >= measure_from {
                    totals.responses.fetch_add(1, Ordering::Relaxed);
                    if let Some(p) = published {
                        let us = recv.saturating_sub(p).min(u64::from(u32::MAX)) as u32;
                        lat.push(us);
                        if let Some(i) = &totals.interval {
                            i.lock().unwrap_or_else(|e| e.into_inner()).push(us);
                        }
                    }
                    if !woke {
                        woke = true;
                        totals.woken_viewers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let text = String::from_utf8_lossy(&body);
                can_skip = text.contains("CAN-SKIP-UNTIL=");
                next = next_directive(&text);
                if next.is_none() {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            Ok((status, _, _)) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("HTTP {status} for {uri}");
                next = None;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("request error: {e}");
                break;
            }
        }
    }
    lat
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str| llhls_benches::arg(&args, n);
    let url = arg("--url").context("--url required")?;
    let viewers: usize = arg("--viewers").unwrap_or("1000".into()).parse()?;
    let secs: u64 = arg("--secs").unwrap_or("20".into()).parse()?;
    let h2: Option<usize> = arg("--h2").map(|v| v.parse()).transpose()?;
    let pid: Option<u32> = arg("--server-pid").map(|v| v.parse()).transpose()?;
    let label = arg("--label").unwrap_or_else(|| "server".into());
    // --idle: open the connections and send nothing (memory of an idle connection alone).
    let idle_only = args.iter().any(|a| a == "--idle");
    let skip = args.iter().any(|a| a == "--skip");
    let lean_client = args.iter().any(|a| a == "--lean-client");
    if lean_client && h2.is_some() {
        bail!("--lean-client is HTTP/1.1 only");
    }
    let report_every: Option<u64> = arg("--report-every").map(|v| v.parse()).transpose()?;
    // Long runs are for the soak (benches/run.py --only soak), which reports per interval.
    let max_secs = if report_every.is_some() {
        4 * 3600
    } else {
        600
    };
    if viewers > 50_000 || secs > max_secs {
        bail!("bounded: at most 50,000 viewers and {max_secs} s");
    }
    let rest = url.strip_prefix("http://").context("http:// URL")?;
    let (host, path) = rest.split_once('/').context("URL with a path")?;
    let path = format!("/{path}");
    let addr: std::net::SocketAddr = host.parse().context("numeric loopback host:port")?;
    if !addr.ip().is_loopback() {
        bail!("loopback only");
    }
    let idle = pid.and_then(proc_usage);
    let totals = Arc::new(Totals {
        interval: report_every.map(|_| std::sync::Mutex::new(Vec::new())),
        ..Totals::default()
    });
    if let Some(every) = report_every {
        // One line per interval, for a sampler that follows the run (the soak).
        let t = totals.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
            tick.tick().await;
            let mut last_errors = 0;
            loop {
                tick.tick().await;
                let mut v = std::mem::take(
                    &mut *t
                        .interval
                        .as_ref()
                        .expect("set with report_every")
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()),
                );
                v.sort_unstable();
                let errors = t.errors.load(Ordering::Relaxed);
                println!(
                    "{{\"interval\":true,\"t_s\":{:.1},\"responses\":{},\"lag_p50_ms\":{:.1},\"lag_p99_ms\":{:.1},\"lag_max_ms\":{:.1},\"errors\":{}}}",
                    start.elapsed().as_secs_f64(),
                    v.len(),
                    pct(&v, 50.0),
                    pct(&v, 99.0),
                    pct(&v, 100.0),
                    errors - last_errors
                );
                last_errors = errors;
            }
        });
    }
    let ramp_start = Instant::now();
    let ramp = Duration::from_millis((viewers as u64 / 2).max(500));
    let measure_from = ramp_start + ramp + Duration::from_secs(2);
    let deadline = measure_from + Duration::from_secs(secs);
    let mut tasks = Vec::with_capacity(viewers);
    let mut h2_sender = None;
    for i in 0..viewers {
        let sender = match h2 {
            None => {
                let tcp = TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connection {i}"))?;
                let _ = tcp.set_nodelay(true);
                if lean_client {
                    Sender::Lean(LeanConn {
                        tcp,
                        req: Vec::with_capacity(256),
                        buf: Vec::new(),
                    })
                } else {
                    let (s, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                    tokio::spawn(conn);
                    Sender::H1(s)
                }
            }
            Some(per_conn) => {
                if i % per_conn == 0 {
                    let tcp = TcpStream::connect(addr).await?;
                    let _ = tcp.set_nodelay(true);
                    let (s, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_reset_streams(0)
                        .handshake(TokioIo::new(tcp))
                        .await?;
                    tokio::spawn(conn);
                    h2_sender = Some(s);
                }
                Sender::H2(h2_sender.clone().context("h2 connection")?)
            }
        };
        if idle_only {
            let t = totals.clone();
            tasks.push(tokio::spawn(async move {
                let _keep = sender;
                tokio::time::sleep_until(deadline.into()).await;
                t.woken_viewers.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            }));
            continue;
        }
        tasks.push(tokio::spawn(viewer(
            sender,
            path.clone(),
            host.to_string(),
            measure_from,
            deadline,
            totals.clone(),
            skip,
        )));
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let start_usage = pid.and_then(proc_usage);
    tokio::time::sleep_until((measure_from + Duration::from_secs(secs) / 2).into()).await;
    let loaded = pid.and_then(proc_usage);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let end_usage = pid.and_then(proc_usage);
    lat.sort_unstable();
    let responses = totals.responses.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let woken = totals.woken_viewers.load(Ordering::Relaxed);
    let cpu = match (start_usage, end_usage) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => f64::NAN,
    };
    let rss_kib = loaded.map(|l| l.1).unwrap_or(0);
    let per_viewer_kb = match (idle, loaded) {
        (Some(i), Some(l)) => (l.1 as f64 - i.1 as f64) * 1.024 / viewers as f64,
        _ => f64::NAN,
    };
    println!(
        "{{\"label\":\"{label}\",\"client\":\"{}\",\"transport\":\"{}\",\"viewers\":{viewers},\"skip\":{skip},\"secs\":{secs},\"responses_per_s\":{:.0},\"wake_p50_ms\":{:.1},\"wake_p99_ms\":{:.1},\"wake_max_ms\":{:.1},\"server_cpu_s\":{cpu:.2},\"server_rss_mib\":{:.1},\"kb_per_viewer\":{per_viewer_kb:.1},\"errors\":{errors},\"woken\":{woken}}}",
        if lean_client { "lean" } else { "hyper" },
        if h2.is_some() { "h2" } else { "http/1.1" },
        responses as f64 / secs as f64,
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        lat.last().map(|v| f64::from(*v) / 1000.0).unwrap_or(f64::NAN),
        rss_kib as f64 / 1024.0,
    );
    if errors > 0 || (woken as usize) < viewers {
        bail!("{errors} errors, {woken} of {viewers} viewers woke");
    }
    Ok(())
}
