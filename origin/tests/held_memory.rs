//! Heap held per HTTP/1.1 viewer: N keep-alive connections on loopback, each makes plain
//! playlist requests and then a blocking reload that is held. A counting allocator measures the
//! live heap bytes per connection (by allocation size, to name what holds them) and what each
//! held request adds. The bound catches a change that makes every held viewer heavier, such as
//! a held request's connection going through hyper's HTTP/1.1 buffers again (benches/README.md, "Memory per held viewer").

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use llhls_origin::server::{serve, ServerConfig};
use llhls_origin::{Command, Origin, OriginConfig};
use llhls_packager::synth::Publisher;
use llhls_packager::{Packager, PackagerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live bytes by exact size class (sizes up to 64 KB, in 16-byte steps).
static BY_SIZE: [AtomicIsize; 4097] = [const { AtomicIsize::new(0) }; 4097];

fn class(size: usize) -> usize {
    (size / 16).min(4096)
}

// SAFETY: every call is forwarded unchanged to `System`; the counter is a relaxed atomic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        BY_SIZE[class(l.size())].fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        BY_SIZE[class(l.size())].fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with `l` (every allocation goes there).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        BY_SIZE[class(l.size())].fetch_sub(l.size() as isize, Ordering::Relaxed);
        BY_SIZE[class(new)].fetch_add(new as isize, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and `new` is the caller's valid new size.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Reads one response with a Content-Length body.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])
                .unwrap()
                .to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_per_held_http1_viewer() {
    let lean = held_viewer_heap(true).await;
    // Today (the lean HTTP/1.1 path, `origin/src/h1.rs`): about 6 KB in all, the server's
    // connection task and its boxed state ~2.5 KB, the request's future and wait ~1.5 KB, and
    // the client ends of the sockets.
    assert!(
        lean < 12_000.0,
        "{lean:.0} B of heap per held HTTP/1.1 viewer"
    );
    // The same viewers through hyper (`lean_http1: false`) cost ~24 KB: 8 KB read buffer, 8 KB
    // write buffer, 1.2 KB of cached response headers (benches/README.md, "Memory per held
    // viewer"). The measurement sees that difference, so the bound above can fail.
    let hyper = held_viewer_heap(false).await;
    assert!(
        hyper > lean + 10_000.0,
        "through hyper {hyper:.0} B vs lean {lean:.0} B per held viewer"
    );
}

/// Heap bytes per held viewer (both ends of its connection) with the lean HTTP/1.1 path on or
/// off.
async fn held_viewer_heap(lean_http1: bool) -> f64 {
    const N: usize = 300;
    let origin = Origin::new(OriginConfig::default());
    let mut publisher = Publisher::new(30.0, 30);
    let p = Packager::new(PackagerConfig::default(), publisher.tracks()).unwrap();
    let input = origin.create_stream("cam", p).unwrap();
    for _ in 0..77 * 4 {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
    }
    while input.stream.current().is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        origin,
        listener,
        ServerConfig {
            lean_http1,
            ..ServerConfig::default()
        },
        std::future::pending(),
    ));
    let plain =
        b"GET /live/cam/media.m3u8 HTTP/1.1\r\nHost: x\r\nUser-Agent: probe\r\nAccept: */*\r\n\r\n";
    // Warm up (lazily built statics, the runtime's own buffers).
    {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        s.write_all(plain).await.unwrap();
        read_response(&mut s, &mut buf).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = LIVE.load(Ordering::Relaxed);
    let mut conns = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..N {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = LIVE.load(Ordering::Relaxed);
    let snap = |v: &mut Vec<isize>| {
        v.clear();
        v.extend(BY_SIZE.iter().map(|a| a.load(Ordering::Relaxed)));
    };
    let mut at_idle = Vec::new();
    snap(&mut at_idle);
    let mut after_one = 0;
    for round in 0..3 {
        for s in conns.iter_mut() {
            s.write_all(plain).await.unwrap();
            read_response(s, &mut buf).await;
        }
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            after_one = LIVE.load(Ordering::Relaxed);
            let mut now = Vec::new();
            snap(&mut now);
            for (i, (a, b)) in at_idle.iter().zip(&now).enumerate() {
                let d = (b - a) / N as isize;
                if d.abs() >= 64 {
                    eprintln!("  size {}..{}: {d:+} B per connection", i * 16, i * 16 + 15);
                }
            }
        }
    }
    // A new part now, so that the stream does not time out into GAP parts (which would
    // release the held requests) while the blocking requests are sent; they wait for the
    // segment after the open one, which no part completes.
    let last = || {
        input.stream.current().unwrap().snapshot.renditions[0]
            .last_part()
            .unwrap()
    };
    let before_feed = last();
    while last() == before_feed {
        let (f, w) = publisher.next_frame();
        input.send(Command::Frame(f, w)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (msn, _) = last();
    let blocking = format!(
        "GET /live/cam/media.m3u8?_HLS_msn={} HTTP/1.1\r\nHost: x\r\nUser-Agent: probe\r\nAccept: */*\r\n\r\n",
        msn + 1
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_plain = LIVE.load(Ordering::Relaxed);
    eprintln!(
        "idle connection {:.0} B (both ends), after one request +{:.0} B, after three +{:.0} B",
        (idle - before) as f64 / N as f64,
        (after_one - idle) as f64 / N as f64,
        (after_plain - after_one) as f64 / N as f64
    );
    for s in conns.iter_mut() {
        s.write_all(blocking.as_bytes()).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while input.stream.held.load(Ordering::Relaxed) < N {
        assert!(Instant::now() < deadline, "not all held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = LIVE.load(Ordering::Relaxed);
    let per_conn = (after_plain - before) as f64 / N as f64;
    let per_held = (held - after_plain) as f64 / N as f64;
    eprintln!(
        "lean_http1 {lean_http1}: heap per keep-alive connection after 3 requests: {per_conn:.0} B; a held request adds {per_held:.0} B; total {:.0} B per held viewer",
        per_conn + per_held
    );
    drop(conns);
    per_conn + per_held
}
