//! Live streams: one task per stream owns the packager, stores its objects, renders every
//! playlist view once per change, and publishes the result through a `watch` channel.
//!
//! Publish order (rule 46): objects are stored, then the snapshot is swapped, then waiters
//! wake. Anything a published playlist lists can be fetched at that instant.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
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

use crate::dvr::{self, DiskFile, Spiller};
use crate::ladder::{Ladder, RungEvent, Step as LadderStep};
use crate::metrics::Metrics;
use crate::record::Recorder;
use crate::rope::Rope;
use crate::stats::{new_gap_parts, StreamStats};

/// A playlist rendered once; gzip'd once, when a client first asks for it.
#[derive(Debug)]
pub struct Rendered {
    /// Identity encoding.
    pub plain: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Rendered {
    fn new(text: String) -> Self {
        Rendered {
            plain: Bytes::from(text),
            gzip: OnceLock::new(),
        }
    }

    /// The gzip encoding (flate2, fast level), compressed on the first call.
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                let mut enc = GzEncoder::new(
                    Vec::with_capacity(self.plain.len() / 3),
                    Compression::fast(),
                );
                // Writing into a Vec cannot fail.
                let _ = enc.write_all(&self.plain);
                Bytes::from(enc.finish().unwrap_or_default())
            })
            .clone()
    }
}

/// One published state of a stream: the snapshot and its rendered views.
///
/// A media playlist view is rendered when a client first asks for it, then kept for every
/// later request of the same state: a change nobody reads costs no rendering, and with a long
/// DVR window (hours) the stream task does not render and compress the whole window's
/// playlist five times a second.
#[derive(Debug)]
pub struct Published {
    /// The playlist state.
    pub snapshot: StreamSnapshot,
    /// The multivariant playlist, rendered on first use ([`Published::multivariant`]).
    multivariant: OnceLock<Rendered>,
    /// The CODECS value that replaces the rendered one (`codecs_override`).
    codecs_override: Option<String>,
    /// Per rendition (in snapshot order): its full, `_HLS_skip=YES` and `v2` views, each
    /// rendered on first use.
    views: Vec<[OnceLock<Rendered>; 3]>,
    /// Delta updates apply (the `_HLS_skip` views differ from the full one).
    deltas: bool,
    /// When the stream task published it (for wake-latency metrics).
    pub at: Instant,
    /// The same instant as Unix microseconds, sent as `llhls-published-us` on playlist
    /// responses so load generators and operators can measure wake latency end to end.
    pub published_us: HeaderValue,
    /// Cache-Control for blocking playlist responses: 6 x TD (rule 53).
    pub blocking_cache: HeaderValue,
    /// Cache-Control for plain playlist reloads: TD/2, at least 1 s.
    pub plain_cache: HeaderValue,
    /// The state published just before this one, while the stream task still keeps it
    /// ([`RECENT_KEPT`]): see [`Published::as_first_answered`].
    earlier: Option<Weak<Published>>,
}

/// How many of its latest published states a stream task keeps alive for
/// [`Published::as_first_answered`], and for how long after they were replaced (a burst of
/// publishes is milliseconds to a few hundred; the states' rendered views stay in memory
/// while they are kept).
const RECENT_KEPT: usize = 8;
const RECENT_FOR: Duration = Duration::from_secs(1);

impl Published {
    fn render(
        snapshot: StreamSnapshot,
        codecs_override: Option<&str>,
        earlier: Option<Weak<Published>>,
    ) -> Self {
        let deltas = snapshot.timing.can_skip_until.is_some() && !snapshot.ended;
        let views = snapshot
            .renditions
            .iter()
            .map(|_| Default::default())
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
            multivariant: OnceLock::new(),
            codecs_override: codecs_override.map(str::to_string),
            views,
            deltas,
            at: Instant::now(),
            published_us: HeaderValue::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros() as u64,
            ),
            earlier,
        }
    }

    /// The state that first answered a held request for part `part` (or segment `msn`) of
    /// `rendition`, when this later one is what its task found on waking: walking back through
    /// the states published just before this one (those the stream task still keeps), the
    /// oldest that satisfies the request. A request that waited for a part is so answered with
    /// the playlist as it stood when that part was published, however late its task ran: on a
    /// busy machine (or after a publisher's burst) a segment's last part and the next
    /// segment's first part can be published a few milliseconds apart, and a waiter woken
    /// after both would otherwise get the update that completes the segment while its player
    /// may still be loading the part before the last, which hls.js 1.7.4 takes for the whole
    /// segment loaded (a 0.2 s hole and a stall; README, player notes). A request read only
    /// after its part existed gets the same when that part is less than a part old
    /// (`playlist::reload`). The answer to a blocking request then no longer depends on when
    /// its task ran: every edge and node builds the same playlist for the same URI. An ended
    /// stream answers with its last state.
    pub fn as_first_answered(
        self: &Arc<Self>,
        rendition: &str,
        msn: u64,
        part: Option<u32>,
    ) -> Arc<Published> {
        let mut first = self.clone();
        if self.snapshot.ended {
            return first;
        }
        let mut cur = self.earlier.as_ref().and_then(Weak::upgrade);
        while let Some(p) = cur {
            let satisfied = !p.snapshot.ended
                && p.snapshot
                    .rendition(rendition)
                    .is_some_and(|r| r.satisfies(msn, part));
            if !satisfied {
                break;
            }
            cur = p.earlier.as_ref().and_then(Weak::upgrade);
            first = p;
        }
        first
    }

    /// The multivariant playlist, rendered on first use: its BANDWIDTH values are measured
    /// over the whole window, which with a DVR window of hours cost more than the rest of a
    /// change, on every change, read by nobody most of the time.
    pub fn multivariant(&self) -> &Rendered {
        self.multivariant.get_or_init(|| {
            let mut mv = render_multivariant(&self.snapshot);
            if let Some(codecs) = &self.codecs_override {
                if let Some(start) = mv.find("CODECS=\"") {
                    if let Some(len) = mv[start + 8..].find('"') {
                        mv.replace_range(start + 8..start + 8 + len, codecs);
                    }
                }
            }
            Rendered::new(mv)
        })
    }

    /// The rendered view (the full playlist when delta updates do not apply), rendered on
    /// first use.
    pub fn view(&self, rendition: &str, skip: SkipMode) -> Option<&Rendered> {
        let i = self
            .snapshot
            .renditions
            .iter()
            .position(|r| r.name == rendition)?;
        let r = &self.snapshot.renditions[i];
        let skip = if self.deltas { skip } else { SkipMode::Full };
        let slot = match skip {
            SkipMode::Full => 0,
            SkipMode::Yes => 1,
            SkipMode::V2 => 2,
        };
        let views = self.views.get(i)?;
        Some(views[slot].get_or_init(|| Rendered::new(render_media(&self.snapshot, r, skip))))
    }
}

/// An object in the store. Cloning it copies no payload.
#[derive(Debug, Clone)]
pub enum Object {
    /// Complete and immutable.
    Complete(Bytes),
    /// A segment still growing part by part (byte-range addressing).
    Growing(Rope),
    /// A DVR segment written to disk (read it with [`DiskFile::read`]).
    OnDisk(Arc<DiskFile>),
}

impl Object {
    /// Bytes available so far.
    pub fn len(&self) -> u64 {
        match self {
            Object::Complete(b) => b.len() as u64,
            Object::Growing(rope) => rope.len(),
            Object::OnDisk(file) => file.len,
        }
    }

    /// True when no byte is available.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `[start, end)` of what is available (clamped to it), as slices of the stored
    /// buffers: no payload is copied. Nothing for a file on disk (read it instead).
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
            Object::OnDisk(_) => Vec::new(),
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

/// What publishes a stream, so its log lines give advice that fits (a keyframe interval is
/// set differently in an RTMP encoder, a WHIP publisher and a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Publisher {
    /// A live encoder over RTMP (OBS, ffmpeg, a hardware encoder).
    #[default]
    Encoder,
    /// A WHIP (WebRTC) publisher, which the server asks for keyframes (RTCP PLI).
    Whip,
    /// A media file (the demo stream's loop).
    File,
}

impl Publisher {
    fn from_u8(v: u8) -> Publisher {
        match v {
            1 => Publisher::Whip,
            2 => Publisher::File,
            _ => Publisher::Encoder,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Publisher::Encoder => 0,
            Publisher::Whip => 1,
            Publisher::File => 2,
        }
    }
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
    /// What publishes it now ([`Publisher`]; a takeover or reconnect may change it).
    publisher: std::sync::atomic::AtomicU8,
    /// Told when a new stream of the same name replaces this ended one: it goes at once.
    pub(crate) replaced: tokio::sync::Notify,
    /// Once ended: until when (Unix milliseconds) its final playlists are kept; 0 before.
    kept_until: std::sync::atomic::AtomicI64,
}

impl Stream {
    /// What publishes the stream now.
    pub fn publisher(&self) -> Publisher {
        Publisher::from_u8(self.publisher.load(Ordering::Relaxed))
    }

    /// Says what publishes the stream from now on (for the advice in its warnings).
    pub fn set_publisher(&self, p: Publisher) {
        self.publisher.store(p.to_u8(), Ordering::Relaxed);
    }

    /// Once the stream has ended: until when its final playlists (with a DVR window, the
    /// VOD of its window) and its segments are kept, unless a new publish of the name
    /// replaces it first. `None` while it is live.
    pub fn kept_until(&self) -> Option<WallClock> {
        match self.kept_until.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(WallClock(ms)),
        }
    }

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

/// How long a stream with a ladder may hold its first playlist for the rungs to publish
/// theirs (a rung lags its source by its encoder delay: milliseconds). A rung that has not
/// caught up by then is withdrawn, so the multivariant playlist lists the same renditions
/// from the first response on.
const LADDER_FIRST_WAIT: Duration = Duration::from_secs(2);

/// The stream task's state: the source packager, the optional ladder, and where they publish.
struct Task {
    p: Packager,
    ladder: Option<Ladder>,
    stream: Arc<Stream>,
    ptx: watch::Sender<Option<Arc<Published>>>,
    name: String,
    codecs_override: Option<String>,
    metrics: Arc<Metrics>,
    gap_cursor: Option<(u64, usize)>,
    /// The source has announced its first playlist.
    source_live: Option<Instant>,
    /// Something changed since the last publish.
    pending: bool,
    /// DVR storage on disk, when the origin has a DVR directory.
    spiller: Option<Spiller>,
    /// The stream's recording, when it is recorded.
    recorder: Option<Recorder>,
    /// The latest published states (at most [`RECENT_KEPT`]), kept alive for
    /// [`Published::as_first_answered`].
    recent: VecDeque<Arc<Published>>,
}

/// Per-stream settings from the origin's configuration.
pub(crate) struct StreamSettings {
    /// How long the final playlist stays after the end.
    pub(crate) linger: Duration,
    /// Test only: the CODECS string to advertise.
    pub(crate) codecs_override: Option<String>,
    /// This stream's DVR directory, if segments past the live window go to disk.
    pub(crate) dvr_dir: Option<std::path::PathBuf>,
    /// Its recording, when it is recorded.
    pub(crate) recorder: Option<Recorder>,
}

/// Starts the task that owns `packager` (and `ladder`'s rung packagers) for stream `name`.
pub(crate) fn spawn_stream(
    name: String,
    packager: Packager,
    ladder: Option<(Ladder, mpsc::UnboundedReceiver<RungEvent>)>,
    metrics: Arc<Metrics>,
    on_gone: impl FnOnce(&Arc<Stream>) + Send + 'static,
    settings: StreamSettings,
) -> StreamInput {
    let StreamSettings {
        linger,
        codecs_override,
        dvr_dir,
        recorder,
    } = settings;
    let (tx, mut rx) = mpsc::channel::<Command>(1024);
    let (ptx, prx) = watch::channel(None);
    let stream = Arc::new(Stream {
        name: name.clone(),
        objects: RwLock::new(HashMap::new()),
        published: prx,
        held: AtomicUsize::new(0),
        ended: std::sync::atomic::AtomicBool::new(false),
        stats: StreamStats::default(),
        publisher: std::sync::atomic::AtomicU8::new(Publisher::default().to_u8()),
        replaced: tokio::sync::Notify::new(),
        kept_until: std::sync::atomic::AtomicI64::new(0),
    });
    let task_stream = stream.clone();
    let (ladder, mut events) = match ladder {
        Some((l, e)) => (Some(l), Some(e)),
        None => (None, None),
    };
    let spiller = dvr_dir.map(|dir| Spiller::start(dir, stream.clone(), metrics.clone()));
    tokio::spawn(async move {
        let mut t = Task {
            p: packager,
            ladder,
            stream: task_stream,
            ptx,
            name,
            codecs_override,
            metrics,
            gap_cursor: None,
            source_live: None,
            pending: false,
            spiller,
            recorder,
            recent: VecDeque::with_capacity(RECENT_KEPT),
        };
        let name = t.name.clone();
        t.metrics.live_streams.fetch_add(1, Ordering::Relaxed);
        let mut errors = 0u64;
        enum Input {
            Cmd(Option<Command>),
            Idle,
            Rung(Option<RungEvent>),
        }
        loop {
            // No input for 100 ms: let the packager see the time pass (GAP parts on stalls).
            let idle = tokio::time::timeout(Duration::from_millis(100), rx.recv());
            let input = match events.as_mut() {
                Some(ev) => tokio::select! {
                    cmd = idle => cmd.map_or(Input::Idle, Input::Cmd),
                    e = ev.recv() => Input::Rung(e),
                },
                None => idle.await.map_or(Input::Idle, Input::Cmd),
            };
            let result = match input {
                Input::Idle => {
                    let now = wall_now();
                    t.p.handle_timeout(now);
                    if let Some(l) = t.ladder.as_mut() {
                        let step = l.timeout(now);
                        t.apply(step);
                    }
                    t.drain();
                    t.publish();
                    continue;
                }
                Input::Rung(Some(e)) => {
                    // Every rung's encoding of a frame arrives at about the same time: take
                    // what is already there, then publish once.
                    let mut next = Some(e);
                    while let Some(e) = next.take() {
                        if let Some(step) = t.ladder.as_mut().map(|l| l.event(e)) {
                            t.apply(step);
                        }
                        next = events.as_mut().and_then(|ev| ev.try_recv().ok());
                    }
                    t.publish();
                    continue;
                }
                Input::Rung(None) => {
                    // The transcoder stopped: every rung still on air is withdrawn.
                    events = None;
                    if let Some(l) = t.ladder.as_mut() {
                        let step = l.withdraw_all("the transcoder stopped");
                        t.apply(step);
                    }
                    t.publish();
                    continue;
                }
                Input::Cmd(Some(Command::Frame(f, now))) => {
                    t.stream.stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    let len = f.data.len() as u64;
                    t.stream.stats.bytes_in.fetch_add(len, Ordering::Relaxed);
                    if let Some(l) = t.ladder.as_mut() {
                        let step = l.frame(&f, now);
                        t.apply(step);
                    }
                    t.p.handle_frame(f, now)
                }
                Input::Cmd(Some(Command::Discontinuity(tracks, now))) => {
                    let d = &t.stream.stats.discontinuities;
                    d.fetch_add(1, Ordering::Relaxed);
                    if let Some(l) = t.ladder.as_mut() {
                        let step = l.discontinuity(tracks.clone(), now);
                        t.apply(step);
                    }
                    t.p.handle_discontinuity(tracks, now)
                }
                // An explicit end, or the ingest side dropped its handle.
                Input::Cmd(end) => {
                    let now = match end {
                        Some(Command::End(now)) => now,
                        _ => wall_now(),
                    };
                    if let Some(l) = t.ladder.as_mut() {
                        // The rungs' last frames are still in their encoders: let them out
                        // (bounded), so every rendition ends on the same segment.
                        l.finish();
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                        while let Some(ev) = events.as_mut() {
                            match tokio::time::timeout_at(deadline, ev.recv()).await {
                                Ok(Some(e)) => {
                                    let step = t.ladder.as_mut().map(|l| l.event(e));
                                    if let Some(step) = step {
                                        t.apply(step);
                                    }
                                }
                                _ => break,
                            }
                        }
                        if let Some(l) = t.ladder.as_mut() {
                            let step = l.end(now);
                            t.apply(step);
                        }
                    }
                    t.p.handle_end_of_stream(now);
                    t.drain();
                    t.publish();
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
            t.drain();
            t.publish();
        }
        let stream = t.stream.clone();
        let until = wall_now()
            .0
            .saturating_add(linger.as_millis().min(i64::MAX as u128) as i64);
        stream.kept_until.store(until.max(1), Ordering::Relaxed);
        stream.ended.store(true, Ordering::Relaxed);
        tracing::info!(stream = %name, "stream ended; keeping the final playlist for {linger:?}");
        t.metrics.live_streams.fetch_sub(1, Ordering::Relaxed);
        let spiller = t.spiller.take();
        let recorder = t.recorder.take();
        drop(t);
        if let Some(spiller) = &spiller {
            // The final playlist stays for `linger` (with a DVR window, the time an ended
            // stream is kept): the segments still in memory go to disk too, so an ended
            // stream holds only its last parts in memory however long it is kept.
            let in_memory: Vec<(ObjectKey, Bytes)> = stream
                .objects
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter_map(|(k, o)| match o {
                    Object::Complete(b) if k.is_segment() => Some((k.clone(), b.clone())),
                    _ => None,
                })
                .collect();
            for (key, bytes) in in_memory {
                spiller.spill(key, bytes);
            }
        }
        if let Some(r) = recorder {
            // Closes the recording as VOD once its last segments are on disk.
            r.finish().await;
        }
        // Until retention removes it, or a new publish of the same name replaces it.
        tokio::select! {
            _ = tokio::time::sleep(linger) => {}
            _ = stream.replaced.notified() => {
                tracing::info!(stream = %name, "a new stream of the same name replaces the ended one");
            }
        }
        on_gone(&stream);
        if let Some(spiller) = spiller {
            // The stream is gone: so are its DVR segments (recording is not DVR).
            stream
                .objects
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            spiller.remove().await;
        }
    });
    StreamInput { tx, stream }
}

impl Task {
    /// Stores one output of a packager (the source's, or a rung's already renamed).
    fn store(&mut self, out: Output) {
        let stream = &self.stream;
        let metrics = &self.metrics;
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
                    Object::Complete(_) | Object::OnDisk(_) => {}
                }
            }
            Output::Expired(keys) => {
                let mut objects = stream.objects.write().unwrap_or_else(|e| e.into_inner());
                for key in keys {
                    if let Some(Object::OnDisk(file)) = objects.remove(&key) {
                        dvr::delete(file);
                    }
                }
            }
            // Without a DVR directory the segment stays in memory.
            Output::Spill(key) => {
                if let Some(spiller) = &self.spiller {
                    if let Some(Object::Complete(bytes)) = stream.object(&key) {
                        spiller.spill(key, bytes);
                    }
                }
            }
            Output::Warning(w) => {
                let advice = match stream.publisher() {
                    Publisher::Encoder => w.for_live_encoder(),
                    Publisher::Whip => w.for_whip_publisher(),
                    Publisher::File => w.for_file(),
                };
                tracing::warn!(stream = %self.name, "{advice}");
            }
            Output::PlaylistChanged => {
                if self.source_live.is_none() {
                    self.source_live = Some(Instant::now());
                }
                self.pending = true;
            }
        }
    }

    /// Drains the source packager's outputs into the store, after shortening the DVR window
    /// past any segment the disk could not take.
    fn drain(&mut self) {
        let mut failed = None;
        if let Some(spiller) = self.spiller.as_mut() {
            while let Ok(msn) = spiller.failed.try_recv() {
                failed = failed.max(Some(msn));
            }
        }
        if let Some(msn) = failed {
            self.p.drop_dvr_through(msn);
            if let Some(step) = self.ladder.as_mut().map(|l| l.drop_dvr_through(msn)) {
                self.apply(step);
            }
        }
        while let Some(out) = self.p.poll_output() {
            self.store(out);
        }
    }

    /// Applies a ladder step: the rungs' objects and expiries; the objects of a rung withdrawn
    /// before it was ever listed removed (a listed one's stay until they expire).
    fn apply(&mut self, step: LadderStep) {
        for out in step.outputs {
            self.store(out);
        }
        if !step.withdrawn.is_empty() {
            let n = step.withdrawn.len() as u64;
            self.metrics.rungs_withdrawn.fetch_add(n, Ordering::Relaxed);
        }
        if !step.removed.is_empty() {
            let mut objects = self
                .stream
                .objects
                .write()
                .unwrap_or_else(|e| e.into_inner());
            objects.retain(|k, _| !step.removed.iter().any(|n| n == k.rendition()));
        }
        if step.changed {
            self.pending = true;
        }
    }

    /// Publishes the current state if anything changed since the last publish and the source
    /// has announced its first playlist (objects are stored before: rule 46).
    fn publish(&mut self) {
        let Some(live_since) = self.source_live else {
            return;
        };
        if !self.pending {
            return;
        }
        let first = self.ptx.borrow().is_none();
        let ended = self.p.timing().is_some() && self.p.has_ended();
        if first && !ended {
            if let Some(l) = self.ladder.as_mut() {
                if !l.all_live() {
                    if live_since.elapsed() < LADDER_FIRST_WAIT {
                        return;
                    }
                    let step = l.withdraw_not_live();
                    self.apply(step);
                }
            }
        }
        let Some(source) = self.p.snapshot() else {
            return;
        };
        self.pending = false;
        if let Some(main) = source.renditions.first() {
            let gaps = new_gap_parts(main, &mut self.gap_cursor);
            self.stream
                .stats
                .gap_parts
                .fetch_add(gaps, Ordering::Relaxed);
        }
        let snap = match self.ladder.as_mut() {
            Some(l) => {
                let (snap, step) = l.combine(&source);
                self.apply(step);
                snap
            }
            None => source,
        };
        let earlier = self.recent.back().map(Arc::downgrade);
        let published = Arc::new(Published::render(
            snap,
            self.codecs_override.as_deref(),
            earlier,
        ));
        self.recent.push_back(published.clone());
        while self.recent.len() > RECENT_KEPT
            || self
                .recent
                .get(1)
                .is_some_and(|next| next.at.elapsed() > RECENT_FOR)
        {
            self.recent.pop_front();
        }
        if let Some(r) = self.recorder.as_mut() {
            r.observe(&published, &self.stream);
        }
        if first {
            let s = &published.snapshot;
            let renditions: Vec<&str> = s.renditions.iter().map(|r| r.name.as_str()).collect();
            tracing::info!(
                stream = %self.name,
                target_duration = s.timing.target_duration,
                part_target = s.renditions[0].part_target,
                renditions = %renditions.join(","),
                "first playlist published"
            );
        }
        self.ptx.send_replace(Some(published));
    }
}

/// The system wall clock (the origin is the IO shell; the packager never reads clocks).
pub fn wall_now() -> WallClock {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    WallClock(d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llhls_packager::synth::Publisher as Synth;
    use llhls_packager::PackagerConfig;

    /// The multivariant playlist is not rendered by a publish (its BANDWIDTH values read the
    /// whole window) but on first use, with the CODECS override applied, once per state.
    #[test]
    fn the_multivariant_playlist_is_rendered_on_first_use() {
        let mut publisher = Synth::new(30.0, 30);
        let mut p = Packager::new(PackagerConfig::default(), publisher.tracks()).unwrap();
        while !p.is_live() {
            let (f, w) = publisher.next_frame();
            p.handle_frame(f, w).unwrap();
        }
        let snap = p.snapshot().unwrap();
        let want = render_multivariant(&snap);
        let published = Published::render(snap.clone(), None, None);
        assert!(
            published.multivariant.get().is_none(),
            "rendered by the publish"
        );
        assert_eq!(published.multivariant().plain, want.as_bytes());
        let first = published.multivariant().plain.as_ptr();
        assert_eq!(published.multivariant().plain.as_ptr(), first, "once");
        let overridden = Published::render(snap, Some("avc1.640028"), None);
        let text = String::from_utf8_lossy(&overridden.multivariant().plain).into_owned();
        assert!(text.contains("CODECS=\"avc1.640028\""), "{text}");
    }
}
