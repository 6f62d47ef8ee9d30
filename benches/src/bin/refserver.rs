//! The reference for the fan-out benchmark: a bare hyper server (HTTP/1.1 + h2c on one port)
//! and a `tokio::sync::watch` long-poll, doing no LL-HLS work. A ticker publishes a new part
//! every `--part-ms`; a request `?_HLS_msn=M&_HLS_part=P` is held until that part exists.
//! The body is a pre-rendered playlist of the same shape and size as llhls's; with
//! `_HLS_skip=YES`, its delta update (EXT-X-SKIP over the segments more than CAN-SKIP-UNTIL
//! from the end), as llhls renders it.
//!
//!     refserver --listen 127.0.0.1:9090 [--part-ms 200]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

/// Same allocator as `llhls`, so the comparison isolates the LL-HLS work.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct State {
    msn: u64,
    part: u32,
    body: Bytes,
    /// The `_HLS_skip=YES` view.
    delta: Bytes,
    published_us: HeaderValue,
}

/// A playlist with llhls's shape and size: 12 segments with program-date-time, parts listed
/// for the last three and for the open parent, the same header tags and a preload hint. As a
/// delta update (`skip`): the first 6 segments (12 s, CAN-SKIP-UNTIL, from the end) replaced
/// by EXT-X-SKIP, and the map repeated before the first segment listed, as llhls does.
fn render(msn: u64, part: u32, skip: bool) -> Bytes {
    let first = msn - 12;
    let skipped = if skip { 6 } else { 0 };
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.20014\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,HOLD-BACK=6.0,PART-HOLD-BACK=0.60042\n\
         #EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n",
        if skip { 9 } else { 6 }
    );
    if skip {
        s.push_str(&format!("#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n"));
    }
    s.push_str("#EXT-X-MAP:URI=\"media/init-1795600000.mp4\"\n");
    for m in first + skipped..msn {
        s.push_str("#EXT-X-PROGRAM-DATE-TIME:2026-11-25T16:44:56.136Z\n");
        if m + 3 >= msn {
            for p in 0..10 {
                let ind = if p % 5 == 0 { ",INDEPENDENT=YES" } else { "" };
                s.push_str(&format!(
                    "#EXT-X-PART:DURATION=0.20000,URI=\"media/{m}.{p}.m4s\"{ind}\n"
                ));
            }
        }
        s.push_str(&format!("#EXTINF:2.00000,\nmedia/{m}.m4s\n"));
    }
    s.push_str("#EXT-X-PROGRAM-DATE-TIME:2026-11-25T16:44:56.136Z\n");
    for p in 0..=part {
        let ind = if p % 5 == 0 { ",INDEPENDENT=YES" } else { "" };
        s.push_str(&format!(
            "#EXT-X-PART:DURATION=0.20000,URI=\"media/{msn}.{p}.m4s\"{ind}\n"
        ));
    }
    s.push_str(&format!(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"media/{msn}.{}.m4s\"\n",
        part + 1
    ));
    Bytes::from(s)
}

fn now_us() -> HeaderValue {
    HeaderValue::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64,
    )
}

fn query_num(q: &str, name: &str) -> Option<u64> {
    q.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

async fn handle(
    rx: watch::Receiver<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let q = req.uri().query().unwrap_or("");
    let want = query_num(q, "_HLS_msn").map(|m| (m, query_num(q, "_HLS_part").unwrap_or(0) as u32));
    let skip = q.split('&').any(|kv| kv == "_HLS_skip=YES");
    let mut rx = rx;
    let state = match want {
        None => rx.borrow().clone(),
        Some((m, p)) => {
            let wait = rx.wait_for(|s| (s.msn, s.part) >= (m, p));
            match tokio::time::timeout(Duration::from_secs(6), wait).await {
                Ok(Ok(s)) => s.clone(),
                _ => {
                    return Ok(Response::builder()
                        .status(503)
                        .body(Full::new(Bytes::new()))
                        .unwrap())
                }
            }
        }
    };
    // The same response headers as llhls sends for a blocking playlist.
    Ok(Response::builder()
        .header("llhls-published-us", state.published_us)
        .header("content-type", "application/vnd.apple.mpegurl")
        .header("cache-control", "public, max-age=12")
        .header("vary", "Accept-Encoding")
        .header("access-control-allow-origin", "*")
        .header(
            "access-control-expose-headers",
            "Age, Content-Range, Content-Length, Date",
        )
        .body(Full::new(if skip { state.delta } else { state.body }))
        .unwrap())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str, d: &str| llhls_benches::arg(&args, n).unwrap_or(d.to_string());
    let listen = arg("--listen", "127.0.0.1:9090");
    let part_ms: u64 = arg("--part-ms", "200").parse()?;
    let (tx, rx) = watch::channel(State {
        msn: 1_795_600_000,
        part: 0,
        body: render(1_795_600_000, 0, false),
        delta: render(1_795_600_000, 0, true),
        published_us: now_us(),
    });
    let tx = Arc::new(tx);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(part_ms));
        let (mut msn, mut part) = (1_795_600_000u64, 0u32);
        loop {
            tick.tick().await;
            part += 1;
            if part == 10 {
                msn += 1;
                part = 0;
            }
            tx.send_replace(State {
                msn,
                part,
                body: render(msn, part, false),
                delta: render(msn, part, true),
                published_us: now_us(),
            });
        }
    });
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("refserver on {listen}, a part every {part_ms} ms");
    let builder = Arc::new(hyper_util::server::conn::auto::Builder::new(
        TokioExecutor::new(),
    ));
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let rx = rx.clone();
        let b = builder.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(rx.clone(), req));
            let _ = b.serve_connection(TokioIo::new(sock), svc).await;
        });
    }
}
