//! The ABR ladder: which rungs a stream gets ([`RungSpec`], presets, selection against the
//! source's size) and the FFmpeg transcoder that makes them ([`transcode`]).
//!
//! The origin packages the rungs on the source's grid (`llhls_origin::ladder`); this module
//! only has to turn every source video frame into exactly one encoded frame per rung, with an
//! IDR exactly where the source has a keyframe.

pub mod transcode;

use std::fmt;
use std::str::FromStr;

use llhls_packager::{CodecConfig, TrackConfig, TrackKind};
use serde::Deserialize;

/// One rung: a name (its playlist is `{name}.m3u8`), a picture height (the width follows the
/// source's aspect ratio), a video bitrate and an H.264 profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungSpec {
    /// Rendition name: 1-32 ASCII letters, digits, `-` or `_`, not `video`, `audio` or `media`.
    pub name: String,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Target video bitrate (kbit/s); the encoder's VBV caps the peak at 110% of it.
    pub video_kbps: u32,
    /// H.264 profile: `high` (default), `main` or `baseline`.
    #[serde(default)]
    pub profile: Option<String>,
}

/// The presets, after Apple's HLS authoring specification ladder (H.264, 30 fps): 1080p 6000,
/// 720p 3000, 540p 2000, 480p 1100 (the spec's 432p step), 360p 730 (between its 360p and
/// 432p steps: testsrc-like detail at 365 kbit/s is unwatchable) and 240p 145 (its 234p step)
/// kbit/s.
pub const PRESETS: [(&str, u32, u32); 6] = [
    ("1080p", 1080, 6000),
    ("720p", 720, 3000),
    ("540p", 540, 2000),
    ("480p", 480, 1100),
    ("360p", 360, 730),
    ("240p", 240, 145),
];

impl RungSpec {
    /// The preset called `name` (`720p`, ...).
    pub fn preset(name: &str) -> Option<RungSpec> {
        PRESETS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(n, height, video_kbps)| RungSpec {
                name: n.to_string(),
                height,
                video_kbps,
                profile: None,
            })
    }

    /// Checks the values: a usable name, an even height from 64 to 4320, a bitrate from 50 to
    /// 50000 kbit/s, a known profile.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = (1..=32).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !["video", "audio", "media"].contains(&self.name.as_str());
        if !name_ok {
            return Err(format!(
                "ladder rung name {:?}: use 1-32 letters, digits, '-' or '_', not video/audio/media",
                self.name
            ));
        }
        if !(64..=4320).contains(&self.height) || !self.height.is_multiple_of(2) {
            return Err(format!(
                "ladder rung {}: height must be even, from 64 to 4320, not {}",
                self.name, self.height
            ));
        }
        if !(50..=50_000).contains(&self.video_kbps) {
            return Err(format!(
                "ladder rung {}: video_kbps must be from 50 to 50000, not {}",
                self.name, self.video_kbps
            ));
        }
        if let Some(p) = &self.profile {
            if !["high", "main", "baseline"].contains(&p.as_str()) {
                return Err(format!(
                    "ladder rung {}: profile must be high, main or baseline, not {p}",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

impl FromStr for RungSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        RungSpec::preset(s.trim()).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            format!(
                "unknown ladder rung {s:?}: use {} (or a table in the TOML file)",
                names.join(", ")
            )
        })
    }
}

impl fmt::Display for RungSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} lines, {} kbit/s)",
            self.name, self.height, self.video_kbps
        )
    }
}

/// A rung chosen for a source: its spec and its picture size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// What was configured.
    pub spec: RungSpec,
    /// Width (even, the source's aspect ratio at `spec.height`).
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// The rungs of `ladder` a source of `width` x `height` gets, highest first, and the ones it
/// does not with the reason (a rung at or above the source's height would not be smaller than
/// the source, which is always the top rendition, passed through).
pub fn select(ladder: &[RungSpec], width: u32, height: u32) -> (Vec<Rung>, Vec<String>) {
    let mut chosen: Vec<Rung> = Vec::new();
    let mut skipped = Vec::new();
    for spec in ladder {
        if spec.height >= height {
            skipped.push(format!(
                "{}: not below the source's {width}x{height}",
                spec.name
            ));
            continue;
        }
        if chosen.iter().any(|r| r.spec.height == spec.height) {
            skipped.push(format!("{}: a rung of that height already", spec.name));
            continue;
        }
        let w = (f64::from(width) * f64::from(spec.height) / f64::from(height) / 2.0).round()
            as u32
            * 2;
        chosen.push(Rung {
            spec: spec.clone(),
            width: w.max(2),
            height: spec.height,
        });
    }
    chosen.sort_by_key(|r| std::cmp::Reverse(r.height));
    (chosen, skipped)
}

/// The source's H.264 video track, if that is what `tracks` has.
pub fn source_video(tracks: &[TrackConfig]) -> Result<&TrackConfig, String> {
    let video = tracks
        .iter()
        .find(|t| t.kind() == TrackKind::Video)
        .ok_or("the stream has no video")?;
    match &video.codec {
        CodecConfig::H264(_) => Ok(video),
        other => Err(format!(
            "the source video is {}; the ladder transcodes H.264 sources only",
            other.codec_string()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(names: &[&str]) -> Vec<RungSpec> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn rungs_at_or_above_the_source_are_skipped() {
        let ladder = specs(&["1080p", "720p", "480p", "360p", "240p"]);
        let (chosen, skipped) = select(&ladder, 1280, 720);
        let names: Vec<&str> = chosen.iter().map(|r| r.spec.name.as_str()).collect();
        assert_eq!(names, ["480p", "360p", "240p"]);
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].starts_with("1080p") && skipped[1].starts_with("720p"));
        assert!(skipped[1].contains("1280x720"), "{}", skipped[1]);
        let sizes: Vec<(u32, u32)> = chosen.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(sizes, [(854, 480), (640, 360), (426, 240)]);
        // A 4:3 source keeps its shape; a tiny one gets no rung at all.
        let (chosen, _) = select(&specs(&["360p"]), 640, 480);
        assert_eq!((chosen[0].width, chosen[0].height), (480, 360));
        let (chosen, skipped) = select(&ladder, 320, 180);
        assert!(chosen.is_empty());
        assert_eq!(skipped.len(), 5);
    }

    #[test]
    fn presets_parse_and_bad_rungs_are_refused() {
        assert_eq!(RungSpec::preset("720p").unwrap().video_kbps, 3000);
        assert!("721p".parse::<RungSpec>().unwrap_err().contains("720p"));
        for p in PRESETS {
            RungSpec::preset(p.0).unwrap().validate().unwrap();
        }
        let mut r = RungSpec::preset("360p").unwrap();
        r.name = "audio".into();
        assert!(r.validate().is_err());
        r.name = "ok".into();
        r.height = 361;
        assert!(r.validate().is_err());
        r.height = 360;
        r.profile = Some("extreme".into());
        assert!(r.validate().is_err());
    }
}
