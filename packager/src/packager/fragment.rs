//! CMAF fragments from samples: one `moof`+`mdat` per part and rendition (through
//! [`crate::cmaf`]), and the init segments.

use crate::cmaf::{self, InitTrack, Sample, TrackRun};
use crate::key::ObjectKey;
use crate::media::TrackKind;

use super::time::LeadTicks;
use super::timeline::Pending;
use super::{Addressing, Output, Packager};

/// The key a part is stored under: its own file, or the growing segment it is a byte range of.
pub(super) fn part_key(addressing: Addressing, rendition: &str, msn: u64, index: u32) -> ObjectKey {
    match addressing {
        Addressing::Files => ObjectKey::part(rendition, msn, index),
        Addressing::ByteRange => ObjectKey::segment(rendition, msn),
    }
}

impl Packager {
    /// Outputs an init segment per rendition for the segment about to open (called by
    /// `open_segments` when `Segmenter::init_pending` is set).
    pub(super) fn emit_init(&mut self) {
        let msn = self.segmenter.next_msn;
        for ri in 0..self.renditions.len() {
            let tracks: Vec<InitTrack<'_>> = self.renditions[ri]
                .tracks
                .iter()
                .map(|&i| InitTrack {
                    track_id: i as u32 + 1,
                    timescale: self.tracks[i].scale,
                    codec: &self.tracks[i].cfg.codec,
                })
                .collect();
            let bytes = cmaf::init_segment(&tracks);
            let key = ObjectKey::init(&self.renditions[ri].name, msn);
            self.renditions[ri].map_uri = key.to_string();
            self.outputs.push_back(Output::Object { key, bytes });
        }
    }

    /// Publishes the part ending at lead time `boundary` in every rendition (nothing when no
    /// lead sample starts before it).
    pub(super) fn close_part(&mut self, boundary: LeadTicks) {
        self.close_part_with(boundary, false);
    }

    /// Publishes the part from the part start to `boundary` in a hole of the lead track: the
    /// other tracks' samples in that span, or a GAP part where a rendition has none.
    pub(super) fn close_hole_part(&mut self, boundary: LeadTicks) {
        self.close_part_with(boundary, true);
    }

    fn close_part_with(&mut self, boundary: LeadTicks, hole: bool) {
        let count = self
            .segmenter
            .part_samples
            .iter()
            .take_while(|p| LeadTicks::of_lead_sample(p.dts) < boundary)
            .count();
        if count == 0 && !(hole && boundary > self.segmenter.part_start) {
            return;
        }
        let lead_samples: Vec<Pending> = self.segmenter.part_samples.drain(..count).collect();
        let lead_dur = if count == 0 {
            boundary - self.segmenter.part_start
        } else {
            LeadTicks(
                lead_samples
                    .iter()
                    .map(|p| i64::from(p.dur.unwrap_or(0)))
                    .sum(),
            )
        };
        let independent = lead_samples.first().is_some_and(|p| p.sync);
        let lead_scale = self.lead_scale;
        let addressing = self.config.addressing;
        for ri in 0..self.renditions.len() {
            let mut runs_owned: Vec<(u32, u64, bool, Vec<Sample>)> = Vec::new();
            let mut rendition_dur_secs: f64 = 0.0;
            // Lead time of this rendition's first sample in the part.
            let mut first_lead: Option<LeadTicks> = None;
            let has_lead = self.renditions[ri].tracks.contains(&self.lead);
            let part_target_secs = self.renditions[ri].part_target;
            // An audio-only rendition beside video: its segment may outgrow the lead's by at
            // most one audio frame (catching up on audio that is behind the video a frame per
            // part would otherwise outgrow TARGETDURATION), and never the segment limit.
            let (audio_open_secs, lead_open_secs) = match self.renditions[ri].open.as_ref() {
                Some(o) if !has_lead => (
                    o.parts.iter().map(|p| p.duration).sum::<f64>(),
                    (boundary - o.start).secs(lead_scale),
                ),
                _ => (0.0, f64::INFINITY),
            };
            let limit_secs = self
                .locked()
                .map_or(f64::INFINITY, |l| l.segment_limit.secs(lead_scale));
            for &ti in &self.renditions[ri].tracks.clone() {
                let track = &mut self.tracks[ti];
                let samples: Vec<Pending> = if ti == self.lead {
                    lead_samples.clone()
                } else {
                    // Samples that start before the boundary; in an audio-only rendition, never
                    // more than PART-TARGET worth.
                    let mut taken = Vec::new();
                    let mut secs = 0.0;
                    while let Some(front) = track.pending.front() {
                        let front_lead = front.dts.to_lead(track.scale, lead_scale);
                        let front_secs = f64::from(front.dur.unwrap_or(0)) / f64::from(track.scale);
                        let segment_full = secs > 0.0
                            && audio_open_secs + secs + front_secs
                                > (lead_open_secs + front_secs).min(limit_secs) + 1e-9;
                        if front_lead >= boundary
                            || (!has_lead
                                && (secs + front_secs > part_target_secs + 1e-9 || segment_full))
                        {
                            break;
                        }
                        secs += front_secs;
                        if let Some(sample) = track.pending.pop_front() {
                            taken.push(sample);
                        }
                    }
                    if !has_lead {
                        rendition_dur_secs += secs;
                    }
                    taken
                };
                if samples.is_empty() {
                    continue;
                }
                let first = samples[0].dts.to_lead(track.scale, lead_scale);
                first_lead = Some(first_lead.map_or(first, |f| f.min(first)));
                let base = samples[0].dts.get().max(0) as u64;
                let video = track.cfg.kind() == TrackKind::Video;
                let out: Vec<Sample> = samples
                    .into_iter()
                    .map(|p| Sample {
                        duration: p.dur.unwrap_or(0),
                        cts_offset: p.cts,
                        sync: p.sync,
                        data: p.data,
                    })
                    .collect();
                runs_owned.push((ti as u32 + 1, base, video, out));
            }
            if has_lead {
                rendition_dur_secs = lead_dur.secs(lead_scale);
            }
            let r = &mut self.renditions[ri];
            let Some(open) = r.open.as_mut() else {
                continue;
            };
            let index = open.parts.len() as u32;
            if runs_owned.is_empty() {
                // Nothing for this rendition yet (audio not arrived): a GAP part keeps the grid,
                // for the time its segment lacks beside the lead's. Audio that already reaches
                // the boundary (its frames are longer than the lead's hole parts) gets no part:
                // a GAP there would count that time twice and outgrow TARGETDURATION.
                let lacking = lead_open_secs - audio_open_secs;
                if !has_lead && lacking <= 1e-9 {
                    continue;
                }
                open.push_part(
                    lead_dur.secs(lead_scale).min(r.part_target).min(lacking),
                    ObjectKey::part(&r.name, open.msn, index).to_string(),
                    false,
                    true,
                    None,
                    part_target_us(r.part_target),
                );
                continue;
            }
            if !has_lead && open.parts.is_empty() {
                // An audio rendition's segment starts at the first audio frame at or after the
                // video's boundary, up to a frame (21 ms of AAC) later: its PROGRAM-DATE-TIME is
                // that frame's (the tag dates the segment's first sample), so that one
                // segment's PDT plus its EXTINF is the next one's, and the date maps to the
                // same media time in every rendition. With the video's date, each audio segment
                // overran the next one's date by up to a frame (hls.js 1.7 logs the audio
                // playlist "sliding" by those milliseconds).
                if let Some(first) = first_lead {
                    open.pdt = self.timeline.pdt_at(first, lead_scale);
                }
            }
            r.fragment_seq += 1;
            let runs: Vec<TrackRun<'_>> = runs_owned
                .iter()
                .map(|(id, base, video, s)| TrackRun {
                    track_id: *id,
                    base_dts: *base,
                    video: *video,
                    samples: s,
                })
                .collect();
            let bytes = cmaf::fragment(r.fragment_seq, &runs);
            let len = bytes.len() as u64;
            let key = part_key(addressing, &r.name, open.msn, index);
            let uri = key.to_string();
            let byterange = match addressing {
                Addressing::Files => None,
                Addressing::ByteRange => Some((len, open.bytes)),
            };
            match addressing {
                Addressing::Files => self.outputs.push_back(Output::Object {
                    key,
                    bytes: bytes.clone(),
                }),
                Addressing::ByteRange => self.outputs.push_back(Output::Append {
                    key,
                    offset: open.bytes,
                    bytes: bytes.clone(),
                }),
            }
            open.bytes += len;
            open.push_part(
                rendition_dur_secs,
                uri,
                if has_lead { independent } else { true },
                false,
                byterange,
                part_target_us(r.part_target),
            );
            open.part_bytes.push(bytes);
        }
        self.segmenter.part_start = boundary;
        self.timeline.end = self.timeline.end.max(boundary);
        self.unlist_old_parts();
        self.changed();
    }
}

/// PART-TARGET (seconds, as written) in microseconds.
pub(super) fn part_target_us(part_target: f64) -> u64 {
    (part_target * 1e6).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_files_or_ranges_of_their_segment() {
        assert_eq!(
            part_key(Addressing::Files, "video", 7, 3).to_string(),
            "video/7.3.m4s"
        );
        assert_eq!(
            part_key(Addressing::ByteRange, "video", 7, 3).to_string(),
            "video/7.m4s"
        );
    }
}
