//! The demo stream: `live/demo`, a sample file looped forever in real time with continuous
//! timestamps, so a newcomer sees video before setting up a publisher.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use llhls_packager::{Frame, MediaTime, TrackConfig};
use tokio::time::Instant;

use llhls_ingest::source::FileSource;
use llhls_ingest::streams::Streams;

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
    let ns = |t: MediaTime| llhls_packager::media::rescale(t.ticks, t.scale.hz(), 1_000_000_000);
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

    let mut publication = streams
        .claim_trusted("demo")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    publication.start(tracks).await?;
    tracing::info!(file = %file.display(), loop_secs = loop_ns as f64 / 1e9, "demo stream live at /live/demo/index.m3u8");
    let start = Instant::now();
    let mut n: i64 = 0;
    loop {
        for f in &order {
            let offset = n * loop_ns - first;
            let at = ns(f.dts) + offset;
            tokio::time::sleep_until(start + Duration::from_nanos(at.max(0) as u64)).await;
            let shift = |t: MediaTime| {
                MediaTime::new(
                    t.ticks
                        + llhls_packager::media::rescale(n * loop_ns, 1_000_000_000, t.scale.hz()),
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
