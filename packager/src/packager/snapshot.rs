//! Playlist snapshots: the immutable view of every rendition that the renderer, the
//! directive classifier and the origin read, with the preload hint.

use crate::key::ObjectKey;
use crate::media::{TrackConfig, TrackKind};
use crate::playlist::{OpenSegment, PreloadHint, RenditionSnapshot, StreamSnapshot};

use super::probe::Phase;
use super::{Addressing, Packager};

impl Packager {
    /// The current playlist state (cheap enough to call once per change).
    pub fn snapshot(&self) -> Option<StreamSnapshot> {
        let timing = self.timing?;
        let renditions = self
            .renditions
            .iter()
            .map(|r| {
                let track_cfgs: Vec<&TrackConfig> =
                    r.tracks.iter().map(|&i| &self.tracks[i].cfg).collect();
                let video = track_cfgs.iter().find(|c| c.kind() == TrackKind::Video);
                let audio = track_cfgs.iter().find(|c| c.kind() == TrackKind::Audio);
                let open = r.open.as_ref().map(|o| OpenSegment {
                    msn: o.msn,
                    uri: ObjectKey::segment(&r.name, o.msn).to_string(),
                    program_date_time: o.pdt,
                    discontinuity: o.discontinuity,
                    map_uri: o.map_uri.clone(),
                    parts: o.parts.clone(),
                    bytes: o.bytes,
                });
                // The next part: in the segment in progress, or, with none in progress (the
                // input stalled, or a discontinuity closed the segment), the first part of the
                // next segment, which comes when the input resumes or as a GAP part: a live
                // playlist always hints (HLS2 App. B.1), so blocked players and edges wait on
                // the part that comes next rather than polling.
                let next = r
                    .open
                    .as_ref()
                    .map(|o| (o.msn, o.parts.len() as u32, o.bytes))
                    .or_else(|| r.segments.last().map(|s| (s.msn + 1, 0, 0)));
                let preload_hint = if self.ended {
                    None
                } else {
                    next.map(|(msn, part, bytes)| match self.config.addressing {
                        Addressing::Files => PreloadHint {
                            uri: ObjectKey::part(&r.name, msn, part).to_string(),
                            byterange_start: None,
                        },
                        Addressing::ByteRange => PreloadHint {
                            uri: ObjectKey::segment(&r.name, msn).to_string(),
                            byterange_start: Some(bytes),
                        },
                    })
                };
                RenditionSnapshot {
                    name: r.name.clone(),
                    kind: r.kind,
                    codecs: track_cfgs.iter().map(|c| c.codec.codec_string()).collect(),
                    resolution: video.map(|v| v.codec.resolution()),
                    frame_rate: video
                        .and_then(|v| v.codec.frame_rate())
                        .or_else(|| video.and(self.frame_rate_measured())),
                    channels: audio.and_then(|a| a.codec.channels()),
                    part_target: r.part_target,
                    media_sequence: r.media_sequence,
                    discontinuity_sequence: r.discontinuity_sequence,
                    // The older segments are shared, not copied (see `Segments`).
                    segments: r.segments.clone(),
                    open,
                    preload_hint,
                    settled: r.settled.clone(),
                    withdrawn: false,
                }
            })
            .collect();
        Some(StreamSnapshot {
            version: self.version,
            timing,
            renditions,
            ended: self.ended,
            independent_segments: self.independent_segments,
        })
    }

    fn frame_rate_measured(&self) -> Option<f64> {
        match self.phase {
            Phase::Running(locked) if locked.frame_ticks.get() > 0 => Some(
                (self.lead_scale as f64 / locked.frame_ticks.get() as f64 * 1000.0).round()
                    / 1000.0,
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::synth::Publisher;
    use crate::{Addressing, Packager, PackagerConfig, StreamSnapshot};

    fn first_snapshot(addressing: Addressing) -> StreamSnapshot {
        let mut publisher = Publisher::new(30.0, 60);
        let config = PackagerConfig {
            addressing,
            ..Default::default()
        };
        let mut packager = Packager::new(config, publisher.tracks()).unwrap();
        while !packager.is_live() {
            let (frame, now) = publisher.next_frame();
            packager.handle_frame(frame, now).unwrap();
        }
        packager.snapshot().expect("live")
    }

    #[test]
    fn the_hint_names_the_next_part_file() {
        let snap = first_snapshot(Addressing::Files);
        let media = &snap.renditions[0];
        let open = media.open.as_ref().expect("a segment in progress");
        let hint = media.preload_hint.as_ref().expect("a hint while live");
        assert_eq!(
            hint.uri,
            format!("media/{}.{}.m4s", open.msn, open.parts.len())
        );
        assert_eq!(hint.byterange_start, None);
        assert_eq!(media.frame_rate, Some(30.0));
    }

    #[test]
    fn the_byte_range_hint_names_the_growing_segment() {
        let snap = first_snapshot(Addressing::ByteRange);
        let media = &snap.renditions[0];
        let open = media.open.as_ref().expect("a segment in progress");
        let hint = media.preload_hint.as_ref().expect("a hint while live");
        assert_eq!(hint.uri, open.uri);
        assert_eq!(hint.byterange_start, Some(open.bytes));
    }
}
