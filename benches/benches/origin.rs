//! Criterion bench: the origin serving byte ranges of a growing segment (byte-range addressing),
//! called in-process through its `tower::Service` with no socket. Reports requests/s, and
//! before timing, per request: the payload bytes copied (body bytes that do not point into the
//! stored parts) and the bytes allocated (a counting global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use llhls_origin::live::Object;
use llhls_origin::{Body, Command, Origin, OriginConfig, StreamInput};
use llhls_packager::synth::Publisher;
use llhls_packager::{Addressing, Packager, PackagerConfig};
use tower::ServiceExt;

/// Counts the bytes allocated, to report allocation per request.
struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counter is a relaxed atomic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Live {
    origin: Arc<Origin>,
    input: StreamInput,
    publisher: Publisher,
}

impl Live {
    async fn feed(&mut self, frames: usize) {
        for _ in 0..frames {
            let (f, w) = self.publisher.next_frame();
            self.input
                .send(Command::Frame(f, w))
                .await
                .expect("stream task runs");
        }
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    /// The growing segment's URI (relative to the stream), its byte length, and the last
    /// part's byte range (offset, length) as the playlist lists it.
    fn growing(&self) -> (String, u64, (u64, u64)) {
        let p = self.input.stream.current().expect("published");
        let open = p.snapshot.renditions[0]
            .open
            .as_ref()
            .expect("an open segment");
        let (len, off) = open
            .parts
            .last()
            .and_then(|part| part.byterange)
            .expect("a byte-range part");
        (open.uri.clone(), open.bytes, (off, len))
    }
}

/// The stored chunks of the object at `uri` (to tell a reference from a copy).
fn stored_chunks(live: &Live, uri: &str) -> Vec<Bytes> {
    let Ok(key) = uri.parse() else {
        return Vec::new();
    };
    match live.input.stream.object(&key) {
        Some(Object::Growing(rope)) => rope.parts().to_vec(),
        Some(Object::Complete(b)) => vec![b],
        Some(Object::OnDisk(_)) | None => Vec::new(),
    }
}

async fn get(origin: &Arc<Origin>, uri: &str, range: &str) -> Response<Body> {
    let req = Request::builder()
        .uri(uri)
        .header("range", range)
        .body(Body::empty())
        .expect("a valid request");
    origin
        .service()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {})
}

/// The body's data frames.
async fn frames(resp: Response<Body>) -> Vec<Bytes> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(Ok(f)) = body.frame().await {
        if let Ok(d) = f.into_data() {
            out.push(d);
        }
    }
    out
}

/// Body bytes whose memory is not inside one of `stored`: copied for this response.
fn copied(frames: &[Bytes], stored: &[Bytes]) -> u64 {
    frames
        .iter()
        .filter(|f| {
            let (a, b) = (f.as_ptr() as usize, f.as_ptr() as usize + f.len());
            !stored.iter().any(|s| {
                let (sa, sb) = (s.as_ptr() as usize, s.as_ptr() as usize + s.len());
                sa <= a && b <= sb
            })
        })
        .map(|f| f.len() as u64)
        .sum()
}

fn byte_ranges(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut live = rt.block_on(async {
        let origin = Origin::new(OriginConfig::default());
        let publisher = Publisher::new(30.0, 60);
        let config = PackagerConfig {
            addressing: Addressing::ByteRange,
            ..PackagerConfig::default()
        };
        let p = Packager::new(config, publisher.tracks()).expect("a packager");
        let input = origin.create_stream("bench", p).expect("a new stream");
        let mut live = Live {
            origin,
            input,
            publisher,
        };
        // One closed segment, then half of the next (2 s GOP at 30 fps): parts in a growing one.
        live.feed(77 * 3).await;
        live
    });
    let (seg, bytes, (off, len)) = live.growing();
    let uri = format!("/live/bench/{seg}");
    let cases = [
        (
            "last part of the growing segment",
            format!("bytes={off}-{}", off + len - 1),
            len,
        ),
        (
            "all of the growing segment so far",
            format!("bytes=0-{}", bytes - 1),
            bytes,
        ),
    ];
    for (name, range, expect) in &cases {
        let (resp_frames, allocated) = rt.block_on(async {
            let before = ALLOCATED.load(Ordering::Relaxed);
            let r = get(&live.origin, &uri, range).await;
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{name}");
            let f = frames(r).await;
            (f, ALLOCATED.load(Ordering::Relaxed) - before)
        });
        let sent: u64 = resp_frames.iter().map(|f| f.len() as u64).sum();
        assert_eq!(sent, *expect, "{name}");
        let stored = stored_chunks(&live, &seg);
        println!(
            "origin/{name}: {sent} payload bytes in {} frame(s); copied per request: {} bytes; \
             allocated per request: {allocated} bytes",
            resp_frames.len(),
            copied(&resp_frames, &stored),
        );
    }
    // RFC 8673: an open-ended request at the preload hint gets the next part when it completes.
    rt.block_on(async {
        let p = live.input.stream.current().expect("published");
        let hint = p.snapshot.renditions[0].preload_hint.clone().expect("a hint");
        let start = hint.byterange_start.expect("a byte-range hint");
        let r = get(
            &live.origin,
            &format!("/live/bench/{}", hint.uri),
            &format!("bytes={start}-9007199254740991"),
        )
        .await;
        let mut body = r.into_body();
        live.feed(10).await;
        let mut first = Vec::new();
        if let Some(Ok(f)) = body.frame().await {
            first.extend(f.into_data().ok());
        }
        let stored = stored_chunks(&live, &hint.uri);
        let sent: u64 = first.iter().map(|f| f.len() as u64).sum();
        println!(
            "origin/open-ended hint: first frame {sent} bytes; copied per viewer per part: {} bytes",
            copied(&first, &stored)
        );
    });
    let mut g = c.benchmark_group("origin");
    g.throughput(Throughput::Elements(1));
    for (name, range, _) in &cases {
        g.bench_function(format!("byte range: {name}"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let r = get(&live.origin, &uri, range).await;
                    black_box(frames(r).await)
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, byte_ranges);
criterion_main!(benches);
