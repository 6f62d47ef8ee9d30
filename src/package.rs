//! `llhls package INPUT OUTDIR`: a media file into the CMAF LL-HLS layout on disk, ending with
//! EXT-X-ENDLIST. The packager's end-to-end test and its benchmark against ffmpeg's HLS muxer.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;
use llhls_packager::{
    render_multivariant, render_vod, Output, Packager, PackagerConfig, WallClock,
};

use crate::source::FileSource;

/// What was written.
pub struct Summary {
    pub frames: u64,
    pub segments: usize,
    pub bytes: u64,
}

/// Packages `input` into `outdir` with the given packager settings (the window is unlimited).
pub fn run(
    input: &Path,
    outdir: &Path,
    mut config: PackagerConfig,
    quiet: bool,
) -> anyhow::Result<Summary> {
    let mut src = FileSource::open(input)?;
    config.window_segments = usize::MAX;
    config.first_msn = 1;
    let mut p = Packager::new(config, src.tracks.clone())?;
    std::fs::create_dir_all(outdir).with_context(|| format!("creating {}", outdir.display()))?;
    remove_previous_output(outdir)?;
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
                Output::Append { .. } | Output::PlaylistChanged | Output::Expired(_) => {}
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
    while let Some(f) = src.next_frame()? {
        frames += 1;
        let secs = f.dts.as_secs_f64();
        let wall = WallClock(wall0.millis() + (secs * 1000.0) as i64);
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
    p.handle_end_of_stream(WallClock(wall0.millis() + (duration * 1000.0) as i64));
    write(&mut p, &mut bytes, &mut last_pct)?;
    drop(tx);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the file writer panicked"))??;
    if tty {
        eprintln!("\rpackaging {}: 100%", input.display());
    }
    let snap = p
        .snapshot()
        .context("the input was too short to produce one segment")?;
    std::fs::write(outdir.join("index.m3u8"), render_multivariant(&snap))?;
    for r in &snap.renditions {
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
fn remove_previous_output(outdir: &Path) -> anyhow::Result<()> {
    for name in ["media", "video", "audio"] {
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
