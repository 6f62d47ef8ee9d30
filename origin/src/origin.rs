//! The origin's state: live streams, pages, nested services, metrics sources, the shutdown
//! signal and the per-stream limit on held requests. Request handling is in the modules named
//! for each job (`router`, `playlist`, `media`, `growing`, ...).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use llhls_packager::{Layout, Packager, PackagerConfig, PackagerError, TrackConfig};
use tokio::sync::watch;

use crate::body::Body;
use crate::error::Error;
use crate::ladder::{Ladder, LadderFactory, RungEvent};
use crate::live::{spawn_stream, Published, Stream, StreamInput, StreamSettings};
use crate::metrics::Metrics;
use crate::router::{router, NestedService, OriginService, RequestBody};

/// Origin settings.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Held requests (blocking playlists + hinted parts) allowed per stream.
    pub max_held_per_stream: usize,
    /// How long an ended stream keeps serving its final playlist.
    pub ended_linger: Duration,
    /// With a DVR window: how long an ended stream's playlists (the whole window, with
    /// EXT-X-ENDLIST) and its segments on disk are kept, when longer than `ended_linger`.
    /// A new publish of the same name replaces it at once.
    pub dvr_keep_ended: Option<Duration>,
    /// Test only: advertise this CODECS string in multivariant playlists instead of the real
    /// one, so player tests can show that they catch a broken stream.
    pub codecs_override: Option<String>,
    /// Where DVR segments past the live window are written (`None`: they stay in memory).
    /// Call [`crate::dvr::prepare`] on it first.
    pub dvr_dir: Option<std::path::PathBuf>,
    /// Recordings (`None`: nothing is recorded): which streams, where, retention.
    pub recordings: Option<Arc<crate::record::Recordings>>,
    /// Held requests allowed per client IP (0: no limit). Off by default: behind a CDN one
    /// edge address carries many viewers.
    pub max_held_per_ip: usize,
    /// Playback tokens (`None`: streams are public): see [`crate::token`].
    pub playback_tokens: Option<Arc<crate::token::PlaybackTokens>>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            max_held_per_stream: 50_000,
            ended_linger: Duration::from_secs(60),
            dvr_keep_ended: None,
            codecs_override: None,
            dvr_dir: None,
            recordings: None,
            max_held_per_ip: 0,
            playback_tokens: None,
        }
    }
}

/// Per-stream choices made when a publish is admitted (by the publish webhook): they apply to
/// the next stream of that name that starts. `None` keeps the server-wide setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Record this stream (needs recording configured: `record` set to some pattern).
    pub record: Option<bool>,
    /// Give this stream the ABR ladder (needs a ladder configured).
    pub ladder: Option<bool>,
}

/// What the origin says about a stream's life, for the lifecycle webhook (see
/// [`Origin::set_event_sink`]).
#[derive(Debug, Clone)]
pub enum StreamEvent {
    /// The stream published its first playlist.
    Started {
        /// Stream name.
        stream: String,
        /// What publishes it: `encoder` (RTMP or SRT), `whip` or `file`.
        publisher: &'static str,
        /// RFC 6381 codecs of every rendition.
        codecs: Vec<String>,
        /// Picture size of the source.
        resolution: Option<(u32, u32)>,
        /// Frame rate of the source.
        frame_rate: Option<f64>,
        /// Rendition names (the source's, then the ladder's rungs, then audio).
        renditions: Vec<String>,
    },
    /// The stream ended (EXT-X-ENDLIST): its publisher stopped, or did not come back within
    /// the grace period.
    Ended {
        /// Stream name.
        stream: String,
        /// Seconds from the first playlist to the end.
        duration_secs: f64,
        /// Payload bytes received from its publishers.
        bytes_in: u64,
        /// Frames received from its publishers.
        frames_in: u64,
        /// Reconnects, takeovers and codec changes.
        discontinuities: u64,
        /// The recording's playlist path (`/recordings/NAME/ID/index.m3u8`), when recorded.
        recording: Option<String>,
    },
}

/// Receives [`StreamEvent`]s (it must not block: queue and return).
pub type EventSink = Arc<dyn Fn(StreamEvent) + Send + Sync>;

/// A stream name is already live.
#[derive(Debug, thiserror::Error)]
#[error("stream {0} is already live")]
pub struct AlreadyLive(pub String);

/// Why a stream could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A stream of that name is live.
    #[error(transparent)]
    AlreadyLive(#[from] AlreadyLive),
    /// The packager refused the tracks or the configuration.
    #[error("starting the packager: {0}")]
    Packager(#[from] PackagerError),
}

/// The origin: live streams and the HTTP handler over them.
pub struct Origin {
    streams: RwLock<HashMap<String, Arc<Stream>>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    config: OriginConfig,
    pages: RwLock<HashMap<String, (&'static str, Bytes)>>,
    extra_metrics: RwLock<Vec<Arc<dyn Fn() -> String + Send + Sync>>>,
    nested: RwLock<Vec<(String, NestedService)>>,
    ladder: RwLock<Option<Arc<dyn LadderFactory>>>,
    /// True once shutdown began: held requests are released and no new ones are held.
    pub(crate) shutdown: watch::Sender<bool>,
    /// Streams started so far: each gets its own DVR directory.
    instances: std::sync::atomic::AtomicU64,
    /// Held requests per client IP.
    held_per_ip: Arc<crate::limits::PerIp>,
    /// Refused playback tokens, logged at most once a second.
    pub(crate) token_log: crate::limits::RateLimitedLog,
    /// Per-stream options set at admission ([`Origin::set_stream_options`]).
    options: RwLock<HashMap<String, StreamOptions>>,
    /// Where stream lifecycle events go ([`Origin::set_event_sink`]).
    events: RwLock<Option<EventSink>>,
    /// Set when this node is one of several (see [`Origin::set_cluster`]).
    cluster: std::sync::OnceLock<(Arc<dyn crate::cluster::Cluster>, crate::cluster::Proxy)>,
    /// Who decides about viewers of private streams, and the minted tokens' period in seconds
    /// (see [`Origin::set_playback_auth`]).
    playback_auth: std::sync::OnceLock<(Arc<dyn crate::token::PlaybackAuth>, u64)>,
    /// Streams that were live when this server last stopped, until when their publishers are
    /// waited for (see [`Origin::expect_back`]).
    returning: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("config", &self.config)
            .finish()
    }
}

impl Origin {
    /// A new origin with no streams.
    pub fn new(config: OriginConfig) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        if let Some(r) = &config.recordings {
            r.set_metrics(metrics.clone());
        }
        let held_per_ip = crate::limits::PerIp::new(config.max_held_per_ip, "held requests");
        Arc::new(Origin {
            held_per_ip,
            token_log: Default::default(),
            streams: RwLock::new(HashMap::new()),
            metrics,
            config,
            pages: RwLock::new(HashMap::new()),
            extra_metrics: RwLock::new(Vec::new()),
            nested: RwLock::new(Vec::new()),
            ladder: RwLock::new(None),
            shutdown: watch::channel(false).0,
            instances: std::sync::atomic::AtomicU64::new(0),
            options: RwLock::new(HashMap::new()),
            events: RwLock::new(None),
            cluster: std::sync::OnceLock::new(),
            playback_auth: std::sync::OnceLock::new(),
            returning: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Makes this origin one node of several: viewer requests for a stream another node owns
    /// are proxied to that node, `/streams.json` lists the cluster's streams with their owners
    /// and `/metrics` counts proxied requests. Set once, before serving.
    pub fn set_cluster(&self, cluster: Arc<dyn crate::cluster::Cluster>) {
        let _ = self.cluster.set((cluster, crate::cluster::Proxy::new()));
    }

    /// With playback tokens on, a viewer without a token asking for a stream's multivariant
    /// playlist is admitted by `auth` (the platform) and redirected to the stream's token path
    /// with a token valid for one to two `token_secs` periods, instead of a 403. Set once,
    /// before serving.
    pub fn set_playback_auth(&self, auth: Arc<dyn crate::token::PlaybackAuth>, token_secs: u64) {
        let _ = self.playback_auth.set((auth, token_secs));
    }

    pub(crate) fn playback_auth(&self) -> Option<&(Arc<dyn crate::token::PlaybackAuth>, u64)> {
        self.playback_auth.get()
    }

    /// Stream `name` was live when this server last stopped (a restart, even after
    /// `kill -9`), and its publisher is expected back until `until`: meanwhile a viewer
    /// request for it is held until the stream is back (up to
    /// [`crate::cluster::MOVE_WAIT`], then 503 with `Retry-After`), not answered 404, which
    /// players give up on (hls.js stops with a fatal error).
    pub fn expect_back(&self, name: &str, until: std::time::Instant) {
        self.returning
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), until);
    }

    /// Is `name` expected back ([`Origin::expect_back`]) and not here yet?
    pub(crate) fn returning(&self, name: &str) -> bool {
        if self.stream(name).is_some_and(|s| s.current().is_some()) {
            return false;
        }
        let mut r = self.returning.lock().unwrap_or_else(|e| e.into_inner());
        match r.get(name) {
            Some(until) if std::time::Instant::now() < *until => true,
            Some(_) => {
                r.remove(name);
                false
            }
            None => false,
        }
    }

    pub(crate) fn cluster(
        &self,
    ) -> Option<&(Arc<dyn crate::cluster::Cluster>, crate::cluster::Proxy)> {
        self.cluster.get()
    }

    /// Serves `body` at `path` (e.g. the player page at `/`).
    pub fn add_page(&self, path: &str, content_type: &'static str, body: Bytes) {
        self.pages
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), (content_type, body));
    }

    /// Adds a source of Prometheus text appended to `/metrics` (an ingest's own counters).
    pub fn add_metrics(&self, f: Arc<dyn Fn() -> String + Send + Sync>) {
        self.extra_metrics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    /// Mounts `service` under `prefix` (e.g. WHIP under `/whip`): every request for `prefix`
    /// or a path below it, OPTIONS included, goes to `service` with its full path.
    pub fn nest<S>(&self, prefix: &str, service: S)
    where
        S: tower::Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.nested
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((
                prefix.trim_end_matches('/').to_string(),
                NestedService::new(service),
            ));
    }

    /// Mounts an async handler under `prefix`, as [`Origin::nest`] does for a service: for
    /// handlers that own their state (an `Arc` moved into the closure) and never fail.
    pub fn nest_fn<F, Fut>(&self, prefix: &str, handler: F)
    where
        F: Fn(Request<RequestBody>) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
    {
        self.nest(
            prefix,
            tower::service_fn(move |req| {
                let reply = handler(req);
                async move { Ok::<_, Infallible>(reply.await) }
            }),
        );
    }

    /// The service mounted over `path`, if any.
    pub(crate) fn nested_for(&self, path: &str) -> Option<NestedService> {
        self.nested
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(prefix, _)| {
                path.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map(|(_, s)| s.clone())
    }

    /// The origin as a `tower::Service`: what the server runs on each connection, and what
    /// tests call in-process with no socket (`ServiceExt::oneshot`).
    pub fn service(self: &Arc<Self>) -> OriginService {
        router(self.clone())
    }

    /// Sets what starts an ABR ladder for each new stream created with
    /// [`Origin::create_stream_with`].
    pub fn set_ladder(&self, factory: Arc<dyn LadderFactory>) {
        *self.ladder.write().unwrap_or_else(|e| e.into_inner()) = Some(factory);
    }

    /// Sends the start and end of every stream created from now on to `sink`.
    pub fn set_event_sink(&self, sink: EventSink) {
        *self.events.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    /// Watches a new stream for its first playlist and its end, and tells the event sink.
    fn watch_lifecycle(&self, stream: Arc<Stream>, recorded: bool) {
        let Some(sink) = self
            .events
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        let recordings = self.config.recordings.clone();
        let mut rx = stream.published.clone();
        tokio::spawn(async move {
            // The first playlist (none: the stream ended before it had one).
            let first = loop {
                if let Some(p) = rx.borrow_and_update().clone() {
                    break Some(p);
                }
                if rx.changed().await.is_err() {
                    break None;
                }
            };
            let Some(first) = first else { return };
            let started = std::time::Instant::now();
            let summary = crate::stats::StreamSummary::new(&stream, &first.snapshot);
            sink(StreamEvent::Started {
                stream: stream.name.clone(),
                publisher: match stream.publisher() {
                    crate::Publisher::Encoder => "encoder",
                    crate::Publisher::Whip => "whip",
                    crate::Publisher::File => "file",
                },
                codecs: summary.codecs,
                resolution: summary.resolution,
                frame_rate: summary.frame_rate,
                renditions: first
                    .snapshot
                    .renditions
                    .iter()
                    .map(|r| r.name.clone())
                    .collect(),
            });
            // The stream task publishes ENDLIST, then drops its sender.
            loop {
                if rx
                    .borrow_and_update()
                    .as_ref()
                    .is_some_and(|p| p.snapshot.ended)
                {
                    break;
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
            let recording = recordings.filter(|_| recorded).and_then(|r| {
                r.list()
                    .into_iter()
                    .filter(|(n, _, _)| *n == stream.name)
                    .max_by_key(|(_, _, i)| i.start.millis())
                    .map(|(n, id, _)| format!("/recordings/{n}/{id}/index.m3u8"))
            });
            let st = &stream.stats;
            sink(StreamEvent::Ended {
                stream: stream.name.clone(),
                duration_secs: started.elapsed().as_secs_f64(),
                bytes_in: st.bytes_in.load(Ordering::Relaxed),
                frames_in: st.frames_in.load(Ordering::Relaxed),
                discontinuities: st.discontinuities.load(Ordering::Relaxed),
                recording,
            });
        });
    }

    /// Sets the options of the next stream called `name` (all `None`: the server-wide
    /// settings again). A stream already live keeps the options it started with.
    pub fn set_stream_options(&self, name: &str, options: StreamOptions) {
        let mut map = self.options.write().unwrap_or_else(|e| e.into_inner());
        if options == StreamOptions::default() {
            map.remove(name);
        } else {
            map.insert(name.to_string(), options);
        }
    }

    /// The options set for stream `name` (see [`Origin::set_stream_options`]).
    pub fn stream_options(&self, name: &str) -> StreamOptions {
        self.options
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    /// Starts a live stream `name` packaged with `config` from `tracks`, with an ABR ladder
    /// when one is set ([`Origin::set_ladder`]) and has rungs for this source; a stream with a
    /// ladder uses the separate layout (the rungs share the source's audio rendition).
    pub fn create_stream_with(
        self: &Arc<Self>,
        name: &str,
        config: PackagerConfig,
        tracks: Vec<TrackConfig>,
    ) -> Result<StreamInput, CreateError> {
        if self.is_live(name) {
            return Err(CreateError::AlreadyLive(AlreadyLive(name.to_string())));
        }
        let factory = self
            .ladder
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|_| self.stream_options(name).ladder != Some(false));
        let mut config = config;
        let mut ladder = None;
        if let Some(start) = factory.and_then(|f| f.start(name, &tracks)) {
            if config.layout != Layout::Separate {
                // The rungs share the source's one audio rendition.
                tracing::info!(stream = %name, "ABR ladder: this stream uses the separate layout");
                config.layout = Layout::Separate;
            }
            let names: Vec<String> = start.rungs.iter().map(|r| r.name.clone()).collect();
            // The rungs fill a stall exactly when the source does (their H.264 always could):
            // every rendition then has the same parts, GAP or not.
            let rung_config = PackagerConfig {
                stall_filler: Packager::new(config.clone(), tracks.clone())?.fills_stalls(),
                ..config.clone()
            };
            match Ladder::new(&rung_config, &tracks, start.rungs, start.transcoder) {
                Ok(l) => {
                    tracing::info!(stream = %name, rungs = %names.join(","), "ABR ladder started");
                    ladder = Some((l, start.events));
                }
                Err(e) => tracing::warn!(stream = %name, "no ABR ladder: {e}"),
            }
        }
        let packager = Packager::new(config, tracks)?;
        Ok(self.spawn(name, packager, ladder)?)
    }

    /// Is a stream of that name live (not only lingering after its end)?
    fn is_live(&self, name: &str) -> bool {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|s| !s.ended.load(Ordering::Relaxed))
    }

    /// Starts a live stream `name` packaged by `packager`. Refused while a stream of that name
    /// is live; one that has ended and only lingers is replaced.
    pub fn create_stream(
        self: &Arc<Self>,
        name: &str,
        packager: Packager,
    ) -> Result<StreamInput, AlreadyLive> {
        self.spawn(name, packager, None)
    }

    fn spawn(
        self: &Arc<Self>,
        name: &str,
        packager: Packager,
        ladder: Option<(Ladder, tokio::sync::mpsc::UnboundedReceiver<RungEvent>)>,
    ) -> Result<StreamInput, AlreadyLive> {
        let mut streams = self.streams.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = streams.get(name) {
            // A new publish replaces a stream that has ended (and is only lingering, or kept
            // as VOD of its DVR window): the old one's playlists and files go now.
            if !old.ended.load(Ordering::Relaxed) {
                return Err(AlreadyLive(name.to_string()));
            }
            old.replaced.notify_one();
        }
        let recorder =
            self.config
                .recordings
                .clone()
                .filter(|r| match self.stream_options(name).record {
                    Some(on) => on && crate::record::valid_name(name),
                    None => r.config().records(name),
                });
        let recorded = recorder.is_some();
        let weak = Arc::downgrade(self);
        let key = name.to_string();
        let input = spawn_stream(
            name.to_string(),
            packager,
            ladder,
            self.metrics.clone(),
            move |gone| {
                if let Some(o) = weak.upgrade() {
                    let mut streams = o.streams.write().unwrap_or_else(|e| e.into_inner());
                    // Only if it was not replaced by a newer publish meanwhile.
                    if streams.get(&key).is_some_and(|s| Arc::ptr_eq(s, gone)) {
                        streams.remove(&key);
                    }
                }
            },
            StreamSettings {
                linger: self
                    .config
                    .dvr_keep_ended
                    .filter(|_| self.config.dvr_dir.is_some())
                    .map_or(self.config.ended_linger, |k| {
                        k.max(self.config.ended_linger)
                    }),
                codecs_override: self.config.codecs_override.clone(),
                dvr_dir: self.config.dvr_dir.as_ref().map(|root| {
                    let n = self.instances.fetch_add(1, Ordering::Relaxed);
                    crate::dvr::stream_dir(root, name, n)
                }),
                recorder: recorder.map(|r| crate::record::Recorder::new(r, name)),
            },
        );
        streams.insert(name.to_string(), input.stream.clone());
        drop(streams);
        self.watch_lifecycle(input.stream.clone(), recorded);
        Ok(input)
    }

    /// The recordings, when recording is on.
    pub fn recordings(&self) -> Option<&Arc<crate::record::Recordings>> {
        self.config.recordings.as_ref()
    }

    /// The stream called `name`, if live.
    pub fn stream(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// What `/streams.json` lists: every stream with a published playlist, sorted by name:
    /// the live ones, and the ended ones whose final playlists are still served (with a DVR
    /// window, the VOD of the window), with until when
    /// ([`crate::stats::StreamSummary::kept_until`]).
    pub fn stream_summaries(&self) -> Vec<crate::stats::StreamSummary> {
        let streams: Vec<Arc<Stream>> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut v: Vec<crate::stats::StreamSummary> = streams
            .iter()
            .filter_map(|s| {
                let p = s.current()?;
                Some(crate::stats::StreamSummary::new(s, &p.snapshot))
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Streams whose task runs (not ended), sorted by name.
    fn live_streams(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<Arc<Stream>> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| !s.ended.load(Ordering::Relaxed))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Names of streams with a published playlist, sorted.
    pub fn stream_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.current().is_some_and(|p| !p.snapshot.ended))
            .map(|s| s.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Releases every held request (with 503) and refuses new holds: for shutdown.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Has [`Origin::begin_shutdown`] been called?
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The page at `path`, if one was added.
    pub(crate) fn page(&self, path: &str) -> Option<(&'static str, Bytes)> {
        self.pages
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned()
    }

    /// The Prometheus text for `/metrics`: ours, then every added source.
    pub(crate) fn render_metrics(&self) -> String {
        let mut text = self.metrics.render();
        text.push_str(&crate::stats::render(&self.live_streams()));
        if let Some((_, proxy)) = self.cluster() {
            text.push_str(&proxy.stats.render());
        }
        for f in self
            .extra_metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            text.push_str(&f());
        }
        text
    }

    /// The stream and its latest published state.
    pub(crate) fn published(&self, stream: &str) -> Result<(Arc<Stream>, Arc<Published>), Error> {
        let s = self.stream(stream).ok_or(Error::NoSuchStream)?;
        let p = s.current().ok_or(Error::NoPlaylistYet)?;
        Ok((s, p))
    }

    /// The playback tokens, when streams are private.
    pub(crate) fn playback_tokens(&self) -> Option<&crate::token::PlaybackTokens> {
        self.config.playback_tokens.as_deref()
    }

    /// Counts a held request on `s` (and on the client's IP, when there is a per-IP limit)
    /// for as long as the guard lives. [`Error::TooManyHeld`] (503) when the stream's limit is
    /// reached or shutdown began, [`Error::TooManyHeldFromIp`] (429) when the client's IP is
    /// at its limit.
    pub(crate) fn hold(&self, s: &Arc<Stream>) -> Result<HoldGuard, Error> {
        if *self.shutdown.borrow() {
            return Err(Error::TooManyHeld);
        }
        let ip = match crate::limits::client_ip().filter(|_| self.held_per_ip.enabled()) {
            Some(ip) => Some(
                self.held_per_ip
                    .acquire(ip)
                    .ok_or(Error::TooManyHeldFromIp)?,
            ),
            None => None,
        };
        let n = s.held.fetch_add(1, Ordering::Relaxed);
        let g = HoldGuard {
            stream: s.clone(),
            metrics: self.metrics.clone(),
            _ip: ip,
        };
        self.metrics.held.fetch_add(1, Ordering::Relaxed);
        if n >= self.config.max_held_per_stream {
            return Err(Error::TooManyHeld);
        }
        Ok(g)
    }
}

/// A held request, counted per stream and in the metrics until dropped.
pub(crate) struct HoldGuard {
    stream: Arc<Stream>,
    metrics: Arc<Metrics>,
    _ip: Option<crate::limits::PerIpGuard>,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        self.stream.held.fetch_sub(1, Ordering::Relaxed);
        self.metrics.held.fetch_sub(1, Ordering::Relaxed);
    }
}
