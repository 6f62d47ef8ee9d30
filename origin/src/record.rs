//! Recording: every segment of a recorded stream (every rendition) is also kept on disk, with
//! its init sections and a playlist per rendition, under `ROOT/NAME/START/`, and served at
//! `/recordings/NAME/START/index.m3u8` (listed at `/recordings.json`).
//!
//! - The stream task hands each newly completed segment (its bytes, already in memory, and
//!   its playlist entry) to a writer task per recording (`Recorder`); the packager knows
//!   nothing of it. The writer writes each file once, to a temporary name first and then
//!   renamed, then appends the segment's entry to that rendition's playlist (written whole,
//!   the same way, at first and at the end), so a playlist only ever lists complete files;
//!   a playlist is served (and recovered) up to its last whole entry, so no reader ever sees
//!   a partial one.
//! - While the stream is live the playlists are `EXT-X-PLAYLIST-TYPE:EVENT`; when it ends they
//!   become `VOD` with `EXT-X-ENDLIST`. A reconnect within the grace period is the same live
//!   stream (with a discontinuity), so it continues the same recording.
//! - At startup ([`Recordings::open`]) the recordings on disk are listed again; one whose
//!   stream was live when the process died is closed as VOD at the last segment its playlist
//!   lists, and half-written files (temporary names) are deleted.
//! - When the server stops, [`Recordings::finish_all`] has every writer close its recording as
//!   VOD, as when its stream ends.
//! - Clips (`?start=&end=` on the playlists, `parse_clip`) are rendered from the playlists on
//!   disk: the whole segments overlapping the range. `export.mp4` streams one rendition's init
//!   section and segments from disk as one file, each track's decode times shifted to start at
//!   zero.
//! - Retention ([`Recordings::spawn_retention`]) deletes whole finished recordings, oldest
//!   first, past `max_age` or while all of them together are over `max_bytes`, each deletion
//!   logged.
//!
//! Names on disk and in URLs are only ever `[A-Za-z0-9_-]` (stream names that are not are not
//! recorded), rendition files are named by [`ObjectKey`], so no request can name a path
//! outside the recordings directory.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use llhls_packager::{ObjectKey, ObjectKind, WallClock};
use tokio::sync::{mpsc, watch};

use crate::live::{Object, Published, Stream};
use crate::metrics::Metrics;

/// Recording settings.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// The directory recordings go to (`recordings/` in the data directory).
    pub root: PathBuf,
    /// Names of the streams recorded: patterns where `*` matches any run of characters
    /// (`*` alone: every stream).
    pub patterns: Vec<String>,
    /// Finished recordings older than this (since their end) are deleted.
    pub max_age: Option<Duration>,
    /// While all recordings together take more bytes than this, the oldest finished one is
    /// deleted.
    pub max_bytes: Option<u64>,
}

impl RecordConfig {
    /// Is stream `name` recorded? Only names that are safe as a directory name can be.
    pub fn records(&self, name: &str) -> bool {
        valid_name(name)
            && self
                .patterns
                .iter()
                .any(|p| glob(p.as_bytes(), name.as_bytes()))
    }
}

/// `*` matches any run of bytes, everything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// A recording or stream name as it may appear on disk and in URLs: 1 to 128 of
/// `[A-Za-z0-9_-]`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What is known about one recording.
#[derive(Debug, Clone, Default)]
pub struct RecordingInfo {
    /// Wall-clock time of its first segment.
    pub start: WallClock,
    /// The end of its last segment, once the recording is finished (`None`: still live).
    pub end: Option<WallClock>,
    /// Seconds of media (the longest rendition).
    pub duration: f64,
    /// Bytes on disk (every rendition, init sections and segments).
    pub bytes: u64,
}

#[derive(Debug)]
struct Entry {
    name: String,
    id: String,
    info: Mutex<RecordingInfo>,
}

impl Entry {
    fn info(&self) -> RecordingInfo {
        self.info.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A recording's writer task as seen from outside: where to send it [`Msg::Finish`], and a
/// receiver whose sender the task drops when it has closed the recording.
type Writer = (mpsc::UnboundedSender<Msg>, watch::Receiver<()>);

/// Every recording: the index behind `/recordings.json`, the recordings' directory, retention.
#[derive(Debug)]
pub struct Recordings {
    config: RecordConfig,
    entries: RwLock<BTreeMap<(String, String), Arc<Entry>>>,
    metrics: RwLock<Option<Arc<Metrics>>>,
    /// The writers of the recordings being written, by `NAME/ID`: how to tell each to finish,
    /// and a receiver that closes when it has.
    active: Mutex<HashMap<String, Writer>>,
}

impl Recordings {
    /// Opens the recordings directory (creating it), lists the recordings in it and closes
    /// those a previous run left open: see the module docs. The error names the path.
    pub fn open(config: RecordConfig) -> Result<Arc<Recordings>, String> {
        let root = config.root.clone();
        let fail = |what: &str, e: std::io::Error| {
            format!(
                "the recordings directory {} is not usable ({what}: {e}); set data_dir (--data-dir, LLHLS_DATA_DIR) to a writable directory",
                root.display()
            )
        };
        std::fs::create_dir_all(&root).map_err(|e| fail("creating it", e))?;
        let probe = root.join(".write-test");
        std::fs::write(&probe, b"ok").map_err(|e| fail("writing a file in it", e))?;
        std::fs::remove_file(&probe).map_err(|e| fail("removing a file in it", e))?;
        let mut entries = BTreeMap::new();
        for name in read_dir_names(&root) {
            for id in read_dir_names(&root.join(&name)) {
                let dir = root.join(&name).join(&id);
                match recover(&dir) {
                    Some(info) => {
                        tracing::info!(
                            recording = %format!("{name}/{id}"),
                            duration = info.duration,
                            bytes = info.bytes,
                            "recording found"
                        );
                        let entry = Entry {
                            name: name.clone(),
                            id: id.clone(),
                            info: Mutex::new(info),
                        };
                        entries.insert((name.clone(), id), Arc::new(entry));
                    }
                    None => {
                        tracing::warn!(dir = %dir.display(), "a recording without any complete segment: deleting it");
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                }
            }
        }
        Ok(Arc::new(Recordings {
            config,
            entries: RwLock::new(entries),
            metrics: RwLock::new(None),
            active: Mutex::new(HashMap::new()),
        }))
    }

    /// The settings.
    pub fn config(&self) -> &RecordConfig {
        &self.config
    }

    /// Where write errors are counted.
    pub(crate) fn set_metrics(&self, m: Arc<Metrics>) {
        *self.metrics.write().unwrap_or_else(|e| e.into_inner()) = Some(m);
    }

    fn count_error(&self) -> u64 {
        match &*self.metrics.read().unwrap_or_else(|e| e.into_inner()) {
            Some(m) => m.record_write_errors.fetch_add(1, Ordering::Relaxed) + 1,
            None => 0,
        }
    }

    /// Every recording: (name, id, info), by name then start.
    pub fn list(&self) -> Vec<(String, String, RecordingInfo)> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| (e.name.clone(), e.id.clone(), e.info()))
            .collect()
    }

    /// `/recordings.json`.
    pub fn json(&self) -> String {
        let items: Vec<String> = self
            .list()
            .into_iter()
            .map(|(name, id, i)| {
                let end = match i.end {
                    Some(e) => format!("\"{}\"", e.to_rfc3339()),
                    None => "null".into(),
                };
                format!(
                    "{{\"name\":\"{name}\",\"start\":\"{}\",\"end\":{end},\"duration\":{:.3},\"bytes\":{},\"playlist\":\"/recordings/{name}/{id}/index.m3u8\"}}",
                    i.start.to_rfc3339(),
                    i.duration,
                    i.bytes
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// The directory of recording `name`/`id` and what is known of it (`end` is `None` while
    /// it is being written), if it is listed. Both parts must be valid names (see
    /// [`valid_name`]).
    pub(crate) fn get(&self, name: &str, id: &str) -> Option<(PathBuf, RecordingInfo)> {
        if !valid_name(name) || !valid_name(id) {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = entries.get(&(name.to_string(), id.to_string()))?;
        Some((self.config.root.join(name).join(id), e.info()))
    }

    /// The server is stopping: every recording being written writes what it was handed and
    /// is closed as VOD (as when its stream ends), waiting at most `limit` for all of them.
    /// Segments the stream completes after this are not recorded.
    pub async fn finish_all(&self, limit: Duration) {
        let active: Vec<(String, Writer)> = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        if active.is_empty() {
            return;
        }
        tracing::info!(
            recordings = active.len(),
            "shutting down: closing the recordings being written"
        );
        let mut waits = Vec::new();
        for (_, (tx, done)) in active {
            let _ = tx.send(Msg::Finish);
            waits.push(done);
        }
        // Each writer drops its side when it has closed its recording.
        let all = async {
            for mut done in waits {
                while done.changed().await.is_ok() {}
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                "shutting down: recordings not closed within {limit:?}; the next start closes them"
            );
        }
    }

    /// Starts a new recording of stream `name` whose first segment began at `start`.
    fn begin(&self, name: &str, start: WallClock) -> Arc<Entry> {
        let base = compact(start);
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let mut id = base.clone();
        let mut n = 1;
        while entries.contains_key(&(name.to_string(), id.clone()))
            || self.config.root.join(name).join(&id).exists()
        {
            n += 1;
            id = format!("{base}-{n}");
        }
        let entry = Arc::new(Entry {
            name: name.to_string(),
            id: id.clone(),
            info: Mutex::new(RecordingInfo {
                start,
                ..RecordingInfo::default()
            }),
        });
        entries.insert((name.to_string(), id), entry.clone());
        entry
    }

    /// Starts the retention task (when a limit is set): every few seconds, deletes finished
    /// recordings past `max_age`, then the oldest finished ones while the total is over
    /// `max_bytes`.
    pub fn spawn_retention(self: &Arc<Self>) {
        if self.config.max_age.is_none() && self.config.max_bytes.is_none() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                me.retain(crate::live::wall_now()).await;
            }
        });
    }

    /// One retention pass at wall-clock time `now`.
    async fn retain(&self, now: WallClock) {
        let mut all: Vec<(String, String, RecordingInfo)> = self.list();
        all.sort_by_key(|(_, _, i)| i.start);
        let mut total: u64 = all.iter().map(|(_, _, i)| i.bytes).sum();
        let mut doomed = Vec::new();
        for (name, id, info) in &all {
            let Some(end) = info.end else { continue };
            let age = Duration::from_millis(u64::try_from(now.0 - end.0).unwrap_or(0));
            let reason = if self.config.max_age.is_some_and(|max| age > max) {
                format!(
                    "older than record_max_age_secs (ended {} s ago)",
                    age.as_secs()
                )
            } else if self.config.max_bytes.is_some_and(|max| total > max) {
                format!("recordings take {total} bytes, over record_max_bytes")
            } else {
                continue;
            };
            total -= info.bytes.min(total);
            doomed.push((name.clone(), id.clone(), info.bytes, reason));
        }
        for (name, id, bytes, reason) in doomed {
            self.entries
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(name.clone(), id.clone()));
            let dir = self.config.root.join(&name).join(&id);
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => {
                    tracing::info!(recording = %format!("{name}/{id}"), bytes, "recording deleted: {reason}")
                }
                Err(e) => {
                    tracing::warn!(recording = %format!("{name}/{id}"), "deleting a recording: {e}")
                }
            }
            // The stream's directory goes with its last recording.
            let _ = tokio::fs::remove_dir(self.config.root.join(&name)).await;
        }
    }
}

/// Names of the subdirectories of `dir` that are valid names.
fn read_dir_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| valid_name(n))
        .collect();
    v.sort();
    v
}

/// `20261201T133000Z` for 2026-12-01T13:30:00.xxxZ.
fn compact(t: WallClock) -> String {
    let s = t.to_rfc3339();
    let s = s.split('.').next().unwrap_or_default();
    let mut out: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
    out.push('Z');
    out
}

/// Parses `YYYY-MM-DDThh:mm:ss.SSSZ` (what [`WallClock::to_rfc3339`] writes).
fn parse_rfc3339(s: &str) -> Option<WallClock> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    Some(WallClock(
        ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms,
    ))
}

/// Howard Hinnant's civil-to-days algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Restart recovery of one recording directory: deletes temporary (half-written) files,
/// closes every playlist still open as VOD, and measures the recording. `None` when no
/// rendition lists a segment.
fn recover(dir: &Path) -> Option<RecordingInfo> {
    let mut bytes = 0u64;
    let mut playlists = Vec::new();
    // Media files (under a rendition's directory) and their sizes.
    let mut media: HashMap<PathBuf, u64> = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if name.ends_with(".tmp") {
                tracing::info!(path = %path.display(), "deleting a half-written recording file");
                let _ = std::fs::remove_file(&path);
            } else {
                bytes += meta.len();
                if d == dir && name.ends_with(".m3u8") && name != "index.m3u8" {
                    playlists.push(path);
                } else if d != dir {
                    media.insert(path, meta.len());
                }
            }
        }
    }
    let mut info = RecordingInfo {
        bytes,
        ..RecordingInfo::default()
    };
    let mut start: Option<WallClock> = None;
    let mut end: Option<WallClock> = None;
    let mut listed = std::collections::HashSet::new();
    let mut all_read = true;
    let mut renditions = BTreeMap::new();
    for p in playlists {
        let Ok(found) = std::fs::read_to_string(&p) else {
            all_read = false;
            continue;
        };
        // An entry the previous run was appending when it stopped is not part of it.
        let text = complete_prefix(&found).to_string();
        let mut duration = 0.0;
        let mut pdt = None;
        let mut seg_end = None;
        let mut extinf = 0.0;
        let mut r = Rendition::default();
        for line in text.lines() {
            if let Some(uri) = line
                .strip_prefix("#EXT-X-MAP:URI=\"")
                .and_then(|u| u.strip_suffix('"'))
            {
                listed.insert(dir.join(uri));
            } else if !line.starts_with('#') && !line.is_empty() {
                let path = dir.join(line);
                if let Some(&len) = media.get(&path) {
                    if extinf > 0.0 {
                        r.peak = r.peak.max(len as f64 * 8.0 / extinf);
                        r.media_bytes += len;
                        r.media_secs += extinf;
                    }
                }
                listed.insert(path);
            }
            if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                pdt = parse_rfc3339(v);
                if start.is_none_or(|s| pdt.is_some_and(|p| p < s)) {
                    start = pdt.or(start);
                }
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let d: f64 = v.trim_end_matches(',').parse().unwrap_or(0.0);
                extinf = d;
                duration += d;
                seg_end = pdt.map(|p| WallClock(p.0 + (d * 1000.0).round() as i64));
            }
        }
        info.duration = info.duration.max(duration);
        end = end.max(seg_end);
        let open = !text.contains("#EXT-X-ENDLIST");
        if open {
            let closed = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD")
                + "#EXT-X-ENDLIST\n";
            match write_once_sync(&p, closed.as_bytes()) {
                Ok(()) => {
                    info.bytes =
                        (info.bytes + closed.len() as u64).saturating_sub(found.len() as u64);
                    tracing::info!(playlist = %p.display(), "closed a recording left open by the previous run")
                }
                Err(e) => tracing::warn!(playlist = %p.display(), "closing a recording: {e}"),
            }
        }
        if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
            renditions.insert(stem.to_string(), (r, open));
        }
    }
    // Files the previous run wrote but no playlist lists yet (it stopped between writing a
    // segment and listing it) are not part of the recording.
    if all_read {
        for (path, len) in &media {
            if !listed.contains(path) && std::fs::remove_file(path).is_ok() {
                tracing::info!(path = %path.display(), "deleting a recording file no playlist lists");
                info.bytes -= (*len).min(info.bytes);
            }
        }
    }
    // A recording closed here never had its bit rates measured at its end: measure them now.
    if renditions.values().any(|(_, open)| *open) {
        let index = dir.join("index.m3u8");
        if let Ok(mv) = std::fs::read_to_string(&index) {
            let renditions = renditions.into_iter().map(|(k, (r, _))| (k, r)).collect();
            let text = final_bandwidths(&mv, &renditions);
            if write_once_sync(&index, text.as_bytes()).is_ok() {
                info.bytes = (info.bytes + text.len() as u64).saturating_sub(mv.len() as u64);
            }
        }
    }
    info.start = start?;
    info.end = Some(end.unwrap_or(info.start));
    Some(info)
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

fn write_once_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_name(path);
    let r = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Bytes queued for one stream's disk writer (recording or DVR), bounded: a disk slower than
/// the stream must cost that stream's recording a few segments (logged, counted, marked with a
/// discontinuity), never the server's memory.
#[derive(Debug, Default)]
pub(crate) struct Backlog(AtomicU64);

impl Backlog {
    /// The most a stream's writer may have waiting: about 90 s of a 6 Mbit/s stream.
    pub(crate) const MAX_BYTES: u64 = 64 << 20;

    /// Counts `n` more bytes queued, unless that would pass [`Backlog::MAX_BYTES`].
    pub(crate) fn try_add(&self, n: u64) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                q.checked_add(n).filter(|&t| t <= Self::MAX_BYTES)
            })
            .is_ok()
    }

    /// `n` bytes left the queue.
    pub(crate) fn done(&self, n: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }
}

/// Writes `bytes` to `path` through a temporary name, so the file appears complete or not at
/// all (also how the DVR spills its objects).
pub(crate) async fn write_once(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let tmp = tmp_name(path);
    let result = async {
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// One segment for the writer.
#[derive(Debug)]
struct Segment {
    rendition: String,
    msn: u64,
    duration: f64,
    pdt: WallClock,
    discontinuity: bool,
    gap: bool,
    uri: String,
    map_uri: String,
    bytes: Option<Bytes>,
    /// The init section, when this segment is the first to use it.
    init: Option<Bytes>,
    target_duration: u32,
}

impl Segment {
    /// The bytes it holds in the writer's queue.
    fn queued_bytes(&self) -> u64 {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        len(&self.bytes) + len(&self.init)
    }
}

#[derive(Debug)]
enum Msg {
    Segment(Segment),
    Multivariant(Bytes),
    /// Close the recording after what was sent before (the stream ended, or the server is
    /// stopping).
    Finish,
    /// A segment not queued, as the writer is too far behind: the recording skips it.
    Dropped {
        rendition: String,
        uri: String,
        map_uri: String,
        init: Option<Bytes>,
    },
}

/// The stream task's side of one stream's recording.
#[derive(Debug)]
pub(crate) struct Recorder {
    recordings: Arc<Recordings>,
    name: String,
    /// The writer, once the first segment arrived.
    tx: Option<(mpsc::UnboundedSender<Msg>, tokio::task::JoinHandle<()>)>,
    /// Per rendition: the last MSN handed to the writer and the init section it used.
    last: HashMap<String, (u64, String)>,
    /// The renditions the last written multivariant playlist lists.
    listed: Vec<String>,
    /// A discontinuity since the multivariant playlist was written (codecs may differ).
    mv_stale: bool,
    /// What the writer has yet to write.
    queued: Arc<Backlog>,
}

impl Recorder {
    /// A recorder for stream `name` (a recording starts with its first segment).
    pub(crate) fn new(recordings: Arc<Recordings>, name: &str) -> Recorder {
        Recorder {
            recordings,
            name: name.to_string(),
            tx: None,
            last: HashMap::new(),
            listed: Vec::new(),
            mv_stale: false,
            queued: Arc::new(Backlog::default()),
        }
    }

    /// Hands every segment of `snap` not recorded yet to the writer (bytes from `stream`'s
    /// store: a reference, no copy), and the multivariant playlist when the renditions changed.
    pub(crate) fn observe(&mut self, published: &Published, stream: &Stream) {
        let snap = &published.snapshot;
        let td = snap.timing.target_duration;
        let mut msgs = Vec::new();
        // A withdrawn rung's GAP playlist is not recorded (the recording's multivariant playlist
        // does not list it either).
        for r in snap.listed() {
            let last = self.last.get(&r.name).map(|l| l.0);
            let new_from = r
                .segments
                .iter()
                .rposition(|s| last.is_some_and(|l| s.msn <= l))
                .map_or(0, |i| i + 1);
            for s in r.segments.iter().skip(new_from) {
                let bytes = if s.gap {
                    None
                } else {
                    match stream.object(&ObjectKey::segment(&r.name, s.msn)) {
                        Some(Object::Complete(b)) => Some(b),
                        Some(Object::Growing(rope)) => {
                            let mut b = BytesMut::with_capacity(rope.len() as usize);
                            for c in rope.slice(0, rope.len()) {
                                b.extend_from_slice(&c);
                            }
                            Some(b.freeze())
                        }
                        _ => {
                            tracing::warn!(stream = %self.name, segment = %s.uri, "recording: segment no longer in memory, skipped");
                            continue;
                        }
                    }
                };
                let prev_map = self.last.get(&r.name).map(|l| l.1.as_str());
                let init = if prev_map != Some(s.map_uri.as_str()) {
                    s.map_uri
                        .parse::<ObjectKey>()
                        .ok()
                        .filter(|k| k.kind() == ObjectKind::Init)
                        .and_then(|k| match stream.object(&k) {
                            Some(Object::Complete(b)) => Some(b),
                            _ => None,
                        })
                } else {
                    None
                };
                if s.discontinuity && last.is_some() {
                    self.mv_stale = true;
                }
                self.last.insert(r.name.clone(), (s.msn, s.map_uri.clone()));
                msgs.push(Msg::Segment(Segment {
                    rendition: r.name.clone(),
                    msn: s.msn,
                    duration: s.duration,
                    pdt: s.program_date_time,
                    discontinuity: s.discontinuity,
                    gap: s.gap,
                    uri: s.uri.clone(),
                    map_uri: s.map_uri.clone(),
                    bytes,
                    init,
                    target_duration: td,
                }));
            }
        }
        if msgs.is_empty() && !self.mv_stale {
            return;
        }
        // The multivariant playlist, once every rendition it lists has a playlist of its own.
        let names: Vec<String> = snap.listed().map(|r| r.name.clone()).collect();
        if (names != self.listed || self.mv_stale)
            && names.iter().all(|n| self.last.contains_key(n))
        {
            msgs.push(Msg::Multivariant(published.multivariant().plain.clone()));
            self.listed = names;
            self.mv_stale = false;
        }
        if self.tx.is_none() {
            let Some(Msg::Segment(first)) = msgs.first() else {
                return;
            };
            let entry = self.recordings.begin(&self.name, first.pdt);
            let dir = self
                .recordings
                .config
                .root
                .join(&entry.name)
                .join(&entry.id);
            tracing::info!(stream = %self.name, recording = %format!("{}/{}", entry.name, entry.id), "recording started");
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, done_rx) = watch::channel(());
            self.recordings
                .active
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    format!("{}/{}", entry.name, entry.id),
                    (tx.clone(), done_rx),
                );
            let writer = tokio::spawn(writer(
                dir,
                entry,
                self.recordings.clone(),
                rx,
                self.queued.clone(),
                done_tx,
            ));
            self.tx = Some((tx, writer));
        }
        if let Some((tx, _)) = &self.tx {
            for m in msgs {
                let m = match m {
                    Msg::Segment(s) if !self.queued.try_add(s.queued_bytes()) => Msg::Dropped {
                        rendition: s.rendition,
                        uri: s.uri,
                        map_uri: s.map_uri,
                        init: s.init,
                    },
                    m => m,
                };
                let _ = tx.send(m);
            }
        }
    }

    /// The stream ended: lets the writer finish what it has queued and close the recording.
    pub(crate) async fn finish(self) {
        if let Some((tx, writer)) = self.tx {
            let _ = tx.send(Msg::Finish);
            let _ = writer.await;
        }
    }
}

/// One rendition's recorded segments.
#[derive(Debug, Default)]
struct Rendition {
    lines: Vec<Line>,
    target_duration: u32,
    /// A segment could not be written: the next one starts a discontinuity.
    broken: bool,
    /// The init section in use: its URI, bytes, and whether it is on disk.
    init: Option<(String, Bytes, bool)>,
    /// The playlist on disk: its TARGETDURATION and length, when it can be appended to
    /// (`None`: write it whole next time).
    on_disk: Option<(u32, u64)>,
    /// Seconds listed.
    secs: f64,
    /// Discontinuities before the first segment listed (a clip's, 0 for a recording).
    discontinuity_sequence: u64,
    /// Peak segment bit rate, media bytes and seconds (for the final BANDWIDTH values).
    peak: f64,
    media_bytes: u64,
    media_secs: f64,
}

#[derive(Debug)]
struct Line {
    msn: u64,
    duration: f64,
    pdt: WallClock,
    discontinuity: bool,
    gap: bool,
    uri: String,
    map_uri: String,
}

impl Rendition {
    fn render(&self, ended: bool) -> String {
        let mut out = String::with_capacity(128 + 96 * self.lines.len());
        let _ = writeln!(out, "#EXTM3U\n#EXT-X-VERSION:6");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let kind = if ended { "VOD" } else { "EVENT" };
        let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{kind}");
        let first = self.lines.first().map_or(0, |l| l.msn);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for i in 0..self.lines.len() {
            self.entry(i, &mut out);
        }
        if ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    /// The lines of segment `i`, ending with its URI: what is appended to the playlist.
    fn entry(&self, i: usize, out: &mut String) {
        let l = &self.lines[i];
        let prev = i.checked_sub(1).map(|p| &self.lines[p]);
        if l.discontinuity && prev.is_some() {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if prev.is_none_or(|p| p.map_uri != l.map_uri) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", l.map_uri);
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", l.pdt.to_rfc3339());
        if l.gap {
            out.push_str("#EXT-X-GAP\n");
        }
        let _ = writeln!(
            out,
            "#EXTINF:{},\n{}",
            llhls_packager::render::fmt_duration(l.duration),
            l.uri
        );
    }
}

/// What may be served of a recording's media playlist as it is on disk: all of it once it
/// ends with EXT-X-ENDLIST, else up to the end of the last complete segment entry (its URI
/// line and newline), so a reader never sees a half-appended entry.
pub(crate) fn complete_prefix(text: &str) -> &str {
    if text.ends_with("#EXT-X-ENDLIST\n") {
        return text;
    }
    let mut end = 0;
    let mut start = 0;
    while let Some(nl) = text[start..].find('\n') {
        let line = &text[start..start + nl];
        if !line.is_empty() && !line.starts_with('#') {
            end = start + nl + 1;
        }
        start += nl + 1;
    }
    // A playlist without any segment yet: its header lines only (never written so).
    &text[..end]
}

/// Appends `bytes` to the file at `path` in one write.
async fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await?;
    f.write_all(bytes).await?;
    f.flush().await
}

async fn writer(
    dir: PathBuf,
    entry: Arc<Entry>,
    recordings: Arc<Recordings>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    queued: Arc<Backlog>,
    // Dropped when this returns: the recording is closed.
    _done: watch::Sender<()>,
) {
    let mut renditions: BTreeMap<String, Rendition> = BTreeMap::new();
    let mut multivariant: Option<Bytes> = None;
    let label = format!("{}/{}", entry.name, entry.id);
    let fail = |what: &str, e: std::io::Error| {
        let n = recordings.count_error();
        if n <= 5 || n.is_multiple_of(100) {
            tracing::warn!(recording = %label, errors = n, "recording: writing {what} failed: {e}; the recording skips it, the live stream goes on");
        }
    };
    while let Some(msg) = rx.recv().await {
        let seg = match msg {
            Msg::Finish => break,
            Msg::Multivariant(b) => {
                if let Err(e) = write_once(&dir.join("index.m3u8"), &b).await {
                    fail("the multivariant playlist", e);
                }
                multivariant = Some(b);
                continue;
            }
            Msg::Dropped {
                rendition,
                uri,
                map_uri,
                init,
            } => {
                let r = renditions.entry(rendition).or_default();
                if let Some(init) = init {
                    r.init = Some((map_uri, init, false));
                }
                r.broken = true;
                fail(
                    &uri,
                    std::io::Error::other(format!(
                        "the disk is too slow: {} MiB wait to be written",
                        Backlog::MAX_BYTES >> 20
                    )),
                );
                continue;
            }
            Msg::Segment(s) => {
                queued.done(s.queued_bytes());
                s
            }
        };
        let r = renditions.entry(seg.rendition.clone()).or_default();
        let mut written = 0u64;
        if let Some(init) = seg.init {
            r.init = Some((seg.map_uri.clone(), init, false));
        }
        // The init section this segment uses, until it is on disk (a failed write is tried
        // again with the next segment).
        if let Some((uri, init, on_disk)) = r.init.as_mut().filter(|i| i.0 == seg.map_uri) {
            if !*on_disk {
                match write_once(&dir.join(&*uri), init).await {
                    Ok(()) => {
                        written += init.len() as u64;
                        *on_disk = true;
                    }
                    Err(e) => {
                        fail(uri, e);
                        r.broken = true;
                        continue;
                    }
                }
            }
        }
        if let Some(b) = &seg.bytes {
            match write_once(&dir.join(&seg.uri), b).await {
                Ok(()) => {
                    written += b.len() as u64;
                    if seg.duration > 0.0 {
                        let bits = b.len() as f64 * 8.0;
                        r.peak = r.peak.max(bits / seg.duration);
                        r.media_bytes += b.len() as u64;
                        r.media_secs += seg.duration;
                    }
                }
                Err(e) => {
                    fail(&seg.uri, e);
                    r.broken = true;
                    continue;
                }
            }
        }
        let mut td = seg.target_duration;
        td = td.max(seg.duration.round() as u32);
        r.target_duration = r.target_duration.max(td);
        r.lines.push(Line {
            msn: seg.msn,
            duration: seg.duration,
            pdt: seg.pdt,
            discontinuity: seg.discontinuity || std::mem::take(&mut r.broken),
            gap: seg.gap,
            uri: seg.uri,
            map_uri: seg.map_uri,
        });
        r.secs += seg.duration;
        // The playlist only grows while the stream is live (EVENT): each segment's lines are
        // appended, so a recording of hours does not rewrite its whole playlist every
        // segment. It is written whole (temporary name, rename) at first, when its
        // TARGETDURATION changes, after a failed append, and at the end.
        let path = dir.join(format!("{}.m3u8", seg.rendition));
        let old_len = r.on_disk.map_or(0, |(_, len)| len);
        let new_len = match r.on_disk {
            Some((td, len)) if td == r.target_duration => {
                let mut text = String::new();
                r.entry(r.lines.len() - 1, &mut text);
                append(&path, text.as_bytes())
                    .await
                    .map(|()| len + text.len() as u64)
            }
            _ => {
                let text = r.render(false);
                write_once(&path, text.as_bytes())
                    .await
                    .map(|()| text.len() as u64)
            }
        };
        r.on_disk = match new_len {
            Ok(len) => Some((r.target_duration, len)),
            Err(e) => {
                fail("a playlist", e);
                None
            }
        };
        let new_len = r.on_disk.map_or(old_len, |(_, len)| len);
        let mut info = entry.info.lock().unwrap_or_else(|e| e.into_inner());
        info.bytes = (info.bytes + written + new_len).saturating_sub(old_len);
        info.duration = info.duration.max(r.secs);
    }
    // The stream ended: every playlist becomes VOD.
    let mut end = WallClock(0);
    for (name, r) in &renditions {
        if let Some(l) = r.lines.last() {
            end = end.max(WallClock(l.pdt.0 + (l.duration * 1000.0).round() as i64));
        }
        let path = dir.join(format!("{name}.m3u8"));
        if let Err(e) = write_once(&path, r.render(true).as_bytes()).await {
            fail("a playlist", e);
        }
    }
    // The multivariant playlist was written with the bit rates of the live window when the
    // recording began: now they are measured over the whole recording.
    if let Some(mv) = multivariant {
        let text = final_bandwidths(&String::from_utf8_lossy(&mv), &renditions);
        if let Err(e) = write_once(&dir.join("index.m3u8"), text.as_bytes()).await {
            fail("the multivariant playlist", e);
        }
    }
    // What is on disk now, exactly (the playlists were rewritten).
    let measured = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || dir_size(&dir)
    })
    .await
    .ok();
    let mut info = entry.info.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bytes) = measured {
        info.bytes = bytes;
    }
    let start = info.start;
    info.end = Some(end.max(start));
    tracing::info!(recording = %label, duration = info.duration, bytes = info.bytes, "recording finished");
    drop(info);
    recordings
        .active
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&label);
}

/// A time range of a recording (`?start=&end=`), in wall-clock time: either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clip {
    pub(crate) start: Option<WallClock>,
    pub(crate) end: Option<WallClock>,
}

impl Clip {
    /// The same range as a query (`start=...&end=...`, RFC 3339 in UTC, milliseconds), for
    /// the URIs of a clip's multivariant playlist.
    pub(crate) fn query(&self) -> String {
        let mut q = Vec::new();
        if let Some(t) = self.start {
            q.push(format!("start={}", t.to_rfc3339()));
        }
        if let Some(t) = self.end {
            q.push(format!("end={}", t.to_rfc3339()));
        }
        q.join("&")
    }

    /// Does a segment from `from` to `to` overlap the range?
    fn overlaps(&self, from: WallClock, to: WallClock) -> bool {
        self.start.is_none_or(|s| to > s) && self.end.is_none_or(|e| from < e)
    }
}

/// `%XX` escapes decoded (a query value); `None` if one is malformed or the result is not UTF-8.
fn percent_decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A clip bound: an RFC 3339 date-time (`2026-12-01T13:30:05Z`, fractions of a second and a
/// `+hh:mm`/`-hh:mm` offset allowed, as EXT-X-PROGRAM-DATE-TIME writes them), or seconds from
/// the recording's start (`12.5`).
fn parse_bound(v: &str, rec_start: WallClock) -> Option<WallClock> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = v.parse().ok()?;
        if !secs.is_finite() || secs > 1e10 {
            return None;
        }
        return Some(WallClock(rec_start.0 + (secs * 1000.0).round() as i64));
    }
    let b = v.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = v.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&m) || !(1..=month_days).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &v[19..];
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        let padded: String = digits.chars().chain("000".chars()).take(3).collect();
        ms = padded.parse().ok()?;
        rest = &frac[n..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h = num_of(&rest[1..3])?;
            let m = num_of(&rest[4..6])?;
            sign * (h * 60 + m)
        }
        _ => return None,
    };
    let days = days_from_civil(y, m, d);
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
    Some(WallClock(secs * 1000 + ms))
}

fn num_of(t: &str) -> Option<i64> {
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// The clip a query asks for (`None`: no `start` or `end`, the whole recording), or why it is
/// refused. Other parameters are ignored.
pub(crate) fn parse_clip(query: &str, rec_start: WallClock) -> Result<Option<Clip>, String> {
    let mut clip = Clip {
        start: None,
        end: None,
    };
    let mut any = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "start" => &mut clip.start,
            "end" => &mut clip.end,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("{k} is given twice"));
        }
        let decoded = percent_decode(v).unwrap_or_default();
        *slot = Some(parse_bound(&decoded, rec_start).ok_or_else(|| {
            format!(
                "{k}={v} is not a time: give an RFC 3339 date-time like {} (as in EXT-X-PROGRAM-DATE-TIME) or seconds from the recording's start like 12.5",
                rec_start.to_rfc3339()
            )
        })?);
        any = true;
    }
    if let (Some(s), Some(e)) = (clip.start, clip.end) {
        if e <= s {
            return Err(format!(
                "end ({}) is not after start ({})",
                e.to_rfc3339(),
                s.to_rfc3339()
            ));
        }
    }
    Ok(any.then_some(clip))
}

/// A recorded media playlist read back: its TARGETDURATION and segments.
fn parse_media(text: &str) -> Rendition {
    let mut r = Rendition::default();
    let mut msn = 0u64;
    let mut map = String::new();
    let (mut pdt, mut dur, mut disc, mut gap) = (WallClock(0), 0.0, false, false);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            r.target_duration = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line
            .strip_prefix("#EXT-X-MAP:URI=\"")
            .and_then(|u| u.strip_suffix('"'))
        {
            map = v.to_string();
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = parse_rfc3339(v).unwrap_or(pdt);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            dur = v.trim_end_matches(',').parse().unwrap_or(0.0);
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if line == "#EXT-X-GAP" {
            gap = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            r.lines.push(Line {
                msn,
                duration: dur,
                pdt,
                discontinuity: std::mem::take(&mut disc),
                gap: std::mem::take(&mut gap),
                uri: line.to_string(),
                map_uri: map.clone(),
            });
            msn += 1;
        }
    }
    r
}

/// The segments of `r` overlapping `clip`, as a rendition of their own (discontinuities
/// before the first one counted in its discontinuity sequence), and whether the clip's end
/// has passed (a segment reaches it).
fn clip_rendition(mut r: Rendition, clip: &Clip) -> (Rendition, bool) {
    // Where each segment ends on the EXT-X-PROGRAM-DATE-TIME timeline: where the next one
    // begins (dates are rounded to the millisecond, so a range starting at a segment's date
    // does not take in the one before), or its date plus its duration.
    let ends: Vec<WallClock> = (0..r.lines.len())
        .map(|i| match r.lines.get(i + 1) {
            Some(next) if !next.discontinuity => next.pdt,
            _ => {
                let l = &r.lines[i];
                WallClock(l.pdt.0 + (l.duration * 1000.0).round() as i64)
            }
        })
        .collect();
    let passed = clip.end.is_some_and(|e| ends.iter().any(|&t| t >= e));
    let keep: Vec<bool> = r
        .lines
        .iter()
        .zip(&ends)
        .map(|(l, &to)| clip.overlaps(l.pdt, to))
        .collect();
    let Some(first) = keep.iter().position(|&k| k) else {
        r.lines.clear();
        return (r, passed);
    };
    let count = keep[first..].iter().take_while(|&&k| k).count();
    let before = r.lines[..=first].iter().filter(|l| l.discontinuity).count();
    r.discontinuity_sequence = before as u64;
    r.lines = r.lines.drain(first..).take(count).collect();
    (r, passed)
}

/// A clip of a live stream's DVR window: `media` is the rendition's full media playlist as
/// served (parts, hints and reports are left out), cut to the whole segments overlapping
/// `clip` by the same rules as a recording's clip. Returns the playlist and whether it still
/// grows (`EVENT`: the stream is live and no segment reaches the clip's end yet), or why the
/// range is refused: no segment of the window in it.
pub(crate) fn clip_window(media: &str, clip: &Clip, ended: bool) -> Result<(String, bool), String> {
    let r = parse_media(media);
    let span = window_span(&r);
    let (r, passed) = clip_rendition(r, clip);
    if r.lines.is_empty() {
        return Err(match span {
            Some((from, to)) => format!(
                "no segment of the DVR window in this range (the window has {} to {}{})",
                from.to_rfc3339(),
                to.to_rfc3339(),
                if ended { "" } else { ", and grows" }
            ),
            None => "the DVR window has no segment yet".to_string(),
        });
    }
    let done = ended || passed;
    Ok((r.render(done), !done))
}

/// From the first segment's date to the last one's end.
fn window_span(r: &Rendition) -> Option<(WallClock, WallClock)> {
    let first = r.lines.first()?;
    let last = r.lines.last()?;
    Some((
        first.pdt,
        WallClock(last.pdt.0 + (last.duration * 1000.0).round() as i64),
    ))
}

/// `uri` with `query` appended.
fn with_query(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// A clip's multivariant playlist: every URI (variants and renditions) carries the clip's
/// query, so every rendition a player picks covers the same range.
pub(crate) fn clip_multivariant(mv: &str, query: &str) -> String {
    let mut out = String::with_capacity(mv.len() + 256);
    for line in mv.lines() {
        if line.starts_with('#') {
            match line.split_once("URI=\"") {
                Some((head, rest)) => match rest.split_once('"') {
                    Some((uri, tail)) => {
                        let _ = write!(out, "{head}URI=\"{}\"{tail}", with_query(uri, query));
                    }
                    None => out.push_str(line),
                },
                None => out.push_str(line),
            }
        } else if line.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(&with_query(line, query));
        }
        out.push('\n');
    }
    out
}

/// `GET /recordings/NAME/START/FILE`: a playlist (read from disk: it is rewritten as
/// segments arrive; with `start`/`end`, a clip of it), an init section or segment (immutable,
/// byte ranges accepted, the headers of the live ones), or `export.mp4`. 404 for a recording
/// or file that is not there, 400 for a bad clip or export query.
pub(crate) async fn serve(
    origin: &crate::Origin,
    name: &str,
    id: &str,
    file: crate::route::RecordingFile<'_>,
    query: &str,
    range: Option<http::HeaderValue>,
) -> crate::headers::Reply {
    use crate::error::Error;
    use crate::metrics::Class;
    use crate::route::RecordingFile;
    let class = match &file {
        RecordingFile::Playlist("index") => Class::Multivariant,
        RecordingFile::Playlist(_) => Class::Playlist,
        RecordingFile::Object(k) if k.is_init() => Class::Init,
        RecordingFile::Object(_) => Class::Segment,
        RecordingFile::Export => Class::Other,
    };
    let Some((dir, info)) = origin.recordings().and_then(|r| r.get(name, id)) else {
        return Error::NotFound.reply(class);
    };
    let live = info.end.is_none();
    match file {
        RecordingFile::Playlist(p) => {
            let clip = match parse_clip(query, info.start) {
                Ok(c) => c,
                Err(why) => return Error::BadQuery(why).reply(class),
            };
            if let Some(c) = &clip {
                if let Some(why) = outside(c, &info) {
                    return Error::BadQuery(why).reply(class);
                }
            }
            let Ok(text) = tokio::fs::read_to_string(dir.join(format!("{p}.m3u8"))).await else {
                return Error::NotFound.reply(class);
            };
            // A media playlist grows by appends: only whole entries are served.
            let (text, growing) = match (p, &clip) {
                ("index", None) => (text, live),
                ("index", Some(c)) => (clip_multivariant(&text, &c.query()), live),
                (_, None) => {
                    let end = complete_prefix(&text).len();
                    let mut text = text;
                    text.truncate(end);
                    (text, live)
                }
                (_, Some(c)) => {
                    let (r, passed) = clip_rendition(parse_media(complete_prefix(&text)), c);
                    if r.lines.is_empty() {
                        return Error::BadQuery(format!(
                            "no segment of {p} in this range yet (the recording has {:.3} s from {})",
                            info.duration,
                            info.start.to_rfc3339()
                        ))
                        .reply(class);
                    }
                    // A clip whose end the recording has not reached yet grows like the
                    // recording (EVENT); it is VOD once a segment reaches its end.
                    let ended = !live || passed;
                    (r.render(ended), !ended)
                }
            };
            // A live recording's playlists grow (like a live playlist's plain reload); a
            // finished one's change no more.
            let cc = if growing {
                "public, max-age=1"
            } else {
                "public, max-age=3600"
            };
            crate::headers::text_reply(
                class,
                "application/vnd.apple.mpegurl",
                Bytes::from(text),
                cc,
            )
        }
        RecordingFile::Object(key) => {
            let path = dir.join(key.to_string());
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                return Error::NoSuchObject.reply(class);
            };
            let range = match &range {
                None => None,
                Some(v) => match crate::range::parse(v.as_bytes()) {
                    Ok(r) => r,
                    Err(e) => return Error::from(e).reply(class),
                },
            };
            let file = crate::dvr::DiskFile {
                path,
                len: meta.len(),
            };
            crate::media::serve_file(class, key.content_type(), &file, range)
                .await
                .unwrap_or_else(|e| e.reply(class))
        }
        RecordingFile::Export => {
            let range = match &range {
                None => None,
                Some(v) => match crate::range::parse(v.as_bytes()) {
                    Ok(r) => r,
                    Err(e) => return Error::from(e).reply(class),
                },
            };
            export(name, id, &dir, &info, query, range)
                .await
                .unwrap_or_else(|e| e.reply(class))
        }
    }
}

/// The MP4 boxes in `buf`: (type, start of the box, start of its payload, end).
fn boxes(buf: &[u8]) -> Vec<([u8; 4], usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= buf.len() {
        let size32 = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as u64;
        let kind = [buf[at + 4], buf[at + 5], buf[at + 6], buf[at + 7]];
        let (size, header) = match size32 {
            0 => ((buf.len() - at) as u64, 8),
            1 if at + 16 <= buf.len() => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[at + 8..at + 16]);
                (u64::from_be_bytes(b), 16)
            }
            1 => break,
            n => (n, 8),
        };
        let Ok(size) = usize::try_from(size) else {
            break;
        };
        if size < header || at + size > buf.len() {
            break;
        }
        out.push((kind, at, at + header, at + size));
        at += size;
    }
    out
}

/// Shifts every track fragment's decode time (`tfdt`) in a media segment by that track's
/// first one, recorded in `bases` from the first segment that has the track: an exported
/// clip's timeline starts at zero, as a file's should (players and ffprobe count a file's
/// duration from zero). Boxes it cannot read are left as they are.
fn rebase_decode_times(seg: &mut [u8], bases: &mut HashMap<u32, u64>) {
    for (kind, _, body, end) in boxes(seg) {
        if &kind != b"moof" {
            continue;
        }
        for (kind, _, tbody, tend) in boxes(&seg[body..end]) {
            if &kind != b"traf" {
                continue;
            }
            let (tbody, tend) = (body + tbody, body + tend);
            let children = boxes(&seg[tbody..tend]);
            let track = children.iter().find(|c| &c.0 == b"tfhd").and_then(|c| {
                let p = tbody + c.2 + 4;
                seg.get(p..p + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            });
            let (Some(track), Some(tfdt)) = (track, children.iter().find(|c| &c.0 == b"tfdt"))
            else {
                continue;
            };
            let p = tbody + tfdt.2;
            let Some(&version) = seg.get(p) else { continue };
            let at = p + 4;
            let width = if version == 1 { 8 } else { 4 };
            if at + width > tbody + tfdt.3 {
                continue;
            }
            let mut v = 0u64;
            for &b in &seg[at..at + width] {
                v = (v << 8) | u64::from(b);
            }
            let base = *bases.entry(track).or_insert(v);
            let shifted = v.saturating_sub(base);
            let bytes = shifted.to_be_bytes();
            seg[at..at + width].copy_from_slice(&bytes[8 - width..]);
        }
    }
}

/// Why a clip cannot be served: it lies wholly before or after the recording.
fn outside(c: &Clip, info: &RecordingInfo) -> Option<String> {
    let span = match info.end {
        Some(e) => format!("{} to {}", info.start.to_rfc3339(), e.to_rfc3339()),
        None => format!("{} on (still recording)", info.start.to_rfc3339()),
    };
    if c.end.is_some_and(|e| e <= info.start) || info.end.is_some_and(|e| c.start >= Some(e)) {
        return Some(format!("the range is outside the recording ({span})"));
    }
    None
}

/// `export.mp4?rendition=R&start=&end=`: the init section and the segments of one rendition
/// (the first variant's unless named), in the clip if one is given, as one fragmented MP4 file,
/// streamed from disk (nothing is assembled in memory). A byte range of it (a download
/// resumed) reads only the files it overlaps, and the first media segment for the decode
/// times the file starts from.
async fn export(
    name: &str,
    id: &str,
    dir: &Path,
    info: &RecordingInfo,
    query: &str,
    range: Option<crate::range::ByteRange>,
) -> Result<crate::headers::Reply, crate::error::Error> {
    use crate::error::Error;
    let bad = |why: String| Error::BadQuery(why);
    let clip = parse_clip(query, info.start).map_err(bad)?;
    if let Some(why) = clip.as_ref().and_then(|c| outside(c, info)) {
        return Err(bad(why));
    }
    let asked = query
        .split('&')
        .filter_map(|p| p.strip_prefix("rendition="))
        .next_back();
    let rendition = match asked {
        Some(r) if valid_name(r) && r != "index" => r.to_string(),
        Some(r) => {
            return Err(bad(format!(
                "rendition={r} is not a rendition name (the name of one of the recording's media playlists, without .m3u8)"
            )))
        }
        None => {
            // The first variant's rendition.
            let mv = tokio::fs::read_to_string(dir.join("index.m3u8"))
                .await
                .map_err(|_| Error::NotFound)?;
            mv.lines()
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .and_then(|l| l.strip_suffix(".m3u8"))
                .filter(|r| valid_name(r))
                .ok_or(Error::NotFound)?
                .to_string()
        }
    };
    let text = tokio::fs::read_to_string(dir.join(format!("{rendition}.m3u8")))
        .await
        .map_err(|_| bad(format!("the recording has no rendition {rendition}")))?;
    let mut r = parse_media(complete_prefix(&text));
    if let Some(c) = &clip {
        r = clip_rendition(r, c).0;
    }
    r.lines.retain(|l| !l.gap);
    let Some(first) = r.lines.first() else {
        return Err(bad(format!("no segment of {rendition} in this range yet")));
    };
    let map = first.map_uri.clone();
    if let Some(other) = r.lines.iter().find(|l| l.map_uri != map) {
        return Err(bad(format!(
            "the range spans two init sections ({map} and {}: the publisher reconnected with other settings at {}); export each side with start and end",
            other.map_uri,
            other.pdt.to_rfc3339()
        )));
    }
    let mut files = Vec::with_capacity(r.lines.len() + 1);
    let mut total = 0u64;
    for uri in std::iter::once(&map).chain(r.lines.iter().map(|l| &l.uri)) {
        let path = dir.join(uri);
        let len = tokio::fs::metadata(&path)
            .await
            .map_err(|_| Error::NoSuchObject)?
            .len();
        total += len;
        files.push((path, len));
    }
    // Rebasing decode times rewrites them in place: the file is the files' bytes end to end.
    let (first, last) = match range {
        Some(r) => crate::range::resolve(r, total)?,
        None => (0, total.saturating_sub(1)),
    };
    let (from, to) = match (r.lines.first(), r.lines.last()) {
        (Some(f), Some(l)) => (
            compact(f.pdt),
            compact(WallClock(l.pdt.0 + (l.duration * 1000.0).round() as i64)),
        ),
        _ => return Err(Error::NotFound),
    };
    let file_name = format!("{name}-{rendition}-{from}-{to}.mp4");
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let label = format!("{name}/{id}");
    tokio::spawn(async move {
        // Each track's first decode time: the file's timeline starts at zero.
        let mut bases = HashMap::new();
        // The init section's tracks: the files before the range are read until each has its
        // first decode time.
        let mut tracks = 0usize;
        let mut offset = 0u64;
        for (i, (path, len)) in files.into_iter().enumerate() {
            let at = offset;
            offset += len;
            if at > last {
                break;
            }
            // A file before the range is not read once every track has the decode time the
            // file's timeline starts from (the first media segment gives them).
            if offset <= first && i > 0 && bases.len() >= tracks {
                continue;
            }
            // One file at a time (an init section, then one segment): never the whole export.
            let bytes = match tokio::fs::read(&path).await {
                Ok(b) => b,
                Err(e) => {
                    // The response is cut short (its length says so to the client).
                    tracing::warn!(recording = %label, path = %path.display(), "export: {e}");
                    return;
                }
            };
            let mut bytes = bytes;
            if i > 0 {
                rebase_decode_times(&mut bytes, &mut bases);
            } else {
                tracks = boxes(&bytes)
                    .iter()
                    .filter(|b| &b.0 == b"moov")
                    .map(|&(_, _, body, end)| {
                        boxes(&bytes[body..end])
                            .iter()
                            .filter(|t| &t.0 == b"trak")
                            .count()
                    })
                    .sum();
            }
            if offset <= first {
                continue;
            }
            // The part of this file in the range (`at <= last`, `offset > first`).
            let from = usize::try_from(first.saturating_sub(at)).unwrap_or(usize::MAX);
            let to = usize::try_from((last + 1 - at).min(len)).unwrap_or(usize::MAX);
            let bytes = Bytes::from(bytes);
            let bytes = bytes.slice(from.min(bytes.len())..to.min(bytes.len()));
            for at in (0..bytes.len()).step_by(256 << 10) {
                let chunk = bytes.slice(at..bytes.len().min(at + (256 << 10)));
                if tx.send(chunk).await.is_err() {
                    // The client went away.
                    return;
                }
            }
        }
    });
    let cc = if info.end.is_none() {
        "no-store"
    } else {
        "public, max-age=3600"
    };
    let disposition = http::HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or(http::HeaderValue::from_static("attachment"));
    let reply = crate::headers::Reply {
        status: http::StatusCode::OK,
        class: crate::metrics::Class::Other,
        headers: vec![
            (
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("video/mp4"),
            ),
            (
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static(cc),
            ),
            (http::header::CONTENT_DISPOSITION, disposition),
            (
                http::header::ACCEPT_RANGES,
                http::HeaderValue::from_static("bytes"),
            ),
        ],
        len: Some(if range.is_some() {
            last + 1 - first
        } else {
            total
        }),
        body: crate::body::Body::Stream(rx),
    };
    Ok(match range {
        Some(_) => crate::range::partial(reply, format!("bytes {first}-{last}/{total}")),
        None => reply,
    })
}

/// `mv` with each variant's BANDWIDTH and AVERAGE-BANDWIDTH measured over the recorded
/// segments: the variant's rendition plus the audio rendition it names, as the live
/// multivariant playlist measures them over its window.
fn final_bandwidths(mv: &str, renditions: &BTreeMap<String, Rendition>) -> String {
    let rates = |name: &str| -> Option<(f64, f64)> {
        let r = renditions.get(name)?;
        let avg = if r.media_secs > 0.0 {
            r.media_bytes as f64 * 8.0 / r.media_secs
        } else {
            0.0
        };
        Some((r.peak, avg))
    };
    let audio = mv
        .lines()
        .filter(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
        .find_map(|l| l.split("URI=\"").nth(1)?.split(".m3u8\"").next())
        .and_then(rates)
        .unwrap_or((0.0, 0.0));
    let lines: Vec<&str> = mv.lines().collect();
    let mut out = String::with_capacity(mv.len() + 32);
    for (i, line) in lines.iter().enumerate() {
        let uri = lines.get(i + 1).and_then(|u| u.strip_suffix(".m3u8"));
        let measured = uri.and_then(rates);
        match (line.strip_prefix("#EXT-X-STREAM-INF:"), measured) {
            (Some(attrs), Some((peak, avg))) if peak > 0.0 => {
                let (peak, avg) = if uri.is_some_and(|u| mv.contains(&format!("URI=\"{u}.m3u8\"")))
                {
                    // An audio-only stream: its variant is the audio rendition.
                    (peak, avg)
                } else {
                    (peak + audio.0, avg + audio.1)
                };
                let fields: Vec<String> = attrs
                    .split(',')
                    .map(|f| {
                        if f.starts_with("BANDWIDTH=") {
                            format!("BANDWIDTH={}", peak.ceil() as u64)
                        } else if f.starts_with("AVERAGE-BANDWIDTH=") {
                            format!("AVERAGE-BANDWIDTH={}", avg.ceil() as u64)
                        } else {
                            f.to_string()
                        }
                    })
                    .collect();
                out.push_str("#EXT-X-STREAM-INF:");
                out.push_str(&fields.join(","));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_backlog_is_bounded_and_drains() {
        let q = Backlog::default();
        assert!(q.try_add(Backlog::MAX_BYTES - 10));
        assert!(!q.try_add(11), "past the bound");
        assert!(q.try_add(10), "up to the bound");
        assert!(!q.try_add(1));
        q.done(Backlog::MAX_BYTES);
        assert!(q.try_add(Backlog::MAX_BYTES));
        assert!(!q.try_add(u64::MAX), "no overflow");
        q.done(u64::MAX);
        assert!(q.try_add(1), "never below zero");
    }

    #[test]
    fn patterns() {
        let c = |p: &[&str]| RecordConfig {
            root: PathBuf::new(),
            patterns: p.iter().map(|s| s.to_string()).collect(),
            max_age: None,
            max_bytes: None,
        };
        assert!(c(&["*"]).records("demo"));
        assert!(c(&["cam-*", "x"]).records("cam-1"));
        assert!(!c(&["cam-*", "x"]).records("demo"));
        assert!(!c(&[]).records("demo"));
        assert!(!c(&["*"]).records("a.b"), "not a safe directory name");
        assert!(!c(&["*"]).records(".."));
    }

    fn config(root: PathBuf) -> RecordConfig {
        RecordConfig {
            root,
            patterns: vec!["*".into()],
            max_age: None,
            max_bytes: None,
        }
    }

    #[test]
    fn an_unusable_directory_is_named_in_the_error() {
        let file = std::env::temp_dir().join(format!("llhls-rec-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let dir = file.join("recordings");
        let e = Recordings::open(config(dir.clone())).unwrap_err();
        assert!(e.contains(&dir.display().to_string()), "{e}");
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn an_open_recording_is_closed_at_its_last_listed_segment() {
        let root = std::env::temp_dir().join(format!("llhls-rec-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("cam/20261201T133000Z");
        std::fs::create_dir_all(dir.join("video")).unwrap();
        let mut r = Rendition {
            target_duration: 2,
            ..Rendition::default()
        };
        for (i, msn) in [7u64, 8].into_iter().enumerate() {
            r.lines.push(Line {
                msn,
                duration: 2.0,
                pdt: WallClock(1_796_139_000_000 + 2000 * i as i64),
                discontinuity: false,
                gap: false,
                uri: format!("video/{msn}.m4s"),
                map_uri: "video/init-7.mp4".into(),
            });
            std::fs::write(dir.join(format!("video/{msn}.m4s")), [0u8; 100]).unwrap();
        }
        std::fs::write(dir.join("video/init-7.mp4"), [0u8; 10]).unwrap();
        // The entry of segment 9 half appended.
        let torn = format!(
            "{}#EXT-X-PROGRAM-DATE-TIME:2026-12-01T13:30:04.000Z\n#EXTINF:2.0",
            r.render(false)
        );
        std::fs::write(dir.join("video.m3u8"), torn).unwrap();
        std::fs::write(dir.join("video/9.m4s.tmp"), [0u8; 50]).unwrap();
        // Written, but the run stopped before its playlist listed it.
        std::fs::write(dir.join("video/9.m4s"), [0u8; 70]).unwrap();
        // Not a recording: names that could not come from a URL are ignored.
        std::fs::create_dir_all(root.join("a.b/c")).unwrap();

        let recs = Recordings::open(config(root.clone())).unwrap();
        let list = recs.list();
        assert_eq!(list.len(), 1, "{list:?}");
        let (name, id, info) = &list[0];
        assert_eq!((name.as_str(), id.as_str()), ("cam", "20261201T133000Z"));
        assert_eq!(info.start, WallClock(1_796_139_000_000));
        assert_eq!(info.end, Some(WallClock(1_796_139_004_000)));
        assert!((info.duration - 4.0).abs() < 1e-9);
        assert!(!dir.join("video/9.m4s.tmp").exists());
        assert!(!dir.join("video/9.m4s").exists());
        assert!(dir.join("video/8.m4s").exists() && dir.join("video/init-7.mp4").exists());
        let text = std::fs::read_to_string(dir.join("video.m3u8")).unwrap();
        assert_eq!(text, r.render(true));
        // Segments, init section and the closed playlist; not the deleted files.
        assert_eq!(info.bytes, 210 + r.render(true).len() as u64, "{info:?}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn final_bandwidths_are_measured_over_the_recording() {
        let rend = |peak: f64, bytes: u64, secs: f64| Rendition {
            peak,
            media_bytes: bytes,
            media_secs: secs,
            ..Rendition::default()
        };
        let mut r = BTreeMap::new();
        r.insert("video".to_string(), rend(2_000_000.0, 1_000_000, 10.0));
        r.insert("audio".to_string(), rend(130_000.0, 150_000, 10.0));
        let mv = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",URI=\"audio.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,AVERAGE-BANDWIDTH=1,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"audio\"\nvideo.m3u8\n";
        assert_eq!(
            final_bandwidths(mv, &r),
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",URI=\"audio.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=2130000,AVERAGE-BANDWIDTH=920000,CODECS=\"avc1.64001f,mp4a.40.2\",AUDIO=\"audio\"\nvideo.m3u8\n"
        );
        // Nothing measured: unchanged.
        assert_eq!(final_bandwidths(mv, &BTreeMap::new()), mv);
    }

    #[test]
    fn only_whole_entries_of_a_growing_playlist_are_served() {
        let head = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n";
        let one =
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T13:30:00.000Z\n#EXTINF:2.00000,\nvideo/7.m4s\n";
        let whole = format!("{head}{one}");
        assert_eq!(complete_prefix(&whole), whole);
        for torn in [
            "#EXT-X-PROGRAM-DATE-TIME:2026",
            "#EXTINF:2.00000,\nvid",
            "#EXTINF:2.00000,\nvideo/8.m4s",
        ] {
            assert_eq!(complete_prefix(&format!("{whole}{torn}")), whole, "{torn}");
        }
        let ended = format!("{whole}#EXT-X-ENDLIST\n");
        assert_eq!(complete_prefix(&ended), ended);
    }

    #[test]
    fn clip_bounds_are_dates_or_seconds_and_bad_ones_say_why() {
        let start = parse_rfc3339("2026-12-01T13:30:00.000Z").unwrap();
        let at = |ms: i64| Some(WallClock(start.0 + ms));
        let clip = |q: &str| parse_clip(q, start);
        assert_eq!(clip(""), Ok(None));
        assert_eq!(clip("x=1"), Ok(None), "other parameters are ignored");
        assert_eq!(
            clip("start=2.5&end=2026-12-01T13:30:10Z"),
            Ok(Some(Clip {
                start: at(2500),
                end: at(10_000)
            }))
        );
        // Fractions, offsets, percent-encoded colons and plus signs.
        for (v, ms) in [
            ("2026-12-01T13:30:01.5Z", 1500),
            ("2026-12-01T13:30:01.123456Z", 1123),
            ("2026-12-01T14:30:02%2B01:00", 2000),
            ("2026-12-01T13%3A30%3A03Z", 3000),
            ("2026-12-01T12:00:04-01:30", 4000),
        ] {
            assert_eq!(
                clip(&format!("start={v}")),
                Ok(Some(Clip {
                    start: at(ms),
                    end: None
                })),
                "{v}"
            );
        }
        for (q, why) in [
            ("start=soon", "is not a time"),
            ("start=-3", "is not a time"),
            ("start=2026-12-01T13:30:00", "is not a time"),
            ("start=2026-12-01T25:30:00Z", "is not a time"),
            ("start=2026-02-29T13:30:00Z", "is not a time"),
            ("start=2026-04-31T13:30:00Z", "is not a time"),
            ("end=2026-02-01T13:30:00+1:00", "is not a time"),
            ("start=%zz", "is not a time"),
            ("start=1e400", "is not a time"),
            ("start=5&end=5", "is not after start"),
            ("start=5&end=2", "is not after start"),
            ("end=1&end=2", "twice"),
        ] {
            let e = clip(q).unwrap_err();
            assert!(e.contains(why), "{q}: {e}");
        }
    }

    #[test]
    fn a_clip_keeps_the_whole_segments_overlapping_its_range() {
        let mut r = Rendition {
            target_duration: 2,
            ..Rendition::default()
        };
        let t0 = 1_796_139_000_000;
        for i in 0..6u64 {
            r.lines.push(Line {
                msn: 10 + i,
                duration: 2.002,
                // Dates rounded to the millisecond, as recorded.
                pdt: WallClock(t0 + 2002 * i as i64),
                discontinuity: i == 4,
                gap: false,
                uri: format!("video/{}.m4s", 10 + i),
                map_uri: if i < 4 {
                    "video/init-10.mp4"
                } else {
                    "video/init-14.mp4"
                }
                .into(),
            });
        }
        let text = r.render(true);
        let clip = |s: i64, e: Option<i64>| Clip {
            start: Some(WallClock(t0 + s)),
            end: e.map(|e| WallClock(t0 + e)),
        };
        let uris = |r: &Rendition| r.lines.iter().map(|l| l.msn).collect::<Vec<_>>();
        // Starting exactly at a segment's date: not the one before it.
        let (c, passed) = clip_rendition(parse_media(&text), &clip(2002, Some(4500)));
        assert_eq!(uris(&c), [11, 12]);
        assert!(passed);
        let out = c.render(true);
        assert!(
            out.contains("#EXT-X-MEDIA-SEQUENCE:11\n#EXT-X-MAP:URI=\"video/init-10.mp4\"\n"),
            "{out}"
        );
        assert!(!out.contains("DISCONTINUITY"), "{out}");
        // Across the discontinuity, and past it: the sequence counts the one skipped.
        let (c, _) = clip_rendition(parse_media(&text), &clip(6100, Some(8100)));
        assert_eq!(uris(&c), [13, 14]);
        assert!(c
            .render(true)
            .contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"video/init-14.mp4\""));
        let (c, _) = clip_rendition(parse_media(&text), &clip(8100, None));
        assert_eq!(uris(&c), [14, 15]);
        let out = c.render(true);
        assert!(out.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{out}");
        assert!(!out.contains("#EXT-X-DISCONTINUITY\n"), "{out}");
        // An end the recording has not reached.
        let (c, passed) = clip_rendition(parse_media(&text), &clip(0, Some(60_000)));
        assert_eq!(c.lines.len(), 6);
        assert!(!passed);
        // Nothing in range.
        assert!(clip_rendition(parse_media(&text), &clip(60_000, None))
            .0
            .lines
            .is_empty());
    }

    #[test]
    fn a_clips_multivariant_playlist_carries_its_range_on_every_uri() {
        let mv = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"audio.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nvideo.m3u8\n";
        assert_eq!(
            clip_multivariant(mv, "start=a&end=b"),
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"audio.m3u8?start=a&end=b\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nvideo.m3u8?start=a&end=b\n"
        );
    }

    #[test]
    fn an_export_starts_each_track_at_zero() {
        // moof { mfhd, traf { tfhd(track 1), tfdt v1 } }, mdat.
        let mk = |track: u32, t: u64| {
            let mut tfhd = vec![0, 0, 0, 16, b't', b'f', b'h', b'd', 0, 0, 0, 0];
            tfhd.extend(track.to_be_bytes());
            let mut tfdt = vec![0, 0, 0, 20, b't', b'f', b'd', b't', 1, 0, 0, 0];
            tfdt.extend(t.to_be_bytes());
            let mut traf = ((8 + tfhd.len() + tfdt.len()) as u32)
                .to_be_bytes()
                .to_vec();
            traf.extend(b"traf");
            traf.extend(tfhd);
            traf.extend(tfdt);
            let mut moof = ((8 + traf.len()) as u32).to_be_bytes().to_vec();
            moof.extend(b"moof");
            moof.extend(traf);
            moof.extend([0, 0, 0, 9, b'm', b'd', b'a', b't', 7]);
            moof
        };
        let mut bases = HashMap::new();
        let mut a = mk(1, 90_000);
        rebase_decode_times(&mut a, &mut bases);
        assert_eq!(a, mk(1, 0));
        let mut b = mk(1, 180_000);
        rebase_decode_times(&mut b, &mut bases);
        assert_eq!(b, mk(1, 90_000));
        let mut c = mk(2, 5);
        rebase_decode_times(&mut c, &mut bases);
        assert_eq!(c, mk(2, 0), "each track its own base");
        // Truncated input is left alone, never a panic.
        let mut t = mk(1, 7)[..30].to_vec();
        let before = t.clone();
        rebase_decode_times(&mut t, &mut bases);
        assert_eq!(t, before);
    }

    #[test]
    fn timestamps() {
        let t = WallClock(1_796_139_000_123);
        assert_eq!(parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(compact(t).len(), 16);
        assert!(compact(t).ends_with('Z') && valid_name(&compact(t)));
        assert_eq!(
            parse_rfc3339("2026-12-01T13:30:00.000Z")
                .map(compact)
                .as_deref(),
            Some("20261201T133000Z")
        );
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
