//! Live streams: one task per stream owns the packager, stores its objects, renders every
//! playlist view once per change, and publishes the result through a `watch` channel.
//!
//! Publish order (rule 46): objects are stored, then the snapshot is swapped, then waiters
//! wake. Anything a published playlist lists can be fetched at that instant.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::HeaderValue;
use llhls_packager::{
    render_media, render_multivariant, ObjectKey, Output, Packager, SkipMode, StreamSnapshot,
    TrackConfig, WallClock,
};
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::rope::Rope;
use crate::stats::{new_gap_parts, StreamStats};

/// A playlist rendered once, plain and gzip'd.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Identity encoding.
    pub plain: Bytes,
    /// gzip encoding.
    pub gzip: Bytes,
}

impl Rendered {
    fn new(text: String) -> Self {
        let mut enc = GzEncoder::new(Vec::with_capacity(text.len() / 3), Compression::fast());
        // Writing into a Vec cannot fail.
        let _ = enc.write_all(text.as_bytes());
        let gzip = enc.finish().unwrap_or_default();
        Rendered {
            plain: Bytes::from(text),
            gzip: Bytes::from(gzip),
        }
    }
}

/// One published state of a stream: the snapshot and every rendered view of it.
#[derive(Debug)]
pub struct Published {
    /// The playlist state.
    pub snapshot: StreamSnapshot,
    /// The multivariant playlist.
    pub multivariant: Rendered,
    /// Per rendition (in snapshot order): its name and its full, `_HLS_skip=YES` and `v2`
    /// views (the delta views only while delta updates apply).
    pub views: Vec<(String, [Option<Rendered>; 3])>,
    /// When the stream task published it (for wake-latency metrics).
    pub at: Instant,
    /// The same instant as Unix microseconds, sent as `llhls-published-us` on playlist
    /// responses so load generators and operators can measure wake latency end to end.
    pub published_us: HeaderValue,
    /// Cache-Control for blocking playlist responses: 6 x TD (rule 53).
    pub blocking_cache: HeaderValue,
    /// Cache-Control for plain playlist reloads: TD/2, at least 1 s.
    pub plain_cache: HeaderValue,
}

impl Published {
    fn render(snapshot: StreamSnapshot, codecs_override: Option<&str>) -> Self {
        let mut mv = render_multivariant(&snapshot);
        if let Some(codecs) = codecs_override {
            if let Some(start) = mv.find("CODECS=\"") {
                if let Some(len) = mv[start + 8..].find('"') {
                    mv.replace_range(start + 8..start + 8 + len, codecs);
                }
            }
        }
        let multivariant = Rendered::new(mv);
        let deltas = snapshot.timing.can_skip_until.is_some() && !snapshot.ended;
        let views = snapshot
            .renditions
            .iter()
            .map(|r| {
                let view = |skip| Some(Rendered::new(render_media(&snapshot, r, skip)));
                let (yes, v2) = if deltas {
                    (view(SkipMode::Yes), view(SkipMode::V2))
                } else {
                    (None, None)
                };
                (r.name.clone(), [view(SkipMode::Full), yes, v2])
            })
            .collect();
        let td = u64::from(snapshot.timing.target_duration);
        let cache = |secs: u64| {
            HeaderValue::from_str(&format!("public, max-age={secs}"))
                .unwrap_or(HeaderValue::from_static("no-cache"))
        };
        Published {
            blocking_cache: cache(6 * td),
            plain_cache: cache((td / 2).max(1)),
            snapshot,
            multivariant,
            views,
            at: Instant::now(),
            published_us: HeaderValue::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros() as u64,
            ),
        }
    }

    /// The rendered view, falling back to the full playlist.
    pub fn view(&self, rendition: &str, skip: SkipMode) -> Option<&Rendered> {
        let (_, views) = self.views.iter().find(|(name, _)| name == rendition)?;
        let i = match skip {
            SkipMode::Full => 0,
            SkipMode::Yes => 1,
            SkipMode::V2 => 2,
        };
        views[i].as_ref().or(views[0].as_ref())
    }
}

/// An object in the store. Cloning it copies no payload.
#[derive(Debug, Clone)]
pub enum Object {
    /// Complete and immutable.
    Complete(Bytes),
    /// A segment still growing part by part (byte-range addressing).
    Growing(Rope),
}

impl Object {
    /// Bytes available so far.
    pub fn len(&self) -> u64 {
        match self {
            Object::Complete(b) => b.len() as u64,
            Object::Growing(rope) => rope.len(),
        }
    }

    /// True when no byte is available.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `[start, end)` of what is available (clamped to it), as slices of the stored
    /// buffers: no payload is copied.
    pub fn slice(&self, start: u64, end: u64) -> Vec<Bytes> {
        match self {
            Object::Complete(b) => {
                let end = end.min(b.len() as u64);
                if start >= end {
                    return Vec::new();
                }
                // `start < end <= b.len()`.
                vec![b.slice(start as usize..end as usize)]
            }
            Object::Growing(rope) => rope.slice(start, end),
        }
    }
}

/// What ingest sends to a stream task.
#[derive(Debug)]
pub enum Command {
    /// One frame and the wall-clock time it arrived.
    Frame(llhls_packager::Frame, WallClock),
    /// The publisher reconnected (new codec configuration when given).
    Discontinuity(Option<Vec<TrackConfig>>, WallClock),
    /// End the stream now (EXT-X-ENDLIST).
    End(WallClock),
}

/// A live stream as the origin sees it.
#[derive(Debug)]
pub struct Stream {
    /// Stream name (`live/NAME` -> `NAME`).
    pub name: String,
    /// Object store: the packager's key (its `Display` is the URI relative to the stream
    /// root) -> bytes.
    pub objects: RwLock<HashMap<ObjectKey, Object>>,
    /// The latest published state; `None` until the first segment completes.
    pub published: watch::Receiver<Option<Arc<Published>>>,
    /// Requests currently held on this stream.
    pub held: AtomicUsize,
    /// The stream task has finished (ENDLIST published, or never went live).
    pub ended: std::sync::atomic::AtomicBool,
    /// Per-stream counters (`/metrics`, `/streams.json`).
    pub stats: StreamStats,
}

impl Stream {
    /// Clones the current published state.
    pub fn current(&self) -> Option<Arc<Published>> {
        self.published.borrow().clone()
    }

    /// The object `key`, if stored (a reference-counted handle: no payload is copied).
    pub fn object(&self, key: &ObjectKey) -> Option<Object> {
        self.objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }
}

/// The ingest side's handle on a live stream. Dropping it ends the stream.
#[derive(Debug)]
pub struct StreamInput {
    tx: mpsc::Sender<Command>,
    /// The stream, for inspection.
    pub stream: Arc<Stream>,
}

impl StreamInput {
    /// Sends a command; waits when the stream task is behind (back-pressure on the publisher).
    /// `Err` when the stream task has stopped.
    pub async fn send(&self, cmd: Command) -> Result<(), Command> {
        self.tx.send(cmd).await.map_err(|e| e.0)
    }
}

/// Starts the task that owns `packager` for stream `name`.
pub(crate) fn spawn_stream(
    name: String,
    packager: Packager,
    metrics: Arc<Metrics>,
    on_gone: impl FnOnce(&Arc<Stream>) + Send + 'static,
    linger: Duration,
    codecs_override: Option<String>,
) -> StreamInput {
    let (tx, mut rx) = mpsc::channel::<Command>(1024);
    let (ptx, prx) = watch::channel(None);
    let stream = Arc::new(Stream {
        name: name.clone(),
        objects: RwLock::new(HashMap::new()),
        published: prx,
        held: AtomicUsize::new(0),
        ended: std::sync::atomic::AtomicBool::new(false),
        stats: StreamStats::default(),
    });
    let task_stream = stream.clone();
    tokio::spawn(async move {
        let mut p = packager;
        let stream = task_stream;
        let span = tracing::info_span!("stream", name = %name);
        let _ = &span;
        metrics.live_streams.fetch_add(1, Ordering::Relaxed);
        let mut errors = 0u64;
        let mut gap_cursor = None;
        loop {
            // No input for 100 ms: let the packager see the time pass (GAP parts on stalls).
            let cmd = match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                Ok(cmd) => cmd,
                Err(_) => {
                    p.handle_timeout(wall_now());
                    let over = codecs_override.as_deref();
                    drain(
                        &mut p,
                        &stream,
                        &ptx,
                        &name,
                        over,
                        &metrics,
                        &mut gap_cursor,
                    );
                    continue;
                }
            };
            let result = match cmd {
                Some(Command::Frame(f, now)) => {
                    stream.stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    let len = f.data.len() as u64;
                    stream.stats.bytes_in.fetch_add(len, Ordering::Relaxed);
                    p.handle_frame(f, now)
                }
                Some(Command::Discontinuity(t, now)) => {
                    let d = &stream.stats.discontinuities;
                    d.fetch_add(1, Ordering::Relaxed);
                    p.handle_discontinuity(t, now)
                }
                // An explicit end, or the ingest side dropped its handle.
                end => {
                    let now = match end {
                        Some(Command::End(now)) => now,
                        _ => wall_now(),
                    };
                    p.handle_end_of_stream(now);
                    let over = codecs_override.as_deref();
                    drain(
                        &mut p,
                        &stream,
                        &ptx,
                        &name,
                        over,
                        &metrics,
                        &mut gap_cursor,
                    );
                    break;
                }
            };
            if let Err(e) = result {
                errors += 1;
                // Log the first few and then every 100th, so a broken publisher cannot flood.
                if errors <= 5 || errors.is_multiple_of(100) {
                    tracing::warn!(stream = %name, errors, "dropped input: {e}");
                }
            }
            drain(
                &mut p,
                &stream,
                &ptx,
                &name,
                codecs_override.as_deref(),
                &metrics,
                &mut gap_cursor,
            );
        }
        stream.ended.store(true, Ordering::Relaxed);
        tracing::info!(stream = %name, "stream ended; keeping the final playlist for {linger:?}");
        metrics.live_streams.fetch_sub(1, Ordering::Relaxed);
        tokio::time::sleep(linger).await;
        on_gone(&stream);
    });
    StreamInput { tx, stream }
}

fn drain(
    p: &mut Packager,
    stream: &Stream,
    ptx: &watch::Sender<Option<Arc<Published>>>,
    name: &str,
    codecs_override: Option<&str>,
    metrics: &Metrics,
    gap_cursor: &mut Option<(u64, usize)>,
) {
    while let Some(out) = p.poll_output() {
        match out {
            Output::Object { key, bytes } => {
                if key.is_part() {
                    metrics.parts_published.fetch_add(1, Ordering::Relaxed);
                }
                let mut objects = stream.objects.write().unwrap_or_else(|e| e.into_inner());
                objects.insert(key, Object::Complete(bytes));
            }
            Output::Append { key, bytes, .. } => {
                metrics.parts_published.fetch_add(1, Ordering::Relaxed);
                let mut objects = stream.objects.write().unwrap_or_else(|e| e.into_inner());
                match objects
                    .entry(key)
                    .or_insert_with(|| Object::Growing(Rope::default()))
                {
                    Object::Growing(rope) => rope.push(bytes),
                    Object::Complete(_) => {}
                }
            }
            Output::Expired(keys) => {
                let mut objects = stream.objects.write().unwrap_or_else(|e| e.into_inner());
                for key in keys {
                    objects.remove(&key);
                }
            }
            Output::Warning(w) => tracing::warn!(stream = %name, "{}", w.for_live_encoder()),
            Output::PlaylistChanged => {
                if let Some(snap) = p.snapshot() {
                    if let Some(main) = snap.renditions.first() {
                        let gaps = new_gap_parts(main, gap_cursor);
                        stream.stats.gap_parts.fetch_add(gaps, Ordering::Relaxed);
                    }
                    let first = ptx.borrow().is_none();
                    let published = Arc::new(Published::render(snap, codecs_override));
                    if first {
                        let s = &published.snapshot;
                        tracing::info!(
                            stream = %name,
                            target_duration = s.timing.target_duration,
                            part_target = s.renditions[0].part_target,
                            "first playlist published"
                        );
                    }
                    ptx.send_replace(Some(published));
                }
            }
        }
    }
}

/// The system wall clock (the origin is the IO shell; the packager never reads clocks).
pub fn wall_now() -> WallClock {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    WallClock(d.as_millis() as i64)
}
