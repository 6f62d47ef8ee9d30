//! Media files as frame sources, through `ffmpeg-next` (any container FFmpeg can demux): the
//! input of `llhls package` and of the demo stream. Packets are passed through, not decoded.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use ffmpeg_next as ffmpeg;
use llhls_packager::codec::{
    annex_b_to_length_prefixed, is_annex_b, split_annex_b, AacConfig, Av1Config, AvcConfig,
    CodecConfig, HevcConfig, OpusConfig,
};
use llhls_packager::{Frame, MediaTime, Timescale, TrackConfig, TrackId};

use crate::tracks::{AUDIO, VIDEO};

/// Initialises FFmpeg once, quietly.
pub fn init() -> anyhow::Result<()> {
    ffmpeg::init().context("initialising FFmpeg")?;
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    Ok(())
}

struct Mapped {
    track: TrackId,
    num: i64,
    scale: Timescale,
    annex_b: bool,
}

/// A demuxed file.
pub struct FileSource {
    input: ffmpeg::format::context::Input,
    map: Vec<Option<Mapped>>,
    /// The tracks found (one video and/or one audio).
    pub tracks: Vec<TrackConfig>,
    /// Container duration in seconds (0 when unknown).
    pub duration_secs: f64,
}

/// The codec-private bytes of a stream (avcC, hvcC, AudioSpecificConfig, OpusHead...).
#[allow(unsafe_code)]
fn extradata(params: &ffmpeg::codec::Parameters) -> Vec<u8> {
    // SAFETY: `as_ptr` points at the stream's live AVCodecParameters, owned by the input
    // context that outlives this call; FFmpeg keeps `extradata` valid for `extradata_size`
    // bytes (or null with size 0), and we copy it out before returning.
    unsafe {
        let p = params.as_ptr();
        let (data, size) = ((*p).extradata, (*p).extradata_size);
        if data.is_null() || size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(data, size as usize).to_vec()
        }
    }
}

fn codec_config(
    id: ffmpeg::codec::Id,
    extra: &[u8],
    channels: u8,
    rate: u32,
) -> anyhow::Result<Option<CodecConfig>> {
    use ffmpeg::codec::Id;
    Ok(Some(match id {
        Id::H264 if is_annex_b(extra) => {
            let nals = split_annex_b(extra);
            let sps = nals
                .iter()
                .filter(|n| n.first().map(|b| b & 0x1f) == Some(7))
                .map(|n| n.to_vec())
                .collect();
            let pps = nals
                .iter()
                .filter(|n| n.first().map(|b| b & 0x1f) == Some(8))
                .map(|n| n.to_vec())
                .collect();
            CodecConfig::H264(AvcConfig::from_parameter_sets(sps, pps)?)
        }
        Id::H264 => CodecConfig::H264(AvcConfig::from_avcc(extra)?),
        Id::HEVC if is_annex_b(extra) => {
            let nals = split_annex_b(extra);
            let of = |t: u8| {
                nals.iter()
                    .filter(|n| n.first().map(|b| (b >> 1) & 0x3f) == Some(t))
                    .map(|n| n.to_vec())
                    .collect()
            };
            CodecConfig::Hevc(HevcConfig::from_parameter_sets(of(32), of(33), of(34))?)
        }
        Id::HEVC => CodecConfig::Hevc(HevcConfig::from_hvcc(extra)?),
        Id::AV1 => CodecConfig::Av1(Av1Config::from_av1c(extra)?),
        Id::AAC if extra.is_empty() => CodecConfig::Aac(AacConfig::lc(rate, channels)?),
        Id::AAC => CodecConfig::Aac(AacConfig::from_asc(extra)?),
        Id::OPUS if extra.is_empty() => CodecConfig::Opus(OpusConfig::simple(channels)),
        Id::OPUS => CodecConfig::Opus(OpusConfig::from_opus_head(extra)?),
        _ => return Ok(None),
    }))
}

impl FileSource {
    /// Opens `path` and picks its first playable video and audio streams.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let input =
            ffmpeg::format::input(&path).with_context(|| format!("opening {}", path.display()))?;
        let mut map = Vec::new();
        let mut tracks = Vec::new();
        let (mut have_v, mut have_a) = (false, false);
        for stream in input.streams() {
            let params = stream.parameters();
            let medium = params.medium();
            let id = params.id();
            let (channels, rate) =
                match ffmpeg::codec::context::Context::from_parameters(params.clone()) {
                    Ok(ctx) => match ctx.decoder().audio() {
                        Ok(a) => (a.channels() as u8, a.rate()),
                        Err(_) => (2, 48_000),
                    },
                    Err(_) => (2, 48_000),
                };
            let want = match medium {
                ffmpeg::media::Type::Video if !have_v => Some(VIDEO),
                ffmpeg::media::Type::Audio if !have_a => Some(AUDIO),
                _ => None,
            };
            let mut mapped = None;
            if let Some(track) = want {
                let extra = extradata(&params);
                match codec_config(id, &extra, channels, rate) {
                    Ok(Some(codec)) => {
                        let tb = stream.time_base();
                        let scale =
                            Timescale::new(tb.denominator().max(1) as u32).context("time base")?;
                        if track == VIDEO {
                            have_v = true;
                        } else {
                            have_a = true;
                        }
                        mapped = Some(Mapped {
                            track,
                            num: i64::from(tb.numerator()),
                            scale,
                            // avcC/hvcC extradata (first byte 1) means length-prefixed
                            // samples; Annex-B or none (MPEG-TS) means start codes.
                            annex_b: matches!(
                                id,
                                ffmpeg::codec::Id::H264 | ffmpeg::codec::Id::HEVC
                            ) && extra.first() != Some(&1),
                        });
                        tracks.push(TrackConfig { id: track, codec });
                    }
                    Ok(None) => {
                        tracing::warn!(stream = stream.index(), codec = ?id, "skipping a stream in a codec LL-HLS players cannot play")
                    }
                    Err(e) => {
                        tracing::warn!(stream = stream.index(), codec = ?id, "skipping a stream: {e}")
                    }
                }
            }
            map.push(mapped);
        }
        if tracks.is_empty() {
            bail!(
                "{}: no H.264/HEVC/AV1 video or AAC/Opus audio stream",
                path.display()
            );
        }
        let duration_secs = if input.duration() > 0 {
            input.duration() as f64 / 1e6
        } else {
            0.0
        };
        Ok(FileSource {
            input,
            map,
            tracks,
            duration_secs,
        })
    }

    /// The next frame in file order, or `None` at the end.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        loop {
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(e) => return Err(e).context("reading a packet"),
            }
            let Some(Some(m)) = self.map.get(packet.stream()) else {
                continue;
            };
            let Some(data) = packet.data() else { continue };
            if data.is_empty() {
                continue;
            }
            let Some(dts) = packet.dts().or(packet.pts()) else {
                continue;
            };
            let pts = packet.pts().unwrap_or(dts);
            let payload = if m.track == VIDEO && m.annex_b {
                Bytes::from(annex_b_to_length_prefixed(data))
            } else {
                Bytes::copy_from_slice(data)
            };
            return Ok(Some(Frame {
                track: m.track,
                dts: MediaTime::new(dts * m.num, m.scale),
                pts: MediaTime::new(pts * m.num, m.scale),
                keyframe: packet.is_key() || m.track != VIDEO,
                data: payload,
            }));
        }
    }
}
