//! A single server's memory of its live streams across a restart (even after `kill -9`).
//!
//! Every second the position of each live stream (its last media sequence number, the
//! discontinuity sequence numbers it may have used, its segment pace: what a cluster keeps in
//! Redis, see `cluster`) is written to `data_dir/streams.txt`. At startup the positions stored
//! less than [`KEPT`] ago are read back, and for each of those streams:
//!
//! - its first publish here continues above the old MSNs at the old pace (not at the wall
//!   clock's MSN, hundreds of segments ahead), after a higher EXT-X-DISCONTINUITY-SEQUENCE, so
//!   no URI is served again with other bytes and players that kept polling find the new
//!   segments where the old ones would have gone on; its first playlists start with the last
//!   segment players saw and the skipped MSNs as GAP segments (`llhls_packager::Bridge`), so
//!   they share an MSN with the playlist those players had (Shaka never resumed without);
//! - until its publisher is back (within the reconnect grace period), viewer requests for it
//!   are held, then answered 503 with `Retry-After`, instead of 404, which players give up on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llhls_ingest::streams::{ClusterClaim, Continuation, PublishError, Streams};
use llhls_origin::Origin;

use crate::cluster::{continuation, last_published, parse_last, unix_ms, Last};

/// Positions older than this are not continued (a stream gone that long has no viewers
/// waiting; the wall clock's MSN is then above the old ones anyway). The same as a cluster's.
const KEPT: Duration = Duration::from_secs(60);
/// How often the positions are written.
const EVERY: Duration = Duration::from_secs(1);

/// The positions read at startup that no publish has continued yet.
pub struct Positions {
    file: PathBuf,
    remembered: Mutex<HashMap<String, Last>>,
}

impl Positions {
    /// Reads `data_dir/streams.txt` (a missing or unreadable file: nothing to continue), tells
    /// the origin to hold viewers of the streams found until `grace` from now, and writes the
    /// positions every second from now on. Not used with a cluster (Redis keeps them).
    pub fn start(
        data_dir: &Path,
        origin: Arc<Origin>,
        streams: Arc<Streams>,
        grace: Duration,
    ) -> Arc<Self> {
        let file = data_dir.join("streams.txt");
        let now = unix_ms();
        let remembered: HashMap<String, Last> = std::fs::read_to_string(&file)
            .map(|text| parse(&text, now))
            .unwrap_or_default();
        let until = Instant::now() + grace;
        for name in remembered.keys() {
            origin.expect_back(name, until);
        }
        if !remembered.is_empty() {
            let mut names: Vec<&String> = remembered.keys().collect();
            names.sort();
            tracing::info!(?names, file = %file.display(), "streams live before the restart: waiting for their publishers, and continuing their media sequence numbers");
        }
        let p = Arc::new(Positions {
            file,
            remembered: Mutex::new(remembered),
        });
        streams.set_cluster(p.clone());
        let w = p.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut warned = false;
            let mut last_text = None;
            loop {
                tick.tick().await;
                let text = w.render(&origin);
                if last_text.as_ref() == Some(&text) {
                    continue;
                }
                match w.write(&text).await {
                    Ok(()) => {
                        last_text = Some(text);
                        warned = false;
                    }
                    Err(e) if !warned => {
                        warned = true;
                        tracing::warn!(file = %w.file.display(), "cannot keep the streams' positions for a restart (players of a stream then stop at a restart): {e}; set data_dir (--data-dir, LLHLS_DATA_DIR) to a writable directory");
                    }
                    Err(_) => {}
                }
            }
        });
        p
    }

    /// The file's text now: the live streams' positions, and those read at startup that are
    /// not back yet and not too old (so a second restart soon after still continues them).
    fn render(&self, origin: &Origin) -> String {
        let now = unix_ms();
        let mut lines: Vec<(String, Last)> = origin
            .stream_names()
            .into_iter()
            .filter_map(|n| last_published(origin, &n).map(|l| (n, l)))
            .collect();
        {
            let mut r = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            r.retain(|_, l| now.saturating_sub(l.stored_ms) <= KEPT.as_millis() as u64);
            for (n, l) in r.iter() {
                if !lines.iter().any(|(m, _)| m == n) {
                    lines.push((n.clone(), *l));
                }
            }
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        lines.iter().map(|(n, l)| format!("{n} {l}\n")).collect()
    }

    /// Replaces the file (a temporary file renamed over it: a kill mid-write leaves the old
    /// one); an empty text removes it.
    async fn write(&self, text: &str) -> std::io::Result<()> {
        if text.is_empty() {
            return match tokio::fs::remove_file(&self.file).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        if let Some(dir) = self.file.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = self.file.with_extension("txt.tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, &self.file).await
    }
}

/// The positions in `text` (`NAME MSN DISCONTINUITY-SEQUENCE MIN-SEGMENT-MS AVG-SEGMENT-MS
/// STORED-MS` lines) stored at most [`KEPT`] before `now_ms`; other lines are skipped.
fn parse(text: &str, now_ms: u64) -> HashMap<String, Last> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(' ')?;
            let l = parse_last(rest)?;
            let c = continuation(&l, now_ms);
            (llhls_ingest::streams::valid_name(name)
                && now_ms.saturating_sub(l.stored_ms) <= KEPT.as_millis() as u64
                && l.stored_ms <= now_ms.saturating_add(KEPT.as_millis() as u64)
                && c.msn <= llhls_packager::MAX_FIRST_MSN
                && c.discontinuity_sequence <= llhls_packager::MAX_FIRST_MSN)
                .then(|| (name.to_string(), l))
        })
        .collect()
}

impl ClusterClaim for Positions {
    /// Never refuses; a stream live before the restart continues where it left off.
    fn claim(&self, name: &str) -> Result<Option<Continuation>, PublishError> {
        let l = self
            .remembered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(l.map(|l| {
            let c = continuation(&l, unix_ms());
            tracing::info!(stream = %name, msn = c.msn, discontinuity_sequence = c.discontinuity_sequence, "continuing the stream as it was before the restart");
            c
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_read_back_only_when_recent_and_sane() {
        let now = 1_800_000_000_000;
        let text = format!(
            "cam1 1000 3 1000 1000 {}\n\
             old 1000 3 1000 1000 {}\n\
             bad/name 1000 3 1000 1000 {now}\n\
             huge 18446744073709551615 3 1000 1000 {now}\n\
             short 1000 3\n\
             \n\
             cam2 77 0 500 2000 {now}\n",
            now - 5_000,
            now - 61_000
        );
        let p = parse(&text, now);
        let mut names: Vec<&str> = p.keys().map(|s| s.as_str()).collect();
        names.sort();
        assert_eq!(names, ["cam1", "cam2"]);
        // Five seconds at one segment a second: five MSNs on (more than the two seconds of
        // segments the old server may have opened after storing it).
        let c = continuation(&p["cam1"], now);
        assert_eq!((c.msn, c.discontinuity_sequence), (1005, 4));
    }
}
