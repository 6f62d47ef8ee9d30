//! The demo stream: `live/demo`, a sample file looped forever in real time with continuous
//! timestamps, so a newcomer sees video before setting up a publisher. A real publisher on
//! `live/demo` takes the stream over (it continues with a discontinuity, as a reconnect would);
//! the demo resumes once that publisher has stopped, or vanished and its reconnect grace period
//! has ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use llhls_packager::{Frame, MediaTime, TrackConfig};
use tokio::time::Instant;

use llhls_ingest::source::FileSource;
use llhls_ingest::streams::{Publication, Streams};

/// The demo's stream name (`live/demo`).
pub const STREAM: &str = "demo";

/// Runs the demo until the process ends; on failure logs why and stops.
pub async fn run(streams: Arc<Streams>, file: PathBuf) {
    if let Err(e) = run_inner(streams, &file).await {
        tracing::error!(
            "demo stream stopped: {e:#}. Run samples/fetch.sh to create {}, or pass --demo false",
            file.display()
        );
    }
}

async fn run_inner(streams: Arc<Streams>, file: &std::path::Path) -> anyhow::Result<()> {
    let path = file.to_path_buf();
    let (tracks, frames) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<TrackConfig>, Vec<Frame>)> {
            let mut src = FileSource::open(&path)?;
            let mut frames = Vec::new();
            while let Some(f) = src.next_frame()? {
                frames.push(f);
            }
            Ok((src.tracks.clone(), frames))
        })
        .await
        .context("demo loader")??;
    anyhow::ensure!(!frames.is_empty(), "{} has no frames", file.display());
    // Loop length: the end of the longest track, in nanoseconds.
    let first = frames.iter().map(|f| ns(f.dts)).min().unwrap_or(0);
    let last = frames.iter().map(|f| ns(f.dts)).max().unwrap_or(0);
    let frame_gap = {
        let mut v: Vec<i64> = frames
            .iter()
            .filter(|f| f.track == llhls_ingest::tracks::VIDEO)
            .map(|f| ns(f.dts))
            .collect();
        v.sort_unstable();
        v.windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(33_333_333)
    };
    let loop_ns = last - first + frame_gap;
    let mut order: Vec<Frame> = frames;
    order.sort_by_key(|f| ns(f.dts));

    let demo = Demo {
        tracks,
        order,
        first,
        loop_ns,
    };
    let mut announced = false;
    let mut refused_starts = 0;
    loop {
        // The name is free (no publisher, no reconnect grace running): play until a publisher
        // claims `live/demo`, then hand it the stream and wait for the name to be free again.
        let (mut publication, displaced) = match streams.claim_yielding(STREAM) {
            Ok(claimed) => claimed,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = publication.start(demo.tracks.clone()).await {
            // The previous stream of the name may still be ending (a publisher that has just
            // stopped: the origin lists its stream as live for a moment after the name is
            // free). Found in CI: the demo then stopped for good. Try again shortly; an error
            // that lasts (a broken demo file) still stops it after 5 s.
            refused_starts += 1;
            if refused_starts > 25 {
                return Err(e);
            }
            drop(publication);
            drop(displaced);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        refused_starts = 0;
        if announced {
            tracing::info!("live/demo is free again: the demo stream resumes");
        } else {
            tracing::info!(file = %file.display(), loop_secs = loop_ns as f64 / 1e9, "demo stream live at /live/demo/index.m3u8 (a publisher on live/demo takes it over)");
            announced = true;
        }
        tokio::select! {
            r = demo.play(&publication) => r?,
            handoff = displaced.wait() => {
                publication.hand_over(handoff);
                tracing::info!("a publisher took live/demo over: the demo stops feeding it and resumes when the name is free (when that publisher stops, or vanishes and its reconnect grace period ends)");
            }
        }
    }
}

/// The demo's frames, loaded once.
struct Demo {
    tracks: Vec<TrackConfig>,
    order: Vec<Frame>,
    /// The first DTS (ns).
    first: i64,
    /// One loop's length (ns).
    loop_ns: i64,
}

impl Demo {
    /// Feeds the file in real time, looped with continuous timestamps, until an error.
    async fn play(&self, publication: &Publication) -> anyhow::Result<()> {
        let (first, loop_ns) = (self.first, self.loop_ns);
        let start = Instant::now();
        let mut n: i64 = 0;
        loop {
            for f in &self.order {
                let offset = n * loop_ns - first;
                let at = ns(f.dts) + offset;
                tokio::time::sleep_until(start + Duration::from_nanos(at.max(0) as u64)).await;
                let shift = |t: MediaTime| {
                    MediaTime::new(
                        t.ticks
                            + llhls_packager::media::rescale(
                                n * loop_ns,
                                1_000_000_000,
                                t.scale.hz(),
                            ),
                        t.scale,
                    )
                };
                let frame = Frame {
                    dts: shift(f.dts),
                    pts: shift(f.pts),
                    ..f.clone()
                };
                publication.frame(frame).await?;
            }
            n += 1;
        }
    }
}

/// A media time in nanoseconds.
fn ns(t: MediaTime) -> i64 {
    llhls_packager::media::rescale(t.ticks, t.scale.hz(), 1_000_000_000)
}
