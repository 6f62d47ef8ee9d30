//! Publishing sessions: which stream names are live, who publishes them, and the reconnect grace
//! period. Ingest adapters (RTMP, WHIP, the demo source) claim a name, get a [`Publication`], and
//! feed it frames; when they drop it the stream waits `grace` for the same name to come back
//! (continuing with EXT-X-DISCONTINUITY), then ends with EXT-X-ENDLIST.
//!
//! A source that yields ([`Streams::claim_yielding`], the demo) gives its name up to any real
//! publisher: the publisher's claim asks it to stop, it hands its stream over, and the
//! publisher continues that stream exactly as a reconnect would (same playlists, MSNs go on,
//! EXT-X-DISCONTINUITY).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use llhls_origin::{wall_now, Command, Origin, Publisher, StreamInput};
use llhls_packager::{Frame, PackagerConfig, TrackConfig, WallClock};
use tokio::sync::oneshot;

enum Slot {
    /// A publisher holds it: the [`Publication`] with this id. A yielding one (the demo) can be
    /// asked, through `yield_to`, to hand its stream over to a real publisher.
    Publishing {
        id: u64,
        yield_to: Option<oneshot::Sender<Handoff>>,
    },
    /// The publisher left; the stream waits for it until the generation changes.
    Grace { input: StreamInput, generation: u64 },
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Someone is already publishing this name.
    #[error("stream {0} already has a publisher")]
    Duplicate(String),
    /// Invalid stream name.
    #[error("invalid stream name {0:?}: use 1-64 letters, digits, '-' or '_'")]
    BadName(String),
    /// Missing or wrong key.
    #[error("publish key missing or wrong for stream {0}")]
    Unauthorized(String),
    /// The server carries as many streams as it may (`max_streams`).
    #[error("stream {0} refused: the server is at its limit of {1} streams")]
    TooManyStreams(String, usize),
}

/// Admission across several nodes (`--cluster-redis`): asked by [`Streams::claim`] after this
/// node's own checks pass, while the name is still free here. A single server uses it too, to
/// continue the streams it had before a restart (it never refuses a name then).
pub trait ClusterClaim: Send + Sync {
    /// Claims `name` for this node. `Err(Duplicate)` when another live node owns it.
    /// `Ok(Some(..))`: another node published the stream until recently; a new stream here
    /// continues above it.
    fn claim(&self, name: &str) -> Result<Option<Continuation>, PublishError>;
}

/// Where a stream taken over from another node starts (see [`ClusterClaim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    /// The first media sequence number: above every one the other node may have published.
    pub msn: u64,
    /// The first EXT-X-DISCONTINUITY-SEQUENCE.
    pub discontinuity_sequence: u64,
    /// The previous run's last segment as players saw it, re-listed (GAP) before the new
    /// segments with the MSNs between ([`llhls_packager::Bridge`]). With it, the first
    /// discontinuity sequence is the bridge's plus one.
    pub bridge: Option<llhls_packager::Bridge>,
}

/// The registry of publishing sessions.
pub struct Streams {
    origin: Arc<Origin>,
    packager: PackagerConfig,
    /// The publish keys; replaced by [`Streams::set_keys`] (a reload).
    keys: std::sync::RwLock<Vec<String>>,
    grace: Duration,
    slots: Mutex<HashMap<String, Slot>>,
    generation: Mutex<u64>,
    next_id: std::sync::atomic::AtomicU64,
    playback_base: std::sync::OnceLock<String>,
    /// Most streams at once (0: no limit): see [`Streams::set_max_streams`].
    max_streams: AtomicUsize,
    /// A publisher's bitrate limit in kbit/s (0: none): see [`Streams::set_max_publish_kbps`].
    max_publish_kbps: AtomicU64,
    /// Each publisher's stop flag, by stream name ([`Streams::kick`]).
    kicks: Mutex<HashMap<String, Arc<std::sync::atomic::AtomicBool>>>,
    cluster: std::sync::OnceLock<Arc<dyn ClusterClaim>>,
}

/// A publisher's bitrate is averaged over windows this long.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Bytes a publication received in the current window.
struct RateMeter {
    since: Instant,
    bytes: u64,
}

/// A claimed stream name. Start it with the track set, then send frames.
pub struct Publication {
    streams: Arc<Streams>,
    name: String,
    /// Which claim this is (the slot names its owner, so a displaced publication's drop leaves
    /// the new owner's slot alone).
    id: u64,
    input: Option<StreamInput>,
    resumed: Option<StreamInput>,
    /// A yielding source's stream, on its way here ([`Streams::claim`] over the demo).
    takeover: Option<oneshot::Receiver<StreamInput>>,
    /// The publisher said it is done (see [`Publication::stopped_by_publisher`]).
    stopped: bool,
    /// What publishes ([`Publication::set_publisher`]), for the advice in the stream's warnings.
    publisher: Publisher,
    /// Its bitrate, measured against the limit (`None`: not limited, a source inside this
    /// process such as the demo).
    meter: Option<Mutex<RateMeter>>,
    /// Set by [`Streams::kick`]: the next frame fails, and the stream ends at once.
    kicked: Arc<std::sync::atomic::AtomicBool>,
    /// Where a new stream starts when it continues another node's (from [`ClusterClaim::claim`]).
    continues: Option<Continuation>,
    /// Stalls hold the playlist rather than get filler ([`Publication::without_stall_filler`]).
    no_stall_filler: bool,
}

/// Where a displaced yielding source sends its stream: to the publisher that took the name.
pub struct Handoff(oneshot::Sender<StreamInput>);

/// A yielding source's notice that a publisher wants its name: see [`Streams::claim_yielding`].
pub struct Displaced(oneshot::Receiver<Handoff>);

impl Displaced {
    /// Waits until a publisher claims the name; then hand the stream over with
    /// [`Publication::hand_over`].
    pub async fn wait(self) -> Handoff {
        match self.0.await {
            Ok(h) => h,
            // The slot went away without a takeover (cannot happen while the publication
            // lives): never resolve.
            Err(_) => std::future::pending().await,
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (WHIP publishers, the admin API).
pub fn bearer<B>(req: &http::Request<B>) -> Option<String> {
    let v = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

/// Does `key` open the door? Any key when `keys` is empty; otherwise one of `keys`,
/// compared in constant time (every configured key is compared, whatever matches).
pub fn key_allowed(keys: &[String], key: Option<&str>) -> bool {
    if keys.is_empty() {
        return true;
    }
    let key = key.unwrap_or("");
    keys.iter().fold(false, |acc, k| {
        acc | constant_time_eq(k.as_bytes(), key.as_bytes())
    })
}

/// Valid stream names: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Streams {
    /// A registry over `origin`.
    pub fn new(
        origin: Arc<Origin>,
        packager: PackagerConfig,
        keys: Vec<String>,
        grace: Duration,
    ) -> Arc<Self> {
        Arc::new(Streams {
            origin,
            packager,
            keys: std::sync::RwLock::new(keys),
            grace,
            slots: Mutex::new(HashMap::new()),
            generation: Mutex::new(0),
            next_id: std::sync::atomic::AtomicU64::new(1),
            playback_base: std::sync::OnceLock::new(),
            max_streams: AtomicUsize::new(0),
            max_publish_kbps: AtomicU64::new(0),
            kicks: Mutex::new(HashMap::new()),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Publishes are also admitted by `cluster` (one node of several). Set once, at startup.
    pub fn set_cluster(&self, cluster: Arc<dyn ClusterClaim>) {
        let _ = self.cluster.set(cluster);
    }

    /// Refuses a publish that would make more than `n` streams (0: no limit). A reconnect
    /// within the grace period, or a publisher taking over the demo, does not add one.
    pub fn set_max_streams(&self, n: usize) {
        self.max_streams.store(n, Ordering::Relaxed);
    }

    /// Disconnects a publisher whose bitrate, averaged over 5 s, is above `kbps` (0: no
    /// limit). The demo and other sources inside this process are not limited.
    pub fn set_max_publish_kbps(&self, kbps: u64) {
        self.max_publish_kbps.store(kbps, Ordering::Relaxed);
    }

    /// Where viewers reach the HTTP server (e.g. `http://192.0.2.10:8080`), for log lines that
    /// give a stream's playlist URL. Set once, after the listener is bound.
    pub fn set_playback_base(&self, base: String) {
        let _ = self.playback_base.set(base);
    }

    /// The playlist URL of stream `name` for players.
    pub fn playlist_url(&self, name: &str) -> String {
        let base = self.playback_base.get().map(String::as_str).unwrap_or("");
        format!("{base}/live/{name}/index.m3u8")
    }

    /// The publish keys (empty: anyone may publish).
    pub fn keys(&self) -> Vec<String> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the publish keys (the configuration was reloaded). Publishers already
    /// admitted keep publishing; new publishes are checked against `keys`.
    pub fn set_keys(&self, keys: Vec<String>) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// Claims `name` for a publisher presenting `key`.
    pub fn claim(
        self: &Arc<Self>,
        name: &str,
        key: Option<&str>,
    ) -> Result<Publication, PublishError> {
        self.claim_inner(name, key)
    }

    /// Claims a free `name` for a source inside this process that gives way to real
    /// publishers (the demo): no key needed; refused while anyone publishes the name or it
    /// waits for a reconnect. When a publisher claims the name, [`Displaced::wait`] resolves:
    /// stop feeding and [`Publication::hand_over`] the stream.
    pub fn claim_yielding(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<(Publication, Displaced), PublishError> {
        if !valid_name(name) {
            return Err(PublishError::BadName(name.to_string()));
        }
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.contains_key(name) {
            return Err(PublishError::Duplicate(name.to_string()));
        }
        let (tx, rx) = oneshot::channel();
        let id = self.next_id();
        slots.insert(
            name.to_string(),
            Slot::Publishing {
                id,
                yield_to: Some(tx),
            },
        );
        let mut p = self.publication(name, id, None, None);
        p.publisher = Publisher::File;
        Ok((p, Displaced(rx)))
    }

    fn next_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn publication(
        self: &Arc<Self>,
        name: &str,
        id: u64,
        resumed: Option<StreamInput>,
        takeover: Option<oneshot::Receiver<StreamInput>>,
    ) -> Publication {
        let kicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.kicks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), kicked.clone());
        Publication {
            kicked,
            streams: self.clone(),
            name: name.to_string(),
            id,
            input: None,
            resumed,
            takeover,
            stopped: false,
            publisher: Publisher::Encoder,
            meter: None,
            continues: None,
            no_stall_filler: false,
        }
    }

    fn claim_inner(
        self: &Arc<Self>,
        name: &str,
        key: Option<&str>,
    ) -> Result<Publication, PublishError> {
        if !valid_name(name) {
            return Err(PublishError::BadName(name.to_string()));
        }
        if !key_allowed(&self.keys.read().unwrap_or_else(|e| e.into_inner()), key) {
            return Err(PublishError::Unauthorized(name.to_string()));
        }
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let max = self.max_streams.load(Ordering::Relaxed);
        if max > 0 && !slots.contains_key(name) && slots.len() >= max {
            return Err(PublishError::TooManyStreams(name.to_string(), max));
        }
        // One node of several: the cluster admits the name too, once it is free here (this
        // node keeps the name while the stream is live here, grace included, so a reconnect
        // here is admitted).
        let mut continues = None;
        if let Some(cluster) = self.cluster.get() {
            if !matches!(
                slots.get(name),
                Some(Slot::Publishing { yield_to: None, .. })
            ) {
                continues = cluster.claim(name)?;
            }
        }
        let mut takeover = None;
        let resumed = match slots.remove(name) {
            Some(Slot::Publishing {
                yield_to: Some(yield_to),
                ..
            }) => {
                // A yielding source (the demo) holds the name: ask it for its stream.
                let (tx, rx) = oneshot::channel();
                if yield_to.send(Handoff(tx)).is_ok() {
                    takeover = Some(rx);
                }
                None
            }
            Some(slot @ Slot::Publishing { .. }) => {
                slots.insert(name.to_string(), slot);
                return Err(PublishError::Duplicate(name.to_string()));
            }
            Some(Slot::Grace { input, .. }) => Some(input),
            None => None,
        };
        let id = self.next_id();
        slots.insert(name.to_string(), Slot::Publishing { id, yield_to: None });
        let mut p = self.publication(name, id, resumed, takeover);
        p.meter = Some(Mutex::new(RateMeter {
            since: Instant::now(),
            bytes: 0,
        }));
        p.continues = continues;
        Ok(p)
    }

    /// Stops the publisher of `name` (the admin API's kick): its next frame fails, which
    /// closes its connection, and the stream ends at once (no reconnect grace). A stream
    /// waiting in the grace period ends now. False when `name` has no publisher and does not
    /// wait for one.
    pub fn kick(&self, name: &str) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(name) {
            Some(Slot::Publishing { .. }) => {
                if let Some(k) = self
                    .kicks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(name)
                {
                    k.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                true
            }
            Some(Slot::Grace { .. }) => {
                // Dropping the waiting input ends the stream.
                slots.remove(name);
                true
            }
            None => false,
        }
    }

    /// Is `name` claimed, or waiting for its publisher to come back?
    pub fn is_claimed(&self, name: &str) -> bool {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }
}

impl Publication {
    /// The playlist URL players use for this stream.
    pub fn playlist_url(&self) -> String {
        self.streams.playlist_url(&self.name)
    }

    /// The stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This publisher's stalls hold the playlist instead of getting filler (an SRT publisher:
    /// see its session). Call before [`Publication::start`].
    pub fn without_stall_filler(&mut self) {
        self.no_stall_filler = true;
    }

    /// Says what publishes (an RTMP encoder unless told otherwise; the demo is a file), so the
    /// stream's warnings give advice that fits it. Call before [`Publication::start`].
    pub fn set_publisher(&mut self, publisher: Publisher) {
        self.publisher = publisher;
    }

    /// Starts (or resumes, within the grace period, or continues a yielding source's stream)
    /// the stream with these tracks. True when it continues an existing stream.
    pub async fn start(&mut self, tracks: Vec<TrackConfig>) -> anyhow::Result<bool> {
        if self.input.is_some() {
            return Ok(false);
        }
        let takeover = self.takeover.is_some();
        if let Some(rx) = self.takeover.take() {
            // The yielding source stops feeding, then sends its stream (promptly: it only
            // finishes the frame it is sending).
            self.resumed = rx.await.ok();
        }
        if let Some(input) = self.resumed.take() {
            if input
                .send(Command::Discontinuity(Some(tracks.clone()), wall_now()))
                .await
                .is_ok()
            {
                if !takeover {
                    crate::events::emit("publisher_reconnected", &self.name, serde_json::json!({}));
                }
                input.stream.set_publisher(self.publisher);
                self.input = Some(input);
                return Ok(true);
            }
        }
        let lingering = self.streams.origin.stream(&self.name).and_then(|s| {
            let p = s.current()?;
            let r = p.snapshot.renditions.first()?;
            r.open.as_ref().map(|o| o.msn).or(r.last_msn())
        });
        let first = match self.continues {
            // Continues another node's stream, or this server's before a restart, where it
            // left off (not at the wall clock's MSN), so players see the MSNs go on at the
            // usual pace.
            Some(c) => c.msn.max(lingering.map_or(0, |l| l + 1)),
            None => first_msn(lingering),
        };
        let (bridge, first_discontinuity_sequence) = match self.continues {
            // The continuation's discontinuity sequence is the bridge's plus one
            // (`PackagerConfig::bridge`); without the bridge it starts there too.
            Some(c) if c.bridge.is_some_and(|b| b.msn < first) => {
                (c.bridge, c.discontinuity_sequence)
            }
            Some(c) => (None, c.discontinuity_sequence),
            None => (None, 0),
        };
        let config = PackagerConfig {
            first_msn: first,
            first_discontinuity_sequence,
            bridge,
            stall_filler: self.streams.packager.stall_filler && !self.no_stall_filler,
            ..self.streams.packager.clone()
        };
        let input = self
            .streams
            .origin
            .create_stream_with(&self.name, config, tracks)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        input.stream.set_publisher(self.publisher);
        self.input = Some(input);
        Ok(false)
    }

    /// Has [`Publication::start`] run?
    pub fn started(&self) -> bool {
        self.input.is_some()
    }

    /// Feeds one frame; waits when the packager is behind.
    pub async fn frame(&self, f: Frame) -> anyhow::Result<()> {
        self.frame_at(f, wall_now()).await
    }

    /// Feeds one frame that arrived at `arrived` (an ingest that buffers frames passes their
    /// arrival, so PROGRAM-DATE-TIME does not include its buffering).
    pub async fn frame_at(&self, f: Frame, arrived: WallClock) -> anyhow::Result<()> {
        if self.kicked.load(std::sync::atomic::Ordering::Relaxed) {
            anyhow::bail!("stopped by the admin API");
        }
        let input = self.input.as_ref().context("stream not started")?;
        self.meter(f.data.len())?;
        input
            .send(Command::Frame(f, arrived))
            .await
            .map_err(|_| anyhow::anyhow!("stream task stopped"))
    }

    /// Counts `bytes` against the bitrate limit; an error (disconnect the publisher) when a
    /// whole window averaged above it.
    fn meter(&self, bytes: usize) -> anyhow::Result<()> {
        let Some(meter) = &self.meter else {
            return Ok(());
        };
        let limit = self.streams.max_publish_kbps.load(Ordering::Relaxed);
        if limit == 0 {
            return Ok(());
        }
        let mut m = meter.lock().unwrap_or_else(|e| e.into_inner());
        m.bytes += bytes as u64;
        let elapsed = m.since.elapsed();
        if elapsed < RATE_WINDOW {
            return Ok(());
        }
        let kbps = m.bytes * 8 / elapsed.as_millis().max(1) as u64;
        m.since = Instant::now();
        m.bytes = 0;
        if kbps > limit {
            tracing::warn!(stream = %self.name, kbps, limit_kbps = limit, "publisher disconnected: bitrate above the limit");
            anyhow::bail!(
                "publishing {kbps} kbit/s over the last {} s, above the limit of {limit} kbit/s (max_publish_kbps)",
                elapsed.as_secs()
            );
        }
        Ok(())
    }

    /// A codec change mid-stream: a discontinuity carrying the new configuration.
    pub async fn discontinuity(&self, tracks: Vec<TrackConfig>) -> anyhow::Result<()> {
        let input = self.input.as_ref().context("stream not started")?;
        input
            .send(Command::Discontinuity(Some(tracks), wall_now()))
            .await
            .map_err(|_| anyhow::anyhow!("stream task stopped"))
    }
}

impl Publication {
    /// A yielding source gives its stream to the publisher that took its name (see
    /// [`Streams::claim_yielding`]); that publisher continues it as a reconnect would.
    pub fn hand_over(mut self, to: Handoff) {
        if let Some(input) = self.input.take().or_else(|| self.resumed.take()) {
            // If that publisher has already gone, the stream ends here (dropped input).
            let _ = to.0.send(input);
        }
    }
}

impl Publication {
    /// The publisher said it is done (RTMP `FCUnpublish`/`deleteStream`, as OBS's "Stop
    /// Streaming" and ffmpeg at the end of its input send; WHIP `DELETE`): when this publication
    /// drops, the stream ends at once (EXT-X-ENDLIST) instead of publishing GAP parts through
    /// the reconnect grace period, which is for publishers that vanish without a word.
    pub fn stopped_by_publisher(&mut self) {
        self.stopped = true;
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        let streams = self.streams.clone();
        let name = self.name.clone();
        let input = self.input.take().or_else(|| self.resumed.take());
        let mut slots = streams.slots.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(slots.get(&name), Some(Slot::Publishing { id, .. }) if *id == self.id) {
            // Taken over: the name belongs to another publication now.
            return;
        }
        {
            let mut kicks = streams.kicks.lock().unwrap_or_else(|e| e.into_inner());
            if kicks
                .get(&name)
                .is_some_and(|k| Arc::ptr_eq(k, &self.kicked))
            {
                kicks.remove(&name);
            }
        }
        if self.kicked.load(std::sync::atomic::Ordering::Relaxed) {
            self.stopped = true;
        }
        match input {
            None => {
                slots.remove(&name);
            }
            Some(_input) if self.stopped => {
                slots.remove(&name);
                tracing::info!(stream = %name, "the publisher stopped the stream: stream ended");
            }
            Some(input) => {
                let generation = {
                    let mut g = streams.generation.lock().unwrap_or_else(|e| e.into_inner());
                    *g += 1;
                    *g
                };
                if streams.origin.is_shutting_down() {
                    tracing::debug!(stream = %name, "publisher disconnected by the shutdown");
                } else {
                    tracing::info!(stream = %name, grace_secs = streams.grace.as_secs(), "publisher gone; waiting for a reconnect");
                    crate::events::emit(
                        "publisher_disconnected",
                        &name,
                        serde_json::json!({ "grace_secs": streams.grace.as_secs() }),
                    );
                }
                slots.insert(name.clone(), Slot::Grace { input, generation });
                let grace = streams.grace;
                let s2 = streams.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        tokio::time::sleep(grace).await;
                        let mut slots = s2.slots.lock().unwrap_or_else(|e| e.into_inner());
                        if matches!(slots.get(&name), Some(Slot::Grace { generation: g, .. }) if *g == generation) {
                            slots.remove(&name);
                            tracing::info!(stream = %name, "no reconnect within the grace period: stream ended");
                        }
                    });
                }
            }
        }
    }
}

/// First MSN of a new stream: the wall clock in tenths of a second, or past the last MSN of a
/// previous stream of the same name that still lingers, whichever is later. URIs carry the
/// MSN, so a restarted stream never reuses a URI a CDN may still cache: a real-time stream
/// advances by at most ten MSNs a second (segments are at least 100 ms), and a publisher that
/// ran faster than real time is caught by the lingering stream's last MSN.
fn first_msn(previous_last: Option<u64>) -> u64 {
    let clock = (wall_now().millis() / 100).max(1) as u64;
    previous_last.map_or(clock, |last| clock.max(last + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn keys_allowed() {
        let keys = vec!["a1".to_string(), "b2".to_string()];
        assert!(key_allowed(&keys, Some("b2")));
        assert!(!key_allowed(&keys, Some("b")));
        assert!(!key_allowed(&keys, None));
        assert!(key_allowed(&[], None));
    }

    #[test]
    fn first_msn_never_goes_back() {
        let now = first_msn(None);
        assert!(now > 17_000_000_000, "tenths of a second since 1970");
        assert_eq!(first_msn(Some(now + 500)), now + 501);
        assert!(first_msn(Some(5)) >= now);
    }

    #[tokio::test]
    async fn a_publisher_takes_a_yielding_name_over() {
        let origin = Origin::new(llhls_origin::OriginConfig::default());
        let streams = Streams::new(
            origin,
            PackagerConfig::default(),
            vec!["k".into()],
            Duration::from_secs(1),
        );
        let (demo, displaced) = streams.claim_yielding("demo").unwrap();
        assert!(matches!(
            streams.claim_yielding("demo"),
            Err(PublishError::Duplicate(_))
        ));
        // Keys still apply to a takeover.
        assert!(matches!(
            streams.claim("demo", Some("nope")),
            Err(PublishError::Unauthorized(_))
        ));
        let publisher = streams.claim("demo", Some("k")).unwrap();
        let handoff = displaced.wait().await;
        demo.hand_over(handoff);
        // The displaced demo's drop left the publisher's claim alone.
        assert!(streams.is_claimed("demo"));
        assert!(matches!(
            streams.claim("demo", Some("k")),
            Err(PublishError::Duplicate(_))
        ));
        assert!(matches!(
            streams.claim_yielding("demo"),
            Err(PublishError::Duplicate(_))
        ));
        drop(publisher);
        assert!(!streams.is_claimed("demo"));
        assert!(streams.claim_yielding("demo").is_ok());
    }

    #[tokio::test]
    async fn max_streams_counts_new_names_only() {
        let origin = Origin::new(llhls_origin::OriginConfig::default());
        let streams = Streams::new(
            origin,
            PackagerConfig::default(),
            Vec::new(),
            Duration::from_secs(1),
        );
        streams.set_max_streams(2);
        let (demo, displaced) = streams.claim_yielding("demo").unwrap();
        let a = streams.claim("a", None).unwrap();
        let refused = streams.claim("b", None).err().expect("a third stream");
        assert!(matches!(refused, PublishError::TooManyStreams(_, 2)));
        assert!(
            refused.to_string().contains("limit of 2 streams"),
            "{refused}"
        );
        // Taking the demo's name over adds no stream.
        let publisher = streams.claim("demo", None).unwrap();
        demo.hand_over(displaced.wait().await);
        drop(a);
        // A name freed is a place freed.
        let _b = streams.claim("b", None).unwrap();
        drop(publisher);
    }

    #[test]
    fn names() {
        assert!(valid_name("demo"));
        assert!(valid_name("a-b_C9"));
        assert!(!valid_name(""));
        assert!(!valid_name("../x"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
