//! `llhls package INPUT OUTDIR`: a media file into the CMAF LL-HLS layout on disk, ending with
//! EXT-X-ENDLIST. The packager's end-to-end test and its benchmark against ffmpeg's HLS muxer.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use llhls_ingest::ladder::transcode::FfmpegLadder;
use llhls_ingest::ladder::RungSpec;
use llhls_origin::ladder::{Ladder, LadderFactory, Step as LadderStep};
use llhls_packager::{
    render_multivariant, render_vod, Layout, Output, Packager, PackagerConfig, WallClock,
};

use crate::source::FileSource;

/// What was written.
pub struct Summary {
    pub frames: u64,
    pub segments: usize,
    pub bytes: u64,
}

/// Source frames the ladder's transcoder may hold before packaging waits for it (its queues
/// hold 30).
const LADDER_IN_FLIGHT: u64 = 16;

/// Packages `input` into `outdir` with the given packager settings (the window is unlimited),
/// with the ABR ladder `ladder` (empty: none) on the source's grid as live streams get it.
pub fn run(
    input: &Path,
    outdir: &Path,
    mut config: PackagerConfig,
    quiet: bool,
    ladder: Vec<RungSpec>,
) -> anyhow::Result<Summary> {
    let mut src = FileSource::open(input)?;
    config.window_segments = usize::MAX;
    config.first_msn = 1;
    let mut rung_names: Vec<String> = ladder.iter().map(|r| r.name.clone()).collect();
    let mut ladder = if ladder.is_empty() {
        None
    } else {
        let factory = FfmpegLadder::new(ladder)?;
        match factory.start("package", &src.tracks) {
            Some(start) => {
                config.layout = Layout::Separate;
                rung_names = start.rungs.iter().map(|r| r.name.clone()).collect();
                let l = Ladder::new(&config, &src.tracks, start.rungs, start.transcoder)?;
                Some((l, start.events))
            }
            None => {
                tracing::warn!("no ABR ladder: no rung is below the source (or it is not H.264)");
                None
            }
        }
    };
    let mut p = Packager::new(config, src.tracks.clone())?;
    std::fs::create_dir_all(outdir).with_context(|| format!("creating {}", outdir.display()))?;
    remove_previous_output(outdir, &rung_names)?;
    let tty = !quiet && std::io::stderr().is_terminal();
    let duration = src.duration_secs;
    let wall0 = llhls_origin::wall_now();
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut warned = 0;
    let mut last_pct = -1i64;
    // Files are written by a second thread, so demuxing and packaging overlap the writes.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(std::path::PathBuf, bytes::Bytes)>(256);
    let writer = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut dirs = std::collections::HashSet::new();
        for (path, b) in rx {
            if let Some(dir) = path.parent() {
                if dirs.insert(dir.to_path_buf()) {
                    std::fs::create_dir_all(dir)?;
                }
            }
            std::fs::write(&path, &b).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    });
    let mut write = |p: &mut Packager, bytes: &mut u64, last_pct: &mut i64| -> anyhow::Result<()> {
        while let Some(o) = p.poll_output() {
            match o {
                Output::Object { key, bytes: b } => {
                    *bytes += b.len() as u64;
                    tx.send((outdir.join(key.to_string()), b))
                        .map_err(|_| anyhow::anyhow!("the file writer stopped"))?;
                }
                Output::Append { .. }
                | Output::PlaylistChanged
                | Output::Expired(_)
                | Output::Spill(_) => {}
                Output::Warning(w) => {
                    if warned < 10 {
                        if tty {
                            // Clear the progress line so the warning starts on its own line;
                            // the next progress update redraws it.
                            eprint!("\r\x1b[K");
                            *last_pct = -1;
                        }
                        tracing::warn!("{}", w.for_file());
                        warned += 1;
                    }
                }
            }
        }
        Ok(())
    };
    // The rungs' objects (already under their names) go to the same writer.
    let rung_tx = tx.clone();
    let write_step = |step: LadderStep, bytes: &mut u64| -> anyhow::Result<()> {
        for o in step.outputs {
            if let Output::Object { key, bytes: b } = o {
                *bytes += b.len() as u64;
                rung_tx
                    .send((outdir.join(key.to_string()), b))
                    .map_err(|_| anyhow::anyhow!("the file writer stopped"))?;
            }
        }
        Ok(())
    };
    while let Some(f) = src.next_frame()? {
        frames += 1;
        let secs = f.dts.as_secs_f64();
        let wall = WallClock(wall0.millis() + (secs * 1000.0) as i64);
        if let Some((l, events)) = ladder.as_mut() {
            write_step(l.frame(&f, wall), &mut bytes)?;
            // Keep the transcoder's queues from overflowing: wait for it, however slow.
            while let Ok(e) = events.try_recv() {
                write_step(l.event(e), &mut bytes)?;
            }
            while l.is_active() && l.in_flight() > LADDER_IN_FLIGHT {
                match events.blocking_recv() {
                    Some(e) => write_step(l.event(e), &mut bytes)?,
                    None => break,
                }
            }
        }
        if let Err(e) = p.handle_frame(f, wall) {
            tracing::warn!("frame {frames}: {e}");
        }
        write(&mut p, &mut bytes, &mut last_pct)?;
        if tty && duration > 0.0 {
            let pct = ((secs / duration) * 100.0).clamp(0.0, 100.0) as i64;
            if pct != last_pct {
                last_pct = pct;
                eprint!("\rpackaging {}: {pct:3}%", input.display());
                let _ = std::io::stderr().flush();
            }
        }
    }
    let end = WallClock(wall0.millis() + (duration * 1000.0) as i64);
    if let Some((l, events)) = ladder.as_mut() {
        l.finish();
        while let Some(e) = events.blocking_recv() {
            write_step(l.event(e), &mut bytes)?;
        }
        write_step(l.end(end), &mut bytes)?;
    }
    p.handle_end_of_stream(end);
    write(&mut p, &mut bytes, &mut last_pct)?;
    drop(tx);
    drop(rung_tx);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the file writer panicked"))??;
    if tty {
        eprintln!("\rpackaging {}: 100%", input.display());
    }
    let snap = p
        .snapshot()
        .context("the input was too short to produce one segment")?;
    let snap = match ladder.as_mut() {
        Some((l, _)) => l.combine(&snap).0,
        None => snap,
    };
    std::fs::write(outdir.join("index.m3u8"), render_multivariant(&snap))?;
    // A rung withdrawn on the way (it never caught up) is in no multivariant playlist.
    for r in snap.listed() {
        std::fs::write(
            outdir.join(format!("{}.m3u8", r.name)),
            render_vod(r, snap.timing.target_duration),
        )?;
    }
    Ok(Summary {
        frames,
        segments: snap.renditions[0].segments.len(),
        bytes,
    })
}

/// Playlists and rendition folders a previous `llhls package` run may have left in `outdir`
/// (a muxed run after a separate one would otherwise leave `audio.m3u8` and `audio/` behind).
/// Only these names are removed; anything else in the folder is left alone.
fn remove_previous_output(outdir: &Path, rungs: &[String]) -> anyhow::Result<()> {
    let names = ["media", "video", "audio"]
        .into_iter()
        .chain(rungs.iter().map(String::as_str));
    for name in names {
        let dir = outdir.join(name);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let playlist = outdir.join(format!("{name}.m3u8"));
        if playlist.is_file() {
            std::fs::remove_file(&playlist)
                .with_context(|| format!("removing {}", playlist.display()))?;
        }
    }
    let index = outdir.join("index.m3u8");
    if index.is_file() {
        std::fs::remove_file(&index).with_context(|| format!("removing {}", index.display()))?;
    }
    Ok(())
}
