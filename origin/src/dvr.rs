//! DVR storage: segments that left the in-memory live window ([`Output::Spill`]) are written
//! to disk, one file per segment, and served from there until they leave the DVR window.
//!
//! - Each stream instance has its own directory under the DVR directory; a writer task per
//!   stream writes each spilled segment once, to a temporary name first and then renamed, so
//!   no reader ever sees a partial file. Only then does the store's entry switch from the
//!   bytes in memory to the file ([`Object::OnDisk`]): the segment is served from memory
//!   until the file is complete, and its memory is freed after.
//! - A write that fails (disk full, permissions) is counted (`llhls_dvr_write_errors_total`),
//!   logged (the first few, then every 100th) and reported to the stream task, which drops
//!   that segment and every older one from the DVR window (`Packager::drop_dvr_through`): the
//!   window lists fewer old segments, the live stream goes on.
//! - A segment that expires is removed from the store and its file deleted (asynchronously).
//!   The stream's directory goes when the stream is gone.
//!
//! Reads go through `tokio::fs` (a blocking-pool thread), so a slow disk never stalls the
//! runtime. The packager stays sans-IO: it only says which segment left memory and when one
//! expires.
//!
//! [`Output::Spill`]: llhls_packager::Output::Spill

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use llhls_packager::ObjectKey;
use tokio::sync::mpsc;

use crate::live::{Object, Stream};
use crate::metrics::Metrics;
use crate::record::{write_once, Backlog};

/// A segment stored on disk.
#[derive(Debug)]
pub struct DiskFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub len: u64,
}

impl DiskFile {
    /// Reads `len` bytes at `offset` without blocking the runtime: one trip to the blocking
    /// pool that opens, seeks and reads (through `tokio::fs` each of those was a trip of its
    /// own, and the read went through an intermediate buffer). An error (the file was deleted
    /// meanwhile, an I/O error) is answered 404 by the caller.
    pub async fn read(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        let path = self.path.clone();
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek};
            let mut f = std::fs::File::open(&path)?;
            if offset > 0 {
                f.seek(SeekFrom::Start(offset))?;
            }
            let mut buf = vec![0u8; len];
            f.read_exact(&mut buf)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Makes the DVR directory ready at startup: creates it, removes what a previous run left in
/// it (segments are not recovered after a restart yet), and checks that a file can be written
/// there. The error names the path.
pub fn prepare(dir: &Path) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "the DVR data directory {} is not usable ({what}: {e}); set data_dir (--data-dir, LLHLS_DATA_DIR) to a writable directory",
            dir.display()
        )
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| fail("clearing it", e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| fail("creating it", e))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").map_err(|e| fail("writing a file in it", e))?;
    std::fs::remove_file(&probe).map_err(|e| fail("removing a file in it", e))?;
    Ok(())
}

/// The directory name for stream `name`: the name itself when it is made of letters, digits,
/// `-` and `_` (what the ingest registry allows), else percent-encoded so it can never
/// name a path outside the DVR directory; then the instance number.
pub(crate) fn stream_dir(root: &Path, name: &str, instance: u64) -> PathBuf {
    let mut safe = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            safe.push(b as char);
        } else {
            safe.push_str(&format!("%{b:02X}"));
        }
    }
    root.join(format!("{safe}.{instance}"))
}

/// The stream task's side of a stream's DVR storage.
#[derive(Debug)]
pub(crate) struct Spiller {
    dir: PathBuf,
    tx: mpsc::UnboundedSender<(ObjectKey, Bytes)>,
    /// MSNs of segments that could not be written.
    pub(crate) failed: mpsc::UnboundedReceiver<u64>,
    failed_tx: mpsc::UnboundedSender<u64>,
    writer: tokio::task::JoinHandle<()>,
    /// What the writer has yet to write.
    queued: Arc<Backlog>,
    stream: Arc<Stream>,
    metrics: Arc<Metrics>,
}

impl Spiller {
    /// Starts the writer task of `stream`, writing under `dir`.
    pub(crate) fn start(dir: PathBuf, stream: Arc<Stream>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (failed_tx, failed) = mpsc::unbounded_channel();
        let queued = Arc::new(Backlog::default());
        let writer = tokio::spawn(writer(
            dir.clone(),
            stream.clone(),
            metrics.clone(),
            rx,
            failed_tx.clone(),
            queued.clone(),
        ));
        Spiller {
            dir,
            tx,
            failed,
            failed_tx,
            writer,
            queued,
            stream,
            metrics,
        }
    }

    /// Queues the segment `key` for writing (it stays served from memory meanwhile). When the
    /// disk is too far behind, the segment is not written: it leaves the DVR window as if its
    /// write had failed (logged and counted), rather than memory growing without bound.
    pub(crate) fn spill(&self, key: ObjectKey, bytes: Bytes) {
        if !self.queued.try_add(bytes.len() as u64) {
            write_failed(
                &self.metrics,
                &self.stream.name,
                &self.dir.join(key.to_string()),
                &format!(
                    "the disk is too slow: {} MiB wait to be written",
                    Backlog::MAX_BYTES >> 20
                ),
            );
            let _ = self.failed_tx.send(key.msn());
            return;
        }
        // The writer runs as long as this sender exists.
        let _ = self.tx.send((key, bytes));
    }

    /// The stream is gone: lets the writer finish what it has queued, then deletes the
    /// stream's directory and everything in it (a write after the deletion would create the
    /// directory again).
    pub(crate) async fn remove(self) {
        let Spiller {
            dir, tx, writer, ..
        } = self;
        drop(tx);
        let _ = writer.await;
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), "removing a stream's DVR directory: {e}");
            }
        }
    }
}

/// Deletes an expired segment's file, off the stream task.
pub(crate) fn delete(file: Arc<DiskFile>) {
    tokio::spawn(async move {
        if let Err(e) = tokio::fs::remove_file(&file.path).await {
            tracing::warn!(path = %file.path.display(), "deleting an expired DVR segment: {e}");
        }
    });
}

async fn writer(
    dir: PathBuf,
    stream: Arc<Stream>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<(ObjectKey, Bytes)>,
    failed: mpsc::UnboundedSender<u64>,
    queued: Arc<Backlog>,
) {
    while let Some((key, bytes)) = rx.recv().await {
        queued.done(bytes.len() as u64);
        let path = dir.join(key.to_string());
        match write_once(&path, &bytes).await {
            Ok(()) => {
                let file = Arc::new(DiskFile {
                    path,
                    len: bytes.len() as u64,
                });
                let mut objects = stream.objects.write().unwrap_or_else(|e| e.into_inner());
                if let Some(entry) = objects.get_mut(&key) {
                    *entry = Object::OnDisk(file);
                } else {
                    // It expired while it was being written.
                    drop(objects);
                    delete(file);
                }
            }
            Err(e) => {
                write_failed(&metrics, &stream.name, &path, &e.to_string());
                let _ = failed.send(key.msn());
            }
        }
    }
}

/// Counts a segment that did not reach the disk, and logs the first few.
fn write_failed(metrics: &Metrics, stream: &str, path: &Path, why: &str) {
    let n = metrics.dvr_write_errors.fetch_add(1, Ordering::Relaxed) + 1;
    if n <= 5 || n.is_multiple_of(100) {
        tracing::warn!(
            stream = %stream,
            path = %path.display(),
            errors = n,
            "writing a DVR segment failed: {why}; the DVR window drops it and older segments, the live stream goes on"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_dirs_stay_inside_the_root() {
        let root = Path::new("/data/dvr");
        assert_eq!(
            stream_dir(root, "demo_1-a", 3),
            Path::new("/data/dvr/demo_1-a.3")
        );
        let odd = stream_dir(root, "../../etc/x", 1);
        assert_eq!(odd, Path::new("/data/dvr/%2E%2E%2F%2E%2E%2Fetc%2Fx.1"));
        assert_eq!(odd.parent(), Some(root));
    }

    #[test]
    fn an_unusable_directory_is_named_in_the_error() {
        let file = std::env::temp_dir().join(format!("llhls-dvr-file-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let dir = file.join("dvr");
        let e = prepare(&dir).unwrap_err();
        assert!(e.contains(&dir.display().to_string()), "{e}");
        std::fs::remove_file(&file).unwrap();
    }
}
